//! The in-memory log: the entries after the snapshot base, and how far they are durable.

use alloc::collections::VecDeque;

use crate::types::{Entry, Index, LogId, Term};

/// The log from the last snapshot onwards.
///
/// `entries[i]` has index `base.index + 1 + i`. `persisted` is the highest index up to which the
/// adapter's durable log is known to equal this one.
#[derive(Debug)]
pub(crate) struct RaftLog {
    base: LogId,
    entries: VecDeque<Entry>,
    persisted: Index,
}

impl RaftLog {
    /// A log restored from durable state: everything in it is durable.
    pub(crate) fn restored(base: LogId, entries: VecDeque<Entry>) -> Self {
        let persisted = Index(base.index.0 + entries.len() as u64);
        Self {
            base,
            entries,
            persisted,
        }
    }

    /// The id of the last entry (the snapshot base if the log is empty).
    pub(crate) fn last(&self) -> LogId {
        self.entries.back().map_or(self.base, |e| e.id)
    }

    pub(crate) fn last_index(&self) -> Index {
        self.last().index
    }

    /// The snapshot base: the last entry folded into a snapshot (0.0 for none).
    pub(crate) fn base(&self) -> LogId {
        self.base
    }

    /// The highest index durable and equal to this log.
    pub(crate) fn persisted(&self) -> Index {
        self.persisted
    }

    /// The last entry that is durable (and equal to this log): all a candidate may offer, since
    /// a crash can take the rest, and a restarted node campaigning for the same term would count
    /// the grants of the log it offered before.
    pub(crate) fn durable_last(&self) -> LogId {
        // At the base, `term_at` gives the base's term; below it (compacted), nothing.
        match self.term_at(self.persisted) {
            Some(term) => LogId {
                index: self.persisted,
                term,
            },
            None => self.base,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn offset(&self, index: Index) -> Option<usize> {
        let off = index.0.checked_sub(self.base.index.0)?.checked_sub(1)?;
        usize::try_from(off).ok()
    }

    /// The entry at `index`, if it is in memory.
    pub(crate) fn entry(&self, index: Index) -> Option<&Entry> {
        self.entries.get(self.offset(index)?)
    }

    /// The term of the entry at `index`: known for the snapshot base and the entries after it.
    pub(crate) fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.base.index {
            Some(self.base.term)
        } else {
            self.entry(index).map(|e| e.id.term)
        }
    }

    /// The entry at `index` (the snapshot's last entry at the base), if this log holds it.
    pub(crate) fn id_at(&self, index: Index) -> Option<LogId> {
        self.term_at(index).map(|term| LogId { term, index })
    }

    /// Whether this log holds `id`.
    pub(crate) fn matches(&self, id: LogId) -> bool {
        self.term_at(id.index) == Some(id.term)
    }

    /// Whether a candidate whose last entry is `last` is at least as up to date as this log
    /// (Raft §5.4.1).
    pub(crate) fn candidate_is_up_to_date(&self, last: LogId) -> bool {
        let mine = self.last();
        last.term > mine.term || (last.term == mine.term && last.index >= mine.index)
    }

    /// The last entry at or before `index` whose term is at most `term`: where a leader and a
    /// follower can next try to agree (the fast backtracking of Raft §5.3).
    pub(crate) fn last_at_or_before(&self, index: Index, term: Term) -> LogId {
        let mut i = index.min(self.last_index());
        while i > self.base.index {
            if let Some(t) = self.term_at(i) {
                if t <= term {
                    return LogId { term: t, index: i };
                }
            }
            i = i.prev();
        }
        self.base
    }

    /// Appends one entry; its index MUST be `last_index + 1`.
    pub(crate) fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
    }

    /// Drops the entries up to `id` (which this log holds, or which is its base already): they
    /// are in a snapshot.
    pub(crate) fn compact_to(&mut self, id: LogId) {
        if id.index <= self.base.index {
            return;
        }
        while self.entries.front().is_some_and(|e| e.id.index <= id.index) {
            self.entries.pop_front();
        }
        self.base = id;
        self.persisted = self.persisted.max(id.index);
    }

