//! The workloads, and the one loop that drives any [`Cluster`] through them.

use std::time::{Duration, Instant};

use crate::counting_alloc::AllocCounts;

/// A cluster of in-memory nodes with an elected, stable leader, driven in rounds.
pub trait Cluster {
    /// Proposes one command with these bytes on the leader (the implementation copies them into
    /// the library's own payload type: one allocation on either side).
    fn propose(&mut self, data: &[u8]);

    /// Proposes `n` commands with these bytes on the leader, with the library's best API for a
    /// batch (by default: one by one).
    fn propose_many(&mut self, data: &[u8], n: u64) {
        for _ in 0..n {
            self.propose(data);
        }
    }

    /// One round: every message sent in the previous round is delivered, then every node does
    /// what its outputs ask (persist in memory, acknowledge, apply, collect messages to send) until
    /// it asks nothing more. Returns how many proposed entries the leader applied in this round.
    fn round(&mut self) -> u64;
}

/// Messages sent, by kind (the same kinds on both sides: AppendEntries / `MsgAppend` and their
/// responses). A message is counted when a round hands it to its addressee, or drops it because
/// the addressee is stopped: once none is in flight, every message sent is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Append messages.
    pub appends: u64,
    /// Append messages without entries (commit-only, or a probe), counted in `appends` too.
    /// Ours sends most commit-only messages as commit notices instead (`commit_notices`).
    pub empty_appends: u64,
    /// Entries those carried.
    pub appended_entries: u64,
    /// Append responses.
    pub append_responses: u64,
    /// Every other message.
    pub other: u64,
    /// Heartbeats (`MsgHeartbeat`), counted in `other` too.
    pub heartbeats: u64,
    /// Commit notices (ours only: the commit index alone, needing no answer), counted in
    /// `other` too.
    pub commit_notices: u64,
}

impl Traffic {
    /// Every message, whatever its kind.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.appends + self.append_responses + self.other
    }

    /// What was sent since `earlier` (a snapshot of the same counters).
    #[must_use]
    pub const fn since(&self, earlier: &Self) -> Self {
        Self {
            appends: self.appends - earlier.appends,
            empty_appends: self.empty_appends - earlier.empty_appends,
            appended_entries: self.appended_entries - earlier.appended_entries,
            append_responses: self.append_responses - earlier.append_responses,
            other: self.other - earlier.other,
            heartbeats: self.heartbeats - earlier.heartbeats,
            commit_notices: self.commit_notices - earlier.commit_notices,
        }
    }
}

/// What to run: cluster size, payload size, and how proposals are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Bytes per command.
    pub payload: usize,
    /// Proposals made on the leader before each round (ignored when `sync`).
    pub batch: usize,
    /// Propose the next command only once the previous one is applied on the leader.
    pub sync: bool,
}

impl Workload {
    /// `batch` proposals between rounds, whatever is in flight.
    #[must_use]
    pub const fn batched(nodes: usize, payload: usize, batch: usize) -> Self {
        Self {
            nodes,
            payload,
            batch,
            sync: false,
        }
    }

    /// One proposal at a time: each waits for the previous one to be applied on the leader.
    #[must_use]
    pub const fn sync(nodes: usize, payload: usize) -> Self {
        Self {
            nodes,
            payload,
            batch: 1,
            sync: true,
        }
    }

