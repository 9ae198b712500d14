//! The record format of a log segment: `[len u32 LE][crc u32 LE][payload][zero padding to 8
//! bytes]`, `crc` the CRC32C of the length's four bytes followed by the payload, the payload a
//! postcard-encoded [`RecordOut`]/[`RecordIn`]; and the scan that tells a torn tail from damage.

use raft_core::{Entry, HardState, Index, SnapshotMeta};
use serde::{Deserialize, Serialize};

use crate::storage::StorageError;

const RECORD_HEADER: usize = 8;

/// The postcard variant tags of [`RecordIn`] are all below this.
const RECORD_KINDS: u8 = 3;

/// A record as written (borrowing what it encodes).
#[derive(Serialize)]
pub(super) enum RecordOut<'a> {
    Segment {
        seq: u64,
        hard_state: HardState,
        last_index: Index,
        snapshot_index: Index,
    },
    Write {
        hard_state: Option<HardState>,
        truncate_from: Option<Index>,
        entries: &'a [Entry],
    },
    Snapshot {
        meta: &'a SnapshotMeta,
    },
}

/// A record as read back; the same shape as [`RecordOut`].
#[derive(Deserialize)]
pub(super) enum RecordIn {
    Segment {
        seq: u64,
        hard_state: HardState,
        last_index: Index,
        snapshot_index: Index,
    },
    Write {
        hard_state: Option<HardState>,
        truncate_from: Option<Index>,
        entries: Vec<Entry>,
    },
    Snapshot {
        meta: Box<SnapshotMeta>,
    },
}

const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

pub(super) fn record_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// Extends a borrowed buffer, so that a failed encoding leaves it in the caller's hands.
struct Extender<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Extender<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Appends `rec` to `buf`, framed and padded. On an error `buf` holds what it held before.
pub(super) fn encode_record(buf: &mut Vec<u8>, rec: &RecordOut<'_>) -> Result<(), StorageError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER]);
    if postcard::to_extend(rec, Extender(buf)).is_err() {
        // Not reachable with today's types (every sequence has a known length), but the records
        // buffered before this one must not be lost with it.
        buf.truncate(start);
        return Err(StorageError::Misuse {
            reason: "a record that cannot be encoded",
        });
    }
    let payload_len = buf.len() - start - RECORD_HEADER;
    let Ok(len) = u32::try_from(payload_len) else {
        buf.truncate(start);
        return Err(StorageError::Misuse {
            reason: "a write larger than 4 GiB",
        });
    };
    let len = len.to_le_bytes();
    let crc = record_crc(len, buf.get(start + RECORD_HEADER..).unwrap_or_default());
    if let Some((h_len, rest)) = buf
        .get_mut(start..)
        .and_then(<[u8]>::split_first_chunk_mut::<4>)
        && let Some(h_crc) = rest.first_chunk_mut::<4>()
    {
        *h_len = len;
        *h_crc = crc.to_le_bytes();
    }
    buf.resize(align8(buf.len()), 0);
    Ok(())
}

/// Reads the record at `off`: its payload and where the next one starts, or why it is bad.
pub(super) fn read_record(bytes: &[u8], off: usize) -> Result<(&[u8], usize), &'static str> {
    let (&len, rest) = bytes
        .get(off..)
        .and_then(<[u8]>::split_first_chunk::<4>)
        .ok_or("record header cut short")?;
    let crc = u32::from_le_bytes(*rest.first_chunk::<4>().ok_or("record header cut short")?);
    let n = u32::from_le_bytes(len) as usize;
    if n == 0 {
        return Err("zero-length record");
    }
    let payload = bytes
        .get(off + RECORD_HEADER..off + RECORD_HEADER + n)
        .ok_or("record runs past the end of the file")?;
    if record_crc(len, payload) != crc {
        return Err("record checksum mismatch");
    }
    let next = align8(off + RECORD_HEADER + n);
    if next > bytes.len() {
        return Err("record padding runs past the end of the file");
    }
    Ok((payload, next))
}

/// Whether any valid record starts at an aligned offset after `off`.
pub(super) fn valid_record_after(bytes: &[u8], off: usize) -> bool {
    next_valid_record(bytes, off).is_some()
}

/// Where the first valid record after `off` starts (at an aligned offset), if any does.
fn next_valid_record(bytes: &[u8], off: usize) -> Option<usize> {
    let mut at = align8(off + 1);
    while at + RECORD_HEADER < bytes.len() {
        let plausible = bytes
            .get(at + RECORD_HEADER)
            .is_some_and(|&tag| tag < RECORD_KINDS);
        if plausible && read_record(bytes, at).is_ok() {
            return Some(at);
        }
        at += 8;
    }
    None
}

/// The sector size a torn write is detected at.
const SECTOR: usize = 512;

/// Whether the bad record at `off` in the last segment is a torn write: nothing valid follows
/// it, or the bytes from it to the next valid record hold an all-zero, sector-aligned sector (a
/// page that never reached the disk while a later one did: writeback is not in order).
///
/// Either way it was never synced, so neither was anything after it: an fsync makes every byte
/// written before it durable, and a durable sector reads back as written. (A synced record can
/// only look like this if the disk damaged it later and its own data held a zeroed sector: that
/// is media corruption, which checksums catch everywhere else.)
pub(super) fn torn_at(bytes: &[u8], off: usize) -> bool {
    let Some(next) = next_valid_record(bytes, off) else {
        return true;
    };
    let first = off.div_ceil(SECTOR) * SECTOR;
    bytes
        .get(first..next)
        .unwrap_or_default()
        .chunks_exact(SECTOR)
        .any(|sector| sector.iter().all(|&b| b == 0))
}
