//! The nemesis: faults, one after another, each held for a while and healed, while the clients
//! run. Every fault it injects is logged with its time since the start of the run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use raft_mio::resp::client::Value;

use super::cluster::Cluster;
use super::net::LinkFaults;
use super::workload::Clock;
use crate::generate::SplitMix64;

mod membership;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Partitions: halves, the leader isolated, a bridge, a ring (5 nodes), one-way.
    Partition,
    /// Packet (or, with the proxy, frame) loss of 10 to 50%.
    Loss,
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP, then SIGCONT 0.5 to 3 s later (the election timeout is 100 to 200 ms).
    Pause,
    /// A node removed and a new one (new id, fresh data directory) added, or the other way
    /// round (a replacement), during a partition more often than not.
    Member,
    /// Leadership transfers while the clients' reads are in flight.
    Transfer,
    /// SIGKILL and restart right after the node took a snapshot.
    SnapshotRestart,
    /// Every fsync and fdatasync of one node fails with EIO (strace): it must stop.
    Fsync,
    /// One node's disk (a tmpfs) filled up: it must stop.
    DiskFull,
    /// One node's clock jumps (libfaketime): the wall clock by up to a day either way, or the
    /// monotonic clock forward by 2 to 20 s.
    Clock,
    /// One node's clock runs at half speed for the whole run (its Raft timers take twice as
    /// long); each turn makes it leader (`RAFT.TRANSFER`) and then isolates it from its peers
    /// for 0.8 to 2 s, two or three times. Its check-quorum then fires after the others have elected a new leader:
    /// for a while there are two leaders, and only the heartbeat round of ReadIndex keeps
    /// the old one from serving stale reads.
    SlowClock,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Self; 11] = [
        Self::Partition,
        Self::Loss,
        Self::Kill,
        Self::Pause,
        Self::Member,
        Self::Transfer,
        Self::SnapshotRestart,
        Self::Fsync,
        Self::DiskFull,
        Self::Clock,
        Self::SlowClock,
    ];

    /// Its name on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Partition => "partition",
            Self::Loss => "loss",
            Self::Kill => "kill",
            Self::Pause => "pause",
            Self::Member => "member",
            Self::Transfer => "transfer",
            Self::SnapshotRestart => "snapshot-restart",
            Self::Fsync => "fsync",
            Self::DiskFull => "disk-full",
            Self::Clock => "clock",
            Self::SlowClock => "slow-clock",
        }
    }

    /// Whether it needs root (strace on another process, tmpfs mounts).
    #[must_use]
    pub const fn needs_root(self) -> bool {
        matches!(self, Self::Fsync | Self::DiskFull)
    }

    /// The faults a comma-separated list names (`all` for every one).
    ///
    /// # Errors
    ///
    /// A name that is no fault.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                out.extend(Self::ALL);
                continue;
            }
            let f = Self::ALL
                .into_iter()
                .find(|f| f.name() == name)
                .ok_or_else(|| {
                    format!(
                        "unknown fault {name:?} (one of: all, {})",
                        Self::ALL.map(Self::name).join(", ")
                    )
                })?;
            out.push(f);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The nemesis of one run.
pub(crate) struct Nemesis {
    rng: SplitMix64,
    clock: Clock,
    /// Every event, as `+12.345s text`.
    pub(crate) log: Vec<String>,
    /// How many of each fault were injected.
    pub(crate) counts: BTreeMap<String, u32>,
    /// What the runner found odd (a node that did not stop on EIO...).
    pub(crate) notes: Vec<String>,
    links: LinkFaults,
    fillers: Vec<PathBuf>,
    /// The cluster's intended size (voters).
    size: usize,
    /// Whether the note that a stopped node's process stays up was made.
    stayed_up_noted: bool,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Nemesis {
    pub(crate) fn new(seed: u64, clock: Clock, size: usize) -> Self {
        Self {
            rng: SplitMix64::new(seed ^ 0x6e65_6d65_7369_7321),
            clock,
            log: Vec::new(),
            counts: BTreeMap::new(),
            notes: Vec::new(),
            links: LinkFaults::default(),
            fillers: Vec::new(),
            size,
            stayed_up_noted: false,
        }
    }

    pub(crate) fn event(&mut self, text: impl Into<String>) {
        let t = self.clock.now() as f64 / 1e9;
        let line = format!("+{t:.3}s {}", text.into());
        self.log.push(line);
    }

    fn count(&mut self, name: &str) {
        *self.counts.entry(name.to_owned()).or_default() += 1;
    }

    fn note(&mut self, text: String) {
        self.event(format!("NOTE {text}"));
        self.notes.push(text);
    }

    fn between(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.rng.below(hi.saturating_sub(lo) + 1))
    }

