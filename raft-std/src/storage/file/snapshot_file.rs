//! Snapshot files: `snap-<index>-<term>.snap`, a header (magic, length and CRC32C of the
//! postcard [`SnapshotMeta`]), the payload the state machine wrote, and a trailer (payload
//! length, payload CRC32C, magic); written to a temporary name, synced and renamed. Both a
//! snapshot the node takes and one received from the leader go through [`SnapWriter`].

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use raft_core::{LogId, SnapshotMeta};

use super::record::{RecordOut, record_crc};
use super::{FileStorage, corrupt, io_err, sync_file, write_all};
use crate::storage::StorageError;
use crate::storage::fs::{FileSystem, WriteFile};

const INCOMING: &str = "incoming.snap.tmp";

const SNAP_MAGIC: &[u8; 8] = b"RAFTSNP1";

const SNAP_END: &[u8; 4] = b"SEND";

const SNAP_TRAILER: u64 = 16;

/// A snapshot's metadata is a membership and a log id: far below this.
const MAX_SNAP_META: u32 = 1 << 20;

pub(super) const IO_CHUNK: usize = 64 << 10;

pub(super) fn snapshot_name(id: LogId) -> String {
    format!("snap-{:020}-{:020}.snap", id.index.0, id.term.0)
}

pub(super) fn parse_snapshot_name(name: &str) -> Option<LogId> {
    let stem = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (index, term) = stem.split_once('-')?;
    Some(LogId::new(term.parse().ok()?, index.parse().ok()?))
}

fn snapshot_header(meta: &SnapshotMeta) -> Result<Vec<u8>, StorageError> {
    let encoded = postcard::to_allocvec(meta).map_err(|_| StorageError::Misuse {
        reason: "snapshot metadata that cannot be encoded",
    })?;
    let len = u32::try_from(encoded.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut header = Vec::with_capacity(16 + encoded.len());
    header.extend_from_slice(SNAP_MAGIC);
    header.extend_from_slice(&len);
    header.extend_from_slice(&record_crc(len, &encoded).to_le_bytes());
    header.extend_from_slice(&encoded);
    Ok(header)
}

fn snapshot_trailer(len: u64, crc: u32) -> [u8; 16] {
    let mut t = [0; 16];
    t[..8].copy_from_slice(&len.to_le_bytes());
    t[8..12].copy_from_slice(&crc.to_le_bytes());
    t[12..].copy_from_slice(SNAP_END);
    t
}

/// Where a durable snapshot's payload lies in its file.
#[derive(Clone, Debug)]
pub(super) struct SnapFile {
    pub(super) path: PathBuf,
    pub(super) payload_start: u64,
    pub(super) payload_len: u64,
    pub(super) payload_crc: u32,
}

/// Reads and checks the snapshot file `path` end to end.
pub(super) fn check_snapshot<R: Read + Seek>(
    mut file: R,
    path: &Path,
) -> Result<(SnapshotMeta, SnapFile), StorageError> {
    let read = |e| io_err("read", path, e);
    let mut fixed = [0u8; 16];
    let size = file.seek(SeekFrom::End(0)).map_err(read)?;
    file.seek(SeekFrom::Start(0)).map_err(read)?;
    if size < 16 + SNAP_TRAILER {
        return Err(corrupt(path, 0, "snapshot file too short"));
    }
    file.read_exact(&mut fixed).map_err(read)?;
    if &fixed[..8] != SNAP_MAGIC {
        return Err(corrupt(path, 0, "not a snapshot file"));
    }
    let len: [u8; 4] = fixed[8..12].try_into().unwrap_or_default();
    let crc = u32::from_le_bytes(fixed[12..16].try_into().unwrap_or_default());
    let meta_len = u32::from_le_bytes(len);
    if meta_len > MAX_SNAP_META || u64::from(meta_len) + 16 + SNAP_TRAILER > size {
        return Err(corrupt(path, 8, "impossible snapshot metadata length"));
    }
    let mut encoded = vec![0; meta_len as usize];
    file.read_exact(&mut encoded).map_err(read)?;
    if record_crc(len, &encoded) != crc {
        return Err(corrupt(path, 8, "snapshot metadata checksum mismatch"));
    }
    let meta: SnapshotMeta = postcard::from_bytes(&encoded)
        .map_err(|_| corrupt(path, 16, "undecodable snapshot metadata"))?;
    let payload_start = 16 + u64::from(meta_len);
    let payload_len = size - payload_start - SNAP_TRAILER;
    let mut crc = 0u32;
    let mut buf = vec![0; IO_CHUNK];
    let mut left = payload_len;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(IO_CHUNK).min(IO_CHUNK);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact(chunk).map_err(read)?;
        crc = crc32c::crc32c_append(crc, chunk);
        left -= n as u64;
    }
    let mut trailer = [0u8; 16];
    file.read_exact(&mut trailer).map_err(read)?;
    let trailer_at = payload_start + payload_len;
    if &trailer[12..] != SNAP_END
        || trailer[..8] != payload_len.to_le_bytes()
        || trailer[8..12] != crc.to_le_bytes()
    {
        return Err(corrupt(
            path,
            trailer_at,
            "snapshot payload checksum or length mismatch",
        ));
    }
    Ok((
        meta,
        SnapFile {
            path: path.to_path_buf(),
            payload_start,
            payload_len,
            payload_crc: crc,
        },
    ))
}

/// A snapshot file being written to its temporary name: the header, then the payload. Both a
/// snapshot the node takes and one received from the leader are written through one.
pub(super) struct SnapWriter<W> {
    pub(super) file: W,
    pub(super) tmp: PathBuf,
    pub(super) meta: SnapshotMeta,
    pub(super) payload_start: u64,
    pub(super) len: u64,
    pub(super) crc: u32,
}

