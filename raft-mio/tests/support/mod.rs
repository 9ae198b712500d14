//! Real `raft-kv` processes on loopback for the end-to-end tests: start, kill (SIGKILL),
//! terminate (SIGTERM), restart, and connect with the `redis` crate.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses part of this"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use raft_mio::local::{LocalCluster, LocalNode};

pub const WAIT: Duration = Duration::from_secs(20);

/// A cluster of `raft-kv` processes in a temporary directory.
pub struct Cluster {
    pub local: LocalCluster,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes with `flags`, started, with a leader elected.
    pub fn start(n: u64, flags: &[&str]) -> Self {
        let mut c = Self::new(n, flags);
        for id in 1..=n {
            c.spawn(id);
        }
        for id in 1..=n {
            c.wait_serving(id);
        }
        c.wait_leader();
        c
    }

    /// `n` nodes, not started.
    pub fn new(n: u64, flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let local = LocalCluster::new(env!("CARGO_BIN_EXE_raft-kv"), dir.path(), n, flags)
            .expect("free ports");
        Self { local, _dir: dir }
    }

    pub fn node(&self, id: u64) -> &LocalNode {
        self.local.node(id)
    }

    /// Adds node `id` (not started) that will join with `--join`, knowing every node.
    pub fn add_joiner(&mut self, id: u64) {
        self.local.add(id, true).expect("free ports");
    }

    /// Starts node `id` (again).
    pub fn spawn(&mut self, id: u64) {
        self.local.spawn(id).expect("raft-kv starts");
    }

    /// Waits until node `id` answers PING.
    pub fn wait_serving(&self, id: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut con) = self.try_con(id)
                && redis::cmd("PING").query::<String>(&mut con).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} never served; its log:\n{}",
                self.log(id)
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn try_con(&self, id: u64) -> redis::RedisResult<redis::Connection> {
        let url = format!("redis://{}/", self.node(id).client);
        let client = redis::Client::open(url)?;
        let con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(WAIT))?;
        Ok(con)
    }

    /// A connection to node `id`.
    pub fn con(&self, id: u64) -> redis::Connection {
        self.try_con(id)
            .unwrap_or_else(|e| panic!("cannot connect to node {id}: {e}"))
    }

    /// Node `id`'s `INFO raft` fields.
    pub fn raft_info(&self, id: u64) -> Option<BTreeMap<String, String>> {
        let mut con = self.try_con(id).ok()?;
        let text: String = redis::cmd("INFO").arg("raft").query(&mut con).ok()?;
        Some(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The running node that says it leads (with the highest term).
    pub fn leader(&self) -> Option<u64> {
        self.running()
            .into_iter()
            .filter_map(|id| self.raft_info(id).map(|i| (id, i)))
            .filter(|(_, i)| i.get("role").map(String::as_str) == Some("leader"))
            .max_by_key(|(_, i)| i.get("term").and_then(|t| t.parse::<u64>().ok()))
            .map(|(id, _)| id)
    }

    pub fn wait_leader(&self) -> u64 {
        self.wait_for("a leader", || self.leader())
    }

    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&self) -> Vec<u64> {
        self.local.running()
    }

    /// SIGKILL.
    pub fn kill(&mut self, id: u64) {
        self.local.kill(id);
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self, id: u64) -> ExitStatus {
        self.local
            .terminate(id, WAIT)
            .expect("the node exits on SIGTERM")
    }

    /// Node `id`'s log so far.
    pub fn log(&self, id: u64) -> String {
        self.local.log(id)
    }

    /// Node `id`'s applied index.
    pub fn applied(&self, id: u64) -> Option<u64> {
        self.raft_info(id)?.get("applied_index")?.parse().ok()
    }

    /// Waits until every running node has applied what the leader has.
    pub fn wait_converged(&self) {
        self.wait_for("every node to apply the leader's log", || {
            let leader = self.leader()?;
            let info = self.raft_info(leader)?;
            let field = |name: &str| info.get(name)?.parse::<u64>().ok();
            // The whole log committed: a leader just elected reports the commit index it knew
            // before, below entries of earlier terms it has yet to commit (the workload has
            // stopped, so its log ends).
            let target = field("commit_index")?;
            if target < field("last_log_index")? {
                return None;
            }
            self.running()
                .iter()
                .all(|&id| self.applied(id).is_some_and(|a| a >= target))
                .then_some(())
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.local.kill_all();
        if thread::panicking() {
            for id in self.local.nodes().keys() {
                eprintln!("---- node {id} log ----\n{}", self.log(*id));
            }
        }
    }
}

/// A client that survives node failures: it sends each command to a node, and on a lost
/// connection or a `TRYAGAIN`/`UNCERTAIN` reply sends it again (to the next node on a lost
/// connection). Only for commands that are safe to repeat: `SET` of a fixed value, or writes
/// stamped with `RAFT.ONCE`.
pub struct Retrying {
    pub clients: Vec<SocketAddr>,
    pub at: usize,
    pub con: Option<redis::Connection>,
    pub retries: u64,
}

impl Retrying {
    pub fn new(c: &Cluster, first: usize) -> Self {
        Self {
            clients: c.local.nodes().values().map(|n| n.client).collect(),
            at: first,
            con: None,
            retries: 0,
        }
    }

    /// Runs `cmd` until it is answered (or `deadline` passes: `None`).
    pub fn run<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        deadline: Instant,
    ) -> Option<T> {
        while Instant::now() < deadline {
            if self.con.is_none() {
                let addr = self.clients[self.at % self.clients.len()];
                let con = redis::Client::open(format!("redis://{addr}/"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)));
                match con {
                    Ok(con) => {
                        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
                        self.con = Some(con);
                    }
                    Err(_) => {
                        self.at += 1;
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
            let Some(con) = self.con.as_mut() else {
                continue;
            };
            match cmd.query::<T>(con) {
                Ok(v) => return Some(v),
                Err(e) if matches!(e.code(), Some("TRYAGAIN" | "UNCERTAIN")) => {
                    self.retries += 1;
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                    self.retries += 1;
                    self.con = None;
                    self.at += 1;
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        None
    }
}
