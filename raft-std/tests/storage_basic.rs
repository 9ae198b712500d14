//! File storage on real files: round trips, truncation, segments, snapshots, identity.

mod support;

use std::io::{Read, Write as _};

use raft_core::sim::SimDisk;
use raft_core::{Index, LogId, NodeId, WriteViolation};
use raft_std::storage::file::{FileStorage, FileStorageOptions, Identity};
use raft_std::storage::fs::{FileSystem, StdFs};
use raft_std::storage::{Storage, StorageError};
use support::*;

fn small() -> FileStorageOptions {
    FileStorageOptions {
        segment_size: 4096,
        write_buffer: 1024,
    }
}

fn open(dir: &std::path::Path) -> (FileStorage, raft_std::storage::Recovered) {
    FileStorage::open_with(StdFs, dir, identity(), membership(), small()).unwrap()
}

#[test]
fn missing_or_empty_directory_starts_fresh() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in [tmp.path().join("a/b/c"), tmp.path().to_path_buf()] {
        let (s, r) = open(&dir);
        assert_eq!(r, expected(&SimDisk::default()));
        assert_eq!(s.snapshot_meta().last, LogId::ZERO);
        drop(s);
        // And it opens again as the same, still empty.
        let (_, r) = open(&dir);
        assert_eq!(r, expected(&SimDisk::default()));
    }
}

#[test]
fn synced_writes_come_back_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut disk = SimDisk::default();
    let writes = [
        w(1).hs(1, Some(1)).entries(1, 1, 5, 10),
        w(2).entries(1, 6, 9, 3),
        w(3).hs(2, None).truncate(7).entries(2, 7, 8, 100),
        w(4).hs(2, Some(2)),
        w(5).entries(2, 9, 200, 50),
    ];
    {
        let (mut s, _) = open(tmp.path());
        for x in &writes {
            s.append(&x.0).unwrap();
            apply(&mut disk, &x.0);
        }
        s.sync().unwrap();
        assert!(s.segment_count() > 1, "small segments roll");
    }
    let (s, r) = open(tmp.path());
    assert_eq!(r, expected(&disk));
    assert_eq!(s.last_index(), Index(200));
    assert!(s.truncated_tail().is_none());
}

#[test]
fn misuse_is_refused_without_poisoning() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = open(tmp.path());
    s.append(&w(1).hs(1, None).entries(1, 1, 3, 1).0).unwrap();
    let err = s.append(&w(2).entries(1, 5, 5, 1).0).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Violation(WriteViolation::EntriesNotContiguous {
                last: Index(3),
                found: Index(5)
            })
        ),
        "{err}"
    );
    let err = s
        .append(&w(3).chunk(&meta(1, 3), 10, b"x", false).0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Violation(WriteViolation::ChunkOutOfOrder {
                offset: 10,
                received: None,
                ..
            })
        ),
        "{err}"
    );
    s.append(&w(4).entries(1, 4, 4, 1).0).unwrap();
    s.append(&w(5).hs(1, Some(2)).0).unwrap();
    for bad in [w(6).hs(1, Some(3)), w(7).hs(1, None)] {
        let err = s.append(&bad.0).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Violation(WriteViolation::VoteChanged { .. })
            ),
            "{err}"
        );
    }
    let err = s.append(&w(8).hs(0, Some(2)).0).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Violation(WriteViolation::TermGoesBackwards { .. })
        ),
        "{err}"
    );
    // The same vote again, and a new term with another vote, are fine.
    s.append(&w(9).hs(1, Some(2)).0).unwrap();
    s.append(&w(10).hs(2, Some(3)).0).unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, r) = open(tmp.path());
    assert_eq!(r.entries.len(), 4);
    assert_eq!(r.hard_state.term.0, 2);
    assert_eq!(r.hard_state.vote, Some(node(3)));
}

#[test]
fn own_snapshot_compacts_segments_and_serves_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = open(tmp.path());
    s.append(&w(1).hs(1, Some(1)).0).unwrap();
    for i in 0..20 {
        s.append(&w(2 + i).entries(1, i * 10 + 1, i * 10 + 10, 64).0)
            .unwrap();
    }
    s.sync().unwrap();
    let before = s.segment_count();
    assert!(before > 3);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    let m = meta(1, 150);
    let mut wr = s.begin_snapshot(&m).unwrap();
    for part in payload.chunks(999) {
        wr.write_all(part).unwrap();
    }
    s.finish_snapshot(wr).unwrap();
    assert!(s.segment_count() < before, "segments below the snapshot go");
    assert_eq!(s.snapshot_meta(), &m);
    // Chunks are payload offsets.
    let mut got = Vec::new();
    let mut buf = Vec::new();
    loop {
        let done = s
            .read_snapshot_chunk(m.last, got.len() as u64, 4096, &mut buf)
            .unwrap();
        got.extend_from_slice(&buf);
        if done {
            break;
        }
    }
    assert_eq!(got, payload);
    let gone = s.read_snapshot_chunk(LogId::new(1, 149), 0, 10, &mut buf);
    assert!(matches!(gone, Err(StorageError::SnapshotGone { .. })));
    let mut all = Vec::new();
    s.open_snapshot()
        .unwrap()
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, payload);
    s.append(&w(30).entries(1, 201, 205, 8).0).unwrap();
    s.sync().unwrap();
    drop(s);

    let (mut s, r) = open(tmp.path());
    assert_eq!(r.snapshot, m);
    assert_eq!(r.entries.first().unwrap().id.index, Index(151));
    assert_eq!(r.entries.last().unwrap().id.index, Index(205));
    assert_eq!(r.hard_state.term.0, 1);
    let mut all = Vec::new();
    s.open_snapshot()
        .unwrap()
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, payload);
    let snaps: Vec<_> = StdFs
        .list_dir(tmp.path())
        .unwrap()
        .into_iter()
        .filter(|n| n.contains(".snap"))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
}

