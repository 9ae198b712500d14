//! The `raft-kv` processes of one run: started in their place in the topology, with their data
//! directory (on a small tmpfs when disk-full faults are on), their log, and a libfaketime clock
//! file when clock faults are on; killed, paused, resumed, restarted, traced.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use raft_mio::resp::client::{Client, Value};

use super::cleanup;
use super::net::Net;

/// libfaketime, as Debian's `libfaketime` package installs it.
pub(crate) const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The size of each node's tmpfs (disk-full faults fill what is left of it).
const TMPFS_SIZE: &str = "size=64m";

/// A node's clock under libfaketime: an offset in seconds read from a file (re-read every
/// second), applied to the wall clock and, when `mono`, to the monotonic clock too.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    pub(crate) file: PathBuf,
    pub(crate) offset: i64,
    pub(crate) mono: bool,
}

/// The timing flags of a node whose clock runs at half speed: every Raft timer (tick,
/// heartbeat, election and check-quorum timeouts) takes twice as long in real time as the
/// others' (raft-kv's defaults: 10, 20, 100 and 200 ms). raft-kv measures time only through
/// these timers (and request deadlines), so this is what a clock running slow does to it.
/// libfaketime's rate option cannot do it: Rust's timed waits hand the kernel absolute deadlines
/// taken from the faked clock, and a node whose faked clock runs behind the real one then spins.
pub(crate) const SLOW_CLOCK_FLAGS: [&str; 8] = [
    "--tick-ms",
    "20",
    "--heartbeat-ms",
    "40",
    "--election-min-ms",
    "200",
    "--election-max-ms",
    "400",
];

/// One node.
pub(crate) struct Node {
    pub(crate) id: u64,
    /// The directory of its data (a tmpfs mount point when disk faults are on).
    pub(crate) root: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) log: PathBuf,
    /// The ids its `--peers` names (kept for restarts).
    pub(crate) peers: Vec<u64>,
    pub(crate) join: bool,
    pub(crate) tmpfs: bool,
    pub(crate) clock: Option<Clock>,
    /// Its Raft timers run at half speed (a slow clock; see [`SLOW_CLOCK_FLAGS`]).
    pub(crate) slow: bool,
    pub(crate) child: Option<Child>,
    pub(crate) paused: bool,
    pub(crate) strace: Option<Child>,
    /// Removed from the cluster: never started again.
    pub(crate) retired: bool,
    /// Exits it made on its own (not killed by the runner), as "status (what it was doing)".
    pub(crate) exits: Vec<String>,
}

impl Node {
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The nodes of one run.
pub(crate) struct Cluster {
    exe: PathBuf,
    pub(crate) net: Arc<dyn Net>,
    dir: PathBuf,
    flags: Vec<String>,
    pub(crate) nodes: BTreeMap<u64, Node>,
    next_id: u64,
    pub(crate) use_tmpfs: bool,
    pub(crate) use_faketime: bool,
    /// The client addresses of the nodes that should serve, for the clients to pick from.
    pub(crate) addrs: Arc<RwLock<Vec<(u64, SocketAddr)>>>,
    pub(crate) timeout: Duration,
}

/// `INFO raft` as fields.
pub(crate) type Info = BTreeMap<String, String>;

impl Cluster {
    pub(crate) fn new(
        exe: PathBuf,
        net: Arc<dyn Net>,
        dir: PathBuf,
        flags: Vec<String>,
        use_tmpfs: bool,
        use_faketime: bool,
    ) -> Self {
        Self {
            exe,
            net,
            dir,
            flags,
            nodes: BTreeMap::new(),
            next_id: 1,
            use_tmpfs,
            use_faketime,
            addrs: Arc::new(RwLock::new(Vec::new())),
            timeout: Duration::from_secs(2),
        }
    }

