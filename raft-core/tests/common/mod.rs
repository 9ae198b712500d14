//! A small harness for driving single nodes by hand.
//!
//! A [`Harness`] wraps one [`Node`]: [`Harness::step`] feeds it an input and returns what came
//! out, and [`Harness::persist`] plays the adapter's disk by acknowledging every write the node
//! has issued so far. Messages from peers are built with the helpers at the bottom; node ids,
//! terms and indexes are plain numbers to keep the tests short.
#![allow(dead_code)] // each test binary uses a different part of the harness

use raft_core::{
    AppendOutcome, Apply, ChunkRequest, Config, Entry, EntryKind, Event, HardState, Index, Input,
    LogId, Membership, Message, MessageBody, Node, NodeId, Outputs, Payload, ReadResult,
    RestoreError, Restored, Role, SnapshotMeta, StepError, Term, Write, WriteId,
};

#[cfg(raft_planted)]
pub(crate) mod planted;

pub(crate) mod paper;

/// The workspace's seeded RNG; any `rand_core::Rng` would do.
pub(crate) use raft_core::SplitMix64 as SplitMix;

// ---- values ----------------------------------------------------------------------------------

pub(crate) fn id(n: u64) -> NodeId {
    NodeId::new(n).expect("node ids are non-zero")
}

/// The default configuration of node `n`, with `tweak` applied.
pub(crate) fn config(n: u64, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::new(id(n));
    tweak(&mut config);
    config
}

pub(crate) fn membership(voters: &[u64]) -> Membership {
    let voters: Vec<NodeId> = voters.iter().map(|&n| id(n)).collect();
    Membership::new(&voters).expect("valid membership")
}

/// A normal entry whose payload names its id.
pub(crate) fn entry(term: u64, index: u64) -> Entry {
    Entry {
        id: LogId::new(term, index),
        kind: EntryKind::Normal,
        data: Payload::new(format!("{term}.{index}").as_bytes()),
    }
}

/// Entries with the given terms, the first at index `first`.
pub(crate) fn entries_from(first: u64, terms: &[u64]) -> Vec<Entry> {
    (first..).zip(terms).map(|(i, &t)| entry(t, i)).collect()
}

/// A log from index 1 with the given terms.
pub(crate) fn log_of(terms: &[u64]) -> Vec<Entry> {
    entries_from(1, terms)
}

/// The persisted state of a node with no snapshot.
pub(crate) fn restored(
    voters: &[u64],
    term: u64,
    vote: Option<u64>,
    log_terms: &[u64],
    applied: u64,
) -> Restored {
    Restored {
        hard_state: HardState {
            term: Term(term),
            vote: vote.map(id),
        },
        snapshot: SnapshotMeta {
            last: LogId::ZERO,
            membership: membership(voters),
        },
        entries: log_of(log_terms),
        applied: Index(applied),
    }
}

// ---- outputs ---------------------------------------------------------------------------------

/// The outputs of one or more steps, taken out of [`Outputs`] so they can be merged and read.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub(crate) sends: Vec<Message>,
    pub(crate) writes: Vec<Write>,
    pub(crate) apply: Vec<Apply>,
    pub(crate) reads: Vec<ReadResult>,
    pub(crate) chunk_requests: Vec<ChunkRequest>,
    pub(crate) events: Vec<Event>,
}

impl Out {
    fn take(o: &mut Outputs) -> Self {
        Self {
            sends: o.drain_sends().collect(),
            writes: o.drain_writes().collect(),
            apply: o.drain_apply().collect(),
            reads: o.drain_reads().collect(),
            chunk_requests: o.drain_chunk_requests().collect(),
            events: o.drain_events().collect(),
        }
    }

    pub(crate) fn merge(&mut self, other: Self) {
        self.sends.extend(other.sends);
        self.writes.extend(other.writes);
        self.apply.extend(other.apply);
        self.reads.extend(other.reads);
        self.chunk_requests.extend(other.chunk_requests);
        self.events.extend(other.events);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.writes.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
            && self.chunk_requests.is_empty()
            && self.events.is_empty()
    }

