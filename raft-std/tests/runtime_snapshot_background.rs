//! Snapshots written off the node thread: while a state machine's view is slow to write, the
//! node keeps its leader, commits and answers; the snapshot is taken once the write ends; a node
//! stopped in the middle restarts cleanly.

mod common;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{List, Lists, WAIT};
use raft_core::{Index, NodeId};
use raft_std::state_machine::{SnapshotSource, StateMachine};
use raft_std::test_util::cluster::{Cluster, ClusterOptions, MemStorageFactory};

const LOG_ENTRIES: u64 = 20;
/// How long a snapshot waits for the gate at most: a node thread held this long (as by a
/// snapshot written on it) misses many heartbeats.
const GATE_LIMIT: Duration = Duration::from_secs(5);

/// Snapshots wait here until the test opens it (or [`GATE_LIMIT`] passes).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Snapshots that started waiting.
    waiting: AtomicUsize,
    /// Each node's first view fails (without writing).
    fail_first: AtomicBool,
    /// The node and index of each view that failed.
    failed: Mutex<Vec<(NodeId, u64)>>,
}

impl Gate {
    fn wait(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let _ = self
            .opened
            .wait_timeout_while(open, GATE_LIMIT, |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// A [`List`] whose snapshots are slow: each waits for the gate before writing anything.
struct Slow {
    id: NodeId,
    list: List,
    gate: Arc<Gate>,
    /// Its first view was made to fail.
    failed: AtomicBool,
}

impl StateMachine for Slow {
    type Response = usize;
    type Query = common::Query;
    type QueryResponse = common::Answer;

    fn apply(&mut self, index: Index, command: &[u8]) -> usize {
        self.list.apply(index, command)
    }

    fn query(&self, query: &common::Query) -> common::Answer {
        self.list.query(query)
    }

    /// Slow on the node thread too, so that a runtime that snapshots there stalls.
    fn snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        self.gate.wait();
        self.list.snapshot(out)
    }

    fn snapshot_source(&self) -> Option<Box<dyn SnapshotSource>> {
        // The view: a copy of the bytes as of now.
        let mut bytes = Vec::new();
        self.list.snapshot(&mut bytes).ok()?;
        let gate = Arc::clone(&self.gate);
        let fail =
            gate.fail_first.load(Ordering::SeqCst) && !self.failed.swap(true, Ordering::SeqCst);
        let id = self.id;
        Some(Box::new(move |out: &mut dyn Write| {
            if fail {
                // A list's snapshot starts with its last index.
                let at = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                gate.failed.lock().unwrap().push((id, at));
                return Err(io::Error::other("the view failed"));
            }
            gate.wait();
            out.write_all(&bytes)
        }))
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        self.list.restore(input)
    }
}

fn cluster() -> (Cluster<Slow, MemStorageFactory>, Lists, Arc<Gate>) {
    let lists = Lists::default();
    let gate = Arc::new(Gate::default());
    let mut options = ClusterOptions::new(3);
    options.runtime.raft.snapshot_log_entries = LOG_ENTRIES;
    options.runtime.raft.snapshot_trailing_entries = 5;
    let (make, g) = (lists.clone(), Arc::clone(&gate));
    let cluster = Cluster::with_storage(options, MemStorageFactory::new(), move |id| Slow {
        id,
        list: make.make(id),
        gate: Arc::clone(&g),
        failed: AtomicBool::new(false),
    })
    .expect("cluster starts");
    (cluster, lists, gate)
}

fn wait_converged(cluster: &Cluster<Slow, MemStorageFactory>, lists: &Lists, len: usize) {
    let running = cluster.running();
    cluster
        .wait_for(WAIT, "every node to apply the same list", |_| {
            let first = lists.of(running[0]);
            first.len() >= len && running.iter().all(|&r| lists.of(r) == first)
        })
        .unwrap();
}

fn snapshot_index(cluster: &Cluster<Slow, MemStorageFactory>, id: NodeId) -> u64 {
    cluster.node(id).unwrap().status().unwrap().snapshot.index.0
}

/// Proposes until every node has started a snapshot (each waits at the gate).
fn cross_the_threshold(cluster: &Cluster<Slow, MemStorageFactory>, gate: &Gate) -> usize {
    let mut n = 0;
    while gate.waiting.load(Ordering::SeqCst) < 3 {
        cluster.propose(format!("load {n}").into_bytes()).unwrap();
        n += 1;
        assert!(n < 1000, "no snapshot started");
    }
    n
}

#[test]
fn a_slow_snapshot_does_not_hold_up_the_node() {
    let (cluster, lists, gate) = cluster();
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let term = cluster.node(leader).unwrap().status().unwrap().term;
    let mut n = cross_the_threshold(&cluster, &gate);

    // Every node is writing a snapshot now. For longer than an election timeout, the leader
    // keeps leading, commits promptly and answers.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let t0 = Instant::now();
        cluster.propose(format!("during {n}").into_bytes()).unwrap();
        n += 1;
        let status = cluster.node(leader).unwrap().status().unwrap();
        let took = t0.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "a proposal and a status took {took:?} while the snapshot was written"
        );
        assert_eq!((status.term, status.leader), (term, Some(leader)));
        std::thread::sleep(Duration::from_millis(10));
    }
    for &id in cluster.ids() {
        assert_eq!(
            snapshot_index(&cluster, id),
            0,
            "node {id}: still in flight"
        );
    }
    wait_converged(&cluster, &lists, n);

