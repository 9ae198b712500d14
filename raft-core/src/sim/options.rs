//! What a run is made of and what it reports: [`SimOptions`] (the fault mix, drawn from a seed),
//! [`SimFailure`] and [`Summary`].

use alloc::string::String;

use super::network::NetworkFaults;
use super::rng::SimRng;
use crate::config::Config;
use crate::types::NodeId;

/// How one simulated run behaves. [`SimOptions::random`] draws a mix of faults from the seed.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The seed for everything: faults, delays, and each node's election timeouts.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Ticks of the fault phase.
    pub fault_ticks: u64,
    /// Ticks the healed phase may take to commit a new proposal before the run fails.
    pub heal_ticks: u64,
    /// Network faults during the fault phase.
    pub net: NetworkFaults,
    /// Chance per tick that the partition changes, per million.
    pub partition_per_million: u32,
    /// Chance per tick that a running node crashes, per million.
    pub crash_per_million: u32,
    /// Chance per tick that a crashed node restarts, per million.
    pub restart_per_million: u32,
    /// Chance per tick that the leader crashes, per million (leader changes are where the
    /// subtle bugs live: Figure 8 of the Raft paper needs a leader to fail right after
    /// replicating to a minority).
    pub leader_crash_per_million: u32,
    /// Most ticks a write takes to become durable.
    pub max_disk_delay: u64,
    /// Chance per tick of a proposal, per million.
    pub propose_per_million: u32,
    /// Chance per tick of a read, per million.
    pub read_per_million: u32,
    /// Chance per tick of a leadership transfer request, per million.
    pub transfer_per_million: u32,
    /// Chance that a step's writes are left in the lane to be merged with later ones.
    pub defer_writes_per_million: u32,
    /// Chance per tick that a node snapshots its state machine and compacts its log, per
    /// million.
    pub snapshot_per_million: u32,
    /// See [`Config::snapshot_chunk_bytes`]: small, so transfers take many chunks.
    pub snapshot_chunk_bytes: u32,
    /// See [`Config::snapshot_trailing_entries`].
    pub snapshot_trailing_entries: u64,
    /// The largest snapshot the simulated state machine writes, in bytes (at least 8).
    pub snapshot_max_bytes: u64,
    /// The nodes' configuration template (the id is set per node).
    pub pre_vote: bool,
    /// See [`Config::check_quorum`].
    pub check_quorum: bool,
    /// See [`Config::follower_reads`]: reads issued at a follower are confirmed through its
    /// leader and checked like the leader's.
    pub follower_reads: bool,
    /// See [`Config::lease_reads`]: leaders answer reads from their lease, and a node waking
    /// from a pause first steps the ticks it missed, as the adapter's clock contract requires.
    pub lease_reads: bool,
    /// See [`Config::lease_drift_ticks`].
    pub lease_drift_ticks: u32,
    /// One node whose clock runs at another rate than the others', within the drift margin
    /// (see [`ClockDrift`]).
    pub clock_drift: Option<ClockDrift>,
    /// Chance per tick, per million, that every node that believes it leads is asked for a
    /// read: a leader cut off from the others, still in its lease or believing it is, is where
    /// a lease too long shows.
    pub leader_reads_per_million: u32,
    /// See [`Config::max_inflight_msgs`].
    pub max_inflight_msgs: u32,
    /// See [`Config::max_msg_entries`].
    pub max_msg_entries: u32,
    /// Nodes beyond the `nodes` initial voters, running from the start but outside the
    /// configuration (each believes itself a learner) until a membership change adds them.
    pub spare_nodes: usize,
    /// Chance per tick that the leader is asked for a random membership change, per million.
    pub change_per_million: u32,
    /// Chance, per million, that a node that has just become candidate or leader crashes at
    /// once, its writes (the vote for itself, the leader's first entry) still pending: a crash
    /// in the window where counting a write before it is durable would matter.
    pub role_change_crash_per_million: u32,
    /// Chance, per million, that a leader crashes just after an append acknowledgement reached
    /// it while its own writes are pending (followers hold entries its disk may not).
    pub ack_ahead_crash_per_million: u32,
    /// Nodes (a bit per node index) whose disk is slow: each of their writes takes up to
    /// `slow_disk_delay` ticks, so its acknowledgement lags several writes behind.
    pub slow_disks: u32,
    /// Most ticks a write to a slow disk takes.
    pub slow_disk_delay: u64,
    /// Chance, per million, that a follower's conflict answer carries a coarser hint: an index
    /// up to `2 * max_msg_entries` below the one it could name, and no term. A follower of
    /// another implementation or version may answer so (its commit index, say); any index at or
    /// below the true point of agreement is correct, and the leader's next append then starts
    /// inside the matching part of the log and may end before the follower's stale suffix.
    pub coarse_hint_per_million: u32,
    /// Chance per tick, per million, that the leader (or a node, when none leads) pauses for
    /// one to three election timeouts (see `sim::pause`).
    pub pause_per_million: u32,
    /// Record a trace of every step.
    pub trace: bool,
}

