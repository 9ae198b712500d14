//! [`LocalCluster`]: `raft-kv` processes on loopback, each with its own ports, data directory
//! and log file, that can be killed (SIGKILL), terminated (SIGTERM) and restarted. The demo
//! and the end-to-end tests drive clusters through it.
// Test support: it indexes the cluster it started (a missing node is a bug in the caller, and says so).
#![allow(clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A free loopback port, bound and released, below the system's range of ephemeral ports.
///
/// A port the kernel hands out for `bind(0)` comes from the ephemeral range, which outgoing
/// connections draw from too: between this check and the node's own bind, a connection from
/// another test could take it (a CI run failed with "Address already in use" that way). Ports
/// below the range are never given to outgoing connections, so only another listener could
/// take one in between. Candidates are tried from a per-process starting point, each once.
///
/// # Errors
///
/// No port can be bound.
pub fn free_port() -> io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    /// The lowest port tried.
    const LOW: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(LOW);
    if span >= 1_000 {
        let seed = std::process::id().wrapping_mul(2_654_435_761)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        let _ = NEXT.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
        for _ in 0..500 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let Ok(port) = u16::try_from(LOW + n % span) else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One node of a [`LocalCluster`].
#[derive(Debug)]
pub struct LocalNode {
    /// Its id.
    pub id: u64,
    /// Its peer address.
    pub peer: SocketAddr,
    /// Its client address.
    pub client: SocketAddr,
    /// Its data directory.
    pub data: PathBuf,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Started with `--join` (a learner joining a running cluster).
    pub joins: bool,
    child: Option<Child>,
}

impl LocalNode {
    /// The process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// `raft-kv` processes on loopback.
#[derive(Debug)]
pub struct LocalCluster {
    exe: PathBuf,
    dir: PathBuf,
    name: String,
    flags: Vec<String>,
    nodes: BTreeMap<u64, LocalNode>,
}

impl LocalCluster {
    /// `n` nodes (ids 1 to `n`, not started) of the `raft-kv` binary `exe`, with their data and
    /// logs under `dir`; every node gets `flags`.
    ///
    /// # Errors
    ///
    /// No free ports.
    pub fn new(
        exe: impl Into<PathBuf>,
        dir: impl Into<PathBuf>,
        n: u64,
        flags: &[&str],
    ) -> io::Result<Self> {
        let mut cluster = Self {
            exe: exe.into(),
            dir: dir.into(),
            name: "local".into(),
            flags: flags.iter().map(|s| (*s).to_owned()).collect(),
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            cluster.add(id, false)?;
        }
        Ok(cluster)
    }

    /// Adds node `id` (not started); with `joins`, it will start with `--join`.
    ///
    /// # Errors
    ///
    /// No free ports.
    pub fn add(&mut self, id: u64, joins: bool) -> io::Result<()> {
        let node = LocalNode {
            id,
            peer: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            client: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            data: self.dir.join(format!("node-{id}")),
            log: self.dir.join(format!("node-{id}.log")),
            joins,
            child: None,
        };
        self.nodes.insert(id, node);
        Ok(())
    }

    /// The directory everything is under.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The nodes, by id.
    #[must_use]
    pub const fn nodes(&self) -> &BTreeMap<u64, LocalNode> {
        &self.nodes
    }

    /// Node `id`.
    ///
    /// # Panics
    ///
    /// If there is no such node (a bug in the caller).
    #[must_use]
    pub fn node(&self, id: u64) -> &LocalNode {
        &self.nodes[&id]
    }

    /// The ids of the nodes whose process runs.
    #[must_use]
    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.child.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// The `--peers` list: every node's for a joining node, the founders' for the others.
    fn peers_for(&self, joins: bool) -> String {
        self.nodes
            .values()
            .filter(|n| joins || !n.joins)
            .map(|n| format!("{}={}", n.id, n.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `id` (again, on the same data directory).
    ///
    /// # Errors
    ///
    /// The log file cannot be opened, or the process not started.
    pub fn spawn(&mut self, id: u64) -> io::Result<()> {
        let Some(joins) = self.nodes.get(&id).map(|n| n.joins) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no node {id}"),
            ));
        };
        let peers = self.peers_for(joins);
        let Some(node) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("serve")
            .args(["--id", &id.to_string()])
            .args(["--peers", &peers])
            .args(["--client", &node.client.to_string()])
            .arg("--data")
            .arg(&node.data)
            .args(["--cluster", &self.name])
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if joins {
            cmd.arg("--join");
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        node.child = Some(cmd.spawn()?);
        Ok(())
    }

    /// Kills node `id` with SIGKILL, and reaps it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends node `id` SIGTERM and waits up to `timeout` for it to exit (then kills it).
    ///
    /// # Errors
    ///
    /// The node is not running, the signal cannot be sent, or it does not exit in time.
    pub fn terminate(&mut self, id: u64, timeout: Duration) -> io::Result<ExitStatus> {
        let mut child = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.child.take())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("node {id} is not running"))
            })?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !sent.success() {
            return Err(io::Error::other(format!(
                "kill -TERM {} failed",
                child.id()
            )));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("node {id} did not exit within {timeout:?} of SIGTERM"),
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether node `id`'s process has exited by itself (a crash); reaps it if so.
    pub fn exited(&mut self, id: u64) -> Option<ExitStatus> {
        let node = self.nodes.get_mut(&id)?;
        let status = node.child.as_mut()?.try_wait().ok()??;
        node.child = None;
        Some(status)
    }

    /// Node `id`'s log so far.
    #[must_use]
    pub fn log(&self, id: u64) -> String {
        self.nodes
            .get(&id)
            .and_then(|n| fs::read_to_string(&n.log).ok())
            .unwrap_or_default()
    }

    /// Kills every node.
    pub fn kill_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
