//! A node on its own thread: [`RaftNode`] drives a [`raft_core::Node`] over a
//! [`Storage`](crate::storage::Storage), a [`Transport`](crate::transport::Transport) and a
//! [`StateMachine`](crate::state_machine::StateMachine), and serves proposals and linearizable
//! reads.
//!
//! - [`RaftNode`] is the handle: requests go in with a [`Completion`](crate::client::Completion)
//!   that the node calls back (`propose_with`, `read_with`, ...), or block (`propose`, `read`,
//!   ...), which is the same thing waiting on a channel.
//! - The node thread (`driver`) owns the core and the state machine, and shares the storage with
//!   the storage stage's thread, which appends and syncs, and with the snapshot thread, which
//!   writes a snapshot the node takes (snapshots received from the leader are loaded by the
//!   node thread).
//!
//! # The loop
//!
//! The node thread waits on its [`Inbox`](crate::transport::Inbox) until the next input, the
//! next timer (from [`Node::ticks_until_timer`](raft_core::Node::ticks_until_timer); it never
//! polls) or the next request deadline. Then it steps every input waiting (messages from peers,
//! client requests) and the ticks that have passed, and does one round of outputs:
//!
//! 1. sends every message (the core holds back anything that depends on unsynced state, so
//!    sending before the disk write is safe); a peer the transport cannot reach is reported
//!    with [`Input::Unreachable`](raft_core::Input::Unreachable);
//! 2. hands every write to the storage stage, a thread of the node's own that appends them,
//!    syncs once for all the writes queued since its last sync (group commit) and posts the last
//!    id back to the inbox, where the node thread steps it as
//!    [`Input::Persisted`](raft_core::Input::Persisted). The node thread does not wait for the
//!    sync: it goes on stepping messages, proposals and reads (a leader commits on its
//!    followers' acknowledgements while its own sync is in flight, thesis §10.2.1). The core holds
//!    back every response that vouches for an unsynced write, so nothing is acknowledged before
//!    it is durable. ([`RuntimeConfig::storage_stage`] `false` appends and syncs on the node
//!    thread instead.)
//! 3. applies committed entries ([`EntryKind::Normal`](raft_core::EntryKind::Normal) ones go to
//!    the state machine; no-ops and anything else the core adds are skipped), or loads a
//!    snapshot installed from the leader, and steps [`Input::Applied`](raft_core::Input::Applied);
//!    completes the proposals and reads this made ready;
//! 4. answers the leader's snapshot chunk requests from storage;
//! 5. takes a snapshot when the core suggests one
//!    ([`Event::SnapshotSuggested`](raft_core::Event::SnapshotSuggested)): takes the state
//!    machine's view at the applied index
//!    ([`StateMachine::snapshot_source`](crate::state_machine::StateMachine::snapshot_source))
//!    and hands it to a thread that streams it into storage while this one goes on; when it is
//!    durable the thread posts to the inbox and the node thread steps
//!    [`Input::SnapshotTaken`](raft_core::Input::SnapshotTaken). One at a time. A state machine
//!    without a view is written on the node thread, which handles nothing else meanwhile.
//!
//! It repeats the round until the core has nothing more to say, then waits again.
//!
//! # Every request completes, once
//!
//! Each proposal and read has a deadline (the request timeout, or its own). The node completes
//! it exactly once: with the result, with a [`RequestError`](crate::client::RequestError)
//! (`NotLeader`, `LeaderChanged`, `Refused`), when its deadline passes (a proposal with
//! `Uncertain(TimedOut)`: it is in the log and may still commit; a read with `Timeout`), or
//! when the node stops (a proposal in the log with `Uncertain(NodeStopped)`, anything not yet
//! stepped with `Stopped`).
//!
//! # Failures
//!
//! A storage error (on the node thread, the storage stage's or the snapshot thread's, including
//! a failed write to the snapshot writer) is fatal: the thread stops, every request waiting is
//! completed as above, and every later call gets [`NodeStopped`] naming the cause. So is a
//! panic of the state machine, on any of them. A state machine's snapshot view that fails on
//! its own (an error of its own, not of the writer) only drops that snapshot: it is logged and
//! tried again once another [`Config::snapshot_log_entries`] entries are applied. Nonsense
//! from the network is rejected by the core and counted; the node carries on.

mod driver;
mod handle;
mod snapshot_task;
mod storage_stage;

use std::time::Duration;

use raft_core::{Config, NodeId};

pub use crate::error::{NodeError, NodeStopped};
pub use handle::{Observed, Proposal, RaftNode};

/// How a node runs: the core's [`Config`], the length of a tick and the default time requests
/// wait.
///
/// Snapshots are written off the node thread for a state machine that gives a view
/// ([`StateMachine::snapshot_source`](crate::state_machine::StateMachine::snapshot_source), as
/// [`KvStore`](crate::kv::KvStore) does): the node thread only takes the view. For one that
/// does not, the node thread streams the whole state into storage before it steps anything
/// else: no ticks, messages or requests are handled meanwhile, so a large state can hold up
/// heartbeats long enough for followers to elect another leader (and callers may see
/// timeouts); size the election timeout (and [`Config::snapshot_log_entries`], how often
/// snapshots come) with the time a snapshot takes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// The core's configuration (timeouts in ticks). The defaults with a 10 ms tick: heartbeat
    /// every 20 ms, election timeout 100–200 ms.
    pub raft: Config,
    /// What one tick is worth. Default 10 ms.
    pub tick: Duration,
    /// How long a request may take before the node gives up on it (see the module docs).
    /// Default 5 s.
    pub request_timeout: Duration,
    /// Append and sync on a storage thread of its own (the storage stage), so that the node
    /// thread goes on stepping messages, proposals and reads while a sync is in flight. Writes
    /// are still acknowledged only once durable. Default `true`; `false` appends and syncs on
    /// the node thread, which then handles nothing else during each fsync.
    pub storage_stage: bool,
}

impl RuntimeConfig {
    /// The defaults for node `id`.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        Self {
            raft: Config::new(id),
            tick: Duration::from_millis(10),
            request_timeout: Duration::from_secs(5),
            storage_stage: true,
        }
    }
}
