//! A deterministic cluster simulator: test support, not part of the stable API (feature `sim`).
//!
//! Many nodes run in one thread under one seed. The network drops, duplicates, delays and
//! reorders messages and makes partitions (symmetric, one-way, leader isolated,
//! minority/majority splits); nodes crash, losing writes not acknowledged as durable (and
//! sometimes tearing the last one), and restart from their disks; disks are slow. After every
//! step the simulator checks Election Safety, Log Matching, Leader Completeness, State Machine
//! Safety, the persistence contract (no vote or append acknowledgement leaves a node before its
//! write is durable), monotonic commit indexes, linearizable ReadIndex results and the node's own
//! invariants. A run has a fault phase, then a healed phase in which a proposal must commit
//! within a bound.
//!
//! The same seed always produces the same run, byte for byte: a failing seed is a reproducible
//! bug.

#![allow(
    clippy::indexing_slicing,
    reason = "test support: node numbers index vectors sized to the cluster at construction"
)]
#![allow(
    clippy::cast_possible_truncation,
    reason = "test support: counts and node numbers are small"
)]

mod checker;
mod disk;
#[cfg(feature = "arbitrary")]
pub mod fuzz;
mod network;
mod rng;
mod trace;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

pub use checker::Checker;
pub use disk::{SimDisk, blob_prefix, snapshot_blob};
pub use network::{Network, NetworkFaults, PartitionKind};
pub use rng::{SimRng, hash_bytes, mix};

use crate::config::Config;
use crate::error::StepError;
use crate::input::{Input, ReadId, SnapshotChunk};
use crate::membership::{Change, Membership};
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::node::Node;
use crate::output::{Apply, ChunkRequest, Event, Outputs, ReadResult};
use crate::restore::{Restored, SnapshotMeta};
use crate::status::Role;
use crate::types::{Index, LogId, NodeId, Payload, Term};

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
    /// See [`Config::max_inflight_msgs`].
    pub max_inflight_msgs: u32,
    /// See [`Config::max_msg_entries`].
    pub max_msg_entries: u32,
    /// Nodes beyond the `nodes` initial voters, running from the start but outside the
    /// configuration (each believes itself a learner) until a membership change adds them.
    pub spare_nodes: usize,
    /// Chance per tick that the leader is asked for a random membership change, per million.
    pub change_per_million: u32,
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
            max_inflight_msgs: r.between(1, 8) as u32,
            max_msg_entries: r.between(1, 16) as u32,
            spare_nodes: 0,
            change_per_million: 0,
            trace: false,
        }
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

    fn config(&self, id: NodeId) -> Config {
        let mut c = Config::new(id);
        c.pre_vote = self.pre_vote;
        c.check_quorum = self.check_quorum;
        c.max_inflight_msgs = self.max_inflight_msgs;
        c.max_msg_entries = self.max_msg_entries;
        c.snapshot_chunk_bytes = self.snapshot_chunk_bytes;
        c.snapshot_trailing_entries = self.snapshot_trailing_entries;
        c
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
    /// Ticks the healed phase took to commit a proposal.
    pub heal_ticks: u64,
    /// Snapshots taken by the application, and snapshots installed from a leader.
    pub snapshots: (u64, u64),
    /// Membership changes a leader accepted (each appends a joint or a simple configuration).
    pub membership_changes: u64,
}

/// One simulated member: the node (absent while crashed), its disk, and what the simulator
/// tracks about it.
struct SimNode {
    id: NodeId,
    node: Option<Node<SimRng>>,
    out: Outputs,
    disk: SimDisk,
    /// The node's log as its writes describe it: terms and prefix fingerprints.
    mirror: Vec<(Term, u64)>,
    /// The state machine: the fingerprint of what it applied, and the next index expected.
    sm_prefix: u64,
    sm_next: Index,
    /// The commit index in this incarnation (it must never go backwards).
    last_commit: Index,
    incarnation: u64,
    /// The configuration the node starts from before its log says otherwise.
    initial: Membership,
}

impl SimNode {
    fn entry_at(&self, i: u64) -> Option<(Term, u64)> {
        if i == 0 {
            return Some((Term::ZERO, 0));
        }
        self.mirror.get(i as usize - 1).copied()
    }

    fn prefix_at(&self, i: u64) -> Option<u64> {
        self.entry_at(i).map(|(_, p)| p)
    }
}

/// A simulated cluster.
pub struct Simulation {
    opts: SimOptions,
    rng: SimRng,
    now: u64,
    nodes: Vec<SimNode>,
    net: Network,
    checker: Checker,
    trace: Option<String>,
    /// Reads issued: the commit index each must reflect.
    reads: BTreeMap<u64, Index>,
    next_read: u64,
    next_proposal: u64,
    summary: Summary,
    /// A membership change was made: messages from removed nodes are expected.
    reconfigured: bool,
}

type SimResult<T = ()> = Result<T, SimFailure>;

impl Simulation {
    /// A cluster of `opts.nodes` fresh nodes.
    ///
    /// # Errors
    /// If the cluster size is not a valid membership (0 or above [`crate::MAX_MEMBERS`]).
    pub fn new(opts: SimOptions) -> Result<Self, SimFailure> {
        let rng = SimRng::new(opts.seed);
        Self::with_rng(opts, rng)
    }

