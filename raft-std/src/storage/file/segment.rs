//! Log segments: `<seq>-<first>.wal` files, each starting with a header record that holds the
//! state when it was started (so deleting older segments loses nothing); appending records with
//! group commit, rolling to a new segment, deleting the segments a snapshot covers.

use std::path::PathBuf;

use raft_core::Index;

use super::record::{RecordOut, encode_record};
use super::{FileStorage, io_err, sync_file, write_all};
use crate::storage::StorageError;
use crate::storage::fs::FileSystem;

/// The framed size of the largest segment header record (52 bytes of payload at most).
const MAX_SEGMENT_HEADER: u64 = 64;

pub(super) fn segment_name(seq: u64, first: Index) -> String {
    format!("{seq:020}-{:020}.wal", first.0)
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    first.parse::<u64>().ok()?;
    seq.parse().ok()
}

/// A log segment on disk.
#[derive(Clone, Debug)]
pub(super) struct Segment {
    pub(super) seq: u64,
    pub(super) path: PathBuf,
    /// The log's last index when the segment was started.
    pub(super) start: Index,
}

impl<F: FileSystem> FileStorage<F> {
    pub(super) fn flush_buf(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.segments.back().map_or(&self.dir, |s| &s.path);
        self.unsynced = true;
        write_all(&mut self.file, &self.buf, path)?;
        self.file_len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// fdatasyncs the current segment, unless nothing was written to it since the last time.
    pub(super) fn sync_segment(&mut self) -> Result<(), StorageError> {
        if self.unsynced {
            let path = self.segments.back().map_or(&self.dir, |s| &s.path);
            sync_file(&mut self.file, path)?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Encodes `rec` after the buffered records, starting a new segment first if it would not
    /// fit. Callers update the in-memory state after this, so a new segment's header holds the
    /// state before `rec`.
    pub(super) fn push_record(&mut self, rec: &RecordOut<'_>) -> Result<(), StorageError> {
        let before = self.buf.len();
        encode_record(&mut self.buf, rec)?;
        let size = (self.buf.len() - before) as u64;
        let used = self.file_len + before as u64;
        // A segment header takes at most MAX_SEGMENT_HEADER bytes: past that the segment holds
        // records, and rolling makes sense.
        if used + size > self.options.segment_size && used > MAX_SEGMENT_HEADER {
            let encoded = self.buf.split_off(before);
            self.roll()?;
            self.buf.extend_from_slice(&encoded);
        }
        if self.buf.len() >= self.options.write_buffer {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Syncs the full segment and starts the next one with a header holding the current state.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.flush_buf()?;
        self.sync_segment()?;
        let seq = self.segments.back().map_or(1, |s| s.seq + 1);
        let path = self.dir.join(segment_name(
            seq,
            self.last_index.next().unwrap_or(self.last_index),
        ));
        self.file = self
            .fs
            .create(&path)
            .map_err(|e| io_err("create", &path, e))?;
        self.file_len = 0;
        self.dir_dirty = true;
        self.segments.push_back(Segment {
            seq,
            path,
            start: self.last_index,
        });
        encode_record(
            &mut self.buf,
            &RecordOut::Segment {
                seq,
                hard_state: self.hard_state,
                last_index: self.last_index,
                snapshot_index: self.snapshot.last.index,
            },
        )
    }

    /// Deletes the segments whose every live entry is in the snapshot.
    pub(super) fn compact(&mut self) -> Result<(), StorageError> {
        let snap = self.snapshot.last.index;
        if !(self.segments.len() >= 2 && self.segments.get(1).is_some_and(|s| s.start <= snap)) {
            return Ok(());
        }
        // The segments that stay must be durable (header and directory entry) before the ones
        // they replace go: a crash must never leave no segment, or one that starts mid-log.
        self.sync_inner()?;
        while self.segments.len() >= 2 && self.segments.get(1).is_some_and(|s| s.start <= snap) {
            if let Some(seg) = self.segments.pop_front() {
                self.fs
                    .remove(&seg.path)
                    .map_err(|e| io_err("remove", &seg.path, e))?;
                self.dir_dirty = true;
            }
        }
        Ok(())
    }
}