    /// Creates node (the next id, never reused) with `peers` (itself added), not started.
    pub(crate) fn create(
        &mut self,
        peers: &[u64],
        join: bool,
        mono_clock: bool,
    ) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.net.add_node(id)?;
        let root = self.dir.join(format!("node-{id}"));
        fs::create_dir_all(&root)?;
        let mut tmpfs = false;
        if self.use_tmpfs {
            cleanup::run(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    TMPFS_SIZE,
                    "tmpfs",
                    &root.to_string_lossy(),
                ],
            )?;
            cleanup::add_mount(root.clone());
            tmpfs = true;
        }
        let clock = self.use_faketime.then(|| Clock {
            file: self.dir.join(format!("node-{id}.faketime")),
            offset: 0,
            mono: mono_clock,
        });
        if let Some(c) = &clock {
            fs::write(&c.file, "+0\n")?;
        }
        let mut all: Vec<u64> = peers.to_vec();
        if !all.contains(&id) {
            all.push(id);
        }
        all.sort_unstable();
        self.nodes.insert(
            id,
            Node {
                id,
                data: root.join("data"),
                root,
                log: self.dir.join(format!("node-{id}.log")),
                peers: all,
                join,
                tmpfs,
                clock,
                slow: false,
                child: None,
                paused: false,
                strace: None,
                retired: false,
                exits: Vec::new(),
            },
        );
        Ok(id)
    }

    /// Starts node `id` (again) on its data directory.
    pub(crate) fn spawn(&mut self, id: u64) -> io::Result<()> {
        let net = Arc::clone(&self.net);
        let Some(node) = self.nodes.get_mut(&id) else {
            return Err(io::Error::other(format!("no node {id}")));
        };
        if node.child.is_some() {
            return Ok(());
        }
        let peers = node
            .peers
            .iter()
            .map(|&p| format!("{p}={}", net.peer_addr(p, id)))
            .collect::<Vec<_>>()
            .join(",");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let mut cmd = net.command(id, &self.exe);
        cmd.arg("serve")
            .args(["--id", &id.to_string()])
            .args(["--peers", &peers])
            .args(["--client", &net.client_addr(id).to_string()])
            .arg("--data")
            .arg(&node.data)
            .args(["--cluster", "chaos"])
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("RUST_LOG", "info");
        if node.join {
            cmd.arg("--join");
        }
        if node.slow {
            cmd.args(SLOW_CLOCK_FLAGS);
        }
        if let Some(c) = &node.clock {
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", &c.file)
                .env("FAKETIME_CACHE_DURATION", "1");
            if !c.mono {
                cmd.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            }
        }
        let child = cmd.spawn()?;
        cleanup::add_pid(child.id());
        node.child = Some(child);
        node.paused = false;
        self.publish();
        Ok(())
    }

    /// Publishes the client addresses of the nodes that run and are not retired.
    pub(crate) fn publish(&self) {
        let addrs: Vec<(u64, SocketAddr)> = self
            .nodes
            .values()
            .filter(|n| !n.retired)
            .map(|n| (n.id, self.net.client_addr(n.id)))
            .collect();
        *self.addrs.write().unwrap_or_else(PoisonError::into_inner) = addrs;
    }

    /// SIGKILL (resuming it first if paused), and reaps it.
    pub(crate) fn kill(&mut self, id: u64) {
        self.stop_strace(id);
        if let Some(node) = self.nodes.get_mut(&id) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
                cleanup::remove_pid(child.id());
            }
            node.paused = false;
        }
    }

    /// SIGTERM, waits up to `patience` for a clean exit (then SIGKILL); the exit status.
    pub(crate) fn terminate(&mut self, id: u64, patience: Duration) -> Option<ExitStatus> {
        self.stop_strace(id);
        let node = self.nodes.get_mut(&id)?;
        let mut child = node.child.take()?;
        if node.paused {
            let _ = cleanup::signal(child.id(), "CONT");
            node.paused = false;
        }
        let _ = cleanup::signal(child.id(), "TERM");
        let deadline = Instant::now() + patience;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        cleanup::remove_pid(child.id());
        status
    }

    pub(crate) fn pause(&mut self, id: u64) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let Some(pid) = node.pid() else { return false };
        node.paused = cleanup::signal(pid, "STOP").is_ok();
        node.paused
    }

    pub(crate) fn resume(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id) {
            if let (Some(pid), true) = (node.pid(), node.paused) {
                let _ = cleanup::signal(pid, "CONT");
            }
            node.paused = false;
        }
    }

    /// Attaches strace to node `id`, failing every fdatasync and fsync with EIO.
    pub(crate) fn inject_fsync_eio(&mut self, id: u64) -> io::Result<()> {
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("no such node"))?;
        let pid = node.pid().ok_or_else(|| io::Error::other("not running"))?;
        let child = std::process::Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-p", &pid.to_string()])
            .args(["-e", "trace=fdatasync,fsync"])
            .args([
                "-e",
                "inject=fdatasync:error=EIO",
                "-e",
                "inject=fsync:error=EIO",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        cleanup::add_pid(child.id());
        node.strace = Some(child);
        Ok(())
    }

    pub(crate) fn stop_strace(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id)
            && let Some(mut s) = node.strace.take()
        {
            // SIGTERM detaches strace from its tracee, which goes on untraced.
            let _ = cleanup::signal(s.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && matches!(s.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(10));
            }
            let _ = s.kill();
            let _ = s.wait();
            cleanup::remove_pid(s.id());
        }
    }

    /// Reaps the nodes that exited on their own; returns them with their status.
    pub(crate) fn reap(&mut self, doing: &str) -> Vec<(u64, ExitStatus)> {
        let mut gone = Vec::new();
        for node in self.nodes.values_mut() {
            let exited = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                if let Some(c) = node.child.take() {
                    cleanup::remove_pid(c.id());
                }
                node.exits.push(format!("{status} ({doing})"));
                gone.push((node.id, status));
            }
        }
        gone
    }

    /// The ids of the nodes whose process runs.
    pub(crate) fn running(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    /// The ids of the nodes not retired.
    pub(crate) fn active(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| !n.retired)
            .map(|n| n.id)
            .collect()
    }

    /// A connection to node `id`'s client port.
    pub(crate) fn client(&self, id: u64) -> io::Result<Client> {
        Client::connect(self.net.client_addr(id), self.timeout)
    }

    /// One command at node `id`.
    pub(crate) fn call(&self, id: u64, args: &[&str]) -> io::Result<Value> {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.client(id)?.call(&bytes)
    }

    /// `INFO raft` of node `id`.
    pub(crate) fn info(&self, id: u64) -> Option<Info> {
        match self.call(id, &["INFO", "raft"]).ok()? {
            Value::Bulk(Some(text)) => Some(
                String::from_utf8_lossy(&text)
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The leader: a running node that says it leads (the highest term wins).
    pub(crate) fn leader(&self) -> Option<u64> {
        self.running()
            .into_iter()
            .filter(|&id| !self.nodes[&id].paused)
            .filter_map(|id| {
                let info = self.info(id)?;
                if info.get("role")? != "leader" {
                    return None;
                }
                Some((info.get("term")?.parse::<u64>().ok()?, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Waits up to `patience` for a leader.
    pub(crate) fn wait_leader(&self, patience: Duration) -> Option<u64> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(l) = self.leader() {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves node `id`'s clock by `delta` seconds (a jump in the file libfaketime re-reads).
    pub(crate) fn jump_clock(&mut self, id: u64, delta: i64) -> io::Result<i64> {
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("no such node"))?;
        let clock = node
            .clock
            .as_mut()
            .ok_or_else(|| io::Error::other("no faketime clock"))?;
        clock.offset += delta;
        fs::write(&clock.file, format!("{:+}\n", clock.offset))?;
        Ok(clock.offset)
    }

    /// Fills what is left of node `id`'s tmpfs with a file; returns its path.
    pub(crate) fn fill_disk(&self, id: u64) -> io::Result<PathBuf> {
        let node = self
            .nodes
            .get(&id)
            .ok_or_else(|| io::Error::other("no such node"))?;
        if !node.tmpfs {
            return Err(io::Error::other("data not on a tmpfs"));
        }
        let path = node.root.join("filler");
        let mut f = fs::File::create(&path)?;
        let block = vec![0xA5_u8; 1 << 20];
        loop {
            use std::io::Write;
            match f.write_all(&block) {
                Ok(()) => {}
                Err(_) => break,
            }
        }
        // Bytes: the last partial block too.
        let mut small = vec![0_u8; 4096];
        loop {
            use std::io::Write;
            if f.write_all(&small).is_err() {
                small.truncate(small.len() / 2);
                if small.is_empty() {
                    break;
                }
            }
        }
        Ok(path)
    }

    /// Everything is stopped and the tmpfs mounts are removed.
    pub(crate) fn shutdown(&mut self) -> Vec<(u64, Option<ExitStatus>)> {
        let ids: Vec<u64> = self.running();
        let mut out = Vec::new();
        for id in ids {
            out.push((id, self.terminate(id, Duration::from_secs(5))));
        }
        for node in self.nodes.values() {
            if node.tmpfs {
                let _ = cleanup::run("umount", &["-l", &node.root.to_string_lossy()]);
                cleanup::remove_mount(&node.root);
            }
        }
        out
    }
}