#[test]
fn received_snapshot_replaces_the_log_up_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut disk = SimDisk::default();
    let m = meta(3, 50);
    let writes = [
        w(1).hs(2, Some(2)).entries(2, 1, 10, 5),
        w(2).hs(3, Some(3)).chunk(&m, 0, b"hello ", false),
        w(3).chunk(&m, 6, b"world", true).entries(3, 51, 52, 5),
        w(4).entries(3, 53, 60, 5),
    ];
    let (mut s, _) = open(tmp.path());
    for x in &writes {
        s.append(&x.0).unwrap();
        apply(&mut disk, &x.0);
    }
    s.sync().unwrap();
    assert_eq!(s.snapshot_meta(), &m);
    drop(s);
    let (mut s, r) = open(tmp.path());
    assert_eq!(r, expected(&disk));
    let mut buf = Vec::new();
    assert!(s.read_snapshot_chunk(m.last, 0, 100, &mut buf).unwrap());
    assert_eq!(buf, b"hello world");

    // A snapshot inside the log keeps the entries after it.
    let m2 = meta(3, 55);
    let x = w(5).chunk(&m2, 0, b"again", true);
    s.append(&x.0).unwrap();
    apply(&mut disk, &x.0);
    s.sync().unwrap();
    drop(s);
    let (_, r) = open(tmp.path());
    assert_eq!(r, expected(&disk));
    assert_eq!(r.entries.first().unwrap().id.index, Index(56));
}

#[test]
fn wrong_cluster_or_node_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    for other in [
        Identity {
            cluster_id: 8,
            node_id: node(1),
        },
        Identity {
            cluster_id: 7,
            node_id: NodeId::new(2).unwrap(),
        },
    ] {
        let err = FileStorage::open(StdFs, tmp.path(), other, membership()).unwrap_err();
        match err {
            StorageError::WrongIdentity {
                expected, found, ..
            } => {
                assert_ne!(expected, found);
                assert!(found.contains("cluster 7/node 1"), "{found}");
            }
            e => panic!("expected WrongIdentity, got {e}"),
        }
    }
    // The right identity still opens it.
    drop(open(tmp.path()));
}

#[test]
fn data_without_identity_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = open(tmp.path());
        s.append(&w(1).hs(1, None).entries(1, 1, 3, 1).0).unwrap();
        s.sync().unwrap();
    }
    std::fs::remove_file(tmp.path().join("IDENTITY")).unwrap();
    let err = FileStorage::open(StdFs, tmp.path(), identity(), membership()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

#[test]
fn own_snapshot_finished_after_a_newer_received_one_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = open(tmp.path());
    s.append(&w(1).hs(1, Some(1)).entries(1, 1, 10, 8).0)
        .unwrap();
    s.sync().unwrap();
    let mut wr = s.begin_snapshot(&meta(1, 5)).unwrap();
    wr.write_all(b"own state at five").unwrap();
    // The leader's snapshot at 15 arrives and is installed while ours is being written.
    let m = meta(1, 15);
    s.append(&w(2).chunk(&m, 0, b"leader state", true).0)
        .unwrap();
    s.sync().unwrap();
    s.finish_snapshot(wr).unwrap();
    assert_eq!(s.snapshot_meta(), &m, "the newer snapshot stays the latest");
    let mut buf = Vec::new();
    assert!(s.read_snapshot_chunk(m.last, 0, 100, &mut buf).unwrap());
    assert_eq!(buf, b"leader state");
    s.append(&w(3).entries(1, 16, 17, 8).0).unwrap();
    s.sync().unwrap();
    drop(s);
    let names = StdFs.list_dir(tmp.path()).unwrap();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let (mut s, r) = open(tmp.path());
    assert_eq!(r.snapshot, m);
    assert_eq!(r.entries.first().unwrap().id.index, Index(16));
    assert_eq!(r.entries.last().unwrap().id.index, Index(17));
    let mut all = Vec::new();
    s.open_snapshot()
        .unwrap()
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, b"leader state");
}

#[test]
fn snapshot_written_in_large_and_small_pieces_reads_back_at_any_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = open(tmp.path());
    s.append(&w(1).hs(1, Some(1)).entries(1, 1, 10, 8).0)
        .unwrap();
    s.sync().unwrap();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
    let m = meta(1, 10);
    let mut wr = s.begin_snapshot(&m).unwrap();
    // Small, then large (buffered first), then large (straight through), then small.
    for part in [
        &payload[..100],
        &payload[100..70_100],
        &payload[70_100..299_990],
        &payload[299_990..],
    ] {
        wr.write_all(part).unwrap();
    }
    s.finish_snapshot(wr).unwrap();
    for reopen in [false, true] {
        if reopen {
            drop(s);
            s = open(tmp.path()).0;
        }
        let mut buf = Vec::new();
        // In order, then out of order, then in order again from a new place.
        for (offset, len) in [
            (0, 5000),
            (5000, 5000),
            (123, 10),
            (10_000, 1),
            (299_999, 10),
            (200_000, 70_000),
            (270_000, 30_000),
        ] {
            let done = s
                .read_snapshot_chunk(m.last, offset as u64, len, &mut buf)
                .unwrap();
            let end = (offset + len as usize).min(payload.len());
            assert_eq!(buf, &payload[offset..end], "at {offset}");
            assert_eq!(done, end == payload.len());
        }
        let mut all = Vec::new();
        s.open_snapshot()
            .unwrap()
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert!(all == payload);
    }
}