    /// The messages addressed to node `to`.
    pub(crate) fn sent_to(&self, to: u64) -> Vec<&Message> {
        self.sends.iter().filter(|m| m.to == id(to)).collect()
    }

    /// The vote responses sent: (to, term, granted, pre_vote).
    pub(crate) fn vote_responses(&self) -> Vec<(u64, u64, bool, bool)> {
        self.sends
            .iter()
            .filter_map(|m| match m.body {
                MessageBody::VoteResponse { granted, pre_vote } => {
                    Some((m.to.get(), m.term.0, granted, pre_vote))
                }
                _ => None,
            })
            .collect()
    }

    /// The append responses sent: (to, term, outcome).
    pub(crate) fn append_responses(&self) -> Vec<(u64, u64, AppendOutcome)> {
        self.sends
            .iter()
            .filter_map(|m| match m.body {
                MessageBody::AppendResponse { outcome } => Some((m.to.get(), m.term.0, outcome)),
                _ => None,
            })
            .collect()
    }

    /// The commit notices sent (commit indexes that need no answer): (to, commit).
    pub(crate) fn commit_notices(&self) -> Vec<(u64, u64)> {
        self.sends
            .iter()
            .filter_map(|m| match m.body {
                MessageBody::Commit { commit } => Some((m.to.get(), commit.index.0)),
                _ => None,
            })
            .collect()
    }

    /// The AppendEntries sent: (to, prev, ids of the entries, commit).
    pub(crate) fn appends(&self) -> Vec<(u64, LogId, Vec<LogId>, u64)> {
        self.sends
            .iter()
            .filter_map(|m| match &m.body {
                MessageBody::AppendEntries {
                    prev,
                    entries,
                    commit,
                } => Some((
                    m.to.get(),
                    *prev,
                    entries.iter().map(|e| e.id).collect(),
                    commit.0,
                )),
                _ => None,
            })
            .collect()
    }

    /// The hard states written, in order.
    pub(crate) fn hard_states(&self) -> Vec<HardState> {
        self.writes.iter().filter_map(|w| w.hard_state).collect()
    }

    /// The ids of the entries written, in order.
    pub(crate) fn written(&self) -> Vec<LogId> {
        self.writes
            .iter()
            .flat_map(|w| w.entries.iter().map(|e| e.id))
            .collect()
    }

    /// What was handed out for applying, in order: the id of each entry, or a snapshot's last.
    pub(crate) fn applied(&self) -> Vec<LogId> {
        self.apply
            .iter()
            .map(|a| match a {
                Apply::Entry(e) => e.id,
                Apply::Snapshot(meta) => meta.last,
            })
            .collect()
    }
}

// ---- the harness -----------------------------------------------------------------------------

/// Node 1 (its configuration tweaked by `tweak`), restored from a snapshot at index 10 with
/// entries 11-12 of term 1, elected leader of nodes 1-3; node 3 has answered its probe with a
/// hint (term 1 up to index 5) below that snapshot, so the leader is sending it the snapshot.
/// Returns the leader and what that answer made it do (ask for the first chunk).
pub(crate) fn leader_sending_a_snapshot(tweak: impl FnOnce(&mut Config)) -> (Harness, Out) {
    let state = Restored {
        hard_state: HardState {
            term: Term(1),
            vote: None,
        },
        snapshot: SnapshotMeta {
            last: LogId::new(1, 10),
            membership: membership(&[1, 2, 3]),
        },
        entries: entries_from(11, &[1, 1]),
        applied: Index(10),
    };
    let mut h = Harness::restore(config(1, tweak), state).expect("consistent persisted state");
    let out = h.elect();
    h.persist();
    let probe = out
        .appends()
        .into_iter()
        .find(|a| a.0 == 3)
        .expect("a probe to 3");
    let conflict = AppendOutcome::Conflict {
        rejected: probe.1.index,
        hint: LogId::new(1, 5),
    };
    let out = h.recv(append_response(3, 1, h.node.term().0, conflict));
    (h, out)
}

