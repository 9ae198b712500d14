//! [`WriteViolation`]: what the write contract refuses, and how it reads.

use core::fmt;

use crate::types::{Index, LogId, NodeId, Term};

/// A write, a snapshot or a restored state that the contract of [`Write`](crate::Write) forbids (see the
/// [module documentation](super) for the rules and why the core keeps them).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum WriteViolation {
    /// A hard state with a lower term than the one recorded.
    TermGoesBackwards {
        /// The term recorded.
        held: Term,
        /// The term written.
        written: Term,
    },
    /// A hard state that changes the vote recorded in its term.
    VoteChanged {
        /// The term.
        term: Term,
        /// The vote recorded.
        held: NodeId,
        /// The vote written.
        written: Option<NodeId>,
    },
    /// A truncation at or below the snapshot's index: it would delete committed entries.
    TruncatesSnapshot {
        /// The truncation's first index.
        from: Index,
        /// The latest snapshot's index.
        snapshot: Index,
    },
    /// A snapshot chunk that does not continue the snapshot being received.
    ChunkOutOfOrder {
        /// The chunk's snapshot.
        snapshot: LogId,
        /// The chunk's offset.
        offset: u64,
        /// The bytes of that snapshot received so far (`None`: it is not being received).
        received: Option<u64>,
    },
    /// A snapshot older than the latest one.
    SnapshotOlder {
        /// The snapshot written.
        snapshot: LogId,
        /// The latest snapshot's index.
        latest: Index,
    },
    /// A snapshot whose id contradicts the log: at the latest snapshot's index with another
    /// term, or inside the log, keeping entries after it, with another term than the entry at
    /// its index.
    SnapshotConflicts {
        /// The snapshot written.
        snapshot: LogId,
        /// The term the log holds at the snapshot's index.
        log_term: Term,
    },
    /// A snapshot id with index 0 and a term other than 0, or the reverse.
    SnapshotIdInconsistent {
        /// The snapshot's id.
        snapshot: LogId,
    },
    /// A snapshot of a later term than the hard state's.
    SnapshotAheadOfTerm {
        /// The snapshot.
        snapshot: LogId,
        /// The hard state's term.
        term: Term,
    },
    /// An entry whose index is not one past the log's last.
    EntriesNotContiguous {
        /// The log's last index before the entry.
        last: Index,
        /// The entry's index.
        found: Index,
    },
    /// An entry of a lower term than the entry (or snapshot) before it.
    TermsDecrease {
        /// The entry.
        entry: LogId,
        /// The term before it.
        prev: Term,
    },
    /// An entry of a later term than the hard state's.
    EntryAheadOfTerm {
        /// The entry.
        entry: LogId,
        /// The hard state's term.
        term: Term,
    },
}

impl WriteViolation {
    /// A short description without the numbers, for error types that carry a static reason.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::TermGoesBackwards { .. } => "hard state term goes backwards",
            Self::VoteChanged { .. } => "vote changed within a term",
            Self::TruncatesSnapshot { .. } => "truncation reaches into the snapshot",
            Self::ChunkOutOfOrder { .. } => "snapshot chunk out of order",
            Self::SnapshotOlder { .. } => "snapshot older than the latest one",
            Self::SnapshotConflicts { .. } => "snapshot contradicts the log",
            Self::SnapshotIdInconsistent { .. } => "snapshot id with index 0 xor term 0",
            Self::SnapshotAheadOfTerm { .. } => "snapshot term newer than the hard state's",
            Self::EntriesNotContiguous { .. } => "entries not contiguous with the log",
            Self::TermsDecrease { .. } => "entry terms go backwards",
            Self::EntryAheadOfTerm { .. } => "entry term newer than the hard state's",
        }
    }
}

impl fmt::Display for WriteViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TermGoesBackwards { held, written } => write!(
                f,
                "the hard state's term {written} is older than the term {held} already recorded"
            ),
            Self::VoteChanged {
                term,
                held,
                written: Some(w),
            } => write!(
                f,
                "the vote in term {term} changes from node {held} to node {w}: a node votes once \
                 per term"
            ),
            Self::VoteChanged {
                term,
                held,
                written: None,
            } => write!(
                f,
                "the vote for node {held} in term {term} is dropped: a node votes once per term"
            ),
            Self::TruncatesSnapshot { from, snapshot } => write!(
                f,
                "the truncation from index {from} reaches into the snapshot at index {snapshot}, \
                 whose entries are committed"
            ),
            Self::ChunkOutOfOrder {
                snapshot,
                offset,
                received: Some(r),
            } => write!(
                f,
                "a chunk at offset {offset} of the snapshot at index {} term {}, whose bytes so \
                 far end at offset {r}",
                snapshot.index, snapshot.term
            ),
            Self::ChunkOutOfOrder {
                snapshot,
                offset,
                received: None,
            } => write!(
                f,
                "a chunk at offset {offset} of the snapshot at index {} term {}, which is not \
                 being received (a snapshot starts at offset 0)",
                snapshot.index, snapshot.term
            ),
            Self::SnapshotOlder { snapshot, latest } => write!(
                f,
                "the snapshot at index {} is older than the latest one, at index {latest}",
                snapshot.index
            ),
            Self::SnapshotConflicts { snapshot, log_term } => write!(
                f,
                "the snapshot at index {} has term {}, but the log holds term {log_term} there",
                snapshot.index, snapshot.term
            ),
            Self::SnapshotIdInconsistent { snapshot } => write!(
                f,
                "the snapshot id (index {}, term {}) has index 0 or term 0 but not both",
                snapshot.index, snapshot.term
            ),
            Self::SnapshotAheadOfTerm { snapshot, term } => write!(
                f,
                "the snapshot at index {} has term {}, later than the hard state's term {term}",
                snapshot.index, snapshot.term
            ),
            Self::EntriesNotContiguous { last, found } => write!(
                f,
                "an entry at index {found} does not follow the log's last index {last}"
            ),
            Self::TermsDecrease { entry, prev } => write!(
                f,
                "the entry at index {} has term {}, lower than the term {prev} before it",
                entry.index, entry.term
            ),
            Self::EntryAheadOfTerm { entry, term } => write!(
                f,
                "the entry at index {} has term {}, later than the hard state's term {term}",
                entry.index, entry.term
            ),
        }
    }
}

impl core::error::Error for WriteViolation {}
