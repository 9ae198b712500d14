//! The write contract's rules, one test each.

use super::*;
use crate::types::NodeId;
use crate::types::{EntryKind, Payload};
use crate::{Membership, WriteId};
use alloc::boxed::Box;
use alloc::vec::Vec;

fn hs(term: u64, vote: Option<u64>) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.and_then(NodeId::new),
    }
}

fn entries(term: u64, from: u64, to: u64) -> Vec<Entry> {
    (from..=to)
        .map(|i| Entry {
            id: LogId::new(term, i),
            kind: EntryKind::Normal,
            data: Payload::new(b"x"),
        })
        .collect()
}

fn meta(term: u64, index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last: LogId::new(term, index),
        membership: Membership::new(&[NodeId::MIN]).unwrap(),
    }
}

fn write() -> Write {
    Write::new(WriteId(1))
}

/// Terms 1 (1..=3), 2 (4..=5), 4 (6..=8), hard state term 4.
fn shape() -> DurableShape {
    let mut s = DurableShape::default();
    let mut w = write();
    w.hard_state = Some(hs(4, Some(1)));
    w.entries.extend(entries(1, 1, 3));
    w.entries.extend(entries(2, 4, 5));
    w.entries.extend(entries(4, 6, 8));
    s.apply(&w).unwrap();
    s
}

#[test]
fn terms_are_kept_in_runs() {
    let s = shape();
    let terms: Vec<u64> = (0..=9)
        .map(|i| s.term_at(Index(i)).map_or(99, |t| t.0))
        .collect();
    assert_eq!(terms, [0, 1, 1, 1, 2, 2, 4, 4, 4, 99]);
    assert_eq!(s.runs.len(), 3);
    let again =
        DurableShape::restored(hs(4, Some(1)), LogId::ZERO, (1..=8).map(|i| s.id(i))).unwrap();
    assert_eq!(again, s);
}

impl DurableShape {
    fn id(&self, i: u64) -> LogId {
        LogId {
            term: self.term_at(Index(i)).unwrap(),
            index: Index(i),
        }
    }
}

#[test]
fn truncation_and_snapshots_trim_the_runs() {
    let mut s = shape();
    let mut w = write();
    w.truncate_from = Some(Index(5));
    s.apply(&w).unwrap();
    assert_eq!(s.last_index(), Index(4));
    assert_eq!(s.last_term(), Some(Term(2)));
    assert!(s.check_snapshot(LogId::new(2, 3)).is_err());
    // At the log's last index nothing after it is kept: the log it replaces may differ.
    assert!(s.check_snapshot(LogId::new(1, 4)).is_ok());
    s.install_snapshot(LogId::new(1, 2)).unwrap();
    assert_eq!(s.term_at(Index(3)), Some(Term(1)));
    assert_eq!(s.term_at(Index(2)), Some(Term(1)));
    assert_eq!(s.term_at(Index(1)), None);
    assert_eq!(
        s.runs.as_slice(),
        [(Index(3), Term(1)), (Index(4), Term(2))]
    );
    // A received snapshot past the log empties it.
    let m = meta(3, 20);
    let mut w = write();
    w.snapshot = Some(Box::new(SnapshotPart {
        meta: m,
        offset: 0,
        data: Payload::new(b"s"),
        done: true,
    }));
    let effect = s.apply(&w).unwrap();
    assert_eq!(effect.installs, Some(LogId::new(3, 20)));
    assert_eq!(effect.last_index, Index(20));
    assert!(s.runs.is_empty());
    assert_eq!(s.last_term(), Some(Term(3)));
}

#[test]
fn a_resumed_shape_skips_only_what_it_cannot_know() {
    let mut s = DurableShape::resumed(hs(3, None), Index(5), Index(9));
    assert_eq!(s.term_at(Index(7)), None);
    let mut w = write();
    w.entries.extend(entries(2, 10, 10));
    s.apply(&w).unwrap();
    let mut w = write();
    w.entries.extend(entries(1, 11, 11));
    assert_eq!(
        s.check(&w),
        Err(WriteViolation::TermsDecrease {
            entry: LogId::new(1, 11),
            prev: Term(2)
        })
    );
    // A snapshot inside the unknown part is taken on trust; the known part stays known.
    s.install_snapshot(LogId::new(2, 7)).unwrap();
    assert_eq!(s.term_at(Index(8)), None);
    assert_eq!(s.term_at(Index(10)), Some(Term(2)));
}

#[test]
fn violations_change_nothing_and_read_as_sentences() {
    let s = shape();
    let cases: Vec<(Write, &str)> = {
        let mut v = Vec::new();
        let mut w = write();
        w.hard_state = Some(hs(3, None));
        v.push((w, "older than the term 4"));
        let mut w = write();
        w.hard_state = Some(hs(4, Some(2)));
        v.push((w, "changes from node 1 to node 2"));
        let mut w = write();
        w.truncate_from = Some(Index(0));
        v.push((w, "reaches into the snapshot"));
        let mut w = write();
        w.entries.extend(entries(4, 10, 10));
        v.push((w, "does not follow the log's last index 8"));
        let mut w = write();
        w.entries.extend(entries(3, 9, 9));
        v.push((w, "lower than the term 4"));
        let mut w = write();
        w.entries.extend(entries(5, 9, 9));
        v.push((w, "later than the hard state's term 4"));
        let mut w = write();
        w.snapshot = Some(Box::new(SnapshotPart {
            meta: meta(1, 5),
            offset: 0,
            data: Payload::new(b""),
            done: true,
        }));
        v.push((w, "but the log holds term 2 there"));
        let mut w = write();
        w.snapshot = Some(Box::new(SnapshotPart {
            meta: meta(4, 9),
            offset: 3,
            data: Payload::new(b""),
            done: false,
        }));
        v.push((w, "which is not being received"));
        v
    };
    for (w, text) in cases {
        let mut t = s.clone();
        let err = t.apply(&w).unwrap_err();
        assert_eq!(t, s, "{err}");
        let shown = alloc::format!("{err}");
        assert!(shown.contains(text), "{shown:?} lacks {text:?}");
        assert!(!err.reason().is_empty());
    }
}

