//! Snapshots in the runtime: taken under load when the core suggests them, sent in chunks to a
//! follower that fell behind the leader's log, and restarted from.

mod common;

use common::{List, WAIT, cluster, wait_converged};
use raft_core::NodeId;
use raft_std::test_util::cluster::{Cluster, ClusterOptions, MemStorageFactory};

const LOG_ENTRIES: u64 = 20;
const TRAILING: u64 = 5;

fn small_snapshots(o: &mut ClusterOptions) {
    o.runtime.raft.snapshot_log_entries = LOG_ENTRIES;
    o.runtime.raft.snapshot_trailing_entries = TRAILING;
    // Many chunks per transfer.
    o.runtime.raft.snapshot_chunk_bytes = 64;
}

/// Proposes `count` commands (a multiple of 4) from 4 threads at once.
fn load(cluster: &Cluster<List, MemStorageFactory>, count: usize) {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..count / 4 {
                    cluster.propose(format!("t{t} #{i}").into_bytes()).unwrap();
                }
            });
        }
    });
}

#[test]
fn snapshots_under_load_and_a_lagging_follower_catches_up_by_transfer() {
    let (mut cluster, lists) = cluster(3, small_snapshots);
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    for i in 0..3u8 {
        cluster.propose(vec![i]).unwrap();
    }
    wait_converged(&cluster, &lists, 3);
    let lagging = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    cluster.crash(lagging);
    let behind = cluster.disk(lagging).unwrap().last_log().index;

    load(&cluster, 400);
    let status = cluster.node(leader).unwrap().status().unwrap();
    println!(
        "leader after load: snapshot {}, log_len {}, applied {}",
        status.snapshot, status.log_len, status.applied
    );
    assert!(
        status.snapshot.index.0 > LOG_ENTRIES,
        "the leader took snapshots"
    );
    assert!(
        status.log_len as u64 <= 4 * (LOG_ENTRIES + TRAILING) + 50,
        "the in-memory log stays bounded: {}",
        status.log_len
    );
    assert!(
        status.snapshot.index.0.saturating_sub(TRAILING) > behind.0,
        "the leader no longer holds what the lagging node needs"
    );

    cluster.restart(lagging).unwrap();
    wait_converged(&cluster, &lists, 403);
    let disk = cluster.disk(lagging).unwrap();
    assert!(
        disk.snapshot_meta().last.index > behind,
        "the lagging node holds a snapshot now"
    );
    // And it keeps up with new writes after the transfer.
    cluster.propose(b"after".to_vec()).unwrap();
    wait_converged(&cluster, &lists, 404);
}

#[test]
fn nodes_restart_from_their_own_snapshots() {
    let (mut cluster, lists) = cluster(3, small_snapshots);
    cluster.wait_for_leader(WAIT).unwrap();
    load(&cluster, 200);
    wait_converged(&cluster, &lists, 200);
    let ids: Vec<NodeId> = cluster.ids().to_vec();
    cluster
        .wait_for(WAIT, "every node to take a snapshot", |c| {
            ids.iter().all(|&n| {
                c.disk(n)
                    .is_some_and(|d| d.snapshot_meta().last.index.0 > 0)
            })
        })
        .unwrap();
    let before = lists.of(ids[0]);
    for &n in &ids {
        cluster.crash(n);
    }
    for &n in &ids {
        cluster.restart(n).unwrap();
    }
    // Restored from the snapshot plus the log after it (the lists were rebuilt from scratch).
    cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"after restart".to_vec()).unwrap();
    wait_converged(&cluster, &lists, 201);
    let after = lists.of(ids[0]);
    assert_eq!(&after[..200], &before[..]);
    assert_eq!(after[200], b"after restart");
}
