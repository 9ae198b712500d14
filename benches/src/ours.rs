//! An in-memory cluster of `raft-core` nodes in one thread.
//!
//! Messages go straight from a node's sends lane to the addressee's [`Node::step`] in the next
//! round (no encoding, no loss, no reordering, unless a [`messages`](crate::messages) scenario
//! reorders them or stops a node). Writes are made "durable" by moving their entries into a
//! per-node `Vec` and acknowledged at once (unless a scenario makes the leader's disk slow);
//! committed entries are "applied" by counting them. That is the least an adapter can do, so what
//! is measured is the core.

use std::collections::VecDeque;
use std::mem;

use raft_core::{
    Apply, Config, Entry, EntryKind, HardState, Input, Membership, Message, MessageBody, Node,
    NodeId, Outputs, Payload, ReadId, ReadResult, Restored, Role, Write,
};

use crate::counting_alloc::AllocCounts;
use crate::messages::{InFlight, Stepped};
use crate::rng::SplitMix;
use crate::workload::{Cluster, Traffic};

/// Where, in the driver's loop, allocations happen (see [`OurCluster::enable_breakdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// `Payload::new` copying the command's bytes (the caller's, before the core sees it).
    Payload,
    /// `Node::propose` on the leader.
    Propose,
    /// A follower stepping an `AppendEntries`.
    StepAppend,
    /// The leader stepping an `AppendResponse`.
    StepAppendResponse,
    /// Stepping any other message.
    StepOther,
    /// Stepping `Input::Persisted`.
    Persisted,
    /// Stepping `Input::Applied`.
    Applied,
    /// The driver moving writes into its in-memory disk.
    Disk,
    /// The driver moving the sends lane into its network queue.
    Network,
}

impl Site {
    /// Every site, in display order.
    pub const ALL: [Self; 9] = [
        Self::Payload,
        Self::Propose,
        Self::StepAppend,
        Self::StepAppendResponse,
        Self::StepOther,
        Self::Persisted,
        Self::Applied,
        Self::Disk,
        Self::Network,
    ];

    /// A label for reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Payload => "Payload::new (caller)",
            Self::Propose => "Node::propose (leader)",
            Self::StepAppend => "step AppendEntries (follower)",
            Self::StepAppendResponse => "step AppendResponse (leader)",
            Self::StepOther => "step other messages",
            Self::Persisted => "step Persisted",
            Self::Applied => "step Applied",
            Self::Disk => "driver: writes into memory",
            Self::Network => "driver: sends into queue",
        }
    }
}

/// Allocation calls per [`Site`], gathered while the breakdown is enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Breakdown {
    calls: [u64; Site::ALL.len()],
}

impl Breakdown {
    /// Allocation calls (`alloc` + `realloc`) made at `site`.
    #[must_use]
    pub fn calls(&self, site: Site) -> u64 {
        self.calls[site as usize]
    }

    fn add(&mut self, site: Site, n: u64) {
        self.calls[site as usize] += n;
    }
}

fn measure<T>(bd: &mut Option<Breakdown>, site: Site, f: impl FnOnce() -> T) -> T {
    match bd {
        None => f(),
        Some(b) => {
            let before = AllocCounts::now();
            let r = f();
            b.add(site, AllocCounts::since(before).calls());
            r
        }
    }
}

/// One node and what its adapter keeps beside it.
#[derive(Debug)]
struct Member {
    node: Node<SplitMix>,
    out: Outputs,
    /// The "disk": the log as written, `disk[i]` holding index `i + 1`.
    disk: Vec<Entry>,
    hard_state: HardState,
    up: bool,
}

/// A cluster of `raft-core` nodes; see the module docs.
#[derive(Debug)]
pub struct OurCluster {
    members: Vec<Member>,
    /// Messages to deliver in the next round.
    inbox: Vec<Message>,
    /// Messages sent in this round.
    outbox: Vec<Message>,
    leader: Option<usize>,
    next_read: u64,
    reads_ready: u64,
    errors: u64,
    traffic: Traffic,
    breakdown: Option<Breakdown>,
    /// Reused buffer of payloads for `propose_many`.
    batch: Vec<Payload>,
    /// With a slow leader disk ([`Stepped::hold_leader_writes`]): the leader's writes, not yet
    /// durable.
    held: Option<VecDeque<Write>>,
}

fn node_id(i: usize) -> NodeId {
    NodeId::new(i as u64 + 1).expect("ids start at 1")
}

fn index_of(id: NodeId) -> usize {
    (id.get() - 1) as usize
}

