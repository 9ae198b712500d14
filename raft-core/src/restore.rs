//! What a node is built from: the state the adapter persisted, checked for consistency.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::RestoreError;
use crate::membership::Membership;
use crate::types::{Entry, EntryKind, HardState, Index, LogId};

/// The metadata of a snapshot: the last entry it covers and the configuration at that entry.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log entry folded into the snapshot (`LogId::ZERO` for "no snapshot yet").
    pub last: LogId,
    /// The cluster configuration as of `last`.
    pub membership: Membership,
}

/// The durable state a node restarts from.
///
/// A brand-new cluster starts from [`Restored::initial`], so the restart path is the only path and
/// is always exercised.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Restored {
    /// The last durable term and vote.
    pub hard_state: HardState,
    /// The latest durable snapshot's metadata (index 0 if none was ever taken).
    pub snapshot: SnapshotMeta,
    /// The durable log entries after the snapshot, in order.
    pub entries: Vec<Entry>,
    /// The index the state machine has applied (at least the snapshot's). The node hands out
    /// entries for applying from the one after it.
    pub applied: Index,
}

impl Restored {
    /// The state of a node in a cluster that has never run: no log, no vote, this membership.
    #[must_use]
    pub fn initial(membership: Membership) -> Self {
        Self {
            hard_state: HardState::default(),
            snapshot: SnapshotMeta {
                last: LogId::ZERO,
                membership,
            },
            entries: Vec::new(),
            applied: Index::ZERO,
        }
    }

    /// Checks every cross-field rule and returns the entries as the log's deque.
    pub(crate) fn validate(self) -> Result<Validated, RestoreError> {
        let Self {
            hard_state,
            snapshot,
            entries,
            applied,
        } = self;
        let base = snapshot.last;
        if (base.index == Index::ZERO) != (base.term.0 == 0) {
            return Err(RestoreError::SnapshotIdInconsistent);
        }
        let mut prev = base;
        for e in &entries {
            let expected = prev
                .index
                .next()
                .ok_or(RestoreError::EntriesNotContiguous {
                    expected: prev.index,
                    found: e.id.index,
                })?;
            if e.id.index != expected {
                return Err(RestoreError::EntriesNotContiguous {
                    expected,
                    found: e.id.index,
                });
            }
            if e.id.term < prev.term {
                return Err(RestoreError::TermsDecrease { at: e.id.index });
            }
            if e.kind == EntryKind::Config && Membership::decode(&e.data).is_err() {
                return Err(RestoreError::BadConfigEntry { at: e.id.index });
            }
            prev = e.id;
        }
        if hard_state.term < prev.term {
            return Err(RestoreError::TermBehindLog);
        }
        if applied < base.index {
            return Err(RestoreError::AppliedBeforeSnapshot);
        }
        if applied > prev.index {
            return Err(RestoreError::AppliedPastLog);
        }
        Ok(Validated {
            hard_state,
            snapshot,
            entries: VecDeque::from(entries),
            applied,
        })
    }
}

pub(crate) struct Validated {
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: SnapshotMeta,
    pub(crate) entries: VecDeque<Entry>,
    pub(crate) applied: Index,
}
