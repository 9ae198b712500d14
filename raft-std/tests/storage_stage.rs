//! The storage stage (on by default): fsync runs on a thread of its own while the node thread
//! goes on stepping, and nothing is acknowledged before it is durable.
//!
//! A 3-node KV cluster on `FileStorage` over a `FaultyFs` per node; the leader's disk is then
//! stalled (every file sync waits), so that a sync is in flight for as long as the test needs:
//!
//! - the leader keeps answering and commits the entry on its followers' acknowledgements while
//!   its own sync of that entry is still in flight (without the stage its thread would sit in
//!   the fsync, and answer nothing);
//! - the client is not answered until the leader's own write is durable too;
//! - a crash of the leader in the middle of that sync loses nothing that was acknowledged: the
//!   entry, committed by the followers, is in the cluster after the restart, and the client,
//!   answered "uncertain", finds it applied once.

use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

use raft_std::client::{Completion, RequestError};
use raft_std::kv::{ClientId, KvCommand, KvConfig, KvQuery, KvRequest, KvResponse, KvStore};
use raft_std::test_util::cluster::{Cluster, ClusterOptions, FileStorageFactory};
use raft_std::test_util::faulty::{FaultPlan, FaultyFs};

type KvCluster = Cluster<KvStore, FileStorageFactory<FaultyFs>>;

const WAIT: Duration = Duration::from_secs(10);
/// How long each of the leader's file syncs takes once its disk is stalled.
const STALL: Duration = Duration::from_millis(1500);

fn start(seed: u64) -> KvCluster {
    let options = ClusterOptions::new(3);
    assert!(options.runtime.storage_stage, "the stage is on by default");
    Cluster::with_storage(options, FileStorageFactory::faulty(seed), |_| {
        KvStore::new(KvConfig::default())
    })
    .expect("cluster starts")
}

fn set(seq: u64, key: &str, value: &str) -> Vec<u8> {
    KvRequest::new(
        ClientId(7),
        seq,
        KvCommand::set(key.as_bytes().to_vec(), value.as_bytes().to_vec()),
    )
    .encode()
}

/// Stalls every file sync on node `id`'s disk.
fn stall(cluster: &KvCluster, id: raft_core::NodeId, delay: Option<Duration>) {
    cluster.with_storage_factory(|f| {
        f.fs(id)
            .expect("the node's file system")
            .set_plan(FaultPlan {
                sync_delay: delay,
                ..FaultPlan::default()
            });
    });
}

#[test]
fn a_leader_commits_on_its_followers_and_keeps_answering_while_its_own_sync_is_in_flight() {
    let cluster = start(11);
    let leader = cluster.wait_for_leader(WAIT).expect("a leader");
    // A first write, so that the leader has committed in its term and every node is caught up.
    cluster.propose(set(1, "warm", "up")).expect("first write");
    let node = cluster.node(leader).expect("leader handle");
    let before = node.status().expect("status").commit;

    stall(&cluster, leader, Some(STALL));
    let (done, answer) = Completion::channel();
    let started = Instant::now();
    node.propose_with(set(2, "k", "v"), WAIT, done);

    // The leader answers a status request long before its sync of the entry can finish, and by
    // then the followers' acknowledgements have committed the entry.
    let mut committed = false;
    while started.elapsed() < STALL / 2 {
        let status = node.status().expect("status while the sync is in flight");
        if status.commit > before {
            committed = true;
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let waited = started.elapsed();
    assert!(
        committed,
        "the entry was not committed within {waited:?}, with the leader's sync in flight"
    );
    assert!(
        waited < STALL / 2,
        "the node thread was blocked for {waited:?} (the sync takes {STALL:?})"
    );
    // The client is answered only once the leader's own write is durable.
    match answer.recv_timeout(STALL / 4) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("answered while the leader's write was not yet durable: {other:?}"),
    }
    let result = answer
        .recv_timeout(WAIT)
        .expect("an answer once the sync ends");
    assert_eq!(result.expect("the write"), KvResponse::Ok);
    assert!(
        started.elapsed() >= STALL,
        "answered before the stalled sync ended"
    );
    stall(&cluster, leader, None);
    cluster.shutdown().expect("clean shutdown");
}

#[test]
fn a_crash_while_a_sync_is_in_flight_loses_nothing_acknowledged() {
    let mut cluster = start(12);
    let leader = cluster.wait_for_leader(WAIT).expect("a leader");
    cluster.propose(set(1, "warm", "up")).expect("first write");
    let node = cluster.node(leader).expect("leader handle");
    let before = node.status().expect("status").commit;

    stall(&cluster, leader, Some(STALL));
    let (done, answer) = Completion::channel();
    node.propose_with(set(2, "k", "v"), WAIT, done);
    let deadline = Instant::now() + STALL / 2;
    while node.status().expect("status").commit <= before {
        assert!(
            Instant::now() < deadline,
            "the followers did not commit the entry"
        );
        thread::sleep(Duration::from_millis(5));
    }

    // Crash the leader in the middle of its sync: its copy of the entry is not durable and is
    // lost (the faulty disk keeps only what was synced), but the followers hold it.
    cluster.crash(leader);
    let told = answer
        .recv_timeout(WAIT)
        .expect("the crashed node answers its caller");
    assert!(
        matches!(told, Err(ref e) if !matches!(e, RequestError::NotLeader { .. })),
        "a write cut short by a crash is uncertain, never acknowledged: {told:?}"
    );
    stall(&cluster, leader, None);
    cluster.restart(leader).expect("restart");
    cluster
        .wait_for_leader(WAIT)
        .expect("a leader after the crash");

    // The entry was committed: it is there, applied once, on every node that restarts too.
    assert_eq!(
        cluster.read(KvQuery::get(b"k".to_vec())).expect("read"),
        KvResponse::Value(Some(b"v".to_vec()))
    );
    // Retrying with the same sequence number is answered from the session, not applied again.
    assert_eq!(
        cluster.propose(set(2, "k", "v")).expect("retry"),
        KvResponse::Ok
    );
    assert_eq!(
        cluster.read(KvQuery::DbSize).expect("read"),
        KvResponse::Integer(2)
    );
    cluster.shutdown().expect("clean shutdown");
}
