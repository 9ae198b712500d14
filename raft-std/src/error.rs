//! Why a node stopped: [`NodeError`], and [`NodeStopped`], what callers of a stopped node get.

use std::fmt;
use std::io;
use std::sync::Arc;

use raft_core::{LogId, RestoreError, StepError};

use crate::storage::StorageError;

/// Why a node stopped, or could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// Storage failed (fatal: the node does not retry).
    Storage(StorageError),
    /// The state machine could not be snapshotted or restored.
    StateMachine(io::Error),
    /// Storage has no snapshot where the node needs one.
    SnapshotMissing {
        /// The snapshot the node needed.
        expected: LogId,
    },
    /// The persisted state is inconsistent, or the configuration invalid.
    Restore(RestoreError),
    /// The runtime broke the core's contract (a bug in this crate).
    Core(StepError),
    /// The node thread could not be started.
    Spawn(io::Error),
    /// The node thread panicked (in the state machine or a completion callback, most likely).
    Panicked(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "storage failed: {e}"),
            Self::StateMachine(e) => write!(f, "state machine snapshot failed: {e}"),
            Self::SnapshotMissing { expected } => {
                write!(f, "storage has no snapshot at {expected}")
            }
            Self::Restore(e) => write!(f, "cannot restore the node: {e}"),
            Self::Core(e) => write!(f, "runtime bug: {e}"),
            Self::Spawn(e) => write!(f, "cannot start the node thread: {e}"),
            Self::Panicked(what) => write!(f, "the node thread panicked: {what}"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Storage(e) => Some(e),
            Self::StateMachine(e) | Self::Spawn(e) => Some(e),
            Self::Restore(e) => Some(e),
            Self::Core(e) => Some(e),
            Self::SnapshotMissing { .. } | Self::Panicked(_) => None,
        }
    }
}

impl From<StorageError> for NodeError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

/// The node is not running: shut down, or stopped by `cause`.
#[derive(Clone, Debug)]
pub struct NodeStopped {
    /// The error that stopped it; `None` after a shutdown.
    pub cause: Option<Arc<NodeError>>,
}

impl fmt::Display for NodeStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "node stopped: {cause}"),
            None => f.write_str("node was shut down"),
        }
    }
}

impl std::error::Error for NodeStopped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
