//! The same in-memory cluster on tikv's raft-rs (`raft` 0.7): one `RawNode` over a
//! `MemStorage` per node, protobuf codec, `batch_append` on, messages handed straight to the
//! addressee's `RawNode::step` in the next round, every `Ready` persisted into the `MemStorage`
//! at once.
//!
//! The configuration matches our core's defaults where both have the knob: heartbeat 2 ticks,
//! election 10 ticks, 256 messages in flight per follower, 1 MiB per message, pre-vote and
//! CheckQuorum on.

use std::mem;

use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

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
    inbox: Vec<Message>,
    outbox: Vec<Message>,
    leader: Option<usize>,
    errors: u64,
    traffic: Traffic,
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
        let voters: Vec<u64> = (1..=nodes as u64).collect();
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let nodes = voters
            .iter()
            .map(|&id| {
                let storage =
                    MemStorage::new_with_conf_state(ConfState::from((voters.clone(), vec![])));
                RawNode::new(&config(id), storage, &logger).expect("valid raft-rs config")
            })
            .collect();
        Self {
            nodes,
            inbox: Vec::new(),
            outbox: Vec::new(),
            leader: None,
            errors: 0,
            traffic: Traffic::default(),
        }
    }

    /// A cluster whose node 1 campaigned and won, with its empty entry committed everywhere.
    ///
    /// # Panics
    /// If node 1 does not become leader (a bug).
    #[must_use]
    pub fn elected(nodes: usize) -> Self {
        let mut c = Self::new(nodes);
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
            self.round_inner();
            rounds += 1;
            if self.inbox.is_empty() && !self.nodes.iter().any(RawNode::has_ready) {
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

    /// Messages delivered so far, by kind.
    #[must_use]
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Node `i`.
    #[must_use]
    pub fn node(&self, i: usize) -> &RawNode<MemStorage> {
        &self.nodes[i]
    }

    fn round_inner(&mut self) -> u64 {
        let Self {
            nodes,
            inbox,
            outbox,
            leader,
            errors,
            traffic,
        } = self;
        for msg in inbox.drain(..) {
            match msg.get_msg_type() {
                MessageType::MsgAppend => {
                    traffic.appends += 1;
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
                .and_then(|i| nodes.get_mut(i))
            else {
                continue;
            };
            if node.step(msg).is_err() {
                *errors += 1;
            }
        }
        let mut applied = 0;
        for (i, node) in nodes.iter_mut().enumerate() {
            applied += handle_ready(node, *leader == Some(i), outbox);
        }
        mem::swap(inbox, outbox);
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

impl Cluster for RaftRsCluster {
    fn propose(&mut self, data: &[u8]) {
        let l = self.leader.expect("a leader");
        self.nodes[l]
            .propose(Vec::new(), data.to_vec())
            .expect("the leader accepts proposals");
    }

    fn round(&mut self) -> u64 {
        self.round_inner()
    }
}