impl OurCluster {
    /// `nodes` fresh nodes with the default [`Config`]; no leader yet.
    #[must_use]
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self::with_config(nodes, seed, |_| {})
    }

    /// Like [`new`](Self::new), with each node's config adjusted by `tweak`.
    ///
    /// # Panics
    /// If `nodes` is not a valid cluster size or `tweak` makes the config invalid.
    #[must_use]
    pub fn with_config(nodes: usize, seed: u64, tweak: impl Fn(&mut Config)) -> Self {
        let ids: Vec<NodeId> = (0..nodes).map(node_id).collect();
        let membership = Membership::new(&ids).expect("valid membership");
        let members = ids
            .iter()
            .map(|&id| {
                let mut config = Config::new(id);
                tweak(&mut config);
                let rng = SplitMix::new(seed ^ id.get().wrapping_mul(0xA076_1D64_78BD_642F));
                let node = Node::restore(config, rng, Restored::initial(membership.clone()))
                    .expect("consistent initial state");
                Member {
                    node,
                    out: Outputs::new(),
                    disk: Vec::new(),
                    hard_state: HardState::default(),
                    up: true,
                }
            })
            .collect();
        Self {
            members,
            inbox: Vec::new(),
            outbox: Vec::new(),
            leader: None,
            next_read: 0,
            reads_ready: 0,
            errors: 0,
            traffic: Traffic::default(),
            breakdown: None,
            batch: Vec::new(),
            held: None,
        }
    }

    /// A cluster whose node 1 campaigned and won, with its no-op entry committed everywhere.
    ///
    /// # Panics
    /// If node 1 does not become leader (a bug).
    #[must_use]
    pub fn elected(nodes: usize, seed: u64) -> Self {
        let mut c = Self::new(nodes, seed);
        c.campaign(0);
        c.settle();
        assert_eq!(c.leader(), Some(0), "node 1 campaigned alone and must win");
        c
    }

    /// Node `i` starts an election now.
    pub fn campaign(&mut self, i: usize) {
        let m = &mut self.members[i];
        if m.node.step(Input::Campaign, &mut m.out).is_err() {
            self.errors += 1;
        }
    }

    /// One tick of logical time for every running node.
    pub fn tick(&mut self) {
        for m in self.members.iter_mut().filter(|m| m.up) {
            if m.node.step(Input::Tick, &mut m.out).is_err() {
                self.errors += 1;
            }
        }
    }

    /// Runs rounds until no message is in flight and no node has output left. Returns the rounds.
    ///
    /// # Panics
    /// If the cluster never goes quiet (a bug).
    pub fn settle(&mut self) -> u64 {
        let mut rounds = 0;
        loop {
            self.round_inner(true);
            rounds += 1;
            if self.inbox.is_empty() {
                break;
            }
            assert!(rounds < 100_000, "cluster never settles");
        }
        self.leader = self.find_leader();
        rounds
    }

    /// Node `i` stops: it gets no more input, and messages to it are dropped.
    pub fn crash(&mut self, i: usize) {
        self.members[i].up = false;
        if self.leader == Some(i) {
            self.leader = None;
        }
    }

    /// The running leader with the highest term, as of the last [`settle`](Self::settle).
    #[must_use]
    pub fn leader(&self) -> Option<usize> {
        self.leader
    }

    fn find_leader(&self) -> Option<usize> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.up && m.node.role() == Role::Leader)
            .max_by_key(|(_, m)| m.node.term())
            .map(|(i, _)| i)
    }

    /// Asks the leader for a linearizable read (ReadIndex).
    ///
    /// # Panics
    /// If there is no leader or it refuses.
    pub fn read(&mut self) {
        let l = self.leader.expect("a leader");
        self.next_read += 1;
        let m = &mut self.members[l];
        m.node
            .step(Input::Read(ReadId(self.next_read)), &mut m.out)
            .expect("the leader accepts reads");
    }

    /// Reads the leader reported ready so far.
    #[must_use]
    pub fn reads_ready(&self) -> u64 {
        self.reads_ready
    }

    /// Steps that returned an error (none are expected on a perfect network).
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Messages sent so far, by kind (see [`Traffic`]).
    #[must_use]
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Starts attributing allocation calls to [`Site`]s (a little slower).
    pub fn enable_breakdown(&mut self) {
        self.breakdown = Some(Breakdown::default());
    }

    /// The breakdown gathered since [`enable_breakdown`](Self::enable_breakdown).
    #[must_use]
    pub fn breakdown(&self) -> Option<&Breakdown> {
        self.breakdown.as_ref()
    }

    /// Node `i`.
    #[must_use]
    pub fn node(&self, i: usize) -> &Node<SplitMix> {
        &self.members[i].node
    }

    /// What node `i` has written to its in-memory disk.
    #[must_use]
    pub fn disk(&self, i: usize) -> &[Entry] {
        &self.members[i].disk
    }

    /// The last hard state node `i` wrote.
    #[must_use]
    pub fn hard_state(&self, i: usize) -> HardState {
        self.members[i].hard_state
    }

    /// One round. Without `deliver`, the messages in flight stay in flight and what the nodes
    /// send joins them (to flush a node's outputs between rounds).
    fn round_inner(&mut self, deliver: bool) -> u64 {
        let Self {
            members,
            inbox,
            outbox,
            leader,
            reads_ready,
            errors,
            traffic,
            breakdown,
            held,
            ..
        } = self;

        if deliver {
            for msg in inbox.drain(..) {
                let site = match &msg.body {
                    MessageBody::AppendEntries { entries, .. } => {
                        traffic.appends += 1;
                        traffic.empty_appends += u64::from(entries.is_empty());
                        traffic.appended_entries += entries.len() as u64;
                        Site::StepAppend
                    }
                    MessageBody::AppendResponse { .. } => {
                        traffic.append_responses += 1;
                        Site::StepAppendResponse
                    }
                    MessageBody::Heartbeat { .. } => {
                        traffic.other += 1;
                        traffic.heartbeats += 1;
                        Site::StepOther
                    }
                    MessageBody::Commit { .. } => {
                        traffic.other += 1;
                        traffic.commit_notices += 1;
                        Site::StepOther
                    }
                    _ => {
                        traffic.other += 1;
                        Site::StepOther
                    }
                };
                let Some(m) = members.get_mut(index_of(msg.to)).filter(|m| m.up) else {
                    continue;
                };
                let node = &mut m.node;
                let out = &mut m.out;
                if measure(breakdown, site, || node.step(Input::Message(msg), out)).is_err() {
                    *errors += 1;
                }
            }
        }

        let mut applied = 0;
        for (i, m) in members.iter_mut().enumerate().filter(|(_, m)| m.up) {
            let is_leader = *leader == Some(i);
            // As raft-rs's loop asks `has_ready` first, an idle node costs one check, and each
            // lane is drained only if it holds something.
            while !m.out.is_empty() {
                if let Some(h) = held.as_mut().filter(|_| is_leader) {
                    h.extend(m.out.drain_writes());
                }
                // Persist every write (in memory), then acknowledge the last.
                let out = &mut m.out;
                let disk = &mut m.disk;
                let hard_state = &mut m.hard_state;
                let last_write = if out.writes().is_empty() {
                    None
                } else {
                    measure(breakdown, Site::Disk, || {
                        let mut last = None;
                        for w in out.drain_writes() {
                            if let Some(hs) = w.hard_state {
                                *hard_state = hs;
                            }
                            if let Some(from) = w.truncate_from {
                                disk.truncate((from.0 as usize).saturating_sub(1));
                            }
                            // Snapshots are only sent to followers behind a compacted log, and
                            // nothing is compacted here.
                            debug_assert!(w.snapshot.is_none(), "no snapshot in these benchmarks");
                            for e in w.entries {
                                disk.push(e);
                            }
                            last = Some(w.id);
                        }
                        last
                    })
                };
                if let Some(id) = last_write {
                    let node = &mut m.node;
                    let out = &mut m.out;
                    if measure(breakdown, Site::Persisted, || {
                        node.step(Input::Persisted(id), out)
                    })
                    .is_err()
                    {
                        *errors += 1;
                    }
                }

                // Apply committed entries (counting them on the leader).
                let mut last_applied = None;
                if !m.out.apply().is_empty() {
                    for a in m.out.drain_apply() {
                        if let Apply::Entry(e) = &a
                            && is_leader
                            && e.kind == EntryKind::Normal
                        {
                            applied += 1;
                        }
                        last_applied = Some(a.index());
                    }
                }
                if let Some(index) = last_applied {
                    let node = &mut m.node;
                    let out = &mut m.out;
                    if measure(breakdown, Site::Applied, || {
                        node.step(Input::Applied(index), out)
                    })
                    .is_err()
                    {
                        *errors += 1;
                    }
                }

                if !m.out.reads().is_empty() {
                    for r in m.out.drain_reads() {
                        if matches!(r, ReadResult::Ready { .. }) {
                            *reads_ready += 1;
                        }
                    }
                }
                // No snapshot is ever taken here (raft-rs's `MemStorage` does not compact either),
                // so no chunk is requested; a snapshot suggestion is ignored.
                if !m.out.chunk_requests().is_empty() {
                    m.out.drain_chunk_requests().for_each(drop);
                }
                if !m.out.events().is_empty() {
                    m.out.drain_events().for_each(drop);
                }
                if !m.out.sends().is_empty() {
                    let out = &mut m.out;
                    measure(breakdown, Site::Network, || out.append_sends_to(outbox));
                }
            }
        }
        if deliver {
            mem::swap(inbox, outbox);
        } else {
            inbox.append(outbox);
        }
        applied
    }
}

