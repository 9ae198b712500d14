//! Real `raft-kv` processes on loopback for the end-to-end tests: start, kill (SIGKILL),
//! terminate (SIGTERM), restart, and connect with the `redis` crate.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses part of this"
)]

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// A free loopback port (bound and released: another process could take it in between, which
/// on a test machine does not happen).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Node {
    pub id: u64,
    pub peer: SocketAddr,
    pub client: SocketAddr,
    pub data: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    pub extra: Vec<String>,
}

/// A cluster of `raft-kv` processes.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: BTreeMap<u64, Node>,
    pub cluster: String,
    /// Flags every node gets.
    pub flags: Vec<String>,
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
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            nodes.insert(id, Self::node_at(dir.path(), id));
        }
        Self {
            dir,
            nodes,
            cluster: "e2e".into(),
            flags: flags.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn node_at(dir: &Path, id: u64) -> Node {
        Node {
            id,
            peer: SocketAddr::from(([127, 0, 0, 1], free_port())),
            client: SocketAddr::from(([127, 0, 0, 1], free_port())),
            data: dir.join(format!("node-{id}")),
            log: dir.join(format!("node-{id}.log")),
            child: None,
            extra: Vec::new(),
        }
    }

    /// `1=addr,2=addr,...` of the nodes `ids`.
    pub fn peers_of(&self, ids: &[u64]) -> String {
        ids.iter()
            .map(|id| format!("{id}={}", self.nodes[id].peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The founding members' peer list.
    pub fn peers(&self) -> String {
        let ids: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.extra.iter().any(|f| f == "--join"))
            .map(|(&id, _)| id)
            .collect();
        self.peers_of(&ids)
    }

    /// Adds node `id` (not started) that will join with `--join`, knowing every node.
    pub fn add_joiner(&mut self, id: u64) {
        let mut node = Self::node_at(self.dir.path(), id);
        node.extra.push("--join".into());
        self.nodes.insert(id, node);
    }

    /// Starts node `id` (again).
    pub fn spawn(&mut self, id: u64) {
        let peers = if self.nodes[&id].extra.iter().any(|f| f == "--join") {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            self.peers_of(&ids)
        } else {
            self.peers()
        };
        let node = self.nodes.get_mut(&id).expect("a node");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
            .arg("serve")
            .args(["--id", &id.to_string()])
            .args(["--peers", &peers])
            .args(["--client", &node.client.to_string()])
            .args(["--data", &node.data.to_string_lossy()])
            .args(["--cluster", &self.cluster])
            .args(&self.flags)
            .args(&node.extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("raft-kv starts");
        node.child = Some(child);
    }

    /// Waits until node `id` answers PING.
    pub fn wait_serving(&self, id: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut con) = self.try_con(id) {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return;
                }
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
        let url = format!("redis://{}/", self.nodes[&id].client);
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
        self.nodes
            .iter()
            .filter(|(_, n)| n.child.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// SIGKILL.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self, id: u64) -> ExitStatus {
        let mut child = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.child.take())
            .expect("a running node");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not exit on SIGTERM"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Node `id`'s log so far.
    pub fn log(&self, id: u64) -> String {
        fs::read_to_string(&self.nodes[&id].log).unwrap_or_default()
    }

    /// Node `id`'s applied index.
    pub fn applied(&self, id: u64) -> Option<u64> {
        self.raft_info(id)?.get("applied_index")?.parse().ok()
    }

    /// Waits until every running node has applied what the leader has.
    pub fn wait_converged(&self) {
        self.wait_for("every node to apply the leader's log", || {
            let leader = self.leader()?;
            let target = self
                .raft_info(leader)?
                .get("commit_index")?
                .parse::<u64>()
                .ok()?;
            self.running()
                .iter()
                .all(|&id| self.applied(id).is_some_and(|a| a >= target))
                .then_some(())
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
        if thread::panicking() {
            for id in self.nodes.keys() {
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
            clients: c.nodes.values().map(|n| n.client).collect(),
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