/// One node, and the writes it issued that the test has not acknowledged yet.
#[derive(Debug)]
pub(crate) struct Harness {
    pub(crate) node: Node<SplitMix>,
    unacked: Option<WriteId>,
}

impl Harness {
    /// Node `n` of a fresh cluster of `voters`, with the default configuration.
    pub(crate) fn new(n: u64, voters: &[u64]) -> Self {
        Self::with_config(n, voters, |_| {})
    }

    /// Node `n` of a fresh cluster of `voters`, with `tweak` applied to the default configuration.
    pub(crate) fn with_config(n: u64, voters: &[u64], tweak: impl FnOnce(&mut Config)) -> Self {
        let state = Restored::initial(membership(voters));
        Self::restore(config(n, tweak), state).expect("valid initial state")
    }

    /// Node `n` restarted from `state`, with the default configuration.
    pub(crate) fn restored(n: u64, state: Restored) -> Self {
        Self::restore(Config::new(id(n)), state).expect("consistent persisted state")
    }

    /// A node built from `config` and `state` (the seed of its RNG is its id).
    pub(crate) fn restore(config: Config, state: Restored) -> Result<Self, RestoreError> {
        #[cfg(raft_planted)]
        planted::from_env();
        let seed = config.id.get();
        let node = Node::restore(config, SplitMix::new(seed), state)?;
        Ok(Self {
            node,
            unacked: None,
        })
    }

    /// Steps `input` and returns the result and the outputs. Checks the node's invariants.
    pub(crate) fn try_step(&mut self, input: Input) -> (Result<(), StepError>, Out) {
        let mut outputs = Outputs::new();
        let result = self.node.step(input, &mut outputs);
        let out = Out::take(&mut outputs);
        if let Some(last) = out.writes.iter().map(|w| w.id).max() {
            self.unacked = self.unacked.max(Some(last));
        }
        if let Err(v) = self.node.check_invariants() {
            panic!("node {}: {v}", self.node.id());
        }
        (result, out)
    }

    /// Steps `input`, which must succeed, and returns the outputs.
    pub(crate) fn step(&mut self, input: Input) -> Out {
        let (result, out) = self.try_step(input.clone());
        if let Err(e) = result {
            panic!("node {}: {input:?} failed: {e}", self.node.id());
        }
        out
    }

    /// Receives `msg`, which must be accepted.
    pub(crate) fn recv(&mut self, msg: Message) -> Out {
        self.step(Input::Message(msg))
    }

    /// Receives `msg` and returns whatever the node made of it.
    pub(crate) fn try_recv(&mut self, msg: Message) -> (Result<(), StepError>, Out) {
        self.try_step(Input::Message(msg))
    }

    /// `n` ticks.
    pub(crate) fn tick(&mut self, n: u32) -> Out {
        let mut out = Out::default();
        for _ in 0..n {
            out.merge(self.step(Input::Tick));
        }
        out
    }

    /// The last write issued and not yet acknowledged.
    pub(crate) fn unacked(&self) -> Option<WriteId> {
        self.unacked
    }

    /// Acknowledges every write issued so far (nothing if none is pending).
    pub(crate) fn persist(&mut self) -> Out {
        match self.unacked.take() {
            Some(w) => self.step(Input::Persisted(w)),
            None => Out::default(),
        }
    }

    /// Receives every message in `out` addressed to this node, making each step's writes durable
    /// before the next, as an adapter with a fast disk would.
    pub(crate) fn deliver(&mut self, out: &Out) -> Out {
        let me = self.node.id();
        let mut all = Out::default();
        for m in out.sends.iter().filter(|m| m.to == me) {
            all.merge(self.recv(m.clone()));
            all.merge(self.persist());
        }
        all
    }

