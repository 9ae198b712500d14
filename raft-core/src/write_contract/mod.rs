//! The contract of [`Write`], executable: what a write may do to a node's durable state, and what
//! it changes there.
//!
//! A [`DurableShape`] holds the shape of one node's durable state (the hard state, the latest
//! snapshot's id, the log's last index and the terms of the entries after the snapshot, and the
//! snapshot being received, if any) but none of its bytes. [`DurableShape::apply`] checks a
//! write against it and either refuses it with a [`WriteViolation`], changing nothing, or
//! returns the [`WriteEffect`] a store carries out (what to truncate, which snapshot becomes the
//! latest, the new last index). Every store in this workspace goes through it, so they cannot
//! disagree on what a write means.
//!
//! The rules, and why the core never breaks them:
//!
//! - **The term never goes backwards, and a vote is cast once per term**: a hard state with a
//!   lower term, or the same term and another vote (or none) when one was recorded, is refused.
//!   The core records a term only when it moves forward and votes once per term (Raft §5.2).
//! - **A truncation stays above the snapshot**: the entries a snapshot covers are committed, and
//!   the core truncates only conflicting entries, which are above its commit index (Figure 2,
//!   AppendEntries rule 3), itself at or above every snapshot it holds. A truncation past the
//!   log's end removes nothing and is allowed (the core folds writes together and may name an
//!   index it has not persisted yet).
//! - **Snapshot chunks arrive in order**: a chunk at offset 0 starts a snapshot (any partial one
//!   is dropped); any other chunk continues the snapshot being received, with the same metadata,
//!   at the offset where the bytes so far end.
//! - **A completed snapshot is not older than the one held**. The core installs a received
//!   snapshot only above its commit index, which is at least the index of every snapshot it
//!   holds (taken or received), so it never completes an older one; a store that accepted one
//!   would move its log's start backwards. A snapshot at the same index must have the same
//!   term, and a snapshot inside the log that keeps entries after it must agree with the log at
//!   its index (otherwise the entries after it belong to another history: the core truncates
//!   them in the same write).
//! - **Entries continue the log**: each entry's index is one past the log's last (after the
//!   write's truncation and snapshot), and the terms never go down along the log.
//! - **Nothing in the log is newer than the hard state**: no entry's term and no snapshot's term
//!   is above the hard state's term (the core records a term before it appends an entry of it).
//!   [`Node::restore`](crate::Node::restore) refuses a state that breaks this or the rule
//!   before ([`RestoreError::TermBehindLog`](crate::RestoreError::TermBehindLog),
//!   [`RestoreError::TermsDecrease`](crate::RestoreError::TermsDecrease)): a store that took
//!   such a write would hold a node that cannot start again.
//!
//! A violation is always the writer's fault, never damage: a store refuses the write and keeps
//! what it had. A store that reads its own records back (a write-ahead log at recovery) and
//! finds one that breaks the contract has found damage, and refuses to open.

use smallvec::SmallVec;

use crate::output::{SnapshotPart, Write};
use crate::restore::SnapshotMeta;
use crate::types::{Entry, HardState, Index, LogId, Term};

mod violation;

pub use violation::WriteViolation;

/// The parts of a write, borrowed: what [`DurableShape::check`] reads.
///
/// Every `&Write` converts into one. A store that replays its own records, which carry no
/// [`WriteId`](crate::WriteId), builds one from the parts it recorded.
#[derive(Clone, Copy, Debug)]
pub struct WriteParts<'a> {
    /// A new term and vote.
    pub hard_state: Option<HardState>,
    /// Delete every entry at this index and above.
    pub truncate_from: Option<Index>,
    /// A chunk of a snapshot received from the leader.
    pub snapshot: Option<&'a SnapshotPart>,
    /// Entries to append.
    pub entries: &'a [Entry],
}

impl<'a> From<&'a Write> for WriteParts<'a> {
    fn from(w: &'a Write) -> Self {
        Self {
            hard_state: w.hard_state,
            truncate_from: w.truncate_from,
            snapshot: w.snapshot.as_deref(),
            entries: &w.entries,
        }
    }
}

/// What an accepted write changes, in the order a store makes it durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WriteEffect {
    /// The hard state to record (the write's), if it has one.
    pub hard_state: Option<HardState>,
    /// Delete every entry from this index on. `None` if the write deletes no entry (it has no
    /// truncation, or one past the log's end).
    pub truncate_from: Option<Index>,
    /// The write completes this received snapshot: it becomes the latest, and every entry up to
    /// its index is deleted (the entries after it stay).
    pub installs: Option<LogId>,
    /// The log's last index once the write is made durable (the snapshot's if no entry follows
    /// it).
    pub last_index: Index,
}