impl<W: WriteFile> SnapWriter<W> {
    fn write_payload(&mut self, data: &[u8]) -> Result<(), StorageError> {
        write_all(&mut self.file, data, &self.tmp)?;
        self.len += data.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, data);
        Ok(())
    }
}

/// Streams a snapshot the node takes into a temporary file; hand it back to
/// [`Storage::finish_snapshot`](crate::storage::Storage::finish_snapshot) to make it the latest.
pub struct FileSnapshotWriter<W> {
    pub(super) inner: SnapWriter<W>,
    pub(super) buf: Vec<u8>,
    pub(super) failed: bool,
}

impl<W: WriteFile> FileSnapshotWriter<W> {
    pub(super) fn flush_buf(&mut self) -> Result<(), StorageError> {
        let r = self.inner.write_payload(&self.buf);
        self.buf.clear();
        self.failed |= r.is_err();
        r
    }
}

impl<W: WriteFile> io::Write for FileSnapshotWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("an earlier snapshot write failed"));
        }
        if self.buf.is_empty() && data.len() >= IO_CHUNK {
            // Large writes go straight through, not through the buffer.
            let r = self.inner.write_payload(data);
            self.failed = r.is_err();
            r.map_err(io::Error::other)?;
        } else {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= IO_CHUNK {
                self.flush_buf().map_err(io::Error::other)?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf().map_err(io::Error::other)
    }
}

/// Streams the latest snapshot's payload; fails with [`io::ErrorKind::InvalidData`] at the end if
/// the payload does not match its checksum.
pub struct FileSnapshotReader<R> {
    pub(super) file: R,
    pub(super) left: u64,
    pub(super) crc: u32,
    pub(super) expected: u32,
}

impl<R: Read> Read for FileSnapshotReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.file.read(buf.get_mut(..max).unwrap_or_default())?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "snapshot file shorter than its header says",
            ));
        }
        self.crc = crc32c::crc32c_append(self.crc, buf.get(..n).unwrap_or_default());
        self.left -= n as u64;
        if self.left == 0 && self.crc != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "snapshot payload checksum mismatch",
            ));
        }
        Ok(n)
    }
}

impl<F: FileSystem> FileStorage<F> {
    /// Makes `sf` the latest snapshot (its file is durable), records it in the log and deletes
    /// what it replaces.
    fn adopt_snapshot(&mut self, meta: SnapshotMeta, sf: SnapFile) -> Result<(), StorageError> {
        self.push_record(&RecordOut::Snapshot { meta: &meta })?;
        self.last_index = self.last_index.max(meta.last.index);
        self.snapshot = meta;
        self.chunk_reader = None;
        if let Some(old) = self.snap_file.replace(sf)
            && Some(&old.path) != self.snap_file.as_ref().map(|s| &s.path)
        {
            self.fs
                .remove(&old.path)
                .map_err(|e| io_err("remove", &old.path, e))?;
            self.dir_dirty = true;
        }
        self.compact()
    }

    pub(super) fn receive_chunk(
        &mut self,
        part: &raft_core::SnapshotPart,
    ) -> Result<(), StorageError> {
        if part.offset == 0 {
            self.incoming = None;
            self.incoming = Some(self.create_snapshot_file(self.dir.join(INCOMING), &part.meta)?);
        }
        let Some(inc) = self.incoming.as_mut() else {
            return Err(StorageError::Misuse {
                reason: "snapshot chunk out of order",
            });
        };
        inc.write_payload(&part.data)?;
        if !part.done {
            return Ok(());
        }
        let Some(inc) = self.incoming.take() else {
            return Ok(());
        };
        // Everything appended before this snapshot must be durable before it is.
        self.sync_inner()?;
        let (meta, sf) = self.seal(inc)?;
        self.install(meta, sf)
    }

    /// Creates the temporary file `tmp` for a snapshot and writes its header.
    pub(super) fn create_snapshot_file(
        &self,
        tmp: PathBuf,
        meta: &SnapshotMeta,
    ) -> Result<SnapWriter<F::WriteFile>, StorageError> {
        let header = snapshot_header(meta)?;
        let mut file = self
            .fs
            .create(&tmp)
            .map_err(|e| io_err("create", &tmp, e))?;
        write_all(&mut file, &header, &tmp)?;
        Ok(SnapWriter {
            file,
            tmp,
            meta: meta.clone(),
            payload_start: header.len() as u64,
            len: 0,
            crc: 0,
        })
    }

    /// Completes the snapshot file, syncs it and renames it into place (not yet durable in the
    /// directory, not yet adopted).
    pub(super) fn seal(
        &self,
        mut w: SnapWriter<F::WriteFile>,
    ) -> Result<(SnapshotMeta, SnapFile), StorageError> {
        write_all(&mut w.file, &snapshot_trailer(w.len, w.crc), &w.tmp)?;
        sync_file(&mut w.file, &w.tmp)?;
        let final_path = self.dir.join(snapshot_name(w.meta.last));
        self.fs
            .rename(&w.tmp, &final_path)
            .map_err(|e| io_err("rename", &w.tmp, e))?;
        let sf = SnapFile {
            path: final_path,
            payload_start: w.payload_start,
            payload_len: w.len,
            payload_crc: w.crc,
        };
        Ok((w.meta, sf))
    }

    /// Makes a sealed snapshot durable in the directory and the latest one.
    pub(super) fn install(&mut self, meta: SnapshotMeta, sf: SnapFile) -> Result<(), StorageError> {
        self.sync_dir()?;
        self.adopt_snapshot(meta, sf)
    }
}
