//! Damaged data: a flipped byte anywhere but a torn tail stops the open with the file and offset;
//! a torn tail is cut; a damaged snapshot or identity is refused.

mod support;

use std::path::{Path, PathBuf};

use raft_core::Index;
use raft_core::sim::SimDisk;
use raft_std::storage::file::{FileStorage, FileStorageOptions};
use raft_std::storage::fs::{FileSystem, StdFs};
use raft_std::storage::{Recovered, Storage, StorageError};
use raft_std::test_util::faulty::{CrashMode, FaultyFs};
use support::*;

fn opts() -> FileStorageOptions {
    FileStorageOptions {
        segment_size: 2048,
        write_buffer: 512,
    }
}

fn open<F: FileSystem>(fs: F, dir: &Path) -> Result<(FileStorage<F>, Recovered), StorageError> {
    FileStorage::open_with(fs, dir, identity(), membership(), opts())
}

/// Writes 100 entries in 20 synced writes; returns the reference disk.
fn fill<F: FileSystem>(fs: F, dir: &Path) -> SimDisk {
    let (mut s, _) = open(fs, dir).unwrap();
    let mut disk = SimDisk::default();
    for i in 0..20u64 {
        let mut x = w(i + 1).entries(1, i * 5 + 1, i * 5 + 5, 40);
        if i == 0 {
            x = x.hs(1, Some(1));
        }
        s.append(&x.0).unwrap();
        s.sync().unwrap();
        apply(&mut disk, &x.0);
    }
    disk
}

fn assert_corrupt_at(err: StorageError, file: &Path, offset: u64) {
    match err {
        StorageError::Corrupt {
            file: f,
            offset: o,
            reason,
        } => {
            assert_eq!(f, file, "{reason}");
            assert_eq!(o, offset, "{reason}");
        }
        e => panic!("expected Corrupt at {}:{offset}, got {e}", file.display()),
    }
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    segments(StdFs.list_dir(dir).unwrap(), dir)
}

#[test]
fn flipped_byte_in_a_sealed_segment_names_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    fill(StdFs, tmp.path());
    let files = wal_files(tmp.path());
    assert!(files.len() >= 3, "{files:?}");
    let victim = &files[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let f = frames(&bytes);
    let (rec_at, rec_len) = f[f.len() / 2];
    let flip = rec_at + rec_len / 2;
    bytes[flip] ^= 0x10;
    std::fs::write(victim, &bytes).unwrap();
    let err = open(StdFs, tmp.path()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&victim.display().to_string()), "{text}");
    assert_corrupt_at(err, victim, rec_at as u64);
}

#[test]
fn flipped_byte_mid_last_segment_is_corruption_not_a_torn_tail() {
    let fs = FaultyFs::new(1);
    let dir = PathBuf::from("/d");
    fill(fs.clone(), &dir);
    let files = segments(fs.list_dir(&dir).unwrap(), &dir);
    let last = files.last().unwrap();
    let bytes = fs.contents(last).unwrap();
    let f = frames(&bytes);
    assert!(f.len() >= 3, "{f:?}");
    // Every record but the last one, at its length, checksum and payload.
    for &(rec_at, rec_len) in &f[..f.len() - 1] {
        for flip in [rec_at, rec_at + 5, rec_at + rec_len / 2 + 4] {
            let fs = fs_copy(&fs, &dir);
            assert!(fs.corrupt(last, flip as u64, 0x40));
            let err = open(fs, &dir).unwrap_err();
            assert_corrupt_at(err, last, rec_at as u64);
        }
    }
}

/// A copy of a FaultyFs directory (so each case starts from the same bytes).
fn fs_copy(fs: &FaultyFs, dir: &Path) -> FaultyFs {
    let copy = FaultyFs::new(2);
    for name in fs.list_dir(dir).unwrap() {
        let p = dir.join(name);
        copy.put(&p, &fs.contents(&p).unwrap());
    }
    copy
}