    fn pick(&mut self, ids: &[u64]) -> Option<u64> {
        (!ids.is_empty()).then(|| ids[self.rng.index(ids.len())])
    }

    /// A running node: the leader half of the time when `leader_bias`.
    fn target(&mut self, cl: &Cluster, leader_bias: bool) -> Option<u64> {
        let running: Vec<u64> = cl
            .running()
            .into_iter()
            .filter(|id| cl.active().contains(id))
            .collect();
        if leader_bias
            && self.rng.chance(0.5)
            && let Some(l) = cl.leader()
        {
            return Some(l);
        }
        self.pick(&running)
    }

    fn shuffled(&mut self, ids: &[u64]) -> Vec<u64> {
        let mut v = ids.to_vec();
        for i in (1..v.len()).rev() {
            let j = self.rng.index(i + 1);
            v.swap(i, j);
        }
        v
    }

    fn set_links(&mut self, cl: &Cluster, links: LinkFaults, what: &str) {
        if let Err(e) = cl.net.set_faults(&links) {
            self.note(format!("could not set link faults ({what}): {e}"));
        }
        self.links = links;
    }

    /// Heals the network.
    pub(crate) fn heal_links(&mut self, cl: &Cluster) {
        if !self.links.is_empty() {
            self.set_links(cl, LinkFaults::default(), "heal");
            self.event("heal network");
        }
    }

    /// A random partition of the active nodes; returns its description.
    fn partition(&mut self, cl: &Cluster) -> Option<String> {
        let nodes = cl.active();
        if nodes.len() < 2 {
            return None;
        }
        let mut kinds = vec!["halves", "leader", "one-way"];
        if nodes.len() >= 3 {
            kinds.push("bridge");
        }
        if nodes.len() >= 5 {
            kinds.push("ring");
        }
        let kind = kinds[self.rng.index(kinds.len())];
        let mut links = LinkFaults::default();
        let order = self.shuffled(&nodes);
        let text = match kind {
            "halves" => {
                let at = 1 + self.rng.index(order.len() - 1);
                let (a, b) = order.split_at(at);
                links.cut_between(a, b);
                format!("partition halves {a:?} | {b:?}")
            }
            "leader" => {
                let l = cl.leader().unwrap_or(order[0]);
                let rest: Vec<u64> = nodes.iter().copied().filter(|&n| n != l).collect();
                links.cut_between(&[l], &rest);
                format!("partition leader {l} isolated from {rest:?}")
            }
            "bridge" => {
                let bridge = order[0];
                let rest = &order[1..];
                let at = 1 + self.rng.index(rest.len() - 1);
                let (a, b) = rest.split_at(at);
                links.cut_between(a, b);
                format!("partition bridge {bridge} between {a:?} and {b:?}")
            }
            "ring" => {
                let n = order.len();
                for i in 0..n {
                    for j in 0..n {
                        let adjacent = (i + 1) % n == j || (j + 1) % n == i;
                        if i != j && !adjacent {
                            links.cut.insert((order[i], order[j]));
                        }
                    }
                }
                format!("partition ring {order:?}")
            }
            _ => {
                // One-way: a's messages reach no one, but a hears everyone.
                let a = if self.rng.chance(0.5) {
                    cl.leader().unwrap_or(order[0])
                } else {
                    order[0]
                };
                for &b in &nodes {
                    if b != a {
                        links.cut.insert((a, b));
                    }
                }
                format!("partition one-way: {a}'s messages reach no one, it hears all")
            }
        };
        self.set_links(cl, links, kind);
        self.count(&format!("partition-{kind}"));
        self.event(&text);
        Some(text)
    }

