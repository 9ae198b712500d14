//! The adapter loop: [`Simulation`] drives every node as an adapter would (step, then drain the
//! lanes: writes to the simulated disk, messages to the simulated network, applies to a
//! simulated state machine, reads, chunk requests, events), completes due writes and delivers
//! due messages until a tick settles, and crashes and restarts nodes from their disks. The checks
//! it runs after every step are in `checks`, the random faults in `faults`.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::checker::Checker;
use super::disk::{self, SimDisk, blob_prefix, snapshot_blob};
use super::network::Network;
use super::options::{ClockDrift, SimFailure, SimOptions, Summary};
use super::rng::SimRng;
use super::trace;
use crate::error::StepError;
use crate::input::{Input, ReadId, SnapshotChunk};
use crate::membership::Membership;
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::node::Node;
use crate::output::{Apply, ChunkRequest, Event, Outputs, ReadResult};
use crate::restore::{Restored, SnapshotMeta};
use crate::status::Role;
use crate::types::{Index, LogId, NodeId, Payload, Term};

/// One simulated member: the node (absent while crashed), its disk, and what the simulator
/// tracks about it.
pub(super) struct SimNode {
    pub(super) id: NodeId,
    pub(super) node: Option<Node<SimRng>>,
    pub(super) out: Outputs,
    pub(super) disk: SimDisk,
    /// The node's log as its writes describe it: terms and prefix fingerprints.
    pub(super) mirror: Vec<(Term, u64)>,
    /// The state machine: the fingerprint of what it applied, and the next index expected.
    pub(super) sm_prefix: u64,
    pub(super) sm_next: Index,
    /// The commit index in this incarnation (it must never go backwards).
    pub(super) last_commit: Index,
    pub(super) incarnation: u64,
    /// An append acknowledgement reached the node since its lanes were last drained.
    pub(super) acked_since_drain: bool,
    /// The tick a pause ends (0: not paused), and the reads sent to it meanwhile.
    pub(super) paused_until: u64,
    pub(super) queued_reads: Vec<u64>,
    /// The ticks its clock counted while it was paused (stepped on waking, with lease reads).
    pub(super) missed_ticks: u64,
    /// The configuration the node starts from before its log says otherwise.
    pub(super) initial: Membership,
}

impl SimNode {
    pub(super) fn entry_at(&self, i: u64) -> Option<(Term, u64)> {
        if i == 0 {
            return Some((Term::ZERO, 0));
        }
        self.mirror.get(i as usize - 1).copied()
    }

    pub(super) fn prefix_at(&self, i: u64) -> Option<u64> {
        self.entry_at(i).map(|(_, p)| p)
    }
}

/// A simulated cluster.
pub struct Simulation {
    pub(super) opts: SimOptions,
    pub(super) rng: SimRng,
    pub(super) now: u64,
    pub(super) nodes: Vec<SimNode>,
    pub(super) net: Network,
    pub(super) checker: Checker,
    pub(super) trace: Option<String>,
    /// Reads issued: the commit index each must reflect.
    pub(super) reads: BTreeMap<u64, Index>,
    pub(super) next_read: u64,
    pub(super) next_proposal: u64,
    pub(super) summary: Summary,
    /// A membership change was made: messages from removed nodes are expected.
    pub(super) reconfigured: bool,
    /// The healed phase has begun: no more faults.
    pub(super) healed: bool,
}

