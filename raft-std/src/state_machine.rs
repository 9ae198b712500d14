//! The application a replicated log drives.

use std::io;

use raft_core::Index;

/// A deterministic application that committed commands are applied to, in log order, on every
/// node.
///
/// Every node applies the same commands in the same order and MUST end in the same state, so
/// `apply` may depend only on the state and the command: no clocks, no randomness, no I/O.
/// Commands come from clients over the network: malformed bytes MUST produce an error response,
/// never a panic.
///
/// # Snapshots
///
/// When the core suggests a snapshot, the runtime asks [`Self::snapshot_source`] for a view of
/// the state at the applied index, on the node thread, and streams it into storage on a thread
/// of its own while the node thread goes on stepping messages and applying entries. Once the
/// snapshot is durable the node compacts its log. A view MUST be:
///
/// - consistent at the applied index: what [`Self::snapshot`] would write at the moment the
///   view is taken, whatever is applied after;
/// - not affected by later applies (a copy, or a persistent / copy-on-write structure shared
///   with the live state), and cheap to take: the node thread waits for it;
/// - `Send + 'static`: it is moved to the snapshot thread and may outlive the call.
///
/// The default has no view: the runtime then calls [`Self::snapshot`] on the node thread,
/// which handles nothing else until the whole state is written (no heartbeats: a large state
/// can cost a leader change). Fine for a small state; implement [`Self::snapshot_source`] for a
/// large one.
pub trait StateMachine: Send + 'static {
    /// What applying a command returns to the client that proposed it.
    type Response: Send + 'static;
    /// A read-only request, served once a linearizable read point has been applied.
    type Query: Send + 'static;
    /// What a query returns.
    type QueryResponse: Send + 'static;

    /// Applies one committed command at `index`.
    fn apply(&mut self, index: Index, command: &[u8]) -> Self::Response;

    /// Answers a read-only query from the current state.
    fn query(&self, query: &Self::Query) -> Self::QueryResponse;

    /// Writes the whole state to `out`, streaming: a large state is never held twice in memory.
    ///
    /// # Errors
    ///
    /// Only those of `out`.
    fn snapshot(&self, out: &mut dyn io::Write) -> io::Result<()>;

    /// A view of the current state for a snapshot written off the node thread (see
    /// [Snapshots](#snapshots) for what it must be); its
    /// [`write_to`](SnapshotSource::write_to) writes what [`Self::snapshot`] would write now.
    /// `None` (the default): the runtime calls [`Self::snapshot`] on the node thread.
    fn snapshot_source(&self) -> Option<Box<dyn SnapshotSource>> {
        None
    }

    /// Replaces the whole state with the one `input` holds (written by [`Self::snapshot`]).
    ///
    /// # Errors
    ///
    /// Those of `input`, and [`io::ErrorKind::InvalidData`] for bytes that are not a snapshot;
    /// the state is then unspecified and the caller must not serve from it.
    fn restore(&mut self, input: &mut dyn io::Read) -> io::Result<()>;
}

/// A consistent view of a state machine's state at one applied index, written out later on
/// another thread ([`StateMachine::snapshot_source`]).
///
/// A closure `FnOnce(&mut dyn io::Write) -> io::Result<()> + Send + 'static` is one.
pub trait SnapshotSource: Send + 'static {
    /// Streams the state, in the format [`StateMachine::restore`] reads, to `out`.
    ///
    /// The runtime stops a write whose node is stopping by failing `out`'s next call: a write
    /// that waits long without writing holds up nothing, but keeps its view in memory until it
    /// returns.
    ///
    /// # Errors
    ///
    /// Those of `out`, and any of the view's own: the runtime then drops the snapshot (the
    /// node goes on, and tries again later), unless `out` failed, which is a storage failure
    /// and stops the node.
    fn write_to(self: Box<Self>, out: &mut dyn io::Write) -> io::Result<()>;
}

impl<F> SnapshotSource for F
where
    F: FnOnce(&mut dyn io::Write) -> io::Result<()> + Send + 'static,
{
    fn write_to(self: Box<Self>, out: &mut dyn io::Write) -> io::Result<()> {
        (*self)(out)
    }
}
