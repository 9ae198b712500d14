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

    /// Replaces the whole state with the one `input` holds (written by [`Self::snapshot`]).
    ///
    /// # Errors
    ///
    /// Those of `input`, and [`io::ErrorKind::InvalidData`] for bytes that are not a snapshot;
    /// the state is then unspecified and the caller must not serve from it.
    fn restore(&mut self, input: &mut dyn io::Read) -> io::Result<()>;
}