impl Cluster for OurCluster {
    fn propose(&mut self, data: &[u8]) {
        let l = self.leader.expect("a leader");
        let m = &mut self.members[l];
        let payload = measure(&mut self.breakdown, Site::Payload, || Payload::new(data));
        let node = &mut m.node;
        let out = &mut m.out;
        measure(&mut self.breakdown, Site::Propose, || {
            node.propose(payload, out)
        })
        .expect("the leader accepts proposals");
        // Taken from the lane at once, so that the next proposal starts a write of its own.
        if let Some(h) = &mut self.held {
            h.extend(m.out.drain_writes());
        }
    }

    /// `Node::propose_batch`: one write and one message per follower for the whole batch.
    fn propose_many(&mut self, data: &[u8], n: u64) {
        let l = self.leader.expect("a leader");
        let m = &mut self.members[l];
        let batch = &mut self.batch;
        measure(&mut self.breakdown, Site::Payload, || {
            batch.clear();
            batch.extend((0..n).map(|_| Payload::new(data)));
        });
        let node = &mut m.node;
        let out = &mut m.out;
        measure(&mut self.breakdown, Site::Propose, || {
            node.propose_batch(batch, out)
        })
        .expect("the leader accepts proposals");
        if let Some(h) = &mut self.held {
            h.extend(m.out.drain_writes());
        }
    }

