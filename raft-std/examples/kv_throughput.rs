//! Group commit as the runtime achieves it: N client threads propose KV `SET`s to a 3-node
//! cluster on real files in a temporary directory; prints proposals/s and how many writes each
//! fsync covered (file fsyncs counted by a wrapper around the real file system).
//!
//! Run: `cargo run --release -p raft-std --example kv_throughput [seconds per run] [threads...]`
//! (default 2 s, and 1, 4, 16 and 64 threads). With `KV_STORAGE_STAGE=0` in the environment it
//! runs without the storage stage (appends and syncs on the node thread), for before/after figures.

use std::error::Error;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use raft_core::NodeId;
use raft_std::kv::{ClientId, KvCommand, KvConfig, KvRequest, KvResponse, KvStore};
use raft_std::storage::fs::{FileSystem, StdFs, StdWriteFile, WriteFile};
use raft_std::test_util::cluster::{Cluster, ClusterOptions, FileStorageFactory};

/// Real files, counting fsyncs of files (the log) and of directories.
#[derive(Clone, Default)]
struct CountingFs {
    file_syncs: Arc<AtomicU64>,
    dir_syncs: Arc<AtomicU64>,
}

struct CountingFile {
    inner: StdWriteFile,
    syncs: Arc<AtomicU64>,
}

impl WriteFile for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl CountingFs {
    fn wrap(&self, inner: StdWriteFile) -> CountingFile {
        CountingFile {
            inner,
            syncs: Arc::clone(&self.file_syncs),
        }
    }
}

impl FileSystem for CountingFs {
    type WriteFile = CountingFile;
    type ReadFile = std::fs::File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(dir)
    }

    fn create(&self, path: &Path) -> io::Result<CountingFile> {
        StdFs.create(path).map(|f| self.wrap(f))
    }

    fn open_append(&self, path: &Path) -> io::Result<CountingFile> {
        StdFs.open_append(path).map(|f| self.wrap(f))
    }

    fn open_read(&self, path: &Path) -> io::Result<std::fs::File> {
        StdFs.open_read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        StdFs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.dir_syncs.fetch_add(1, Ordering::Relaxed);
        StdFs.sync_dir(dir)
    }
}

struct Run {
    proposals: u64,
    elapsed: Duration,
    leader: NodeId,
    /// File fsyncs per node during the measured interval.
    syncs: Vec<(NodeId, u64)>,
    p50: Duration,
    p99: Duration,
}

fn run(threads: u64, seconds: f64) -> Result<Run, Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let file_systems: Vec<CountingFs> = (0..3).map(|_| CountingFs::default()).collect();
    let per_node = file_systems.clone();
    let factory = FileStorageFactory::new(tmp.path(), move |id: NodeId| {
        per_node[usize::try_from(id.get() - 1).unwrap_or(0)].clone()
    });
    let mut options = ClusterOptions::new(3);
    // KV_STORAGE_STAGE=0: append and sync on the node thread (the runtime before the stage).
    options.runtime.storage_stage = std::env::var("KV_STORAGE_STAGE").map_or(true, |v| v != "0");
    let cluster = Cluster::with_storage(options, factory, |_| KvStore::new(KvConfig::default()))?;
    let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
    // Warm up (and let the first election's writes settle) before counting.
    cluster.propose(KvRequest::new(ClientId(0), 1, KvCommand::set("warm", "up")).encode())?;
    let before: Vec<u64> = file_systems
        .iter()
        .map(|f| f.file_syncs.load(Ordering::Relaxed))
        .collect();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = thread::scope(|s| {
        let workers: Vec<_> = (1..=threads)
            .map(|t| {
                let (cluster, stop) = (&cluster, &stop);
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut seq = 0;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let command = KvCommand::set(format!("t{t}-{seq}"), [b'x'; 16].to_vec());
                        let bytes = KvRequest::new(ClientId(t), seq, command).encode();
                        let t0 = Instant::now();
                        match cluster.propose(bytes) {
                            Ok(KvResponse::Ok) => lat.push(t0.elapsed()),
                            other => panic!("write failed: {other:?}"),
                        }
                    }
                    lat
                })
            })
            .collect();
        thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    let syncs = file_systems
        .iter()
        .zip(&before)
        .enumerate()
        .map(|(i, (f, b))| {
            (
                NodeId::new(i as u64 + 1).expect("non-zero"),
                f.file_syncs.load(Ordering::Relaxed) - b,
            )
        })
        .collect();
    let leader_now = cluster.leader().unwrap_or(leader);
    cluster.shutdown()?;
    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get(latencies.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or_default()
    };
    Ok(Run {
        proposals: latencies.len() as u64,
        elapsed,
        leader: leader_now,
        syncs,
        p50: pct(50),
        p99: pct(99),
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().map_or(Ok(2.0), |s| s.parse())?;
    let mut threads: Vec<u64> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    if threads.is_empty() {
        threads = vec![1, 4, 16, 64];
    }
    println!(
        "3 nodes on real files (temp dir), 16-byte SETs, {seconds} s per run; \
         writes/fsync = acknowledged proposals / file fsyncs on that node"
    );
    println!(
        "{:>7} {:>12} {:>10} {:>10} {:>14} {:>18}",
        "clients", "proposals/s", "p50", "p99", "leader fsyncs", "writes/fsync L|F|F"
    );
    for n in threads {
        let r = run(n, seconds)?;
        let per = |id: NodeId| {
            let syncs = r.syncs.iter().find(|(i, _)| *i == id).map_or(0, |s| s.1);
            r.proposals as f64 / syncs.max(1) as f64
        };
        let leader_syncs = r
            .syncs
            .iter()
            .find(|(i, _)| *i == r.leader)
            .map_or(0, |s| s.1);
        let followers: Vec<String> = r
            .syncs
            .iter()
            .filter(|(i, _)| *i != r.leader)
            .map(|(i, _)| format!("{:.1}", per(*i)))
            .collect();
        println!(
            "{n:>7} {:>12.0} {:>10.2?} {:>10.2?} {leader_syncs:>14} {:>18}",
            r.proposals as f64 / r.elapsed.as_secs_f64(),
            r.p50,
            r.p99,
            format!("{:.1}|{}", per(r.leader), followers.join("|")),
        );
    }
    Ok(())
}