pub(super) type SimResult<T = ()> = Result<T, SimFailure>;

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
                acked_since_drain: false,
                paused_until: 0,
                queued_reads: Vec::new(),
                missed_ticks: 0,
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
            healed: false,
            opts,
        };
        for i in 0..sim.nodes.len() {
            sim.start(i);
        }
        Ok(sim)
    }

    /// The checker's view of the cluster.
    #[must_use]
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    pub(super) fn fail(&self, what: String) -> SimFailure {
        SimFailure {
            seed: self.opts.seed,
            tick: self.now,
            what,
        }
    }

    pub(super) fn leader(&self) -> Option<usize> {
        // The leader with the highest term among running nodes.
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.node.as_ref().map(|node| (i, node)))
            .filter(|(_, n)| n.role() == Role::Leader)
            .max_by_key(|(_, n)| n.term())
            .map(|(i, _)| i)
    }

    /// One tick for every running node.
    pub(super) fn tick(&mut self) -> SimResult {
        self.now += 1;
        self.wake(false)?;
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() {
                continue;
            }
            // A node whose clock drifts counts two ticks, or none, now and then.
            let ticks = ClockDrift::ticks(self.opts.clock_drift, i, self.now);
            if self.paused(i) {
                self.nodes[i].missed_ticks += u64::from(ticks);
                continue;
            }
            for _ in 0..ticks {
                self.step(i, Input::Tick)?;
            }
        }
        Ok(())
    }

    /// Completes due writes and delivers due messages until nothing more is due this tick.
    pub(super) fn settle(&mut self) -> SimResult {
        for _ in 0..100_000 {
            let mut progressed = false;
            for i in 0..self.nodes.len() {
                if self.nodes[i].node.is_some() && !self.paused(i) {
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
                if self.paused(to) {
                    // It waits in the socket of the paused process.
                    let at = self.nodes[to].paused_until;
                    self.net.defer(msg, at);
                } else if self.nodes[to].node.is_some() {
                    self.step(to, Input::Message(msg))?;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
        Err(self.fail(String::from("livelock: a tick never settled")))
    }

    /// Steps node `i` and checks everything that step produced.
    pub(super) fn step(&mut self, i: usize, input: Input) -> SimResult {
        if self.nodes[i].node.is_none() {
            return Ok(());
        }
        if let Input::Message(Message {
            body:
                MessageBody::AppendResponse {
                    outcome: AppendOutcome::Accepted { .. },
                },
            ..
        }) = &input
        {
            self.nodes[i].acked_since_drain = true;
        }
        if self.trace.is_some() {
            return self.step_traced(i, input);
        }
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else {
            return Ok(());
        };
        let result = node.step(input, &mut n.out);
        self.after_step(i, result)
    }

    pub(super) fn after_step(&mut self, i: usize, result: Result<(), StepError>) -> SimResult {
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
        let acked_ahead = self.ack_ahead_window(i);
        let window = self.role_change_window(i) || acked_ahead;
        if window && self.rng.chance(500_000) {
            // The process dies before the step's messages leave...
            return self.crash_in_window(i);
        }
        self.drain_outputs(i)?;
        if window && self.nodes[i].node.is_some() && self.nodes[i].disk.has_pending() {
            // ...or just after they left, its writes still pending.
            self.crash_in_window(i)?;
        }
        Ok(())
    }

    /// The crash of [`Self::role_change_window`] and [`Self::ack_ahead_window`]: a power cut,
    /// so that none of the writes pending in the window reaches the disk. Half the time a
    /// supervisor restarts the process at once, so that it answers, from what its disk kept,
    /// requests sent to the node it was (a vote request of the same term, say), and then half
    /// the time it campaigns at once, as an adapter that calls an election on start does, before
    /// the messages of the node it was have all arrived.
    fn crash_in_window(&mut self, i: usize) -> SimResult {
        let restart = self.rng.chance(500_000);
        self.log(|| format!("n{} loses power in a write window", i + 1));
        self.nodes[i].disk.lose_pending();
        self.crash(i)?;
        if restart {
            self.start(i);
            if self.rng.chance(500_000) {
                self.step(i, Input::Campaign)?;
            }
        }
        Ok(())
    }

    /// Whether leader `i` is to crash just after an acknowledgement reached it while its own
    /// writes are pending: followers then hold entries its disk may not, the window in which a
    /// leader counting itself early would have committed them (drawn on only when the fault is
    /// on).
    fn ack_ahead_window(&mut self, i: usize) -> bool {
        let n = &mut self.nodes[i];
        let acked = core::mem::take(&mut n.acked_since_drain);
        acked
            && !self.healed
            && self.opts.ack_ahead_crash_per_million > 0
            && n.node.as_ref().is_some_and(|n| n.role() == Role::Leader)
            && n.disk.has_pending()
            && self.rng.chance(self.opts.ack_ahead_crash_per_million)
    }

    /// Whether node `i` is to crash in the window after its latest step made it candidate or
    /// leader, with that step's writes still pending (drawn on only when the fault is on, so
    /// runs without it are the runs they always were).
    fn role_change_window(&mut self, i: usize) -> bool {
        let n = &self.nodes[i];
        let changed = n.out.events.iter().any(|ev| {
            matches!(
                ev,
                Event::StateChanged {
                    role: Role::Candidate | Role::Leader,
                    ..
                }
            )
        });
        changed
            && !self.healed
            && self.opts.role_change_crash_per_million > 0
            && n.disk.has_pending()
            && self.rng.chance(self.opts.role_change_crash_per_million)
    }

    /// [`SimOptions::coarse_hint_per_million`]: lowers the hint of a conflict answer (drawn on
    /// only when the fault is on).
    fn coarsen_hint(&mut self, m: &mut Message) {
        let MessageBody::AppendResponse {
            outcome: AppendOutcome::Conflict { hint, .. },
        } = &mut m.body
        else {
            return;
        };
        if self.healed || !self.rng.chance(self.opts.coarse_hint_per_million) {
            return;
        }
        let span = 2 * u64::from(self.opts.max_msg_entries.max(1));
        let below = self.rng.between(1, span);
        *hint = LogId {
            index: Index(hint.index.0.saturating_sub(below)),
            term: Term(0),
        };
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
            let max_delay = if self.opts.slow_disk(i) {
                self.opts.slow_disk_delay
            } else {
                self.opts.max_disk_delay
            };
            let delay = self.rng.between(0, max_delay);
            if self.trace.is_some() {
                let line = trace::write(&w);
                self.log(|| format!("n{} {line} (durable in {delay})", i + 1));
            }
            self.nodes[i].disk.submit(w, self.now, delay);
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
        for mut m in sends {
            self.check_durable_before_send(i, &m)?;
            self.coarsen_hint(&mut m);
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

    /// Starts (or restarts) node `i` from its disk.
    pub(super) fn start(&mut self, i: usize) {
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

    pub(super) fn crash(&mut self, i: usize) -> SimResult {
        let n = &mut self.nodes[i];
        if let Some(node) = &n.node {
            self.summary.reads_by_lease += node.stats().reads_by_lease;
        }
        n.node = None;
        n.out.clear();
        n.paused_until = 0;
        n.queued_reads.clear();
        n.missed_ticks = 0;
        n.disk.crash(&mut self.rng).map_err(|e| SimFailure {
            seed: self.opts.seed,
            tick: self.now,
            what: format!("node {i}: bad write at crash: {}", e.0),
        })?;
        let kept = n.disk.entries.len();
        self.log(|| format!("n{} crash, {kept} entries survive", i + 1));
        Ok(())
    }

    pub(super) fn propose(&mut self, i: usize) -> SimResult<Option<LogId>> {
        self.next_proposal += 1;
        let mut data = [0u8; 16];
        data[..8].copy_from_slice(&self.next_proposal.to_le_bytes());
        data[8..].copy_from_slice(&self.opts.seed.to_le_bytes());
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut().filter(|_| n.paused_until <= self.now) else {
            return Ok(None);
        };
        let result = node.propose(Payload::new(&data), &mut n.out);
        let n = self.next_proposal;
        self.log(|| format!("n{} propose #{n}: {}", i + 1, trace::outcome(&result)));
        self.after_step(i, result.map(drop))?;
        Ok(result.ok())
    }

    pub(super) fn read(&mut self, i: usize) -> SimResult {
        self.next_read += 1;
        let id = self.next_read;
        // Every write committed anywhere before the read starts must be visible to it.
        self.reads.insert(id, self.checker.max_commit());
        if self.paused(i) {
            self.nodes[i].queued_reads.push(id);
            return Ok(());
        }
        self.step(i, Input::Read(ReadId(id)))
    }

    /// Asks node `i` to change the membership to `target`.
    pub(super) fn change_membership(
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

    /// The application on node `i` snapshots its state machine at `index` (applied).
    pub(super) fn snapshot_at(&mut self, i: usize, index: Index) -> SimResult {
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
