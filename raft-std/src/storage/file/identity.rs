//! The `IDENTITY` file: which cluster and node a data directory belongs to, written once
//! (temporary file, fsync, rename, directory fsync) and checked at every open.

use std::path::Path;

use raft_core::NodeId;

use super::{corrupt, io_err, sync_dir_at, sync_file, write_all};
use crate::storage::StorageError;
use crate::storage::fs::FileSystem;

/// Which cluster and node a data directory belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Identity {
    /// The cluster's id, the same on every node of it.
    pub cluster_id: u64,
    /// This node's id.
    pub node_id: NodeId,
}

impl Identity {
    fn describe(self) -> String {
        format!("cluster {}/node {}", self.cluster_id, self.node_id)
    }
}

pub(super) const IDENTITY: &str = "IDENTITY";
const IDENTITY_MAGIC: &[u8; 8] = b"RAFTID01";

fn identity_bytes(identity: Identity) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(IDENTITY_MAGIC);
    b.extend_from_slice(&identity.cluster_id.to_le_bytes());
    b.extend_from_slice(&identity.node_id.get().to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

pub(super) fn write_identity<F: FileSystem>(
    fs: &F,
    dir: &Path,
    identity: Identity,
) -> Result<(), StorageError> {
    let tmp = dir.join("IDENTITY.tmp");
    let path = dir.join(IDENTITY);
    let mut f = fs.create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    write_all(&mut f, &identity_bytes(identity), &tmp)?;
    sync_file(&mut f, &tmp)?;
    fs.rename(&tmp, &path)
        .map_err(|e| io_err("rename", &tmp, e))?;
    sync_dir_at(fs, dir)
}

pub(super) fn check_identity<F: FileSystem>(
    fs: &F,
    dir: &Path,
    identity: Identity,
) -> Result<(), StorageError> {
    let path = dir.join(IDENTITY);
    let bytes = fs.read_all(&path).map_err(|e| io_err("read", &path, e))?;
    if bytes.len() != 28 || bytes.get(..8) != Some(IDENTITY_MAGIC.as_slice()) {
        return Err(corrupt(&path, 0, "not an identity file"));
    }
    let word = |at: usize| -> u64 {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let crc = bytes
        .get(24..28)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    if crc32c::crc32c(bytes.get(..24).unwrap_or_default()) != crc {
        return Err(corrupt(&path, 24, "identity checksum mismatch"));
    }
    let (cluster, node) = (word(8), word(16));
    if cluster != identity.cluster_id || node != identity.node_id.get() {
        return Err(StorageError::WrongIdentity {
            dir: dir.to_path_buf(),
            expected: identity.describe(),
            found: format!("cluster {cluster}/node {node}"),
        });
    }
    Ok(())
}