    /// Injects one fault of `kind`, holds it, heals it.
    pub(crate) fn inject(&mut self, cl: &mut Cluster, kind: Fault) {
        match kind {
            Fault::Partition => {
                if self.partition(cl).is_some() {
                    let hold = self.between(1000, 4000);
                    thread::sleep(hold);
                    self.heal_links(cl);
                }
            }
            Fault::Loss => self.loss(cl),
            Fault::Kill => {
                let Some(id) = self.target(cl, true) else {
                    return;
                };
                cl.kill(id);
                self.count("kill");
                self.event(format!("SIGKILL node {id}"));
                let down = self.between(300, 2000);
                thread::sleep(down);
                self.restart(cl, id);
            }
            Fault::Pause => {
                let Some(id) = self.target(cl, true) else {
                    return;
                };
                if cl.pause(id) {
                    self.count("pause");
                    let hold = self.between(500, 3000);
                    self.event(format!("SIGSTOP node {id} for {} ms", ms(hold)));
                    thread::sleep(hold);
                    cl.resume(id);
                    self.event(format!("SIGCONT node {id}"));
                }
            }
            Fault::Transfer => self.transfer(cl),
            Fault::SnapshotRestart => self.snapshot_restart(cl),
            Fault::Fsync => self.fsync(cl),
            Fault::DiskFull => self.disk_full(cl),
            Fault::Clock => self.clock(cl),
            Fault::Member => self.member(cl),
            Fault::SlowClock => self.slow_leader(cl),
        }
    }

