//! Injected faults: a failed fsync poisons the storage and loses nothing acknowledged; a full disk
//! is reported and acknowledges nothing unwritten; short writes are finished.

mod support;

use std::path::{Path, PathBuf};

use raft_core::sim::SimDisk;
use raft_std::storage::file::{FileStorage, FileStorageOptions};
use raft_std::storage::{Recovered, Storage, StorageError};
use raft_std::test_util::faulty::{CrashMode, FaultPlan, FaultyFs};
use support::*;

fn opts() -> FileStorageOptions {
    FileStorageOptions {
        segment_size: 4096,
        write_buffer: 256,
    }
}

fn open(fs: &FaultyFs, dir: &Path) -> (FileStorage<FaultyFs>, Recovered) {
    FileStorage::open_with(fs.clone(), dir, identity(), membership(), opts()).unwrap()
}

/// Appends and syncs 10 writes of 4 entries; returns the reference.
fn acked_writes(s: &mut FileStorage<FaultyFs>) -> SimDisk {
    let mut disk = SimDisk::default();
    for i in 0..10u64 {
        let mut x = w(i + 1).entries(1, i * 4 + 1, i * 4 + 4, 30);
        if i == 0 {
            x = x.hs(1, Some(1));
        }
        s.append(&x.0).unwrap();
        apply(&mut disk, &x.0);
    }
    s.sync().unwrap();
    disk
}

#[test]
fn eio_on_fsync_poisons_and_loses_nothing_acknowledged() {
    for mode in [CrashMode::LoseUnsynced, CrashMode::Tear, CrashMode::KeepAll] {
        let fs = FaultyFs::new(1);
        let dir = PathBuf::from("/d");
        let (mut s, _) = open(&fs, &dir);
        let disk = acked_writes(&mut s);
        s.append(&w(100).entries(1, 41, 45, 30).0).unwrap();
        fs.set_plan(FaultPlan {
            fail_sync_at: Some(1),
            ..FaultPlan::default()
        });
        let err = s.sync().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StorageError::SyncFailed { .. }), "{text}");
        assert!(text.contains("fsync") && text.contains("fatal"), "{text}");
        assert!(s.is_poisoned());
        // Never retried: everything after refuses, even once the disk is healthy again.
        fs.heal();
        assert!(matches!(s.sync(), Err(StorageError::Poisoned)));
        assert!(matches!(
            s.append(&w(101).entries(1, 46, 46, 1).0),
            Err(StorageError::Poisoned)
        ));
        assert!(matches!(
            s.begin_snapshot(&meta(1, 10)),
            Err(StorageError::Poisoned)
        ));
        let mut buf = Vec::new();
        assert!(matches!(
            s.read_snapshot_chunk(raft_core::LogId::ZERO, 0, 1, &mut buf),
            Err(StorageError::Poisoned)
        ));
        drop(s);
        fs.crash(mode, 9);
        let (_, r) = open(&fs, &dir);
        let mut with = disk.clone();
        apply(&mut with, &w(100).entries(1, 41, 45, 30).0);
        assert!(
            r == expected(&disk) || r == expected(&with),
            "{mode:?}: {:?}",
            r.entries.last().map(|e| e.id)
        );
    }
}

#[test]
fn eio_on_directory_fsync_while_rolling_poisons() {
    let fs = FaultyFs::new(2);
    let dir = PathBuf::from("/d");
    let (mut s, _) = open(&fs, &dir);
    let disk = acked_writes(&mut s);
    // Enough to roll into a new segment; its directory entry needs a directory fsync.
    for i in 0..20u64 {
        s.append(&w(200 + i).entries(1, 41 + i * 4, 44 + i * 4, 100).0)
            .unwrap();
    }
    assert!(s.segment_count() > 1);
    fs.set_plan(FaultPlan {
        fail_sync_at: Some(2),
        ..FaultPlan::default()
    });
    let err = s.sync().unwrap_err();
    assert!(
        matches!(err, StorageError::SyncFailed { ref path, .. } if *path == dir),
        "{err}"
    );
    drop(s);
    fs.crash(CrashMode::LoseUnsynced, 3);
    fs.heal();
    let (_, r) = open(&fs, &dir);
    assert!(r.entries.len() >= disk.entries.len());
    assert_eq!(r.entries[..disk.entries.len()], disk.entries[..]);
}

#[test]
fn no_space_is_reported_and_nothing_unwritten_is_acknowledged() {
    for space in [0u64, 10, 100, 300, 1000] {
        let fs = FaultyFs::new(3);
        let dir = PathBuf::from("/d");
        let (mut s, _) = open(&fs, &dir);
        let disk = acked_writes(&mut s);
        fs.set_plan(FaultPlan {
            space_left: Some(space),
            ..FaultPlan::default()
        });
        let mut result = Ok(());
        let mut appended = 0;
        for i in 0..50u64 {
            result = s.append(&w(300 + i).entries(1, 41 + i, 41 + i, 50).0);
            if result.is_err() {
                break;
            }
            appended += 1;
        }
        if result.is_ok() {
            result = s.sync();
        }
        let err = result.unwrap_err();
        assert!(
            matches!(err, StorageError::NoSpace { .. }),
            "{space}: {err}"
        );
        assert!(err.to_string().contains("no space"), "{err}");
        assert!(matches!(s.sync(), Err(StorageError::Poisoned)));
        drop(s);
        // Even if everything written survives, only whole records come back, in order, and the
        // acknowledged ones all do.
        fs.crash(CrashMode::KeepAll, 0);
        fs.heal();
        let (_, r) = open(&fs, &dir);
        assert_eq!(r.entries[..disk.entries.len()], disk.entries[..]);
        assert!(r.entries.len() <= disk.entries.len() + appended, "{space}");
        for (i, e) in r.entries.iter().enumerate() {
            assert_eq!(e.id.index.0, i as u64 + 1);
        }
    }
}