    /// Makes a snapshot ending at `last` the start of the log. Entries after it are kept if this
    /// log holds `last` itself (they extend the same history); otherwise the whole log is
    /// replaced. Returns whether the entries after `last` were kept.
    pub(crate) fn install(&mut self, last: LogId) -> bool {
        let keep = self.matches(last) && last.index >= self.base.index;
        // Planted bug: the entries after the snapshot are kept even when the log does not hold
        // the snapshot's last entry (Figure 13, rule 7: discard the entire log).
        #[cfg(raft_planted)]
        let keep = keep
            || (last.index >= self.base.index
                && crate::planted::active(crate::planted::Bug::SnapshotKeepsConflictingSuffix));
        if keep {
            while self
                .entries
                .front()
                .is_some_and(|e| e.id.index <= last.index)
            {
                self.entries.pop_front();
            }
        } else {
            self.entries.clear();
        }
        self.base = last;
        // Nothing of the new log is durable until the write that installs it is.
        self.persisted = self.persisted.min(last.index);
        keep
    }

    /// Removes every entry at `from` and above.
    pub(crate) fn truncate_from(&mut self, from: Index) {
        if let Some(off) = self.offset(from) {
            self.entries.truncate(off);
        }
        self.persisted = self.persisted.min(from.prev());
    }

    /// The adapter confirmed the log durable up to `index` (already clamped by truncations made
    /// since the write was issued).
    pub(crate) fn set_persisted(&mut self, index: Index) {
        self.persisted = index.min(self.last_index());
    }

    /// The batch of entries from `from` on that one message may carry: at most `max_entries` of
    /// them and at most `max_bytes` of payload; with `at_least_one`, the first entry even if it
    /// alone is larger. Returns how many entries, and their size (`Entry::size_estimate`).
    pub(crate) fn batch(
        &self,
        from: Index,
        max_entries: u32,
        max_bytes: u64,
        at_least_one: bool,
    ) -> (usize, u64) {
        let start = self.offset(from).unwrap_or(self.entries.len());
        let mut count = 0;
        let mut bytes = 0u64;
        for e in self
            .entries
            .range(start.min(self.entries.len())..)
            .take(max_entries as usize)
        {
            let total = bytes.saturating_add(e.size_estimate());
            if total > max_bytes && !(count == 0 && at_least_one) {
                break;
            }
            count += 1;
            bytes = total;
        }
        (count, bytes)
    }

    /// The `count` entries from `from` on (fewer if the log ends first): a [`batch`](Self::batch).
    pub(crate) fn range(&self, from: Index, count: usize) -> impl Iterator<Item = &Entry> + '_ {
        let start = self
            .offset(from)
            .unwrap_or(self.entries.len())
            .min(self.entries.len());
        let end = start.saturating_add(count).min(self.entries.len());
        self.entries.range(start..end)
    }

    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EntryKind, Payload};

    fn log_of(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry {
                id: LogId::new(t, i as u64 + 1),
                kind: EntryKind::Normal,
                data: Payload::new(&[0; 10]),
            })
            .collect();
        RaftLog::restored(LogId::ZERO, entries)
    }

    #[test]
    fn last_at_or_before_skips_whole_terms() {
        let log = log_of(&[1, 1, 2, 2, 4, 4, 4]);
        assert_eq!(log.last_at_or_before(Index(7), Term(3)), LogId::new(2, 4));
        assert_eq!(log.last_at_or_before(Index(3), Term(9)), LogId::new(2, 3));
        assert_eq!(log.last_at_or_before(Index(7), Term(0)), LogId::ZERO);
        assert_eq!(log.last_at_or_before(Index(99), Term(4)), LogId::new(4, 7));
    }

    #[test]
    fn a_batch_honours_count_and_bytes_but_sends_one() {
        let log = log_of(&[1, 1, 1, 1]);
        let size = log.entry(Index(1)).map_or(0, Entry::size_estimate);
        assert_eq!(log.batch(Index(1), 2, 1000, true), (2, 2 * size));
        assert_eq!(log.batch(Index(1), 10, 52, true).0, 2);
        assert_eq!(log.batch(Index(2), 10, 1, true), (1, size));
        assert_eq!(log.batch(Index(2), 10, 1, false), (0, 0));
        assert_eq!(log.batch(Index(5), 10, 1000, true), (0, 0));
        assert_eq!(log.range(Index(3), 5).count(), 2);
        assert_eq!(
            log.range(Index(3), 1).map(|e| e.id.index).next(),
            Some(Index(3))
        );
    }

    #[test]
    fn truncation_lowers_persisted() {
        let mut log = log_of(&[1, 1, 1, 1]);
        assert_eq!(log.persisted(), Index(4));
        log.truncate_from(Index(3));
        assert_eq!(log.last_index(), Index(2));
        assert_eq!(log.persisted(), Index(2));
    }
}
