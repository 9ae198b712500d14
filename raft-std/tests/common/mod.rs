//! A tiny state machine for the runtime tests: an append-only list of commands, observable from
//! the test while the node runs.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses part of this"
)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft_core::{Index, NodeId};
use raft_std::state_machine::StateMachine;
use raft_std::test_util::cluster::{Cluster, ClusterOptions, MemStorageFactory};

/// What a list holds, shared with the test.
pub type Items = Arc<Mutex<Vec<Vec<u8>>>>;

/// Every node's list, by node id (replaced at each restart).
#[derive(Clone, Default)]
pub struct Lists(Arc<Mutex<HashMap<NodeId, Items>>>);

impl Lists {
    /// A fresh state machine for `id`, observable through `self`.
    pub fn make(&self, id: NodeId) -> List {
        let items = Items::default();
        self.0.lock().unwrap().insert(id, Arc::clone(&items));
        List {
            items,
            last_index: Index::ZERO,
        }
    }

    fn items(&self, id: NodeId) -> Items {
        self.0.lock().unwrap().get(&id).cloned().unwrap_or_default()
    }

    /// Node `id`'s list as it is now.
    pub fn of(&self, id: NodeId) -> Vec<Vec<u8>> {
        self.items(id).lock().unwrap().clone()
    }

    /// Node `id`'s list length.
    pub fn len(&self, id: NodeId) -> usize {
        self.items(id).lock().unwrap().len()
    }
}

/// Appends every command; a command's response is the list's length after it.
pub struct List {
    items: Items,
    last_index: Index,
}

/// Reads of a [`List`].
#[derive(Clone, Debug)]
pub enum Query {
    /// The number of items.
    Len,
    /// Every item.
    All,
}

/// Answers to [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The number of items.
    Len(usize),
    /// Every item.
    All(Vec<Vec<u8>>),
}

impl StateMachine for List {
    type Response = usize;
    type Query = Query;
    type QueryResponse = Answer;

    fn apply(&mut self, index: Index, command: &[u8]) -> usize {
        assert!(
            index > self.last_index,
            "applied {index} after {}",
            self.last_index
        );
        self.last_index = index;
        let mut items = self.items.lock().unwrap();
        items.push(command.to_vec());
        items.len()
    }

    fn query(&self, query: &Query) -> Answer {
        let items = self.items.lock().unwrap();
        match query {
            Query::Len => Answer::Len(items.len()),
            Query::All => Answer::All(items.clone()),
        }
    }

    fn snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        let items = self.items.lock().unwrap();
        out.write_all(&self.last_index.0.to_le_bytes())?;
        out.write_all(&(items.len() as u64).to_le_bytes())?;
        for item in items.iter() {
            out.write_all(&(item.len() as u32).to_le_bytes())?;
            out.write_all(item)?;
        }
        Ok(())
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut u64_buf = [0u8; 8];
        input.read_exact(&mut u64_buf)?;
        let last_index = Index(u64::from_le_bytes(u64_buf));
        input.read_exact(&mut u64_buf)?;
        let count = u64::from_le_bytes(u64_buf);
        let mut items = Vec::new();
        for _ in 0..count {
            let mut len = [0u8; 4];
            input.read_exact(&mut len)?;
            let mut item = vec![0; u32::from_le_bytes(len) as usize];
            input.read_exact(&mut item)?;
            items.push(item);
        }
        let mut extra = [0u8; 1];
        if input.read(&mut extra)? != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "trailing bytes"));
        }
        self.last_index = last_index;
        *self.items.lock().unwrap() = items;
        Ok(())
    }
}

/// Generous: the machine may be loaded by other test runs.
pub const WAIT: Duration = Duration::from_secs(10);

/// A cluster of `n` list nodes on in-memory storage; `tweak` adjusts the options.
pub fn cluster(
    n: usize,
    tweak: impl FnOnce(&mut ClusterOptions),
) -> (Cluster<List, MemStorageFactory>, Lists) {
    let lists = Lists::default();
    let mut options = ClusterOptions::new(n);
    tweak(&mut options);
    let make = lists.clone();
    let cluster = Cluster::with_storage(options, MemStorageFactory::new(), move |id| make.make(id))
        .expect("cluster starts");
    (cluster, lists)
}

/// Node id `n`.
pub fn id(n: u64) -> NodeId {
    NodeId::new(n).unwrap()
}

/// Waits until every running node's list equals the leader's and holds at least `len` items.
pub fn wait_converged(cluster: &Cluster<List, MemStorageFactory>, lists: &Lists, len: usize) {
    let running = cluster.running();
    cluster
        .wait_for(WAIT, "every node to apply the same list", |_| {
            let first = lists.of(running[0]);
            first.len() >= len && running.iter().all(|&r| lists.of(r) == first)
        })
        .unwrap_or_else(|e| {
            let lens: Vec<(NodeId, usize)> = running.iter().map(|&r| (r, lists.len(r))).collect();
            panic!("{e}: lengths {lens:?}, want {len}")
        });
}