/// A snapshot being received: its metadata and the bytes stored so far.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Incoming {
    meta: SnapshotMeta,
    received: u64,
}

/// The shape of one node's durable state, without its bytes: what [`Write`]s are checked
/// against. See the [module documentation](self).
///
/// A store keeps one next to its data and passes every write through [`Self::apply`] before
/// storing it, and every snapshot the node takes through [`Self::install_snapshot`].
///
/// It holds the terms of the log compactly (one pair per run of entries of the same term), so it
/// costs next to nothing beside a log of any length.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DurableShape {
    hard_state: HardState,
    /// The latest snapshot's index.
    snapshot: Index,
    /// Its term (`None`: not known, see [`Self::resumed`]).
    snapshot_term: Option<Term>,
    /// The log's last index (the snapshot's if the log after it is empty).
    last: Index,
    /// The terms of the entries from here to `last` are known (in `runs`); those between the
    /// snapshot and here are not (see [`Self::resumed`]). Between `snapshot + 1` and `last + 1`.
    known_from: Index,
    /// `(first index, term)` of each run of entries of one term from `known_from` to `last`, in
    /// order; the first starts at `known_from` (empty if `known_from > last`).
    runs: SmallVec<[(Index, Term); 4]>,
    /// The snapshot being received. Not durable: see [`Self::discard_incoming`].
    incoming: Option<Incoming>,
}

impl Default for DurableShape {
    /// A brand-new node's: no term, no vote, no snapshot, an empty log.
    fn default() -> Self {
        Self {
            hard_state: HardState::default(),
            snapshot: Index::ZERO,
            snapshot_term: Some(Term::ZERO),
            last: Index::ZERO,
            known_from: Index(1),
            runs: SmallVec::new(),
            incoming: None,
        }
    }
}

/// `index + 1`, saturating (an index at the top of the range has no successor to name).
const fn after(index: Index) -> Index {
    Index(index.0.saturating_add(1))
}

impl DurableShape {
    /// The shape of a durable state read back at start: its hard state, its latest snapshot's id
    /// (`LogId::ZERO` for none) and the ids of the log entries after the snapshot, in order.
    ///
    /// # Errors
    ///
    /// The state breaks the contract (entries not contiguous, terms that go down, a term past
    /// the hard state's, an inconsistent snapshot id): for a store, its data is damaged.
    pub fn restored(
        hard_state: HardState,
        snapshot: LogId,
        entries: impl IntoIterator<Item = LogId>,
    ) -> Result<Self, WriteViolation> {
        if (snapshot.index == Index::ZERO) != (snapshot.term == Term::ZERO) {
            return Err(WriteViolation::SnapshotIdInconsistent { snapshot });
        }
        if snapshot.term > hard_state.term {
            return Err(WriteViolation::SnapshotAheadOfTerm {
                snapshot,
                term: hard_state.term,
            });
        }
        let mut shape = Self {
            hard_state,
            snapshot: snapshot.index,
            snapshot_term: Some(snapshot.term),
            last: snapshot.index,
            known_from: after(snapshot.index),
            runs: SmallVec::new(),
            incoming: None,
        };
        for id in entries {
            shape.check_entry(id, shape.last, shape.last_term(), hard_state.term)?;
            shape.push(id);
        }
        Ok(shape)
    }

    /// The shape of a durable state known only by a summary: its hard state, the latest
    /// snapshot's index and the log's last index (raised to the snapshot's if lower), as a
    /// write-ahead log's segment header records them. The terms of the snapshot and of the
    /// entries up to `last` are not known: the checks that need them are skipped until those
    /// entries are truncated or covered by a snapshot. Entries appended from here on are checked
    /// in full.
    #[must_use]
    pub fn resumed(hard_state: HardState, snapshot: Index, last: Index) -> Self {
        let last = last.max(snapshot);
        Self {
            hard_state,
            snapshot,
            snapshot_term: (snapshot == Index::ZERO).then_some(Term::ZERO),
            last,
            known_from: after(last),
            runs: SmallVec::new(),
            incoming: None,
        }
    }

    /// The recorded term and vote.
    #[must_use]
    pub const fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The latest snapshot's index (0 for none).
    #[must_use]
    pub const fn snapshot_index(&self) -> Index {
        self.snapshot
    }

    /// The log's last index (the snapshot's if no entry follows it).
    #[must_use]
    pub const fn last_index(&self) -> Index {
        self.last
    }

