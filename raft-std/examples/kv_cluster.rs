//! A 3-node KV cluster in one process on real files (a temporary directory, one subdirectory
//! per node): write, kill the leader, measure failover, keep writing, restart the old leader,
//! then crash and restart every node and check that every acknowledged write is there.
//!
//! Run: `cargo run --release -p raft-std --example kv_cluster`

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

use raft_std::client::Session;
use raft_std::kv::{KvCommand, KvConfig, KvQuery, KvRequest, KvResponse, KvStore};
use raft_std::storage::fs::StdFs;
use raft_std::test_util::cluster::{Cluster, ClusterOptions, FileStorageFactory};

type KvCluster = Cluster<KvStore, FileStorageFactory<StdFs>>;

const WAIT: Duration = Duration::from_secs(10);

/// One client: its writes carry a session stamp, so a retry is applied once.
struct Client {
    session: Session,
    /// Writes acknowledged.
    writes: u64,
    /// What every key should hold, from the responses the cluster acknowledged.
    expected: BTreeMap<Vec<u8>, Vec<u8>>,
    incrs: i64,
}

impl Client {
    /// Writes `command`; the cluster retries it (same stamp) until it is answered.
    fn write(
        &mut self,
        cluster: &KvCluster,
        command: KvCommand,
    ) -> Result<KvResponse, Box<dyn Error>> {
        let stamp = self.session.begin();
        let bytes = KvRequest::stamped(stamp, command).encode();
        let response = cluster.propose_idempotent(bytes)?;
        self.session.finish(stamp.seq);
        self.writes += 1;
        Ok(response)
    }

    fn set(&mut self, cluster: &KvCluster, i: u64) -> Result<(), Box<dyn Error>> {
        let (key, value) = (format!("key{i}"), format!("value{i}"));
        let response = self.write(cluster, KvCommand::set(key.clone(), value.clone()))?;
        if response != KvResponse::Ok {
            return Err(format!("SET {key}: {response:?}").into());
        }
        self.expected.insert(key.into_bytes(), value.into_bytes());
        Ok(())
    }

    fn incr(&mut self, cluster: &KvCluster) -> Result<(), Box<dyn Error>> {
        let response = self.write(cluster, KvCommand::incr("counter"))?;
        self.incrs += 1;
        if response != KvResponse::Integer(self.incrs) {
            return Err(format!("INCR #{}: {response:?}", self.incrs).into());
        }
        self.expected
            .insert(b"counter".to_vec(), self.incrs.to_string().into_bytes());
        Ok(())
    }

    /// Writes `n` keys from `from` and an increment every tenth; returns how long it took.
    fn batch(
        &mut self,
        cluster: &KvCluster,
        from: u64,
        n: u64,
    ) -> Result<Duration, Box<dyn Error>> {
        let t = Instant::now();
        for i in from..from + n {
            self.set(cluster, i)?;
            if i % 10 == 0 {
                self.incr(cluster)?;
            }
        }
        Ok(t.elapsed())
    }

    /// Reads every key back (linearizably, at the leader).
    fn verify(&self, cluster: &KvCluster) -> Result<(), Box<dyn Error>> {
        for (key, value) in &self.expected {
            let got = cluster.read(KvQuery::get(key.clone()))?;
            if got != KvResponse::Value(Some(value.clone())) {
                return Err(format!(
                    "{}: expected {value:?}, got {got:?}",
                    String::from_utf8_lossy(key)
                )
                .into());
            }
        }
        let size = cluster.read(KvQuery::DbSize)?;
        if size != KvResponse::Integer(i64::try_from(self.expected.len())?) {
            return Err(format!("DBSIZE {size:?}, expected {}", self.expected.len()).into());
        }
        Ok(())
    }
}

/// Bytes in the files under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => disk_usage(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    println!("data in {}", tmp.path().display());
    let mut cluster = Cluster::with_storage(
        ClusterOptions::new(3),
        FileStorageFactory::std(tmp.path()),
        |_| KvStore::new(KvConfig::default()),
    )?;
    let leader = cluster.wait_for_leader(WAIT)?;
    println!("node {leader} leads after {:?}", started.elapsed());

    let mut client = Client {
        session: Session::random(),
        writes: 0,
        expected: BTreeMap::new(),
        incrs: 0,
    };
    let n = 500;
    let took = client.batch(&cluster, 0, n)?;
    let writes = client.writes;
    println!(
        "{writes} sequential writes (SET and INCR, each fsynced by a majority) in {took:?}: \
         {:.0} writes/s",
        writes as f64 / took.as_secs_f64()
    );

    let old = cluster.leader().ok_or("no leader")?;
    println!("killing the leader, node {old}");
    let killed = Instant::now();
    cluster.crash(old);
    client.set(&cluster, n)?;
    let failover = killed.elapsed();
    let new = cluster.leader().ok_or("no leader")?;
    println!("node {new} leads; the first write committed {failover:?} after the kill");
    client.batch(&cluster, n + 1, 100)?;

    println!("restarting node {old} from its files");
    cluster.restart(old)?;
    cluster.wait_for(WAIT, "the old leader to catch up", |c| {
        let applied = |id| c.node(id).and_then(|n| n.status().ok()).map(|s| s.applied);
        c.leader()
            .is_some_and(|l| applied(old).is_some() && applied(old) >= applied(l))
    })?;
    client.verify(&cluster)?;
    println!(
        "node {old} caught up; all {} keys read back",
        client.expected.len()
    );

    println!("crashing and restarting every node");
    let ids = cluster.ids().to_vec();
    for &id in &ids {
        cluster.crash(id);
    }
    let cold = Instant::now();
    for &id in &ids {
        cluster.restart(id)?;
    }
    let leader = cluster.wait_for_leader(WAIT)?;
    println!("cold start: node {leader} leads after {:?}", cold.elapsed());
    client.verify(&cluster)?;
    let usage = disk_usage(tmp.path());
    cluster.shutdown()?;
    println!(
        "summary: {} acknowledged writes ({} keys, counter {}), all present after a leader kill and \
         a full restart; failover {failover:?}; {:.1} KiB on disk; {:?} in all",
        client.writes,
        client.expected.len(),
        client.incrs,
        usage as f64 / 1024.0,
        started.elapsed()
    );
    Ok(())
}
