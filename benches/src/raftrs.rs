//! The same in-memory cluster on tikv's raft-rs (`raft` 0.7): one `RawNode` over a
//! `MemStorage` per node, protobuf codec, `batch_append` on, messages handed straight to the
//! addressee's `RawNode::step` in the next round, every `Ready` persisted into the `MemStorage`
//! at once.
//!
//! The configuration matches our core's defaults where both have the knob: heartbeat 2 ticks,
//! election 10 ticks, 256 messages in flight per follower, 1 MiB per message, pre-vote and
//! CheckQuorum on.
//!
//! For the [`messages`](crate::messages) scenarios the leader's disk can be made slow: its
//! `Ready`s are then advanced with `advance_append_async` (the entries go into the `MemStorage`,
//! where raft-rs reads them, but are not durable yet), and each entry is made durable on its own
//! with `Raft::on_persist_entries(index, term)`, the public call `RawNode::on_persist_ready` makes
//! for the last entry of a `Ready` (a `Ready`'s entries can only be persisted all together).

use std::collections::VecDeque;
use std::mem;

use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

use crate::messages::{InFlight, Stepped};
use crate::workload::{Cluster, Traffic};

/// The raft-rs config used for node `id`.
#[must_use]
pub fn config(id: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 2,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        batch_append: true,
        ..Config::default()
    }
}

/// A cluster of raft-rs nodes; see the module docs.
pub struct RaftRsCluster {
    nodes: Vec<RawNode<MemStorage>>,
    up: Vec<bool>,
    inbox: Vec<Message>,
    outbox: Vec<Message>,
    leader: Option<usize>,
    errors: u64,
    traffic: Traffic,
    /// With a slow leader disk: the leader's entries (index, term) not yet durable, oldest first.
    held: Option<VecDeque<(u64, u64)>>,
    /// The number of the leader's last `Ready` advanced with its entries not durable.
    held_ready: u64,
}

impl std::fmt::Debug for RaftRsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftRsCluster")
            .field("nodes", &self.nodes.len())
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

impl RaftRsCluster {
    /// `nodes` fresh nodes; no leader yet.
    ///
    /// # Panics
    /// If raft-rs refuses the configuration.
    #[must_use]
    pub fn new(nodes: usize) -> Self {
        Self::with_config(nodes, |_| {})
    }

    /// Like [`new`](Self::new), with each node's [`config`] adjusted by `tweak`.
    ///
    /// # Panics
    /// If raft-rs refuses the configuration.
    #[must_use]
    pub fn with_config(nodes: usize, tweak: impl Fn(&mut Config)) -> Self {
        let voters: Vec<u64> = (1..=nodes as u64).collect();
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let nodes: Vec<_> = voters
            .iter()
            .map(|&id| {
                let storage =
                    MemStorage::new_with_conf_state(ConfState::from((voters.clone(), vec![])));
                let mut config = config(id);
                tweak(&mut config);
                RawNode::new(&config, storage, &logger).expect("valid raft-rs config")
            })
            .collect();
        Self {
            up: vec![true; nodes.len()],
            nodes,
            inbox: Vec::new(),
            outbox: Vec::new(),
            leader: None,
            errors: 0,
            traffic: Traffic::default(),
            held: None,
            held_ready: 0,
        }
    }

    /// A cluster whose node 1 campaigned and won, with its empty entry committed everywhere.
    ///
    /// # Panics
    /// If node 1 does not become leader (a bug).
    #[must_use]
    pub fn elected(nodes: usize) -> Self {
        Self::elected_with(nodes, |_| {})
    }

    /// Like [`elected`](Self::elected), with each node's [`config`] adjusted by `tweak`.
    ///
    /// # Panics
    /// If node 1 does not become leader (a bug).
    #[must_use]
    pub fn elected_with(nodes: usize, tweak: impl Fn(&mut Config)) -> Self {
        let mut c = Self::with_config(nodes, tweak);
        c.nodes[0].campaign().expect("campaign");
        c.settle();
        assert_eq!(c.leader, Some(0), "node 1 campaigned alone and must win");
        c
    }