    fn round(&mut self) -> u64 {
        self.round_inner(true)
    }
}

impl Stepped for OurCluster {
    fn propose_alone(&mut self, data: &[u8]) -> u64 {
        self.propose(data);
        self.round_inner(false)
    }

    fn in_flight(&self) -> Vec<InFlight> {
        self.inbox
            .iter()
            .map(|m| InFlight {
                to: m.to.get(),
                first_entry: match &m.body {
                    MessageBody::AppendEntries { entries, .. } => {
                        entries.first().map(|e| e.id.index.0)
                    }
                    _ => None,
                },
            })
            .collect()
    }

    fn reorder(&mut self, order: &[usize]) {
        crate::messages::permute(&mut self.inbox, order);
    }

    fn hold_leader_writes(&mut self) {
        self.held = Some(VecDeque::new());
    }

    /// Each write the leader makes while its disk is slow holds one proposal's entry (see
    /// [`Cluster::propose`]): it is made durable and acknowledged on its own.
    fn complete_leader_write(&mut self) -> bool {
        let Some(w) = self.held.as_mut().and_then(VecDeque::pop_front) else {
            return false;
        };
        debug_assert!(w.entries.len() <= 1, "one entry per write: {w:?}");
        let l = self.leader.expect("a leader");
        let m = &mut self.members[l];
        if let Some(hs) = w.hard_state {
            m.hard_state = hs;
        }
        if let Some(from) = w.truncate_from {
            m.disk.truncate((from.0 as usize).saturating_sub(1));
        }
        m.disk.extend(w.entries);
        if m.node.step(Input::Persisted(w.id), &mut m.out).is_err() {
            self.errors += 1;
        }
        true
    }

    fn stop(&mut self, i: usize) {
        self.crash(i);
    }

    fn is_quiet(&self) -> bool {
        self.inbox.is_empty() && self.members.iter().all(|m| !m.up || m.out.is_empty())
    }

    fn commits(&self) -> Vec<Option<u64>> {
        self.members
            .iter()
            .map(|m| m.up.then(|| m.node.commit_index().0))
            .collect()
    }

    fn tick_all(&mut self) {
        self.tick();
    }

    fn sent(&self) -> Traffic {
        self.traffic
    }

    fn matched_past_log(&self) -> u64 {
        let Some(l) = self.leader else { return 0 };
        let node = &self.members[l].node;
        let last = node.last_log().index;
        node.status()
            .peers
            .iter()
            .filter(|p| p.match_index > last)
            .count() as u64
    }
}