#[test]
fn truncated_tail_recovers_at_every_cut() {
    let fs = FaultyFs::new(3);
    let dir = PathBuf::from("/d");
    let disk = fill(fs.clone(), &dir);
    let files = segments(fs.list_dir(&dir).unwrap(), &dir);
    let last = files.last().unwrap().clone();
    let bytes = fs.contents(&last).unwrap();
    let f = frames(&bytes);
    let (tail_at, _) = *f.last().unwrap();
    let full = expected(&disk);
    for cut in tail_at..bytes.len() {
        let fs = fs_copy(&fs, &dir);
        fs.truncate(&last, cut as u64);
        let (s, r) = open(fs.clone(), &dir).unwrap();
        // The last write (5 entries) is gone, everything before it is there.
        assert_eq!(r.entries, full.entries[..full.entries.len() - 5]);
        // A cut on the record boundary leaves nothing torn to cut.
        let torn = (cut > tail_at).then_some((last.as_path(), tail_at as u64));
        assert_eq!(s.truncated_tail(), torn);
        assert_eq!(s.last_index(), Index(95));
        drop(s);
        // And it is cut for good: it opens again cleanly.
        let (s, r) = open(fs, &dir).unwrap();
        assert!(s.truncated_tail().is_none());
        assert_eq!(r.entries.len(), 95);
    }
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = fill(StdFs, tmp.path());
    let last = wal_files(tmp.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    for (i, tail) in [vec![0u8; 4096], vec![0xFF; 13], (0..=255u8).collect()]
        .into_iter()
        .enumerate()
    {
        let mut bytes = std::fs::read(&last).unwrap();
        bytes.truncate(len as usize);
        bytes.extend_from_slice(&tail);
        std::fs::write(&last, &bytes).unwrap();
        let (s, r) = open(StdFs, tmp.path()).unwrap();
        assert_eq!(r, expected(&disk), "case {i}");
        assert_eq!(s.truncated_tail(), Some((last.as_path(), len)));
    }
}

#[test]
fn missing_middle_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    fill(StdFs, tmp.path());
    let files = wal_files(tmp.path());
    std::fs::remove_file(&files[1]).unwrap();
    let err = open(StdFs, tmp.path()).unwrap_err();
    assert_corrupt_at(err, &files[2], 0);
}

#[test]
fn damaged_snapshot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fill(StdFs, tmp.path());
    {
        let (mut s, _) = open(StdFs, tmp.path()).unwrap();
        let mut wr = s.begin_snapshot(&meta(1, 50)).unwrap();
        std::io::Write::write_all(&mut wr, &[7u8; 10_000]).unwrap();
        s.finish_snapshot(wr).unwrap();
    }
    let snap = StdFs
        .list_dir(tmp.path())
        .unwrap()
        .into_iter()
        .find(|n| n.ends_with(".snap"))
        .map(|n| tmp.path().join(n))
        .unwrap();
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&snap, &bytes).unwrap();
    let err = open(StdFs, tmp.path()).unwrap_err();
    match err {
        StorageError::Corrupt { file, .. } => assert_eq!(file, snap),
        e => panic!("expected Corrupt, got {e}"),
    }
}

#[test]
fn damaged_identity_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fill(StdFs, tmp.path());
    let id = tmp.path().join("IDENTITY");
    let mut bytes = std::fs::read(&id).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&id, &bytes).unwrap();
    let err = open(StdFs, tmp.path()).unwrap_err();
    assert!(
        matches!(err, StorageError::Corrupt { ref file, .. } if *file == id),
        "{err}"
    );
}

#[test]
fn a_refused_directory_is_left_as_it_was_found() {
    let fs = FaultyFs::new(4);
    let dir = PathBuf::from("/d");
    fill(fs.clone(), &dir);
    let snap_at = |index: u64| {
        fs.list_dir(&dir)
            .unwrap()
            .into_iter()
            .find(|n| n.starts_with(&format!("snap-{index:020}-")))
            .map(|n| dir.join(n))
    };
    {
        let (mut s, _) = open(fs.clone(), &dir).unwrap();
        for index in [10, 50] {
            let mut wr = s.begin_snapshot(&meta(1, index)).unwrap();
            std::io::Write::write_all(&mut wr, &[index as u8; 100]).unwrap();
            s.finish_snapshot(wr).unwrap();
            if index == 10 {
                // Kept aside: it comes back below as the latest snapshot file.
                let p = snap_at(10).unwrap();
                fs.put(&dir.join("saved"), &fs.contents(&p).unwrap());
            }
        }
    }
    // The log records the snapshot at 50, whose file is lost; an older one at 10 and a leftover
    // at 5 are there, and the last segment has a torn tail.
    let snap10 = fs.contents(&dir.join("saved")).unwrap();
    fs.remove(&dir.join("saved")).unwrap();
    fs.remove(&snap_at(50).unwrap()).unwrap();
    let name10 = dir.join(format!("snap-{:020}-{:020}.snap", 10, 1));
    let name5 = dir.join(format!("snap-{:020}-{:020}.snap", 5, 1));
    fs.put(&name10, &snap10);
    fs.put(&name5, b"an older snapshot left by a crash");
    let last = segments(fs.list_dir(&dir).unwrap(), &dir).pop().unwrap();
    let mut torn = fs.contents(&last).unwrap();
    torn.extend_from_slice(&[0xAB; 20]);
    fs.put(&last, &torn);
    let before: Vec<(String, Vec<u8>)> = fs
        .list_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|n| {
            let bytes = fs.contents(&dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    let err = open(fs.clone(), &dir).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    let mut after: Vec<(String, Vec<u8>)> = fs
        .list_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|n| {
            let bytes = fs.contents(&dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    let mut before = before;
    before.sort();
    after.sort();
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before), "nothing deleted");
    for ((name, a), (_, b)) in after.iter().zip(&before) {
        assert!(a == b, "{name} changed: {} bytes, was {}", a.len(), b.len());
    }
}

#[test]
fn a_lost_page_before_surviving_ones_is_a_torn_tail() {
    let fs = FaultyFs::new(5);
    let dir = PathBuf::from("/d");
    let big = FileStorageOptions {
        segment_size: 1 << 20,
        write_buffer: 512,
    };
    let (mut s, _) =
        FileStorage::open_with(fs.clone(), &dir, identity(), membership(), big).unwrap();
    let first = w(1).hs(1, Some(1)).entries(1, 1, 5, 40);
    s.append(&first.0).unwrap();
    s.sync().unwrap();
    let last = segments(fs.list_dir(&dir).unwrap(), &dir).pop().unwrap();
    let synced = fs.contents(&last).unwrap().len();
    // Never synced: written out as the buffer fills.
    for i in 1..=12u64 {
        s.append(&w(i + 1).entries(1, i * 5 + 1, i * 5 + 5, 40).0)
            .unwrap();
    }
    drop(s);
    fs.crash(CrashMode::KeepAll, 0);
    let mut bytes = fs.contents(&last).unwrap();
    let hole = synced.div_ceil(512) * 512 + 512;
    assert!(bytes.len() >= hole + 1024, "{} bytes", bytes.len());
    let (cut, _) = *frames(&bytes)
        .iter()
        .find(|(at, len)| at + len > hole)
        .unwrap();
    // The sector after the first unsynced one never reached the disk; later ones did.
    bytes[hole..hole + 512].fill(0);
    fs.put(&last, &bytes);
    let (s, r) = open(fs.clone(), &dir).unwrap();
    assert_eq!(s.truncated_tail(), Some((last.as_path(), cut as u64)));
    let kept = r.entries.len() as u64;
    assert!(kept >= 5, "the synced entries are there");
    assert_eq!(r.entries.last().unwrap().id.index.0, kept);
    assert_eq!(r.hard_state.vote, Some(node(1)));
    drop(s);
    // Cut for good.
    let (s, r) = open(fs, &dir).unwrap();
    assert!(s.truncated_tail().is_none());
    assert_eq!(r.entries.len() as u64, kept);
}

/// A well-framed WAL record (good length and checksum) whose payload is `rec`, postcard-encoded
/// as the storage encodes its own records (the variants in the same order).
fn framed(rec: &RecordForTest) -> Vec<u8> {
    let payload = postcard::to_allocvec(rec).unwrap();
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), &payload);
    let mut out = len.to_vec();
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
    out.resize((out.len() + 7) & !7, 0);
    out
}