#[test]
fn chunks_continue_the_snapshot_being_received() {
    let mut s = shape();
    let part = |m: &SnapshotMeta, offset, data: &'static [u8], done| {
        let mut w = write();
        w.snapshot = Some(Box::new(SnapshotPart {
            meta: m.clone(),
            offset,
            data: Payload::new(data),
            done,
        }));
        w
    };
    let m = meta(4, 7);
    s.apply(&part(&m, 0, b"abc", false)).unwrap();
    assert_eq!(s.receiving().map(|(_, n)| n), Some(3));
    let other = meta(4, 8);
    assert_eq!(
        s.check(&part(&other, 3, b"d", false)),
        Err(WriteViolation::ChunkOutOfOrder {
            snapshot: other.last,
            offset: 3,
            received: None
        })
    );
    assert!(s.check(&part(&m, 2, b"d", false)).is_err());
    let effect = s.apply(&part(&m, 3, b"d", true)).unwrap();
    assert_eq!(effect.installs, Some(m.last));
    assert_eq!(effect.last_index, Index(8), "the entry after it stays");
    assert!(s.receiving().is_none());
    assert_eq!(
        s.check_snapshot(LogId::new(1, 3)),
        Err(WriteViolation::SnapshotOlder {
            snapshot: LogId::new(1, 3),
            latest: Index(7)
        })
    );
}

/// A restored state may hold a snapshot of the hard state's own term (a fresh node's, all
/// zeros, included), never one of a later term.
#[test]
fn a_restored_snapshot_may_be_of_the_current_term_but_not_later() {
    let fresh = DurableShape::restored(HardState::default(), LogId::ZERO, []).unwrap();
    assert_eq!(fresh, DurableShape::default());
    let s = DurableShape::restored(hs(3, None), LogId::new(3, 10), []).unwrap();
    assert_eq!(s.term_at(Index(10)), Some(Term(3)));
    assert_eq!(
        DurableShape::restored(hs(3, None), LogId::new(4, 10), []),
        Err(WriteViolation::SnapshotAheadOfTerm {
            snapshot: LogId::new(4, 10),
            term: Term(3)
        })
    );
}

/// A resumed shape knows the snapshot's term only when there is no snapshot (term 0 at index
/// 0); a real snapshot's term is not in the summary.
#[test]
fn a_resumed_shape_knows_only_the_empty_snapshots_term() {
    let none = DurableShape::resumed(hs(3, None), Index::ZERO, Index(4));
    assert_eq!(none.term_at(Index::ZERO), Some(Term::ZERO));
    let some = DurableShape::resumed(hs(3, None), Index(5), Index(9));
    assert_eq!(some.term_at(Index(5)), None);
    // So a snapshot at that index, of any term, is taken on trust.
    assert!(some.check_snapshot(LogId::new(2, 5)).is_ok());
}

/// A partly received snapshot does not survive the process: after `discard_incoming` nothing
/// is being received, and the next chunk must start again at offset 0.
#[test]
fn a_discarded_snapshot_starts_again_at_offset_zero() {
    let mut s = shape();
    let m = meta(4, 7);
    let part = |offset, data: &'static [u8]| {
        let mut w = write();
        w.snapshot = Some(Box::new(SnapshotPart {
            meta: m.clone(),
            offset,
            data: Payload::new(data),
            done: false,
        }));
        w
    };
    s.apply(&part(0, b"abc")).unwrap();
    s.discard_incoming();
    assert!(s.receiving().is_none());
    assert_eq!(
        s.check(&part(3, b"d")),
        Err(WriteViolation::ChunkOutOfOrder {
            snapshot: m.last,
            offset: 3,
            received: None
        })
    );
    assert!(s.check(&part(0, b"abc")).is_ok());
}

/// The latest snapshot again (same index, same term) changes nothing and is accepted, as the
/// contract says; at that index with another term it conflicts.
#[test]
fn the_latest_snapshot_again_changes_nothing() {
    let mut s = shape();
    s.install_snapshot(LogId::new(2, 5)).unwrap();
    let before = s.clone();
    s.install_snapshot(LogId::new(2, 5)).unwrap();
    assert_eq!(s, before);
    assert_eq!(
        s.check_snapshot(LogId::new(1, 5)),
        Err(WriteViolation::SnapshotConflicts {
            snapshot: LogId::new(1, 5),
            log_term: Term(2)
        })
    );
}

#[test]
fn a_violations_reason_names_it_without_the_numbers() {
    let v = WriteViolation::TermGoesBackwards {
        held: Term(3),
        written: Term(2),
    };
    assert_eq!(v.reason(), "hard state term goes backwards");
}