impl SimOptions {
    /// A run of `nodes` nodes with a fault mix drawn from `seed`.
    #[must_use]
    pub fn random(seed: u64, nodes: usize) -> Self {
        let mut r = SimRng::new(seed).fork(0x5EED);
        Self {
            seed,
            nodes,
            fault_ticks: 600,
            heal_ticks: 600,
            net: NetworkFaults {
                drop_per_million: r.below(200_000) as u32,
                duplicate_per_million: r.below(150_000) as u32,
                max_delay: r.between(0, 4),
            },
            partition_per_million: r.below(30_000) as u32,
            crash_per_million: r.below(6_000) as u32,
            restart_per_million: r.between(20_000, 100_000) as u32,
            leader_crash_per_million: r.below(20_000) as u32,
            max_disk_delay: r.between(0, 4),
            propose_per_million: r.between(50_000, 400_000) as u32,
            read_per_million: r.between(10_000, 100_000) as u32,
            transfer_per_million: r.below(8_000) as u32,
            defer_writes_per_million: r.below(400_000) as u32,
            snapshot_per_million: if r.chance(300_000) {
                0
            } else {
                r.below(60_000) as u32
            },
            snapshot_chunk_bytes: r.between(1, 48) as u32,
            snapshot_trailing_entries: r.between(0, 12),
            snapshot_max_bytes: 200,
            pre_vote: r.chance(800_000),
            check_quorum: r.chance(800_000),
            // From a stream of its own, like the targeted faults: the draws above are unchanged.
            follower_reads: SimRng::new(seed).fork(0xF011_0EAD).chance(500_000),
            lease_reads: false,
            lease_drift_ticks: Config::new(NodeId::MIN).lease_drift_ticks,
            clock_drift: None,
            leader_reads_per_million: 0,
            max_inflight_msgs: r.between(1, 8) as u32,
            max_msg_entries: r.between(1, 16) as u32,
            spare_nodes: 0,
            change_per_million: 0,
            role_change_crash_per_million: 0,
            ack_ahead_crash_per_million: 0,
            slow_disks: 0,
            slow_disk_delay: 0,
            coarse_hint_per_million: 0,
            pause_per_million: 0,
            trace: false,
        }
        .with_targeted_faults()
    }

    /// The faults aimed at rules a bug could break unseen by the others: writes counted before
    /// they are durable (power cuts right after a role change and at a leader acknowledged
    /// ahead of its disk, slow disks), appends that end before a follower's stale suffix (coarse
    /// conflict hints), and a leader that wakes from a pause still believing it leads (pauses).
    /// Each is drawn from a stream of its own, so the draws above, and every seed that predates these faults and gets none of
    /// them, run as they always did.
    fn with_targeted_faults(mut self) -> Self {
        let mut r = SimRng::new(self.seed).fork(0x3D15_C0DE);
        if r.chance(500_000) {
            self.role_change_crash_per_million = r.between(100_000, 500_000) as u32;
        }
        if r.chance(500_000) {
            // One node in three, at least one.
            let nodes = self.nodes.min(32);
            for i in 0..nodes {
                if r.chance(333_333) {
                    self.slow_disks |= 1 << i;
                }
            }
            if self.slow_disks == 0 {
                self.slow_disks = 1 << r.below(nodes.max(1) as u64);
            }
            self.slow_disk_delay = r.between(5, 20);
        }
        if r.chance(500_000) {
            self.ack_ahead_crash_per_million = r.between(50_000, 300_000) as u32;
        }
        let mut r = SimRng::new(self.seed).fork(0xC0A5_E41E);
        if r.chance(500_000) {
            self.coarse_hint_per_million = r.between(200_000, 1_000_000) as u32;
        }
        let mut r = SimRng::new(self.seed).fork(0x009A_05E5);
        if r.chance(500_000) {
            self.pause_per_million = r.between(5_000, 20_000) as u32;
        }
        self.with_lease_reads()
    }

    /// Lease reads, in three quarters of the seeds with CheckQuorum and without power cuts in
    /// write windows, from a stream of their own (the seeds without them run as before): a drift margin of 1 to 3 ticks, reads at every node that
    /// believes it leads (`leader_reads_per_million`), in half of them one node's
    /// clock running fast or slow within it (pauses come in half of them, drawn as in any
    /// seed).
    fn with_lease_reads(mut self) -> Self {
        let mut r = SimRng::new(self.seed).fork(0x1EA5_E5EED);
        // Not with the power cuts in write windows: their restarts campaign at once, which a
        // node with lease reads refuses (it may have answered a heartbeat before the crash), and
        // the bugs those campaigns catch would go unseen in the seeds that draw lease reads.
        let crash_windows =
            self.role_change_crash_per_million > 0 || self.ack_ahead_crash_per_million > 0;
        if !self.check_quorum || crash_windows || !r.chance(750_000) {
            return self;
        }
        self.lease_reads = true;
        self.lease_drift_ticks = r.between(1, 3) as u32;
        self.leader_reads_per_million = r.between(100_000, 600_000) as u32;
        if r.chance(500_000) {
            let min = u64::from(Config::new(NodeId::MIN).election_ticks_min);
            let drift = u64::from(self.lease_drift_ticks);
            self.clock_drift = Some(ClockDrift {
                node: r.below(self.nodes.max(1) as u64) as usize,
                fast: r.chance(500_000),
                // At most `drift` ticks gained or lost over `election_ticks_min` ticks.
                every: min.div_ceil(drift),
            });
        }
        self
    }