    /// The term of the entry at `index` (the snapshot's at its index), if the log holds it and
    /// its term is known.
    #[must_use]
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot {
            return self.snapshot_term;
        }
        // `known_from` is above the snapshot, so this also refuses the indexes below it.
        if index > self.last || index < self.known_from {
            return None;
        }
        let pos = self.runs.partition_point(|r| r.0 <= index);
        pos.checked_sub(1)
            .and_then(|p| self.runs.get(p))
            .map(|r| r.1)
    }

    /// The term of the log's last entry (the snapshot's if no entry follows it), if known.
    #[must_use]
    pub fn last_term(&self) -> Option<Term> {
        self.term_at(self.last)
    }

    /// The snapshot being received and how many of its bytes are stored, if one is.
    #[must_use]
    pub fn receiving(&self) -> Option<(&SnapshotMeta, u64)> {
        self.incoming.as_ref().map(|i| (&i.meta, i.received))
    }

    /// The process died: a snapshot being received (staged in process memory or a temporary
    /// file) is lost with it, and the next chunk must start at offset 0.
    pub fn discard_incoming(&mut self) {
        self.incoming = None;
    }

    /// Checks a write (a `&Write`, or the [`WriteParts`] of a record) without changing anything,
    /// and says what it would change.
    ///
    /// # Errors
    ///
    /// The first rule the write breaks.
    pub fn check<'a>(
        &self,
        write: impl Into<WriteParts<'a>>,
    ) -> Result<WriteEffect, WriteViolation> {
        let w = write.into();
        // 1. The hard state.
        let term = match w.hard_state {
            Some(hs) => {
                self.check_hard_state(hs)?;
                hs.term
            }
            None => self.hard_state.term,
        };
        // 2. The truncation.
        let mut last = self.last;
        let mut truncate_from = None;
        if let Some(from) = w.truncate_from {
            if from <= self.snapshot {
                return Err(WriteViolation::TruncatesSnapshot {
                    from,
                    snapshot: self.snapshot,
                });
            }
            if from <= last {
                last = from.prev();
                truncate_from = Some(from);
            }
        }
        // Every index up to `last` is unchanged so far: `term_at` still answers for them.
        let mut last_term = self.term_at(last);
        // 3. The snapshot chunk.
        let mut installs = None;
        if let Some(part) = w.snapshot {
            self.check_chunk(part)?;
            if part.done {
                let id = part.meta.last;
                self.check_snapshot_at(id, term, last)?;
                if id.index >= last {
                    last = id.index;
                    last_term = Some(id.term);
                }
                installs = Some(id);
            }
        }
        // 4. The entries.
        for e in w.entries {
            self.check_entry(e.id, last, last_term, term)?;
            last = e.id.index;
            last_term = Some(e.id.term);
        }
        Ok(WriteEffect {
            hard_state: w.hard_state,
            truncate_from,
            installs,
            last_index: last,
        })
    }

    /// Checks a write and, if it keeps the contract, records what it changes. A refused write
    /// changes nothing.
    ///
    /// # Errors
    ///
    /// The first rule the write breaks.
    pub fn apply<'a>(
        &mut self,
        write: impl Into<WriteParts<'a>>,
    ) -> Result<WriteEffect, WriteViolation> {
        let w = write.into();
        let effect = self.check(w)?;
        if let Some(hs) = w.hard_state {
            self.hard_state = hs;
        }
        if let Some(from) = effect.truncate_from {
            self.truncate_to(from.prev());
        }
        if let Some(part) = w.snapshot {
            let len = part.data.len() as u64;
            if part.done {
                self.incoming = None;
            } else if part.offset == 0 {
                self.incoming = Some(Incoming {
                    meta: part.meta.clone(),
                    received: len,
                });
            } else if let Some(inc) = &mut self.incoming {
                inc.received = inc.received.saturating_add(len);
            }
        }
        if let Some(id) = effect.installs {
            self.install(id);
        }
        for e in w.entries {
            self.push(e.id);
        }
        Ok(effect)
    }

    /// Checks, without changing anything, that a snapshot the node took itself (or one a log
    /// records as installed) may become the latest.
    ///
    /// # Errors
    ///
    /// The snapshot is older than the latest, contradicts the log, has an inconsistent id or a
    /// term past the hard state's.
    pub fn check_snapshot(&self, snapshot: LogId) -> Result<(), WriteViolation> {
        self.check_snapshot_at(snapshot, self.hard_state.term, self.last)
    }

    /// Makes a snapshot the node took itself (or one a log records as installed) the latest:
    /// the entries up to its index go, the ones after it stay. A snapshot at the latest one's
    /// index (and term) changes nothing. A store that drops a snapshot finished after a newer
    /// one became the latest checks that before: this refuses it.
    ///
    /// # Errors
    ///
    /// As [`Self::check_snapshot`]; nothing changes.
    pub fn install_snapshot(&mut self, snapshot: LogId) -> Result<(), WriteViolation> {
        self.check_snapshot(snapshot)?;
        self.install(snapshot);
        Ok(())
    }

    fn check_hard_state(&self, hs: HardState) -> Result<(), WriteViolation> {
        let held = self.hard_state;
        if hs.term < held.term {
            return Err(WriteViolation::TermGoesBackwards {
                held: held.term,
                written: hs.term,
            });
        }
        // (No let chains here: raft-core builds at rust-version 1.87.)
        if let Some(vote) = held.vote {
            if hs.term == held.term && hs.vote != Some(vote) {
                return Err(WriteViolation::VoteChanged {
                    term: hs.term,
                    held: vote,
                    written: hs.vote,
                });
            }
        }
        Ok(())
    }

    fn check_chunk(&self, part: &SnapshotPart) -> Result<(), WriteViolation> {
        if part.offset == 0 {
            return Ok(());
        }
        let received = self
            .incoming
            .as_ref()
            .filter(|inc| inc.meta == part.meta)
            .map(|inc| inc.received);
        if received == Some(part.offset) {
            return Ok(());
        }
        Err(WriteViolation::ChunkOutOfOrder {
            snapshot: part.meta.last,
            offset: part.offset,
            received,
        })
    }

    /// Whether `id` may become the latest snapshot, with the hard state's term `term` and the
    /// log ending at `last` (no higher than `self.last`).
    fn check_snapshot_at(&self, id: LogId, term: Term, last: Index) -> Result<(), WriteViolation> {
        if (id.index == Index::ZERO) != (id.term == Term::ZERO) {
            return Err(WriteViolation::SnapshotIdInconsistent { snapshot: id });
        }
        if id.index < self.snapshot {
            return Err(WriteViolation::SnapshotOlder {
                snapshot: id,
                latest: self.snapshot,
            });
        }
        if id.term > term {
            return Err(WriteViolation::SnapshotAheadOfTerm { snapshot: id, term });
        }
        if id.index == self.snapshot || id.index < last {
            if let Some(log_term) = self.term_at(id.index).filter(|&t| t != id.term) {
                return Err(WriteViolation::SnapshotConflicts {
                    snapshot: id,
                    log_term,
                });
            }
        }
        Ok(())
    }

    /// Whether entry `id` may follow a log ending at `last` (of term `last_term`, if known),
    /// with the hard state's term `term`.
    fn check_entry(
        &self,
        id: LogId,
        last: Index,
        last_term: Option<Term>,
        term: Term,
    ) -> Result<(), WriteViolation> {
        if last.next() != Some(id.index) {
            return Err(WriteViolation::EntriesNotContiguous {
                last,
                found: id.index,
            });
        }
        if let Some(prev) = last_term.filter(|&prev| id.term < prev) {
            return Err(WriteViolation::TermsDecrease { entry: id, prev });
        }
        if id.term > term {
            return Err(WriteViolation::EntryAheadOfTerm { entry: id, term });
        }
        Ok(())
    }

    /// Deletes the entries after `last` (at least the snapshot's index).
    fn truncate_to(&mut self, last: Index) {
        self.last = last;
        self.runs.retain(|r| r.0 <= last);
        self.known_from = self.known_from.min(after(last));
    }

    /// Makes `id` the latest snapshot (checked).
    fn install(&mut self, id: LogId) {
        if id.index >= self.last {
            self.runs.clear();
            self.last = id.index;
            self.known_from = after(id.index);
        } else {
            let keep_from = after(id.index);
            if keep_from >= self.known_from {
                // The run holding `keep_from` now starts there; the ones before it go.
                let pos = self.runs.partition_point(|r| r.0 <= keep_from);
                if let Some(drop) = pos.checked_sub(1) {
                    self.runs.drain(..drop);
                }
                if let Some(first) = self.runs.first_mut() {
                    first.0 = keep_from;
                }
                self.known_from = keep_from;
            }
        }
        self.snapshot = id.index;
        self.snapshot_term = Some(id.term);
    }

    /// Appends entry `id` (checked).
    fn push(&mut self, id: LogId) {
        self.last = id.index;
        if self.runs.last().map(|r| r.1) != Some(id.term) {
            self.runs.push((id.index, id.term));
        }
    }
}

#[cfg(test)]
mod tests;