    /// A cluster whose faults and schedule come from `rng` (for instance fuzzer bytes); the nodes'
    /// own RNGs still derive from `opts.seed`.
    ///
    /// # Errors
    /// If the cluster size is not a valid membership.
    pub fn with_rng(opts: SimOptions, rng: SimRng) -> Result<Self, SimFailure> {
        let total = opts.nodes + opts.spare_nodes;
        let ids: Vec<NodeId> = (1..=total as u64).filter_map(NodeId::new).collect();
        let voters = ids.get(..opts.nodes).unwrap_or(&ids);
        let invalid = |e| SimFailure {
            seed: opts.seed,
            tick: 0,
            what: format!("cannot simulate {} nodes: {e}", opts.nodes),
        };
        let membership = Membership::new(voters).map_err(invalid)?;
        let mut nodes = Vec::with_capacity(total);
        for &id in &ids {
            // A spare node knows the voters and believes itself a learner: it waits, without
            // campaigning, for a leader to reach it.
            let initial = if membership.contains(id) {
                membership.clone()
            } else {
                Membership::with_learners(voters, &[id]).map_err(invalid)?
            };
            nodes.push(SimNode {
                id,
                node: None,
                out: Outputs::new(),
                disk: SimDisk::default(),
                mirror: Vec::new(),
                sm_prefix: 0,
                sm_next: Index(1),
                last_commit: Index::ZERO,
                incarnation: 0,
                initial,
            });
        }
        let mut sim = Self {
            rng,
            now: 0,
            net: Network::new(total, opts.net.clone()),
            checker: Checker::default(),
            trace: opts.trace.then(String::new),
            nodes,
            reads: BTreeMap::new(),
            next_read: 0,
            next_proposal: 0,
            summary: Summary::default(),
            reconfigured: false,
            opts,
        };
        for i in 0..sim.nodes.len() {
            sim.start(i);
        }
        Ok(sim)
    }

    /// The trace recorded so far (empty unless `opts.trace`).
    #[must_use]
    pub fn trace(&self) -> &str {
        self.trace.as_deref().unwrap_or("")
    }