    /// This run without lease reads (and so without clock drift), as it ran before they
    /// existed.
    #[must_use]
    pub fn without_lease_reads(mut self) -> Self {
        self.lease_reads = false;
        self.lease_drift_ticks = Config::new(NodeId::MIN).lease_drift_ticks;
        self.clock_drift = None;
        self.leader_reads_per_million = 0;
        self
    }

    /// This run without the targeted faults (power cuts in write windows, slow disks, coarse
    /// conflict hints, pauses) that [`SimOptions::random`] draws in half the seeds each, and
    /// without follower reads and lease reads (drawn likewise): as a seed ran before they existed
    /// (the regression seeds recorded then replay what they were recorded on).
    #[must_use]
    pub fn without_targeted_faults(mut self) -> Self {
        self.follower_reads = false;
        self = self.without_lease_reads();
        self.role_change_crash_per_million = 0;
        self.ack_ahead_crash_per_million = 0;
        self.slow_disks = 0;
        self.slow_disk_delay = 0;
        self.coarse_hint_per_million = 0;
        self.pause_per_million = 0;
        self
    }

    /// Whether node `i`'s disk is slow.
    #[must_use]
    pub fn slow_disk(&self, i: usize) -> bool {
        i < 32 && self.slow_disks & (1 << i) != 0
    }

    /// A run that starts with 3 voters and 2 to 4 spare nodes and, among all the faults of
    /// [`SimOptions::random`], keeps changing the membership: learners added and promoted,
    /// voters added, removed (the leader too), replaced and demoted, the cluster grown to 5
    /// and shrunk back to 3.
    #[must_use]
    pub fn reconfiguring(seed: u64) -> Self {
        let mut opts = Self::random(seed, 3);
        let mut r = SimRng::new(seed).fork(0xC0_4F16);
        opts.spare_nodes = r.between(2, 4) as usize;
        opts.change_per_million = r.between(5_000, 40_000) as u32;
        opts.fault_ticks = 1_000;
        opts
    }

    pub(super) fn config(&self, id: NodeId) -> Config {
        let mut c = Config::new(id);
        c.pre_vote = self.pre_vote;
        c.check_quorum = self.check_quorum;
        c.follower_reads = self.follower_reads;
        c.lease_reads = self.lease_reads;
        c.lease_drift_ticks = self.lease_drift_ticks;
        c.max_inflight_msgs = self.max_inflight_msgs;
        c.max_msg_entries = self.max_msg_entries;
        c.snapshot_chunk_bytes = self.snapshot_chunk_bytes;
        c.snapshot_trailing_entries = self.snapshot_trailing_entries;
        c
    }
}

/// A node whose clock runs fast or slow: every `every` ticks of the others, it gets one tick
/// more (`fast`) or one less. Drawn so that over `election_ticks_min` ticks it gains or loses at
/// most `lease_drift_ticks`: within the margin lease reads assume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockDrift {
    /// The node's index.
    pub node: usize,
    /// Whether its clock runs fast (else slow).
    pub fast: bool,
    /// One tick gained or lost in every this many.
    pub every: u64,
}

impl ClockDrift {
    /// How many ticks node `i` counts at global tick `now`.
    #[must_use]
    pub fn ticks(drift: Option<Self>, i: usize, now: u64) -> u32 {
        match drift {
            Some(d) if d.node == i && d.every > 0 && now.is_multiple_of(d.every) => {
                if d.fast {
                    2
                } else {
                    0
                }
            }
            _ => 1,
        }
    }
}

/// Why a run failed.
#[derive(Clone, Debug)]
pub struct SimFailure {
    /// The seed that reproduces it.
    pub seed: u64,
    /// The tick it happened at.
    pub tick: u64,
    /// What went wrong.
    pub what: String,
}

impl core::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "seed {} failed at tick {}: {}",
            self.seed, self.tick, self.what
        )
    }
}

/// What a successful run did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Ticks simulated, both phases.
    pub ticks: u64,
    /// Entries committed.
    pub committed: u64,
    /// Terms that had a leader.
    pub leader_terms: usize,
    /// Messages sent, lost and duplicated.
    pub messages: (u64, u64, u64),
    /// Crashes and restarts.
    pub crashes: u64,
    /// Reads confirmed and reads aborted.
    pub reads: (u64, u64),
    /// Reads leaders answered from their lease (`Stats::reads_by_lease`, summed over every
    /// incarnation of every node).
    pub reads_by_lease: u64,
    /// Ticks the healed phase took to commit a proposal.
    pub heal_ticks: u64,
    /// Snapshots taken by the application, and snapshots installed from a leader.
    pub snapshots: (u64, u64),
    /// Membership changes a leader accepted (each appends a joint or a simple configuration).
    pub membership_changes: u64,
}