    /// Campaigns and wins: every vote (and pre-vote) request is granted. Stops as soon as the node
    /// leads, leaving the write of its no-op entry unacknowledged. Returns everything it output.
    pub(crate) fn elect(&mut self) -> Out {
        let mut all = Out::default();
        let mut out = self.step(Input::Campaign);
        for _ in 0..4 {
            if self.node.role() == Role::Leader {
                break;
            }
            out.merge(self.persist());
            let grants: Vec<Message> = out
                .sends
                .iter()
                .filter_map(|m| match m.body {
                    MessageBody::VoteRequest { pre_vote, .. } => Some(vote_response(
                        m.to.get(),
                        m.from.get(),
                        m.term.0,
                        true,
                        pre_vote,
                    )),
                    _ => None,
                })
                .collect();
            all.merge(out);
            out = Out::default();
            for g in grants {
                if self.node.role() != Role::Leader {
                    out.merge(self.recv(g));
                }
            }
        }
        all.merge(out);
        assert_eq!(self.node.role(), Role::Leader, "the election was not won");
        all
    }

    /// Node `n` of a fresh cluster, elected leader of term 1 (pre-vote on), with its no-op
    /// (index 1) durable, acknowledged by the next voter and so committed.
    pub(crate) fn leader(n: u64, voters: &[u64]) -> Self {
        let mut h = Self::new(n, voters);
        h.elect();
        h.persist();
        let follower = *voters.iter().find(|&&v| v != n).expect("another voter");
        h.recv(accepted(follower, n, h.node.term().0, 1));
        assert_eq!(h.node.commit_index(), Index(1), "the no-op is committed");
        h
    }
}

// ---- messages --------------------------------------------------------------------------------

pub(crate) fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: id(from),
        to: id(to),
        term: Term(term),
        body,
    }
}

pub(crate) fn vote_request(from: u64, to: u64, term: u64, last_log: LogId) -> Message {
    let body = MessageBody::VoteRequest {
        last_log,
        pre_vote: false,
        leader_transfer: false,
    };
    msg(from, to, term, body)
}

/// A pre-vote probe for `term`, the term the sender would campaign in.
pub(crate) fn pre_vote_request(from: u64, to: u64, term: u64, last_log: LogId) -> Message {
    let body = MessageBody::VoteRequest {
        last_log,
        pre_vote: true,
        leader_transfer: false,
    };
    msg(from, to, term, body)
}

pub(crate) fn vote_response(
    from: u64,
    to: u64,
    term: u64,
    granted: bool,
    pre_vote: bool,
) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::VoteResponse { granted, pre_vote },
    )
}

/// An AppendEntries after `prev` carrying entries of the given terms.
pub(crate) fn append(
    from: u64,
    to: u64,
    term: u64,
    prev: LogId,
    entry_terms: &[u64],
    commit: u64,
) -> Message {
    let body = MessageBody::AppendEntries {
        prev,
        entries: entries_from(prev.index.0 + 1, entry_terms).into(),
        commit: Index(commit),
    };
    msg(from, to, term, body)
}

pub(crate) fn append_response(from: u64, to: u64, term: u64, outcome: AppendOutcome) -> Message {
    msg(from, to, term, MessageBody::AppendResponse { outcome })
}

pub(crate) fn accepted(from: u64, to: u64, term: u64, match_index: u64) -> Message {
    let outcome = AppendOutcome::Accepted {
        match_index: Index(match_index),
    };
    append_response(from, to, term, outcome)
}

pub(crate) fn heartbeat(from: u64, to: u64, term: u64, commit: u64, read_round: u64) -> Message {
    let body = MessageBody::Heartbeat {
        commit: Index(commit),
        read_round,
    };
    msg(from, to, term, body)
}

pub(crate) fn heartbeat_response(from: u64, to: u64, term: u64, read_round: u64) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::HeartbeatResponse {
            read_round,
            writes_pending: false,
        },
    )
}