    /// Two or three times: makes the slow-clock node leader, then isolates it from its peers
    /// for a while. (Each time, a write in flight at the old leader when it is cut off holds
    /// its reads back, so not every window with two leaders can show a stale read.)
    fn slow_leader(&mut self, cl: &Cluster) {
        let rounds = 2 + self.rng.below(2);
        for _ in 0..rounds {
            let Some(slow) = cl
                .running()
                .into_iter()
                .find(|id| cl.nodes.get(id).is_some_and(|n| n.slow && !n.paused))
            else {
                self.note("slow-clock: the slow node is not running".to_owned());
                return;
            };
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let leader = cl.leader();
                if leader == Some(slow) {
                    break;
                }
                if Instant::now() >= deadline {
                    self.event(format!(
                        "slow-clock: node {slow} did not become leader within 3 s (skipped)"
                    ));
                    return;
                }
                if let Some(l) = leader {
                    let _ = cl.call(l, &["RAFT.TRANSFER", &slow.to_string()]);
                }
                thread::sleep(Duration::from_millis(100));
            }
            let rest: Vec<u64> = cl.active().into_iter().filter(|&n| n != slow).collect();
            let mut links = LinkFaults::default();
            links.cut_between(&[slow], &rest);
            self.set_links(cl, links, "slow-clock");
            self.count("slow-clock");
            let hold = self.between(800, 2000);
            self.event(format!(
                "slow-clock: node {slow} (Raft timers at half speed) made leader, then isolated from {rest:?} for {} ms",
                ms(hold)
            ));
            thread::sleep(hold);
            self.heal_links(cl);
            thread::sleep(Duration::from_millis(300));
        }
    }

    fn restart(&mut self, cl: &mut Cluster, id: u64) {
        match cl.spawn(id) {
            Ok(()) => self.event(format!("restart node {id}")),
            Err(e) => self.note(format!("could not restart node {id}: {e}")),
        }
    }

    fn loss(&mut self, cl: &Cluster) {
        let nodes = cl.active();
        let pct = u8::try_from(10 + self.rng.below(41)).unwrap_or(50);
        let mut links = LinkFaults::default();
        let one = self.rng.chance(0.5).then(|| self.pick(&nodes)).flatten();
        for &a in &nodes {
            for &b in &nodes {
                if a != b && one.is_none_or(|o| a == o || b == o) {
                    links.loss.insert((a, b), pct);
                }
            }
        }
        let scope = one.map_or_else(|| "every link".to_owned(), |o| format!("node {o}'s links"));
        self.set_links(cl, links, "loss");
        self.count("loss");
        let hold = self.between(2000, 4000);
        self.event(format!("loss {pct}% on {scope} for {} ms", ms(hold)));
        thread::sleep(hold);
        self.heal_links(cl);
    }

    fn transfer(&mut self, cl: &Cluster) {
        let rounds = 1 + self.rng.below(3);
        for _ in 0..rounds {
            let Some(leader) = cl.leader() else { return };
            let voters = voters(cl, leader);
            let others: Vec<u64> = voters.into_iter().filter(|&v| v != leader).collect();
            let Some(to) = self.pick(&others) else { return };
            let reply = cl.call(leader, &["RAFT.TRANSFER", &to.to_string()]);
            self.count("transfer");
            self.event(format!("RAFT.TRANSFER {leader} -> {to}: {}", show(&reply)));
            let gap = self.between(200, 800);
            thread::sleep(gap);
        }
    }

    fn snapshot_restart(&mut self, cl: &mut Cluster) {
        let Some(id) = self.target(cl, true) else {
            return;
        };
        let snap = |cl: &Cluster| {
            cl.info(id)
                .and_then(|i| i.get("snapshot_index")?.parse::<u64>().ok())
        };
        let Some(before) = snap(cl) else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(now) = snap(cl).filter(|&s| s > before) {
                cl.kill(id);
                self.count("snapshot-restart");
                self.event(format!(
                    "node {id} took a snapshot at {now} (was {before}): SIGKILL at once"
                ));
                self.restart(cl, id);
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        self.event(format!("node {id}: no snapshot within 10 s (skipped)"));
    }

    /// The length of node `id`'s log now (to look for what it logs after a fault).
    fn log_len(cl: &Cluster, id: u64) -> u64 {
        cl.nodes
            .get(&id)
            .and_then(|n| std::fs::metadata(&n.log).ok())
            .map_or(0, |m| m.len())
    }

    /// Waits up to `patience` for node `id` to stop: its process exits, or its log says its
    /// node stopped (after byte `from`). What it saw, or `None`.
    fn wait_stopped(
        &mut self,
        cl: &mut Cluster,
        id: u64,
        from: u64,
        patience: Duration,
        doing: &str,
    ) -> Option<String> {
        let deadline = Instant::now() + patience;
        // A node stopped by a storage error logs it, routes what it had in flight, then exits:
        // after the log line, wait on for the exit.
        let mut logged: Option<String> = None;
        while Instant::now() < deadline {
            for (gone, status) in cl.reap(doing) {
                if gone == id {
                    return Some(match &logged {
                        Some(text) => {
                            format!("it logged \"{text}\" and its process exited: {status}")
                        }
                        None => format!("its process exited: {status}"),
                    });
                }
            }
            if logged.is_some() {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            let log = cl
                .nodes
                .get(&id)
                .and_then(|n| std::fs::read(&n.log).ok())
                .unwrap_or_default();
            let tail = String::from_utf8_lossy(
                log.get(usize::try_from(from).unwrap_or(0)..)
                    .unwrap_or_default(),
            )
            .into_owned();
            if let Some(line) = tail.lines().find(|l| l.contains("stopped:")) {
                logged = Some(line.split("] ").nth(1).unwrap_or(line).to_owned());
            }
            thread::sleep(Duration::from_millis(20));
        }
        let text = logged?;
        if !self.stayed_up_noted {
            self.stayed_up_noted = true;
            self.notes.push(format!(
                "node {id}'s Raft node stopped ({doing}) but its process stayed up (it was then killed by the runner)"
            ));
        }
        Some(format!("it logged \"{text}\" (the process stays up)"))
    }

    fn fsync(&mut self, cl: &mut Cluster) {
        let Some(id) = self.target(cl, true) else {
            return;
        };
        let from = Self::log_len(cl, id);
        if let Err(e) = cl.inject_fsync_eio(id) {
            self.note(format!("strace on node {id}: {e}"));
            return;
        }
        self.count("fsync-eio");
        self.event(format!(
            "strace: every fsync/fdatasync of node {id} fails with EIO"
        ));
        match self.wait_stopped(cl, id, from, Duration::from_secs(8), "fsync EIO") {
            Some(status) => {
                self.event(format!("node {id} stopped on EIO: {status}"));
                cl.kill(id);
            }
            None => {
                let writes = cl.info(id).map(|i| i.get("applied_index").cloned());
                self.note(format!(
                    "node {id} still runs 8 s after its fsyncs began to fail with EIO (applied {writes:?})"
                ));
                cl.kill(id);
            }
        }
        cl.stop_strace(id);
        let down = self.between(300, 1500);
        thread::sleep(down);
        self.restart(cl, id);
    }

    fn disk_full(&mut self, cl: &mut Cluster) {
        let Some(id) = self.target(cl, true) else {
            return;
        };
        let from = Self::log_len(cl, id);
        let filler = match cl.fill_disk(id) {
            Ok(p) => p,
            Err(e) => {
                self.note(format!("disk full on node {id}: {e}"));
                return;
            }
        };
        self.fillers.push(filler.clone());
        self.count("disk-full");
        self.event(format!("node {id}'s disk (tmpfs) is full"));
        match self.wait_stopped(cl, id, from, Duration::from_secs(8), "disk full") {
            Some(status) => {
                self.event(format!("node {id} stopped on a full disk: {status}"));
                cl.kill(id);
            }
            None => {
                self.note(format!("node {id} still runs 8 s after its disk filled up"));
                cl.kill(id);
            }
        }
        let _ = std::fs::remove_file(&filler);
        self.fillers.retain(|f| f != &filler);
        self.event(format!("node {id}'s disk has room again"));
        let down = self.between(300, 1500);
        thread::sleep(down);
        self.restart(cl, id);
    }

    fn clock(&mut self, cl: &mut Cluster) {
        let Some(id) = self.target(cl, true) else {
            return;
        };
        let mono = cl
            .nodes
            .get(&id)
            .and_then(|n| n.clock.as_ref())
            .map(|c| c.mono);
        let Some(mono) = mono else {
            self.note(format!("node {id} has no faketime clock"));
            return;
        };
        let delta = if mono {
            i64::try_from(2 + self.rng.below(19)).unwrap_or(2)
        } else {
            let d = i64::try_from(60 + self.rng.below(86_400)).unwrap_or(60);
            if self.rng.chance(0.5) { d } else { -d }
        };
        match cl.jump_clock(id, delta) {
            Ok(total) => {
                self.count("clock");
                let which = if mono { "wall and monotonic" } else { "wall" };
                self.event(format!(
                    "node {id}: {which} clock jumps {delta:+} s (now {total:+} s)"
                ));
                thread::sleep(Duration::from_millis(1500));
            }
            Err(e) => self.note(format!("clock jump on node {id}: {e}")),
        }
    }

    /// Heals everything: links, pauses, strace, full disks; restarts the nodes that should
    /// run.
    pub(crate) fn heal_all(&mut self, cl: &mut Cluster) {
        self.set_links(cl, LinkFaults::default(), "heal all");
        for id in cl.running() {
            cl.resume(id);
            cl.stop_strace(id);
        }
        for f in std::mem::take(&mut self.fillers) {
            let _ = std::fs::remove_file(f);
        }
        for (id, status) in cl.reap("before the final heal") {
            self.note(format!("node {id} had exited on its own: {status}"));
        }
        for id in cl.active() {
            if cl.nodes.get(&id).is_some_and(|n| n.child.is_none()) {
                self.restart(cl, id);
            }
        }
        self.event("heal everything");
        self.reconcile(cl);
    }
}

/// The voters node `at` knows of.
pub(crate) fn voters(cl: &Cluster, at: u64) -> Vec<u64> {
    cl.info(at)
        .and_then(|i| i.get("voters").cloned())
        .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_default()
}

/// A reply, short.
pub(crate) fn show(reply: &std::io::Result<Value>) -> String {
    match reply {
        Ok(Value::Simple(s)) => format!("+{s}"),
        Ok(Value::Error(e)) => format!("-{e}"),
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse() {
        assert_eq!(Fault::parse_list("all").unwrap().len(), Fault::ALL.len());
        assert_eq!(
            Fault::parse_list("kill, partition,kill").unwrap(),
            vec![Fault::Partition, Fault::Kill]
        );
        assert!(
            Fault::parse_list("kil")
                .unwrap_err()
                .contains("unknown fault")
        );
        assert!(Fault::Fsync.needs_root() && !Fault::Partition.needs_root());
    }
}