    /// A short name, e.g. `3 nodes 16 B batch 64` or `3 nodes 16 B sync`.
    #[must_use]
    pub fn label(&self) -> String {
        let size = if self.payload >= 1024 && self.payload.is_multiple_of(1024) {
            format!("{} KiB", self.payload / 1024)
        } else {
            format!("{} B", self.payload)
        };
        if self.sync {
            format!("{} nodes {size} sync", self.nodes)
        } else {
            format!("{} nodes {size} batch {}", self.nodes, self.batch)
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct RunStats {
    /// Proposed entries applied on the leader.
    pub entries: u64,
    /// Wall time from the first proposal to the last entry applied on the leader.
    pub elapsed: Duration,
    /// Allocations made in that time, by everything in the process (driver included).
    pub allocs: AllocCounts,
    /// Rounds it took.
    pub rounds: u64,
}

impl RunStats {
    /// Throughput: entries committed and applied on the leader per second.
    #[must_use]
    pub fn entries_per_sec(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Allocation calls (`alloc` + `realloc`) per entry.
    #[must_use]
    pub fn allocs_per_entry(&self) -> f64 {
        self.allocs.per(self.entries)
    }
}

/// Drives `cluster` through `w` until `entries` proposals are applied on the leader.
///
/// Each round, the leader first gets `w.batch` new proposals (in `sync` mode: one, and only once
/// the previous one is applied), then the cluster runs one [`Cluster::round`]. Proposals are
/// therefore pipelined: a batch is proposed while the previous ones are still being replicated.
///
/// # Panics
/// If the cluster stops making progress (a bug in a driver).
pub fn run<C: Cluster>(cluster: &mut C, w: &Workload, entries: u64) -> RunStats {
    let payload = vec![0x5A_u8; w.payload];
    let batch = w.batch.max(1) as u64;
    let mut proposed = 0u64;
    let mut applied = 0u64;
    let mut rounds = 0u64;
    let mut idle = 0u32;
    let allocs_before = AllocCounts::now();
    let start = Instant::now();
    while applied < entries {
        let room = if w.sync {
            u64::from(proposed == applied)
        } else {
            batch
        };
        let n = room.min(entries - proposed);
        if n == 1 {
            cluster.propose(&payload);
        } else if n > 1 {
            cluster.propose_many(&payload, n);
        }
        proposed += n;
        let n = cluster.round();
        applied += n;
        rounds += 1;
        idle = if n == 0 { idle + 1 } else { 0 };
        assert!(
            idle < 1000,
            "no entry applied in 1000 rounds: the driver is stuck"
        );
    }
    let elapsed = start.elapsed();
    let allocs = AllocCounts::since(allocs_before);
    RunStats {
        entries: applied,
        elapsed,
        allocs,
        rounds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ours::OurCluster;
    #[cfg(feature = "raft-rs")]
    use crate::raftrs::RaftRsCluster;

    const WORKLOADS: [Workload; 3] = [
        Workload::batched(3, 16, 64),
        Workload::batched(5, 256, 1),
        Workload::sync(3, 16),
    ];

    #[test]
    fn our_cluster_commits_everything_everywhere() {
        for w in WORKLOADS {
            let mut c = OurCluster::elected(w.nodes, 5);
            let stats = run(&mut c, &w, 500);
            assert_eq!(stats.entries, 500, "{}", w.label());
            c.settle();
            // A commit advance that finds no append to ride on waits for the leader's next tick
            // (raft-core coalesces commit-only messages): one tick brings every follower level.
            c.tick();
            c.settle();
            assert_eq!(c.errors(), 0);
            let leader_log = c.disk(0).to_vec();
            // The leader's no-op, then the 500 commands.
            assert_eq!(leader_log.len(), 501);
            for i in 0..w.nodes {
                assert_eq!(c.disk(i), &leader_log[..], "node {} log", i + 1);
                assert_eq!(c.node(i).applied_index().0, 501, "node {} applied", i + 1);
            }
            assert!(stats.allocs.calls() > 0, "the counting allocator counts");
            if !w.sync && w.batch > 1 {
                let t = c.traffic();
                assert!(
                    t.appends < 500,
                    "batched proposals leave in fewer messages: {t:?}"
                );
            }
        }
    }

    // Listed (as ignored, with the command that runs it) rather than compiled out when the
    // feature is off, so a plain `cargo test` says that it skipped it.
    #[test]
    #[cfg_attr(
        not(feature = "raft-rs"),
        ignore = "needs raft-rs: cargo test -p benches --features raft-rs"
    )]
    fn raft_rs_cluster_commits_everything_everywhere() {
        #[cfg(feature = "raft-rs")]
        for w in WORKLOADS {
            let mut c = RaftRsCluster::elected(w.nodes);
            let stats = run(&mut c, &w, 500);
            assert_eq!(stats.entries, 500, "{}", w.label());
            c.settle();
            assert_eq!(c.errors(), 0);
            for i in 0..w.nodes {
                let log = &c.node(i).raft.raft_log;
                assert_eq!(log.committed, 501, "node {} committed", i + 1);
                assert_eq!(log.persisted, 501, "node {} persisted", i + 1);
            }
        }
    }

    #[test]
    fn reads_and_elections_by_ticks() {
        let mut c = OurCluster::elected(3, 1);
        for _ in 0..10 {
            c.read();
        }
        c.settle();
        assert_eq!(c.reads_ready(), 10);

        let mut c = OurCluster::new(5, 2);
        let mut ticks = 0;
        while c.leader().is_none() {
            c.tick();
            c.settle();
            ticks += 1;
            assert!(ticks < 100, "a leader within 100 ticks");
        }
        let old = c.leader().expect("leader");
        for _ in 0..30 {
            c.tick();
            c.settle();
        }
        c.crash(old);
        while c.leader().is_none() {
            c.tick();
            c.settle();
            ticks += 1;
            assert!(ticks < 200, "a new leader within 100 more ticks");
        }
        assert_ne!(c.leader(), Some(old));
    }

    #[test]
    fn labels() {
        assert_eq!(
            Workload::batched(3, 16, 64).label(),
            "3 nodes 16 B batch 64"
        );
        assert_eq!(
            Workload::batched(5, 4096, 1).label(),
            "5 nodes 4 KiB batch 1"
        );
        assert_eq!(Workload::sync(3, 16).label(), "3 nodes 16 B sync");
    }
}
