//! Crash consistency of the whole stack: a 3-node KV cluster on `FileStorage` over a `FaultyFs`
//! per node. Clients keep writing while nodes (leaders too) crash, losing or tearing what they
//! had not synced, and restart; every write acknowledged must survive with the right value, and
//! no retried increment may be applied twice. Also: an `EIO` on fsync stops that node with the
//! cause while the other two keep serving, and damaged storage fails a restart with an error.
//!
//! `CLUSTER_CRASH_ROUNDS` (default 80) sets the number of crash points per seed,
//! `CLUSTER_CRASH_SEEDS` (default 1) the number of seeds, `CLUSTER_CRASH_SEED` the first seed.
//! A failure prints the seed.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use raft_core::NodeId;
use raft_core::sim::SimRng;
use raft_std::client::RequestError;
use raft_std::kv::{ClientId, KvCommand, KvConfig, KvQuery, KvRequest, KvResponse, KvStore};
use raft_std::runtime::{NodeError, Proposal};
use raft_std::storage::StorageError;
use raft_std::storage::file::FileStorageOptions;
use raft_std::storage::fs::FileSystem;
use raft_std::test_util::cluster::{Cluster, ClusterError, ClusterOptions, FileStorageFactory};
use raft_std::test_util::faulty::{CrashMode, FaultPlan, FaultyFs};

type KvCluster = Cluster<KvStore, FileStorageFactory<FaultyFs>>;

const WAIT: Duration = Duration::from_secs(10);
const CLIENTS: u64 = 4;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Small segments and frequent snapshots, so that crashes hit segment rolls, snapshot installs
/// and log compaction too.
fn start(seed: u64) -> KvCluster {
    let mut options = ClusterOptions::new(3);
    options.runtime.raft.snapshot_log_entries = 64;
    options.runtime.raft.snapshot_trailing_entries = 16;
    let factory = FileStorageFactory::faulty(seed).with_options(FileStorageOptions {
        segment_size: 4096,
        write_buffer: 512,
    });
    Cluster::with_storage(options, factory, |_| KvStore::new(KvConfig::default()))
        .expect("cluster starts")
}