    /// Runs rounds until no message is in flight. Returns the rounds.
    ///
    /// # Panics
    /// If the cluster never goes quiet (a bug).
    pub fn settle(&mut self) -> u64 {
        let mut rounds = 0;
        loop {
            self.round_inner(true);
            rounds += 1;
            if self.is_quiet() {
                break;
            }
            assert!(rounds < 100_000, "cluster never settles");
        }
        self.leader = self
            .nodes
            .iter()
            .position(|n| n.raft.state == StateRole::Leader);
        rounds
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

    /// Node `i`.
    #[must_use]
    pub fn node(&self, i: usize) -> &RawNode<MemStorage> {
        &self.nodes[i]
    }

    /// One round. Without `deliver`, the messages in flight stay in flight and what the nodes
    /// send joins them (to flush a node's outputs between rounds).
    fn round_inner(&mut self, deliver: bool) -> u64 {
        let Self {
            nodes,
            up,
            inbox,
            outbox,
            leader,
            errors,
            traffic,
            held,
            held_ready,
        } = self;
        if deliver {
            for msg in inbox.drain(..) {
                match msg.get_msg_type() {
                    MessageType::MsgAppend => {
                        traffic.appends += 1;
                        traffic.empty_appends += u64::from(msg.entries.is_empty());
                        traffic.appended_entries += msg.entries.len() as u64;
                    }
                    MessageType::MsgAppendResponse => traffic.append_responses += 1,
                    MessageType::MsgHeartbeat => {
                        traffic.other += 1;
                        traffic.heartbeats += 1;
                    }
                    _ => traffic.other += 1,
                }
                let Some(node) = (msg.to as usize)
                    .checked_sub(1)
                    .filter(|&i| up.get(i) == Some(&true))
                    .and_then(|i| nodes.get_mut(i))
                else {
                    continue;
                };
                if node.step(msg).is_err() {
                    *errors += 1;
                }
            }
        }
        let mut applied = 0;
        for (i, node) in nodes.iter_mut().enumerate().filter(|(i, _)| up[*i]) {
            let is_leader = *leader == Some(i);
            applied += match held.as_mut().filter(|_| is_leader) {
                Some(h) => handle_ready_held(node, outbox, h, held_ready),
                None => handle_ready(node, is_leader, outbox),
            };
        }
        if deliver {
            mem::swap(inbox, outbox);
        } else {
            inbox.append(outbox);
        }
        applied
    }
}

/// Counts the proposed entries among `entries` (the leader's empty entry is not one).
fn count_applied(entries: &[Entry], is_leader: bool) -> u64 {
    if !is_leader {
        return 0;
    }
    entries
        .iter()
        .filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
        .count() as u64
}

/// The raft-rs run loop, as in its `five_mem_node` example, with everything synchronous.
fn handle_ready(node: &mut RawNode<MemStorage>, is_leader: bool, outbox: &mut Vec<Message>) -> u64 {
    let mut applied = 0;
    while node.has_ready() {
        let mut rd = node.ready();
        outbox.extend(rd.take_messages());
        applied += count_applied(rd.committed_entries(), is_leader);
        if !rd.entries().is_empty() {
            node.store().wl().append(rd.entries()).expect("append");
        }
        if let Some(hs) = rd.hs() {
            node.store().wl().set_hardstate(hs.clone());
        }
        outbox.extend(rd.take_persisted_messages());
        let mut light = node.advance(rd);
        if let Some(commit) = light.commit_index() {
            node.store().wl().mut_hard_state().set_commit(commit);
        }
        outbox.extend(light.take_messages());
        applied += count_applied(light.committed_entries(), is_leader);
        node.advance_apply();
    }
    applied
}

/// The leader's run loop with a slow disk: each `Ready`'s entries go into the `MemStorage` (where
/// raft-rs reads them) and into `held`, and the `Ready` is advanced with `advance_append_async`,
/// which does not make them durable; [`Stepped::complete_leader_write`] does, one by one.
fn handle_ready_held(
    node: &mut RawNode<MemStorage>,
    outbox: &mut Vec<Message>,
    held: &mut VecDeque<(u64, u64)>,
    held_ready: &mut u64,
) -> u64 {
    let mut applied = 0;
    while node.has_ready() {
        let mut rd = node.ready();
        outbox.extend(rd.take_messages());
        applied += count_applied(rd.committed_entries(), true);
        if !rd.entries().is_empty() {
            node.store().wl().append(rd.entries()).expect("append");
            held.extend(rd.entries().iter().map(|e| (e.index, e.term)));
            *held_ready = rd.number();
        }
        if let Some(hs) = rd.hs() {
            node.store().wl().set_hardstate(hs.clone());
        }
        outbox.extend(rd.take_persisted_messages());
        node.advance_append_async(rd);
        node.advance_apply();
    }
    applied
}

impl Cluster for RaftRsCluster {
    fn propose(&mut self, data: &[u8]) {
        let l = self.leader.expect("a leader");
        self.nodes[l]
            .propose(Vec::new(), data.to_vec())
            .expect("the leader accepts proposals");
    }

    fn round(&mut self) -> u64 {
        self.round_inner(true)
    }
}

impl Stepped for RaftRsCluster {
    fn propose_alone(&mut self, data: &[u8]) -> u64 {
        self.propose(data);
        self.round_inner(false)
    }

    fn in_flight(&self) -> Vec<InFlight> {
        self.inbox
            .iter()
            .map(|m| InFlight {
                to: m.to,
                first_entry: match m.get_msg_type() {
                    MessageType::MsgAppend => m.entries.first().map(|e| e.index),
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

    /// `Raft::on_persist_entries` for the oldest entry not yet durable; once none is left,
    /// `RawNode::on_persist_ready` for the last `Ready` that held some, so `RawNode`'s own
    /// bookkeeping catches up (it finds nothing new to persist).
    fn complete_leader_write(&mut self) -> bool {
        let Some((index, term)) = self.held.as_mut().and_then(VecDeque::pop_front) else {
            return false;
        };
        let l = self.leader.expect("a leader");
        let node = &mut self.nodes[l];
        node.raft.on_persist_entries(index, term);
        if self.held.as_ref().is_some_and(VecDeque::is_empty) {
            node.on_persist_ready(self.held_ready);
        }
        true
    }

    fn stop(&mut self, i: usize) {
        self.up[i] = false;
        if self.leader == Some(i) {
            self.leader = None;
        }
    }

    fn is_quiet(&self) -> bool {
        self.inbox.is_empty()
            && self
                .nodes
                .iter()
                .zip(&self.up)
                .all(|(n, &up)| !up || !n.has_ready())
    }

    fn commits(&self) -> Vec<Option<u64>> {
        self.nodes
            .iter()
            .zip(&self.up)
            .map(|(n, &up)| up.then_some(n.raft.raft_log.committed))
            .collect()
    }

    fn tick_all(&mut self) {
        for (n, _) in self.nodes.iter_mut().zip(&self.up).filter(|(_, up)| **up) {
            n.tick();
        }
    }

    fn sent(&self) -> Traffic {
        self.traffic
    }

    fn matched_past_log(&self) -> u64 {
        let Some(l) = self.leader else { return 0 };
        let raft = &self.nodes[l].raft;
        let last = raft.raft_log.last_index();
        raft.prs()
            .iter()
            .filter(|(id, pr)| **id != raft.id && pr.matched > last)
            .count() as u64
    }
}