#[test]
fn short_writes_are_finished() {
    let fs = FaultyFs::new(4);
    let dir = PathBuf::from("/d");
    fs.set_plan(FaultPlan {
        short_writes: true,
        ..FaultPlan::default()
    });
    let (mut s, _) = open(&fs, &dir);
    let mut disk = acked_writes(&mut s);
    let m = meta(1, 20);
    let mut wr = s.begin_snapshot(&m).unwrap();
    let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::io::Write::write_all(&mut wr, &blob).unwrap();
    s.finish_snapshot(wr).unwrap();
    disk.take_snapshot(m, blob.clone());
    let x = w(50).entries(1, 41, 60, 500);
    s.append(&x.0).unwrap();
    s.sync().unwrap();
    apply(&mut disk, &x.0);
    drop(s);
    fs.crash(CrashMode::LoseUnsynced, 5);
    let (mut s, r) = open(&fs, &dir);
    assert_eq!(r, expected(&disk));
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut s.open_snapshot().unwrap().unwrap(), &mut got).unwrap();
    assert_eq!(got, blob);
}

#[test]
fn eio_on_write_poisons() {
    let fs = FaultyFs::new(5);
    let dir = PathBuf::from("/d");
    let (mut s, _) = open(&fs, &dir);
    let disk = acked_writes(&mut s);
    fs.set_plan(FaultPlan {
        fail_write_at: Some(1),
        ..FaultPlan::default()
    });
    s.append(&w(70).entries(1, 41, 41, 10).0).unwrap();
    let err = s.sync().unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "write", .. }), "{err}");
    assert!(matches!(s.sync(), Err(StorageError::Poisoned)));
    drop(s);
    fs.crash(CrashMode::Tear, 1);
    fs.heal();
    let (_, r) = open(&fs, &dir);
    assert_eq!(r, expected(&disk));
}

#[test]
fn every_directory_level_created_survives_a_crash() {
    let fs = FaultyFs::new(11);
    let dir = PathBuf::from("/srv/raft/data/n1");
    let (mut s, _) = open(&fs, &dir);
    let disk = acked_writes(&mut s);
    drop(s);
    fs.crash(CrashMode::LoseUnsynced, 1);
    let (_, r) = open(&fs, &dir);
    assert_eq!(r, expected(&disk));
}

#[test]
fn a_sync_with_nothing_new_written_does_not_fsync() {
    let fs = FaultyFs::new(12);
    let dir = PathBuf::from("/d");
    let (mut s, _) = open(&fs, &dir);
    acked_writes(&mut s);
    fs.set_plan(FaultPlan::default());
    s.sync().unwrap();
    assert_eq!(fs.syncs(), 0);
    // A received snapshot with entries after it, when the log before it is already durable: the
    // snapshot file, its directory entry, then the segment with its marker and the entries.
    let m = meta(1, 50);
    s.append(&w(20).chunk(&m, 0, b"state", true).entries(1, 51, 52, 8).0)
        .unwrap();
    s.sync().unwrap();
    let received = fs.syncs();
    fs.set_plan(FaultPlan::default());
    s.sync().unwrap();
    assert_eq!(fs.syncs(), 0);
    assert_eq!(received, 3);
}

/// What a restarted node reads back is durable before it can act on it. A process that died
/// before its sync leaves its last writes in the page cache only; if reopening did not sync them,
/// a machine crash soon after the restart would take back entries (or a vote) the node had
/// already read, and perhaps acknowledged.
#[test]
fn what_reopen_reads_back_is_made_durable() {
    let fs = FaultyFs::new(3);
    let dir = PathBuf::from("/d");
    let (mut s, _) = open(&fs, &dir);
    let _ = acked_writes(&mut s);
    // Written past the user-space buffer (so into the files), never synced.
    for i in 0..10u64 {
        let x = w(20 + i)
            .hs(2, Some(2))
            .entries(2, 41 + i * 4, 44 + i * 4, 30);
        s.append(&x.0).unwrap();
    }
    // The process dies; the machine does not.
    fs.kill_process();
    drop(s);
    let (s, read_back) = open(&fs, &dir);
    assert!(
        read_back.entries.len() > 40,
        "the unsynced writes should be in the page cache: {} entries",
        read_back.entries.len()
    );
    // The machine crashes before the restarted node writes anything.
    fs.crash(CrashMode::LoseUnsynced, 0);
    drop(s);
    let (_, after) = open(&fs, &dir);
    assert!(
        after == read_back,
        "reopening did not make what it read durable: read {} entries and {:?}, a crash left {} \
         and {:?}",
        read_back.entries.len(),
        read_back.hard_state,
        after.entries.len(),
        after.hard_state
    );
}