    // Once written, the snapshot is taken: the core knows it and storage holds it.
    gate.open();
    cluster
        .wait_for(WAIT, "every node to take its snapshot", |c| {
            c.ids().iter().all(|&id| {
                snapshot_index(c, id) > LOG_ENTRIES
                    && c.disk(id)
                        .is_some_and(|d| d.snapshot_meta().last.index.0 > LOG_ENTRIES)
            })
        })
        .unwrap();
    let status = cluster.node(leader).unwrap().status().unwrap();
    assert_eq!((status.term, status.leader), (term, Some(leader)));
}

#[test]
fn a_node_stopped_while_writing_a_snapshot_restarts_cleanly() {
    let (mut cluster, lists, gate) = cluster();
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let n = cross_the_threshold(&cluster, &gate);
    wait_converged(&cluster, &lists, n);
    let before = lists.of(leader);

    // Stopped in the middle of the write: once the view finishes, nothing is stored.
    cluster.crash(leader);
    gate.open();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        cluster.disk(leader).unwrap().snapshot_meta().last.index.0,
        0,
        "a snapshot stored by a stopped node"
    );

    // It restarts from its log, catches up and snapshots again.
    cluster.restart(leader).unwrap();
    cluster.wait_for_leader(WAIT).unwrap();
    for i in 0..LOG_ENTRIES * 2 {
        cluster.propose(format!("after {i}").into_bytes()).unwrap();
    }
    let total = n + LOG_ENTRIES as usize * 2;
    wait_converged(&cluster, &lists, total);
    assert_eq!(&lists.of(leader)[..n], &before[..]);
    cluster
        .wait_for(WAIT, "the restarted node to take a snapshot", |c| {
            c.disk(leader)
                .is_some_and(|d| d.snapshot_meta().last.index.0 > 0)
        })
        .unwrap();

    // And restarts from that snapshot.
    let all = lists.of(leader);
    cluster.crash(leader);
    cluster.restart(leader).unwrap();
    cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"last".to_vec()).unwrap();
    wait_converged(&cluster, &lists, total + 1);
    assert_eq!(&lists.of(leader)[..total], &all[..]);
}

#[test]
fn a_failed_view_drops_the_snapshot_and_the_next_threshold_tries_again() {
    let (cluster, lists, gate) = cluster();
    gate.fail_first.store(true, Ordering::SeqCst);
    gate.open();
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let term = cluster.node(leader).unwrap().status().unwrap().term;
    // A follower may lag (a quorum is two), so it crosses the threshold when it catches up.
    let mut n = 0;
    while gate.failed.lock().unwrap().len() < 3 {
        cluster.propose(format!("load {n}").into_bytes()).unwrap();
        n += 1;
        assert!(n < 1000, "no snapshot started");
    }
    let failed = gate.failed.lock().unwrap().clone();
    for &(id, at) in &failed {
        let taken = snapshot_index(&cluster, id);
        assert!(
            taken == 0 || taken > at + LOG_ENTRIES,
            "node {id}: its failed view at {at} was taken ({taken})"
        );
    }
    // The nodes go on; another threshold's worth of entries after the failure, each tries
    // again, and that one is taken.
    for i in 0..=2 * LOG_ENTRIES {
        cluster.propose(format!("more {i}").into_bytes()).unwrap();
    }
    wait_converged(&cluster, &lists, n + 2 * LOG_ENTRIES as usize + 1);
    cluster
        .wait_for(WAIT, "every node to take a snapshot", |c| {
            failed
                .iter()
                .all(|&(id, at)| snapshot_index(c, id) > at + LOG_ENTRIES)
        })
        .unwrap();
    let status = cluster.node(leader).unwrap().status().unwrap();
    assert_eq!((status.term, status.leader), (term, Some(leader)));
}
