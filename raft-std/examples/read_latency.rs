//! Read latency in a 3-node in-process cluster (in-memory storage): sequential `GET`s served
//! at the leader (ReadIndex), at a follower with follower reads on (the follower asks the
//! leader for the read index and serves the read itself), and at a follower without them, as a
//! client that starts at a follower goes: refused with the leader's name, then served there.
//! The network is in-process channels, so what differs is the number of hops and rounds, not
//! wire latency: on a real network a follower read costs one round trip to the leader more than
//! a leader read, and saves the client's own trip to the leader.
//!
//! Run: `cargo run --release -p raft-std --example read_latency [reads per case]` (default 2000).

use std::error::Error;
use std::time::{Duration, Instant};

use raft_core::NodeId;
use raft_std::client::RequestError;
use raft_std::kv::{ClientId, KvCommand, KvConfig, KvQuery, KvRequest, KvStore};
use raft_std::test_util::cluster::{Cluster, ClusterOptions, MemStorageFactory};

type Kv = Cluster<KvStore, MemStorageFactory>;

fn start(follower_reads: bool) -> Result<(Kv, NodeId, NodeId), Box<dyn Error>> {
    let mut options = ClusterOptions::new(3);
    options.runtime.raft.follower_reads = follower_reads;
    let cluster = Cluster::with_storage(options, MemStorageFactory::new(), |_| {
        KvStore::new(KvConfig::default())
    })?;
    let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
    cluster.propose(KvRequest::new(ClientId(1), 1, KvCommand::set("k", "v")).encode())?;
    let follower = cluster
        .running()
        .into_iter()
        .find(|&n| n != leader)
        .ok_or("no follower")?;
    Ok((cluster, leader, follower))
}

/// Median and 99th percentile of `reads` sequential reads, each made by `read`, after a
/// warm-up of a tenth as many.
fn measure(
    reads: usize,
    mut read: impl FnMut() -> Result<(), Box<dyn Error>>,
) -> Result<(Duration, Duration), Box<dyn Error>> {
    for _ in 0..reads / 10 {
        read()?;
    }
    let mut lat = Vec::with_capacity(reads);
    for _ in 0..reads {
        let t0 = Instant::now();
        read()?;
        lat.push(t0.elapsed());
    }
    lat.sort();
    let pct = |p: usize| lat[(lat.len() - 1) * p / 100];
    Ok((pct(50), pct(99)))
}

fn main() -> Result<(), Box<dyn Error>> {
    let reads: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let get = || KvQuery::Get { key: b"k".to_vec() };
    let mut rows = Vec::new();

    let (cluster, leader, follower) = start(false)?;
    let at_leader = cluster.node(leader).ok_or("no leader node")?;
    rows.push((
        "at the leader",
        measure(reads, || Ok(at_leader.read(get()).map(drop)?))?,
    ));
    let at_follower = cluster.node(follower).ok_or("no follower node")?;
    rows.push((
        "at a follower, redirected to the leader",
        measure(reads, || match at_follower.read(get()) {
            Err(RequestError::NotLeader { leader: Some(l) }) => {
                let node = cluster.node(l).ok_or("no such node")?;
                Ok(node.read(get()).map(drop)?)
            }
            other => Err(format!("expected a redirect, got {other:?}").into()),
        })?,
    ));
    cluster.shutdown()?;

    let (cluster, _, follower) = start(true)?;
    let at_follower = cluster.node(follower).ok_or("no follower node")?;
    rows.push((
        "at a follower, follower reads on",
        measure(reads, || Ok(at_follower.read(get()).map(drop)?))?,
    ));
    cluster.shutdown()?;

    println!("{reads} sequential GETs per case, 3 nodes in process, in-memory storage");
    println!("{:<42} {:>10} {:>10}", "case", "p50", "p99");
    for (case, (p50, p99)) in rows {
        println!("{case:<42} {p50:>10.1?} {p99:>10.1?}");
    }
    Ok(())
}