/// What the clients were told: the value of every key they wrote.
#[derive(Default)]
struct Model {
    values: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A client with one write outstanding at a time; a write whose outcome is unknown is retried
/// with the same sequence number, so the store answers it from the session instead of applying
/// it twice.
struct Client {
    id: ClientId,
    seq: u64,
    incrs: i64,
}

/// One write and the response it must get.
struct Op {
    client: usize,
    bytes: Vec<u8>,
    expect: KvResponse,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Client {
    fn next_op(&mut self, index: usize, rng: &mut SimRng) -> Op {
        self.seq += 1;
        let c = self.id.0;
        let (command, expect, key, value) = if rng.chance(500000) {
            let key = format!("k-{c}-{}", self.seq).into_bytes();
            let value = format!("v-{c}-{}-{}", self.seq, rng.next_u64()).into_bytes();
            (
                KvCommand::set(key.clone(), value.clone()),
                KvResponse::Ok,
                key,
                value,
            )
        } else {
            self.incrs += 1;
            let key = format!("ctr-{c}").into_bytes();
            (
                KvCommand::incr(key.clone()),
                KvResponse::Integer(self.incrs),
                key,
                self.incrs.to_string().into_bytes(),
            )
        };
        Op {
            client: index,
            bytes: KvRequest::new(self.id, self.seq, command).encode(),
            expect,
            key,
            value,
        }
    }
}

fn clients() -> Vec<Client> {
    (1..=CLIENTS)
        .map(|c| Client {
            id: ClientId(c),
            seq: 0,
            incrs: 0,
        })
        .collect()
}

/// Retries `op` (same client and seq) until the cluster acknowledges it.
fn retry(cluster: &KvCluster, op: &Op) -> KvResponse {
    let mut last = None;
    for _ in 0..5 {
        match cluster.propose(op.bytes.clone()) {
            Ok(response) => return response,
            Err(
                e @ (ClusterError::Timeout { .. }
                | ClusterError::Request(RequestError::Uncertain(_))),
            ) => last = Some(e),
            Err(e) => panic!("proposal failed: {e}"),
        }
    }
    panic!("the cluster did not acknowledge a write after 5 tries: {last:?}");
}

/// Records an acknowledged write, checking its response.
fn acked(model: &mut Model, op: &Op, response: &KvResponse) {
    assert_eq!(
        response,
        &op.expect,
        "client {} got the wrong response (a double apply?)",
        op.client + 1
    );
    model.values.insert(op.key.clone(), op.value.clone());
}

/// One write per client, retried until acknowledged.
fn write_all(cluster: &KvCluster, clients: &mut [Client], model: &mut Model, rng: &mut SimRng) {
    for (i, client) in clients.iter_mut().enumerate() {
        let op = client.next_op(i, rng);
        let response = retry(cluster, &op);
        acked(model, &op, &response);
    }
}

/// Every acknowledged write is there, and nothing else.
fn verify(cluster: &KvCluster, model: &Model) {
    for (key, value) in &model.values {
        let got = cluster.read(KvQuery::get(key.clone())).expect("read");
        assert_eq!(
            got,
            KvResponse::Value(Some(value.clone())),
            "key {} lost or wrong",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(
        cluster.read(KvQuery::DbSize).expect("read"),
        KvResponse::Integer(i64::try_from(model.values.len()).unwrap()),
        "the store holds keys no client wrote"
    );
}

fn random_mode(rng: &mut SimRng) -> CrashMode {
    if rng.chance(300000) {
        CrashMode::Tear
    } else {
        CrashMode::LoseUnsynced
    }
}

fn crash(cluster: &mut KvCluster, id: NodeId, mode: CrashMode) {
    cluster.with_storage_factory(|f| f.set_crash_mode(mode));
    cluster.crash(id);
}

fn restart(cluster: &mut KvCluster, id: NodeId) {
    if let Err(e) = cluster.restart(id) {
        panic!("node {id} cannot restart: {e}");
    }
}

struct Outcome {
    crashes: u64,
    leader_crashes: u64,
    tears: u64,
    writes: usize,
    retried: u64,
}

fn run(seed: u64, rounds: u64) -> Outcome {
    let mut rng = SimRng::new(seed);
    let mut cluster = start(seed);
    let mut clients = clients();
    let mut model = Model::default();
    let mut out = Outcome {
        crashes: 0,
        leader_crashes: 0,
        tears: 0,
        writes: 0,
        retried: 0,
    };
    cluster.wait_for_leader(WAIT).expect("a leader");
    write_all(&cluster, &mut clients, &mut model, &mut rng);
    for _ in 0..rounds {
        let leader = cluster.wait_for_leader(WAIT).expect("a leader");
        // Every client has a write in flight at the leader when the crash comes.
        let node = cluster.node(leader).expect("leader runs");
        let mut inflight: Vec<(Op, Option<Proposal<KvStore>>)> = Vec::new();
        for (i, client) in clients.iter_mut().enumerate() {
            let op = client.next_op(i, &mut rng);
            let proposal = Some(node.propose_async(op.bytes.clone()));
            inflight.push((op, proposal));
        }
        thread::sleep(Duration::from_millis(rng.below(6)));
        let victim = if rng.chance(400000) {
            leader
        } else {
            let others: Vec<NodeId> = cluster
                .ids()
                .iter()
                .copied()
                .filter(|&n| n != leader)
                .collect();
            others[usize::try_from(rng.below(others.len() as u64)).unwrap()]
        };
        let mode = random_mode(&mut rng);
        crash(&mut cluster, victim, mode);
        out.crashes += 1;
        out.leader_crashes += u64::from(victim == leader);
        out.tears += u64::from(mode == CrashMode::Tear);
        for (op, proposal) in inflight {
            let first = proposal.map(|p| p.wait(Duration::from_secs(2)));
            let response = match first {
                Some(Ok(response)) => response,
                // Unknown or not applied: the same request again.
                _ => {
                    out.retried += 1;
                    retry(&cluster, &op)
                }
            };
            acked(&mut model, &op, &response);
        }
        // The two survivors serve on their own for a while.
        for _ in 0..rng.below(3) {
            write_all(&cluster, &mut clients, &mut model, &mut rng);
        }
        restart(&mut cluster, victim);
        write_all(&cluster, &mut clients, &mut model, &mut rng);
    }
    verify(&cluster, &model);
    // A final crash of every node, then a cold start from what each had synced.
    let ids = cluster.ids().to_vec();
    for &id in &ids {
        let mode = random_mode(&mut rng);
        crash(&mut cluster, id, mode);
        out.crashes += 1;
        out.tears += u64::from(mode == CrashMode::Tear);
    }
    for &id in &ids {
        restart(&mut cluster, id);
    }
    cluster
        .wait_for_leader(WAIT)
        .expect("a leader after the cold start");
    verify(&cluster, &model);
    // And it still takes writes.
    write_all(&cluster, &mut clients, &mut model, &mut rng);
    verify(&cluster, &model);
    out.writes = model.values.len();
    cluster.shutdown().expect("clean shutdown");
    out
}

#[test]
fn acknowledged_writes_survive_node_crashes_and_retries_apply_once() {
    let rounds = env("CLUSTER_CRASH_ROUNDS", 80);
    let seeds = env("CLUSTER_CRASH_SEEDS", 1);
    let first = env("CLUSTER_CRASH_SEED", 0xC1A5_4E11);
    for seed in first..first + seeds {
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| run(seed, rounds))) {
            Ok(o) => println!(
                "seed {seed:#x}: {} crashes ({} of the leader, {} tearing), {} keys verified, \
                 {} writes retried, in {:?}",
                o.crashes,
                o.leader_crashes,
                o.tears,
                o.writes,
                o.retried,
                started.elapsed()
            ),
            Err(panic) => {
                eprintln!(
                    "FAILED with seed {seed:#x} ({rounds} rounds): rerun with \
                     CLUSTER_CRASH_SEED={seed} CLUSTER_CRASH_SEEDS=1 CLUSTER_CRASH_ROUNDS={rounds}"
                );
                resume_unwind(panic);
            }
        }
    }
}

/// Waits until node `id`'s thread has stopped; returns what stopped it.
fn stopped_cause(cluster: &KvCluster, id: NodeId) -> String {
    cluster
        .wait_for(WAIT, "the node to stop", |c| {
            c.node(id).is_some_and(|n| !n.is_running())
        })
        .expect("the node stops");
    let Err(RequestError::Stopped(err)) = cluster.node(id).expect("still registered").status()
    else {
        panic!("a stopped node has no status");
    };
    let cause = err.cause.as_deref().expect("stopped by an error");
    assert!(
        matches!(
            cause,
            NodeError::Storage(StorageError::SyncFailed { .. } | StorageError::Poisoned)
        ),
        "{cause}"
    );
    err.to_string()
}

#[test]
fn eio_on_fsync_stops_that_node_and_the_others_keep_serving() {
    // Once at a follower, once at the leader.
    for (seed, at_leader) in [(11, false), (12, true)] {
        let mut rng = SimRng::new(seed);
        let mut cluster = start(seed);
        let mut clients = clients();
        let mut model = Model::default();
        let leader = cluster.wait_for_leader(WAIT).unwrap();
        for _ in 0..5 {
            write_all(&cluster, &mut clients, &mut model, &mut rng);
        }
        let victim = if at_leader {
            leader
        } else {
            *cluster.ids().iter().find(|&&n| n != leader).unwrap()
        };
        cluster.with_storage_factory(|f| {
            f.fs(victim).unwrap().set_plan(FaultPlan {
                fail_sync_at: Some(1),
                ..FaultPlan::default()
            });
        });
        // Writes in flight at the leader while the victim's next fsync fails.
        let node = cluster.node(leader).unwrap();
        let mut inflight = Vec::new();
        for (i, client) in clients.iter_mut().enumerate() {
            let op = client.next_op(i, &mut rng);
            let proposal = Some(node.propose_async(op.bytes.clone()));
            inflight.push((op, proposal));
        }
        let text = stopped_cause(&cluster, victim);
        let role = if at_leader {
            "the leader"
        } else {
            "a follower"
        };
        println!("expected (injected fsync failure at {role}, node {victim}): {text}");
        assert!(
            text.contains("fsync") && text.contains("injected EIO"),
            "{text}"
        );
        for (op, proposal) in inflight {
            let response = match proposal.map(|p| p.wait(Duration::from_secs(2))) {
                Some(Ok(response)) => response,
                _ => retry(&cluster, &op),
            };
            acked(&mut model, &op, &response);
        }
        // The other two keep serving.
        let started = Instant::now();
        for _ in 0..10 {
            write_all(&cluster, &mut clients, &mut model, &mut rng);
        }
        println!(
            "  and 40 writes on the other two nodes in {:?}",
            started.elapsed()
        );
        assert!(cluster.leader().is_some_and(|l| l != victim));
        verify(&cluster, &model);
        // A new disk (or the failed one after a crash), and the node catches up.
        cluster.crash(victim);
        cluster.with_storage_factory(|f| f.fs(victim).unwrap().heal());
        cluster.restart(victim).unwrap();
        write_all(&cluster, &mut clients, &mut model, &mut rng);
        cluster
            .wait_for(WAIT, "the node to catch up", |c| {
                let applied = |n| c.node(n).and_then(|n| n.status().ok()).map(|s| s.applied);
                c.leader()
                    .is_some_and(|l| applied(victim).is_some() && applied(victim) >= applied(l))
            })
            .unwrap();
        verify(&cluster, &model);
        cluster.shutdown().unwrap();
    }
}

#[test]
fn damaged_storage_fails_the_restart_with_an_error() {
    let mut rng = SimRng::new(21);
    let mut cluster = start(21);
    let mut clients = clients();
    let mut model = Model::default();
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    for _ in 0..10 {
        write_all(&cluster, &mut clients, &mut model, &mut rng);
    }
    let victim = *cluster.ids().iter().find(|&&n| n != leader).unwrap();
    cluster.crash(victim);
    // Damage the first record of the oldest segment: valid records follow, so this is not a
    // torn tail but corruption.
    let (fs, dir) =
        cluster.with_storage_factory(|f| (f.fs(victim).unwrap().clone(), f.dir(victim)));
    let mut segments: Vec<(u64, String)> = fs
        .list_dir(&dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .filter_map(|n| Some((n.split('-').next()?.parse().ok()?, n)))
        .collect();
    segments.sort();
    let oldest = dir.join(&segments.first().expect("a segment").1);
    assert!(fs.corrupt(Path::new(&oldest), 9, 0xFF));
    match cluster.restart(victim) {
        Err(ClusterError::Storage(id, StorageError::Corrupt { .. })) => assert_eq!(id, victim),
        Err(e) => panic!("expected a corruption error, got: {e}"),
        Ok(()) => panic!("a damaged log must not be served"),
    }
    let text = cluster.restart(victim).unwrap_err().to_string();
    println!("expected (a damaged record, the restart is refused): {text}");
    assert!(text.contains(&format!("node {victim}")), "{text}");
    // The other two still serve.
    write_all(&cluster, &mut clients, &mut model, &mut rng);
    verify(&cluster, &model);
}
