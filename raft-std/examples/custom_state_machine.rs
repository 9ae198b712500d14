//! Your own state machine on a 3-node cluster in one process, each node on its own thread: a
//! string map implements [`StateMachine`] (apply, query, snapshot and its view, restore), and the cluster
//! writes, kills the leader, measures failover, keeps writing, restarts the old leader and checks
//! that every node holds every acknowledged write.
//!
//! Run: `cargo run --release -p raft-std --example custom_state_machine`

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use raft_core::Index;
use raft_std::state_machine::{SnapshotSource, StateMachine};
use raft_std::test_util::cluster::Cluster;

/// A map from key to value; a command is `key=value`, its response the previous value.
#[derive(Default)]
struct Map(BTreeMap<String, String>);

impl StateMachine for Map {
    type Response = Option<String>;
    type Query = Option<String>; // a key, or `None` for the number of keys
    type QueryResponse = String;

    fn apply(&mut self, _index: Index, command: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(command);
        let (key, value) = text.split_once('=')?;
        self.0.insert(key.to_owned(), value.to_owned())
    }

    fn query(&self, query: &Option<String>) -> String {
        match query {
            Some(key) => self.0.get(key).cloned().unwrap_or_default(),
            None => self.0.len().to_string(),
        }
    }

    fn snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        for (k, v) in &self.0 {
            writeln!(out, "{k}={v}")?;
        }
        Ok(())
    }

    /// Optional: a view the runtime writes off the node thread, so that the node keeps sending
    /// heartbeats meanwhile (without it, `snapshot` runs on the node thread). It must not change
    /// with later applies: a clone is fine for a small map (a copy on the node thread); a large
    /// state wants a persistent map, as `KvStore` has.
    fn snapshot_source(&self) -> Option<Box<dyn SnapshotSource>> {
        let view = Self(self.0.clone());
        Some(Box::new(move |out: &mut dyn Write| view.snapshot(out)))
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut text = String::new();
        input.read_to_string(&mut text)?;
        self.0.clear();
        for line in text.lines() {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not key=value"))?;
            self.0.insert(k.to_owned(), v.to_owned());
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut cluster = Cluster::start(3, |_| Map::default())?;
    let started = Instant::now();
    let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
    println!("node {leader} leads after {:?}", started.elapsed());

    let writes = 1000;
    let t = Instant::now();
    for i in 0..writes {
        cluster.propose(format!("key{i}=v{i}").into_bytes())?;
    }
    let took = t.elapsed();
    println!(
        "{writes} sequential writes in {took:?} ({:.0} writes/s)",
        f64::from(writes) / took.as_secs_f64()
    );

    let old = cluster.leader().ok_or("no leader")?;
    println!("killing the leader, node {old}");
    let killed = Instant::now();
    cluster.crash(old);
    cluster.propose(b"after=failover".to_vec())?;
    let failover = killed.elapsed();
    let new = cluster.leader().ok_or("no leader")?;
    println!("node {new} leads; first write committed {failover:?} after the kill");

    for i in writes..writes + 100 {
        cluster.propose(format!("key{i}=v{i}").into_bytes())?;
    }
    println!("restarting node {old}");
    cluster.restart(old)?;
    let expected = (writes + 101).to_string();
    cluster.wait_for(Duration::from_secs(10), "node to catch up", |c| {
        c.node(old).and_then(|n| n.status().ok()).is_some_and(|s| {
            c.node(new)
                .and_then(|n| n.status().ok())
                .is_some_and(|l| s.applied >= l.commit)
        })
    })?;
    let keys = cluster.read(None)?;
    println!("the cluster holds {keys} keys (expected {expected})");
    if keys != expected {
        return Err("lost writes".into());
    }
    for probe in [0, writes / 2, writes + 99] {
        let value = cluster.read(Some(format!("key{probe}")))?;
        if value != format!("v{probe}") {
            return Err(format!("key{probe} holds {value:?}").into());
        }
    }
    let status = cluster
        .node(old)
        .ok_or("restarted node missing")?
        .status()?;
    println!(
        "node {old} after restart: role {:?}, term {}, applied {}",
        status.role, status.term, status.applied
    );
    cluster.shutdown()?;
    println!("all acknowledged writes present; clean shutdown");
    Ok(())
}