/// The storage's record shape, for crafting records by hand.
#[derive(serde::Serialize)]
#[allow(dead_code)]
enum RecordForTest {
    Segment {
        seq: u64,
        hard_state: raft_core::HardState,
        last_index: Index,
        snapshot_index: Index,
    },
    Write {
        hard_state: Option<raft_core::HardState>,
        truncate_from: Option<Index>,
        entries: Vec<raft_core::Entry>,
    },
}

#[test]
fn a_record_the_write_contract_refuses_stops_the_open_at_its_offset() {
    let hs = |term, vote: Option<u64>| raft_core::HardState {
        term: raft_core::Term(term),
        vote: vote.map(node),
    };
    // Each record is one the storage itself refuses at append; found in the log, it is damage.
    let cases = [
        (
            RecordForTest::Write {
                hard_state: Some(hs(0, None)),
                truncate_from: None,
                entries: vec![],
            },
            "hard state term goes backwards",
        ),
        (
            RecordForTest::Write {
                hard_state: Some(hs(1, Some(2))),
                truncate_from: None,
                entries: vec![],
            },
            "vote changed within a term",
        ),
        (
            RecordForTest::Write {
                hard_state: None,
                truncate_from: None,
                entries: vec![entry(1, 102, 8)],
            },
            "entries not contiguous with the log",
        ),
        (
            RecordForTest::Write {
                hard_state: None,
                truncate_from: None,
                entries: vec![entry(2, 101, 8)],
            },
            "entry term newer than the hard state's",
        ),
        (
            RecordForTest::Write {
                hard_state: None,
                truncate_from: Some(Index(0)),
                entries: vec![],
            },
            "truncation reaches into the snapshot",
        ),
    ];
    for (rec, reason) in cases {
        let tmp = tempfile::tempdir().unwrap();
        fill(StdFs, tmp.path());
        let last = wal_files(tmp.path()).pop().unwrap();
        let mut bytes = std::fs::read(&last).unwrap();
        let at = bytes.len() as u64;
        bytes.extend_from_slice(&framed(&rec));
        // A good record after it: the bad one is not a torn tail either way.
        bytes.extend_from_slice(&framed(&RecordForTest::Write {
            hard_state: None,
            truncate_from: None,
            entries: vec![entry(1, 101, 8)],
        }));
        std::fs::write(&last, &bytes).unwrap();
        let err = open(StdFs, tmp.path()).unwrap_err();
        match &err {
            StorageError::Corrupt { reason: r, .. } => assert_eq!(*r, reason),
            e => panic!("expected Corrupt, got {e}"),
        }
        assert_corrupt_at(err, &last, at);
    }
}