    /// The checker's view of the cluster.
    #[must_use]
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    fn fail(&self, what: String) -> SimFailure {
        SimFailure {
            seed: self.opts.seed,
            tick: self.now,
            what,
        }
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            let _ = writeln!(t, "t{} {}", self.now, line());
        }
    }

    /// Runs the fault phase, then the healed phase.
    ///
    /// # Errors
    /// The first property violated, or no progress after healing.
    pub fn run(&mut self) -> Result<Summary, SimFailure> {
        for _ in 0..self.opts.fault_ticks {
            self.fault_tick()?;
        }
        self.heal()?;
        let healed_at = self.now;
        let committed_at_heal = self.checker.committed_len();
        let mut marker: Option<(usize, LogId)> = None;
        while self.now < healed_at + self.opts.heal_ticks {
            self.tick()?;
            self.maybe_snapshot()?;
            // Keep a proposal in flight at whoever leads until one commits.
            let leader = self.leader();
            if let Some(l) = leader {
                let stale = marker.is_none_or(|(who, id)| {
                    who != l
                        || self.nodes[l]
                            .node
                            .as_ref()
                            .is_none_or(|n| n.term() != id.term)
                });
                if stale {
                    if let Some(id) = self.propose(l)? {
                        marker = Some((l, id));
                    }
                }
            }
            self.settle()?;
            if let Some((_, id)) = marker {
                if self.checker.committed_len() >= id.index.0
                    && self.checker.committed_len() > committed_at_heal
                    && self.committed_term(id.index) == Some(id.term)
                {
                    self.summary.heal_ticks = self.now - healed_at;
                    return Ok(self.finish());
                }
            }
        }
        Err(self.fail(format!(
            "liveness: no proposal committed within {} ticks of healing",
            self.opts.heal_ticks
        )))
    }

    fn finish(&mut self) -> Summary {
        self.summary.ticks = self.now;
        self.summary.committed = self.checker.committed_len();
        self.summary.leader_terms = self.checker.leader_terms();
        self.summary.messages = (self.net.sent, self.net.lost, self.net.duplicated);
        self.summary.clone()
    }

    /// The term of the committed entry at `index`. (Not read from any node's log: a node the
    /// leader no longer replicates to, removed from the configuration, keeps a stale suffix.)
    fn committed_term(&self, index: Index) -> Option<Term> {
        self.checker.committed_entry(index.0).map(|(t, _)| t)
    }

    fn leader(&self) -> Option<usize> {
        // The leader with the highest term among running nodes.
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.node.as_ref().map(|node| (i, node)))
            .filter(|(_, n)| n.role() == Role::Leader)
            .max_by_key(|(_, n)| n.term())
            .map(|(i, _)| i)
    }

    fn fault_tick(&mut self) -> SimResult {
        // Partitions come and go.
        if self.rng.chance(self.opts.partition_per_million) {
            let kind = match self.rng.below(5) {
                0 | 1 => PartitionKind::Healed,
                2 => PartitionKind::Split,
                3 => PartitionKind::Isolated,
                _ => PartitionKind::OneWay,
            };
            let leader = self.leader();
            self.net.partition(kind, leader, &mut self.rng);
            let n = self.nodes.len();
            let net = &self.net;
            let cuts = self.trace.is_some().then(|| trace::cuts(net, n));
            self.log(|| format!("partition {kind:?}: {}", cuts.unwrap_or_default()));
        }
        // Crashes and restarts.
        if self.rng.chance(self.opts.leader_crash_per_million) {
            if let Some(l) = self.leader() {
                self.crash(l)?;
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_some() {
                if self.rng.chance(self.opts.crash_per_million) {
                    self.crash(i)?;
                }
            } else if self.rng.chance(self.opts.restart_per_million) {
                self.start(i);
            }
        }
        self.tick()?;
        // The application.
        self.maybe_snapshot()?;
        if self.rng.chance(self.opts.propose_per_million) {
            let i = self.rng.below(self.nodes.len() as u64) as usize;
            self.propose(i)?;
        }
        if self.rng.chance(self.opts.read_per_million) {
            let i = self.rng.below(self.nodes.len() as u64) as usize;
            self.read(i)?;
        }
        if self.rng.chance(self.opts.transfer_per_million) {
            if let Some(l) = self.leader() {
                let target = self.nodes[self.rng.below(self.nodes.len() as u64) as usize].id;
                self.step(l, Input::TransferLeader(target))?;
            }
        }
        if self.rng.chance(self.opts.change_per_million) {
            self.random_membership_change()?;
        }
        self.settle()
    }

    /// Asks the leader for a random membership change, within 1 to 5 voters.
    fn random_membership_change(&mut self) -> SimResult {
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let Some(current) = self.nodes[l].node.as_ref().map(|n| n.membership().clone()) else {
            return Ok(());
        };
        let leader_id = self.nodes[l].id;
        let voters: Vec<NodeId> = current.voters().to_vec();
        let learners: Vec<NodeId> = current.learners().to_vec();
        let outsiders: Vec<NodeId> = self
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|&id| !current.contains(id))
            .collect();
        fn pick(rng: &mut SimRng, from: &[NodeId]) -> Option<NodeId> {
            (!from.is_empty()).then(|| from[rng.below(from.len() as u64) as usize])
        }
        let mut changes = Vec::new();
        let what = match self.rng.below(10) {
            0 => {
                changes.extend(pick(&mut self.rng, &outsiders).map(Change::AddLearner));
                "add a learner"
            }
            1 => {
                changes.extend(pick(&mut self.rng, &learners).map(Change::AddVoter));
                "promote a learner"
            }
            2 => {
                changes.extend(pick(&mut self.rng, &outsiders).map(Change::AddVoter));
                "add a voter"
            }
            3 => {
                changes.extend(pick(&mut self.rng, &voters).map(Change::Remove));
                "remove a voter"
            }
            4 => {
                changes.push(Change::Remove(leader_id));
                "remove the leader"
            }
            5 => {
                changes.extend(pick(&mut self.rng, &voters).map(Change::Remove));
                changes.extend(pick(&mut self.rng, &outsiders).map(Change::AddVoter));
                "replace a voter"
            }
            6 => {
                let mut candidates: Vec<NodeId> = learners.clone();
                candidates.extend(&outsiders);
                for id in candidates
                    .into_iter()
                    .take(5usize.saturating_sub(voters.len()))
                {
                    changes.push(Change::AddVoter(id));
                }
                "grow to 5 voters"
            }
            7 => {
                let mut remove = voters.clone();
                while remove.len() > voters.len().saturating_sub(3) && !remove.is_empty() {
                    let k = self.rng.below(remove.len() as u64) as usize;
                    remove.swap_remove(k);
                }
                changes.extend(remove.into_iter().map(Change::Remove));
                "shrink to 3 voters"
            }
            8 => {
                changes.extend(pick(&mut self.rng, &voters).map(Change::AddLearner));
                "demote a voter"
            }
            _ => {
                changes.extend(pick(&mut self.rng, &learners).map(Change::Remove));
                "remove a learner"
            }
        };
        let Ok(target) = current.with_changes(&changes) else {
            return Ok(());
        };
        if changes.is_empty() || target.voters().len() > 5 {
            return Ok(());
        }
        self.change_membership(l, &target, what).map(drop)
    }

    /// Asks node `i` to change the membership to `target`.
    fn change_membership(
        &mut self,
        i: usize,
        target: &Membership,
        what: &str,
    ) -> SimResult<Result<LogId, StepError>> {
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else {
            return Ok(Err(StepError::Refused(crate::Refusal::NotLeader {
                leader: None,
            })));
        };
        let result = node.change_membership(target, &mut n.out);
        self.log(|| {
            format!(
                "n{} membership change ({what}) to {}: {}",
                i + 1,
                trace::membership(target),
                trace::outcome(&result)
            )
        });
        if result.is_ok() {
            self.summary.membership_changes += 1;
            self.reconfigured = true;
        }
        self.after_step(i, result.map(drop))?;
        Ok(result)
    }

    /// One tick for every running node.
    fn tick(&mut self) -> SimResult {
        self.now += 1;
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_some() {
                self.step(i, Input::Tick)?;
            }
        }
        Ok(())
    }

    /// Completes due writes and delivers due messages until nothing more is due this tick.
    fn settle(&mut self) -> SimResult {
        for _ in 0..100_000 {
            let mut progressed = false;
            for i in 0..self.nodes.len() {
                if self.nodes[i].node.is_some() {
                    // Outputs left in the lanes by a deferred drain are handled now.
                    if !self.nodes[i].out.is_empty() {
                        progressed = true;
                        self.drain(i)?;
                    }
                    let done = self.nodes[i]
                        .disk
                        .complete_due(self.now)
                        .map_err(|e| self.fail(format!("node {i}: bad write: {}", e.0)))?;
                    if let Some(id) = done {
                        progressed = true;
                        self.step(i, Input::Persisted(id))?;
                    }
                }
            }
            let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
            let index_of = |m: &Message| {
                let pos = |id: NodeId| ids.iter().position(|&x| x == id).unwrap_or(0);
                (pos(m.from), pos(m.to))
            };
            let lost = self.net.lost;
            let msg = self.net.take_due(self.now, &mut self.rng, index_of);
            if self.net.lost > lost {
                let k = self.net.lost - lost;
                self.log(|| format!("network: {k} message(s) in flight lost to the partition"));
            }
            if let Some(msg) = msg {
                progressed = true;
                let to = ids.iter().position(|&x| x == msg.to).unwrap_or(0);
                if self.nodes[to].node.is_some() {
                    self.step(to, Input::Message(msg))?;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
        Err(self.fail(String::from("livelock: a tick never settled")))
    }

    /// Heals everything: links, message loss, crashed nodes.
    fn heal(&mut self) -> SimResult {
        self.net.heal();
        self.net.faults = NetworkFaults::none();
        self.log(|| String::from("heal: network restored, crashed nodes restart"));
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() {
                self.start(i);
            }
        }
        Ok(())
    }

    fn propose(&mut self, i: usize) -> SimResult<Option<LogId>> {
        self.next_proposal += 1;
        let mut data = [0u8; 16];
        data[..8].copy_from_slice(&self.next_proposal.to_le_bytes());
        data[8..].copy_from_slice(&self.opts.seed.to_le_bytes());
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else {
            return Ok(None);
        };
        let result = node.propose(Payload::new(&data), &mut n.out);
        let n = self.next_proposal;
        self.log(|| format!("n{} propose #{n}: {}", i + 1, trace::outcome(&result)));
        self.after_step(i, result.map(drop))?;
        Ok(result.ok())
    }

    fn read(&mut self, i: usize) -> SimResult {
        self.next_read += 1;
        let id = self.next_read;
        // Every write committed anywhere before the read starts must be visible to it.
        self.reads.insert(id, self.checker.max_commit());
        self.step(i, Input::Read(ReadId(id)))
    }

    /// Starts (or restarts) node `i` from its disk.
    fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.incarnation += 1;
        let (snapshot, sm_prefix) = match &n.disk.snapshot {
            Some((meta, blob)) => (meta.clone(), blob_prefix(blob).unwrap_or(0)),
            None => (
                SnapshotMeta {
                    last: LogId::ZERO,
                    membership: n.initial.clone(),
                },
                0,
            ),
        };
        let restored = Restored {
            hard_state: n.disk.hard_state,
            snapshot: snapshot.clone(),
            entries: n.disk.entries.clone(),
            // The state machine is in memory: it restarts from the snapshot and replays the log.
            applied: snapshot.last.index,
        };
        let rng = SimRng::new(self.opts.seed).fork((i as u64 + 1) * 1_000_003 + n.incarnation);
        match Node::restore(self.opts.config(n.id), rng, restored) {
            Ok(node) => n.node = Some(node),
            Err(e) => {
                // Surfaces in the next check: a node that cannot restart is a failure.
                n.node = None;
                let what = format!("node {i} cannot restart from its disk: {e}");
                self.log(|| what.clone());
                return;
            }
        }
        n.out.clear();
        // The log as the node now sees it: the committed prefix the snapshot holds, then the
        // durable entries.
        let base = snapshot.last.index.0;
        n.mirror = self.checker.committed_prefix(base).to_vec();
        n.mirror.extend(
            n.disk
                .entries
                .iter()
                .zip(&n.disk.chains)
                .map(|(e, &p)| (e.id.term, p)),
        );
        n.sm_prefix = sm_prefix;
        n.sm_next = Index(base + 1);
        n.last_commit = Index::ZERO;
        self.summary.crashes += u64::from(n.incarnation > 1);
        let (hs, disk_len, incarnation) = (n.disk.hard_state, n.disk.entries.len(), n.incarnation);
        self.log(|| {
            format!(
                "n{} start #{incarnation}: disk has {}, snapshot {}, {disk_len} entries",
                i + 1,
                trace::hard_state(&hs),
                snapshot.last
            )
        });
    }

    fn crash(&mut self, i: usize) -> SimResult {
        let n = &mut self.nodes[i];
        n.node = None;
        n.out.clear();
        n.disk.crash(&mut self.rng).map_err(|e| SimFailure {
            seed: self.opts.seed,
            tick: self.now,
            what: format!("node {i}: bad write at crash: {}", e.0),
        })?;
        let kept = n.disk.entries.len();
        self.log(|| format!("n{} crash, {kept} entries survive", i + 1));
        Ok(())
    }

    /// Steps node `i` and checks everything that step produced.
    fn step(&mut self, i: usize, input: Input) -> SimResult {
        if self.nodes[i].node.is_none() {
            return Ok(());
        }
        // A tick is logged only if the node emitted something on it: every running node ticks
        // every tick, and most ticks do nothing visible.
        let tick = matches!(input, Input::Tick);
        let mark =
            (self.trace.is_some() && tick).then(|| trace::OutputMark::of(&self.nodes[i].out));
        if self.trace.is_some() && !tick {
            let line = trace::input(&input);
            self.log(|| format!("n{} <- {line}", i + 1));
        }
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else {
            return Ok(());
        };
        let result = node.step(input, &mut n.out);
        if mark.is_some_and(|m| m != trace::OutputMark::of(&self.nodes[i].out)) {
            self.log(|| format!("n{} <- tick", i + 1));
        }
        if let Err(e) = result {
            self.log(|| format!("n{} {e}", i + 1));
        }
        self.after_step(i, result)
    }

    fn after_step(&mut self, i: usize, result: Result<(), StepError>) -> SimResult {
        match result {
            Ok(()) | Err(StepError::Refused(_)) => {}
            // Once the membership changes, removed nodes still answer what they were asked
            // before: the receiver counts those answers as from unknown senders.
            Err(StepError::Rejected(crate::Reject::UnknownSender { .. }))
                if self.reconfigured || self.opts.spare_nodes > 0 => {}
            Err(e) => return Err(self.fail(format!("node {i}: honest input gave {e}"))),
        }
        let node_ok = self.nodes[i].node.as_ref().map(Node::check_invariants);
        if let Some(Err(v)) = node_ok {
            return Err(self.fail(format!("node {i}: {v}")));
        }
        // Sometimes the adapter steps more inputs before draining, so the node merges writes.
        if self.rng.chance(self.opts.defer_writes_per_million) {
            return Ok(());
        }
        self.drain(i)
    }

    /// Drains every lane of node `i`, checking what they hold and the node's state.
    fn drain(&mut self, i: usize) -> SimResult {
        self.drain_writes(i)?;
        self.check_node(i)?;
        self.drain_outputs(i)
    }

    /// Hands the node's writes to its disk, after recording in the mirror how they change its log.
    fn drain_writes(&mut self, i: usize) -> SimResult {
        let writes: Vec<_> = self.nodes[i].out.drain_writes().collect();
        for w in writes {
            if let Some(from) = w.truncate_from {
                self.nodes[i]
                    .mirror
                    .truncate(from.0.saturating_sub(1) as usize);
            }
            if let Some(part) = w.snapshot.as_ref().filter(|p| p.done) {
                // The log now starts with the snapshot's: the committed prefix up to it.
                let base = part.meta.last.index.0;
                let committed = self.checker.committed_prefix(base).to_vec();
                if committed.len() as u64 != base {
                    return Err(self.fail(format!(
                        "node {i} installed a snapshot at {base} beyond the committed log"
                    )));
                }
                let n = &mut self.nodes[i];
                if w.truncate_from.is_none() && n.mirror.len() as u64 >= base {
                    if n.mirror.get(base as usize - 1) != committed.last() {
                        return Err(self.fail(format!(
                            "node {i} kept a log that does not extend the snapshot at {base}"
                        )));
                    }
                } else {
                    n.mirror.truncate(base as usize);
                    let keep = n.mirror.len();
                    n.mirror.splice(..keep, committed);
                }
            }
            for e in &w.entries {
                let end = self.nodes[i].mirror.len() as u64;
                if e.id.index.0 != end + 1 {
                    return Err(self.fail(format!(
                        "node {i}: write appends entry {} after log end {end}",
                        e.id
                    )));
                }
                let n = &mut self.nodes[i];
                let prefix = disk::chain(n.mirror.last().map_or(0, |&(_, p)| p), e);
                n.mirror.push((e.id.term, prefix));
                self.checker
                    .entry(e.id.index, e.id.term, prefix)
                    .map_err(|what| self.fail(what))?;
            }
            let delay = self.rng.between(0, self.opts.max_disk_delay);
            if self.trace.is_some() {
                let line = trace::write(&w);
                self.log(|| format!("n{} {line} (durable in {delay})", i + 1));
            }
            self.nodes[i].disk.submit(w, self.now, delay);
        }
        Ok(())
    }

    /// Checks the node's state after a step.
    fn check_node(&mut self, i: usize) -> SimResult {
        let Some(node) = self.nodes[i].node.as_ref() else {
            return Ok(());
        };
        let (role, term, commit, last) = (
            node.role(),
            node.term(),
            node.commit_index(),
            node.last_log(),
        );
        let n = &self.nodes[i];
        if commit < n.last_commit {
            return Err(self.fail(format!(
                "node {i}: commit index went back from {} to {commit}",
                n.last_commit
            )));
        }
        {
            // Every change to the log must have been described by a write.
            let mirror_last = n.mirror.last().map_or(LogId::ZERO, |&(t, _)| LogId {
                term: t,
                index: Index(n.mirror.len() as u64),
            });
            if mirror_last != last {
                return Err(self.fail(format!(
                    "node {i}: log ends at {last} but its writes describe {mirror_last}"
                )));
            }
        }
        let entry_at = |k: u64| n.entry_at(k);
        self.checker
            .commit(term, commit, entry_at)
            .map_err(|w| SimFailure {
                seed: self.opts.seed,
                tick: self.now,
                what: format!("node {i}: {w}"),
            })?;
        self.nodes[i].last_commit = commit;
        if role == Role::Leader {
            self.checker.leader(term, i).map_err(|w| self.fail(w))?;
            let n = &self.nodes[i];
            self.checker
                .leader_complete(term, i, |k| n.prefix_at(k))
                .map_err(|w| SimFailure {
                    seed: self.opts.seed,
                    tick: self.now,
                    what: w,
                })?;
        }
        Ok(())
    }

    /// Handles the apply, read, send and event lanes of node `i`.
    fn drain_outputs(&mut self, i: usize) -> SimResult {
        let applies: Vec<Apply> = self.nodes[i].out.drain_apply().collect();
        if self.trace.is_some() {
            for line in trace::applies(&applies) {
                self.log(|| format!("n{} {line}", i + 1));
            }
        }
        let mut last_applied = None;
        for a in applies {
            last_applied = Some(self.apply(i, a)?);
        }
        let reads: Vec<ReadResult> = self.nodes[i].out.drain_reads().collect();
        for r in reads {
            self.log(|| format!("n{} {}", i + 1, trace::read_result(&r)));
            self.read_done(r)?;
        }
        let requests: Vec<ChunkRequest> = self.nodes[i].out.drain_chunk_requests().collect();
        for r in requests {
            self.log(|| format!("n{} {}", i + 1, trace::chunk_request(&r)));
            // The adapter reads the chunk from its snapshot file.
            let chunk = match &self.nodes[i].disk.snapshot {
                Some((meta, blob)) if meta.last == r.snapshot => {
                    let start = usize::try_from(r.offset)
                        .unwrap_or(usize::MAX)
                        .min(blob.len());
                    let end = start.saturating_add(r.max_len as usize).min(blob.len());
                    Some(SnapshotChunk {
                        to: r.to,
                        snapshot: r.snapshot,
                        offset: r.offset,
                        data: Payload::new(&blob[start..end]),
                        done: end == blob.len(),
                    })
                }
                _ => None,
            };
            if let Some(c) = chunk {
                self.step(i, Input::SnapshotChunk(c))?;
            }
        }
        let sends: Vec<Message> = self.nodes[i].out.drain_sends().collect();
        for m in sends {
            self.check_durable_before_send(i, &m)?;
            let to = self.nodes.iter().position(|n| n.id == m.to);
            let Some(to) = to else {
                return Err(self.fail(format!("node {i} sent to unknown node {}", m.to)));
            };
            let line = self.trace.is_some().then(|| trace::message(&m));
            let (lost, duplicated) = (self.net.lost, self.net.duplicated);
            self.net.send(m, i, to, self.now, &mut self.rng);
            if let Some(line) = line {
                let fate = if self.net.lost > lost {
                    " (lost)"
                } else if self.net.duplicated > duplicated {
                    " (duplicated)"
                } else {
                    ""
                };
                self.log(|| format!("n{} send {line}{fate}", i + 1));
            }
        }
        let events: Vec<Event> = self.nodes[i].out.drain_events().collect();
        for ev in events {
            self.log(|| format!("n{} {}", i + 1, trace::event(&ev)));
        }
        if let Some(index) = last_applied {
            self.step(i, Input::Applied(index))?;
        }
        Ok(())
    }

    /// The simulated state machine applies an entry, or loads the snapshot the node installed:
    /// what it holds must be a prefix of the committed log (State Machine Safety). Returns the
    /// index it has applied through.
    fn apply(&mut self, i: usize, a: Apply) -> SimResult<Index> {
        let e = match a {
            Apply::Entry(e) => e,
            Apply::Snapshot(meta) => {
                // Load the snapshot the node installed: it must be the committed state.
                let n = &self.nodes[i];
                let prefix = match &n.disk.snapshot {
                    Some((m, blob)) if m.last == meta.last => blob_prefix(blob),
                    _ => None,
                };
                let Some(prefix) = prefix else {
                    return Err(self.fail(format!(
                        "node {i} was told to load snapshot {} which is not on its disk",
                        meta.last
                    )));
                };
                if meta.last.index < n.sm_next {
                    return Err(self.fail(format!(
                        "node {i} loaded snapshot {} behind its state machine",
                        meta.last
                    )));
                }
                self.checker
                    .applied(i, meta.last.index, prefix)
                    .map_err(|w| self.fail(w))?;
                let n = &mut self.nodes[i];
                n.sm_prefix = prefix;
                n.sm_next = Index(meta.last.index.0 + 1);
                self.summary.snapshots.1 += 1;
                return Ok(meta.last.index);
            }
        };
        let next = self.nodes[i].sm_next;
        if e.id.index != next {
            return Err(self.fail(format!(
                "node {i}: applied {} when {next} was next",
                e.id.index
            )));
        }
        let n = &mut self.nodes[i];
        n.sm_prefix = disk::chain(n.sm_prefix, &e);
        n.sm_next = Index(n.sm_next.0 + 1);
        let prefix = n.sm_prefix;
        self.checker
            .applied(i, e.id.index, prefix)
            .map_err(|w| self.fail(w))?;
        Ok(e.id.index)
    }

    /// A read the node answered: if ready, at an index no older than anything committed
    /// before the read was issued (linearizability).
    fn read_done(&mut self, r: ReadResult) -> SimResult {
        match r {
            ReadResult::Ready { id, index } => {
                let needed = self.reads.remove(&id.0).unwrap_or(Index::ZERO);
                if index < needed {
                    return Err(self.fail(format!(
                        "linearizability: read {} served at index {index} but index {needed} \
                         was committed before it was issued",
                        id.0
                    )));
                }
                self.summary.reads.0 += 1;
            }
            ReadResult::Aborted { id } => {
                self.reads.remove(&id.0);
                self.summary.reads.1 += 1;
            }
        }
        Ok(())
    }

    /// The persistence contract: a granted vote and an append acknowledgement leave a node only
    /// after the state they promise is on its disk.
    fn check_durable_before_send(&self, i: usize, m: &Message) -> SimResult {
        let n = &self.nodes[i];
        match m.body {
            MessageBody::VoteResponse {
                granted: true,
                pre_vote: false,
            } => {
                let hs = n.disk.hard_state;
                if !(hs.term > m.term || (hs.term == m.term && hs.vote == Some(m.to))) {
                    return Err(self.fail(format!(
                        "persistence: node {i} granted its vote in term {} before recording it \
                         (disk has {hs:?})",
                        m.term
                    )));
                }
            }
            MessageBody::AppendResponse {
                outcome: AppendOutcome::Accepted { match_index },
            } => {
                // The claim: this node holds, durably, the log of the leader of `m.term` up to
                // `k`. Its disk may no longer hold it (a later write, issued before this
                // acknowledgement was released, may have truncated it): an acknowledgement
                // released late is indistinguishable from one sent in time and delayed in the
                // network. It must have been durable at some instant, though.
                let k = match_index.0;
                let leader_log = self.checker.leader_of(m.term).and_then(|l| {
                    let leader = &self.nodes[l];
                    let node = leader.node.as_ref()?;
                    (node.term() == m.term && node.role() == Role::Leader)
                        .then(|| leader.prefix_at(k))
                        .flatten()
                });
                if !n.disk.was_durable(k, leader_log) {
                    return Err(self.fail(format!(
                        "persistence: node {i} acknowledged entries up to {k} in term {} that \
                         were never durable (disk holds {})",
                        m.term.0,
                        n.disk.entries.len()
                    )));
                }
            }
            MessageBody::SnapshotResponse {
                snapshot,
                installed: true,
                ..
            } => {
                let k = snapshot.index.0;
                if n.disk.first() < k && !n.disk.was_durable(k, None) {
                    return Err(self.fail(format!(
                        "persistence: node {i} reported snapshot {snapshot} installed before it \
                         was durable"
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The application on a random node snapshots its state machine at an applied index.
    fn maybe_snapshot(&mut self) -> SimResult {
        if !self.rng.chance(self.opts.snapshot_per_million) {
            return Ok(());
        }
        let i = self.rng.below(self.nodes.len() as u64) as usize;
        let Some(node) = self.nodes[i].node.as_ref() else {
            return Ok(());
        };
        let from = node.snapshot().last.index.0;
        let applied = node.applied_index().0;
        if applied <= from {
            return Ok(());
        }
        let index = Index(self.rng.between(from + 1, applied));
        self.snapshot_at(i, index)
    }

    /// The application on node `i` snapshots its state machine at `index` (applied).
    fn snapshot_at(&mut self, i: usize, index: Index) -> SimResult {
        let Some(node) = self.nodes[i].node.as_ref() else {
            return Ok(());
        };
        let Some(meta) = node.snapshot_meta(index) else {
            return Err(self.fail(format!("node {i} cannot describe a snapshot at {index}")));
        };
        let Some((_, prefix)) = self.checker.committed_entry(index.0) else {
            return Err(self.fail(format!("node {i} applied {index} before it was committed")));
        };
        let len = self.rng.between(8, self.opts.snapshot_max_bytes.max(8)) as usize;
        self.nodes[i]
            .disk
            .take_snapshot(meta.clone(), snapshot_blob(prefix, len));
        self.log(|| {
            format!(
                "n{} snapshots its state machine at {}, {len} bytes",
                i + 1,
                meta.last
            )
        });
        self.summary.snapshots.0 += 1;
        self.step(i, Input::SnapshotTaken(Box::new(meta)))
    }
}

/// Scenario tests: a cluster without random faults, driven step by step by a test, with every
/// check still applied after every step.
impl Simulation {
    /// A cluster of `nodes` with no random faults (options from [`SimOptions::random`] with
    /// every fault rate at zero, pre-vote and CheckQuorum on); adjust `opts` in `tweak`.
    ///
    /// # Errors
    /// If the cluster size is invalid.
    pub fn scripted(
        nodes: usize,
        seed: u64,
        tweak: impl FnOnce(&mut SimOptions),
    ) -> Result<Self, SimFailure> {
        let mut opts = SimOptions::random(seed, nodes);
        opts.net = NetworkFaults::none();
        opts.partition_per_million = 0;
        opts.crash_per_million = 0;
        opts.restart_per_million = 0;
        opts.leader_crash_per_million = 0;
        opts.propose_per_million = 0;
        opts.read_per_million = 0;
        opts.transfer_per_million = 0;
        opts.snapshot_per_million = 0;
        opts.defer_writes_per_million = 0;
        opts.max_disk_delay = 1;
        opts.pre_vote = true;
        opts.check_quorum = true;
        tweak(&mut opts);
        let net = opts.net.clone();
        let mut sim = Self::new(opts)?;
        sim.net.faults = net;
        Ok(sim)
    }

    /// Runs `ticks` ticks.
    ///
    /// # Errors
    /// The first property violated.
    pub fn run_ticks(&mut self, ticks: u64) -> Result<(), SimFailure> {
        for _ in 0..ticks {
            self.tick()?;
            self.settle()?;
        }
        Ok(())
    }

    /// Runs until `done` holds, for at most `max_ticks`; returns the ticks it took.
    ///
    /// # Errors
    /// The first property violated, or `done` still false after `max_ticks`.
    pub fn run_until(
        &mut self,
        max_ticks: u64,
        what: &str,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<u64, SimFailure> {
        for t in 0..max_ticks {
            if done(self) {
                return Ok(t);
            }
            self.tick()?;
            self.settle()?;
        }
        if done(self) {
            return Ok(max_ticks);
        }
        Err(self.fail(format!("{what}: not reached within {max_ticks} ticks")))
    }

    /// The current leader (of the highest term), if any runs.
    #[must_use]
    pub fn leader_index(&self) -> Option<usize> {
        self.leader()
    }

    /// Node `i`, unless it is down.
    #[must_use]
    pub fn node(&self, i: usize) -> Option<&Node<SimRng>> {
        self.nodes.get(i).and_then(|n| n.node.as_ref())
    }

    /// Node `i`'s disk.
    #[must_use]
    pub fn disk(&self, i: usize) -> Option<&SimDisk> {
        self.nodes.get(i).map(|n| &n.disk)
    }

    /// The statistics so far.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let mut s = self.summary.clone();
        s.ticks = self.now;
        s.committed = self.checker.committed_len();
        s.leader_terms = self.checker.leader_terms();
        s.messages = (self.net.sent, self.net.lost, self.net.duplicated);
        s
    }

    /// Asks node `i` to change the membership to `target`; returns what the node answered.
    ///
    /// # Errors
    /// The first property violated.
    pub fn change_membership_at(
        &mut self,
        i: usize,
        target: &Membership,
    ) -> Result<Result<LogId, StepError>, SimFailure> {
        self.change_membership(i, target, "scripted")
    }

    /// Proposes one command at the leader; returns its entry id, if there was a leader that
    /// accepted it.
    ///
    /// # Errors
    /// The first property violated.
    pub fn propose_at_leader(&mut self) -> Result<Option<LogId>, SimFailure> {
        match self.leader() {
            Some(l) => self.propose(l),
            None => Ok(None),
        }
    }

    /// Asks node `i` for a linearizable read (ReadIndex); returns the read's number, which the
    /// trace's `read #n` lines name. Its result is checked like every read's (it must reflect
    /// every entry committed before it was issued) and counted in [`Summary::reads`].
    ///
    /// # Errors
    /// The first property violated.
    pub fn read_at(&mut self, i: usize) -> Result<u64, SimFailure> {
        if i >= self.nodes.len() {
            return Err(self.fail(format!("read at node {i}, which does not exist")));
        }
        self.read(i)?;
        Ok(self.next_read)
    }

    /// Asks node `i` to hand its leadership to `target` (refused unless `i` leads).
    ///
    /// # Errors
    /// The first property violated.
    pub fn transfer_leader_at(&mut self, i: usize, target: NodeId) -> Result<(), SimFailure> {
        if i >= self.nodes.len() {
            return Ok(());
        }
        self.step(i, Input::TransferLeader(target))
    }

    /// Writes a line of the caller's into the trace (`t<tick> # <text>`), to mark the steps of
    /// a scenario. Nothing else changes.
    pub fn note(&mut self, text: &str) {
        self.log(|| format!("# {text}"));
    }

    /// Cuts node `i` off from every other node, both ways.
    pub fn isolate(&mut self, i: usize) {
        self.net.split(&[i]);
        self.log(|| format!("isolate n{}", i + 1));
    }

    /// Restores every link.
    pub fn heal_network(&mut self) {
        self.net.heal();
        self.log(|| String::from("heal network"));
    }

    /// Sets the network's faults.
    pub fn set_network_faults(&mut self, faults: NetworkFaults) {
        self.net.faults = faults;
    }

    /// Crashes node `i`: writes not yet durable are lost or torn.
    ///
    /// # Errors
    /// A write that broke its contract.
    pub fn crash_node(&mut self, i: usize) -> Result<(), SimFailure> {
        self.crash(i)
    }

    /// Restarts node `i` from its disk.
    pub fn restart_node(&mut self, i: usize) {
        if self.nodes.get(i).is_some_and(|n| n.node.is_none()) {
            self.start(i);
        }
    }

    /// The application on node `i` snapshots its state machine at its applied index.
    ///
    /// # Errors
    /// The first property violated.
    pub fn snapshot_node(&mut self, i: usize) -> Result<(), SimFailure> {
        let Some(applied) = self.node(i).map(Node::applied_index) else {
            return Ok(());
        };
        if self
            .node(i)
            .is_some_and(|n| n.snapshot().last.index >= applied)
        {
            return Ok(());
        }
        self.snapshot_at(i, applied)?;
        self.settle()
    }
}

/// Runs one seed with a random fault mix on `nodes` nodes.
///
/// # Errors
/// The first property violated.
pub fn run_seed(seed: u64, nodes: usize) -> Result<Summary, SimFailure> {
    run_options(SimOptions::random(seed, nodes))
}

/// Runs one seed with its trace recorded; returns the trace and the outcome.
pub fn trace_seed(seed: u64, nodes: usize) -> (String, Result<Summary, SimFailure>) {
    trace_options(SimOptions::random(seed, nodes))
}

/// Runs a simulation with these options.
///
/// # Errors
/// The first property violated.
pub fn run_options(opts: SimOptions) -> Result<Summary, SimFailure> {
    Simulation::new(opts)?.run()
}

/// Runs a simulation with these options and its trace recorded; returns the trace and the
/// outcome.
pub fn trace_options(mut opts: SimOptions) -> (String, Result<Summary, SimFailure>) {
    opts.trace = true;
    match Simulation::new(opts) {
        Ok(mut sim) => {
            let result = sim.run();
            (String::from(sim.trace()), result)
        }
        Err(e) => (String::new(), Err(e)),
    }
}
