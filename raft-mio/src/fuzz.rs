//! What the fuzz targets run (`fuzz/fuzz_targets/peer_frame.rs`, `resp_request.rs`,
//! `kv_snapshot.rs`, `wal_segment.rs`), callable from tests so that `cargo test` replays their
//! corpora without a fuzzer. Each returns an error describing a broken property; a panic is a bug
//! too.
//!
//! Test support, behind the feature `fuzz`: [`wal_segment`] opens storage on raft-std's
//! fault-injecting in-memory file system (`raft_std::test_util`), which `raft-kv` is never built
//! with.

use std::path::Path;

use raft_core::{Membership, NodeId};
use raft_std::kv::{KvConfig, KvStore};
use raft_std::state_machine::StateMachine;
use raft_std::storage::file::{FileStorage, FileStorageOptions, Identity};
use raft_std::storage::fs::FileSystem;
use raft_std::test_util::faulty::FaultyFs;

use crate::frame::{self, FrameDecoder};
use crate::resp::{self, Limits, Parsed};
use crate::server::commands;

/// Decodes peer frames from arbitrary bytes; every frame decoded must be what the derived decode
/// gives for its body, and must encode and decode back to itself.
///
/// # Errors
///
/// A frame that does not round-trip.
pub fn peer_frame(data: &[u8]) -> Result<(), String> {
    let decoder = FrameDecoder::new(1 << 20);
    let mut rest = data;
    loop {
        match decoder.decode(rest) {
            Ok(Some((f, used))) => {
                if used == 0 || used > rest.len() {
                    return Err(format!("decode used {used} of {} bytes", rest.len()));
                }
                let body = rest.get(frame::HEADER..used).unwrap_or_default();
                if frame::decode_body_derived(body).as_ref() != Ok(&f) {
                    return Err(format!("{f:?} is not what the derived decode gives"));
                }
                let mut again = Vec::new();
                frame::encode(&f, &mut again);
                match decoder.decode(&again) {
                    Ok(Some((back, n))) if back == f && n == again.len() => {}
                    other => return Err(format!("{f:?} re-decoded as {other:?}")),
                }
                rest = rest.get(used..).unwrap_or_default();
            }
            Ok(None) | Err(_) => return Ok(()),
        }
    }
}

/// Parses RESP requests from arbitrary bytes and interprets each as a command; every request
/// parsed must survive being written as a multibulk request and parsed again.
///
/// # Errors
///
/// A request that does not round-trip, or a parse that consumed nothing.
pub fn resp_request(data: &[u8]) -> Result<(), String> {
    let limits = Limits {
        max_args: 1024,
        max_bulk: 1 << 16,
        max_inline: 1 << 12,
        max_request: 1 << 18,
    };
    let ctx = commands::Ctx {
        fsync: true,
        max_clients: 16,
        max_entry_bytes: 1 << 20,
    };
    let mut rest = data;
    loop {
        match resp::parse_request(rest, &limits) {
            Ok(Parsed::Request(args, used)) => {
                if used == 0 || used > rest.len() {
                    return Err(format!("parse used {used} of {} bytes", rest.len()));
                }
                if !args.is_empty() {
                    let mut wire = format!("*{}\r\n", args.len()).into_bytes();
                    for a in &args {
                        wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                        wire.extend_from_slice(a);
                        wire.extend_from_slice(b"\r\n");
                    }
                    match resp::parse_request(&wire, &Limits::default()) {
                        Ok(Parsed::Request(back, n)) if back == args && n == wire.len() => {}
                        other => return Err(format!("{args:?} re-parsed as {other:?}")),
                    }
                    let _ = commands::parse(args, &ctx);
                }
                rest = rest.get(used..).unwrap_or_default();
            }
            Ok(Parsed::Incomplete { need }) => {
                if need <= rest.len() {
                    return Err(format!(
                        "incomplete with {} bytes, needing {need}",
                        rest.len()
                    ));
                }
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
    }
}

/// Restores a KV store from arbitrary bytes (what a node does with a snapshot file or a
/// leader's InstallSnapshot): an error or a store, never a panic. A store restored must
/// snapshot to bytes that restore to a store with the same snapshot.
///
/// # Errors
///
/// A restored store whose snapshot does not round-trip.
pub fn kv_snapshot(data: &[u8]) -> Result<(), String> {
    let snapshot = |store: &KvStore| {
        let mut out = Vec::new();
        store
            .snapshot(&mut out)
            .map(|()| out)
            .map_err(|e| format!("a restored store did not snapshot: {e}"))
    };
    let mut store = KvStore::new(KvConfig::default());
    if store.restore(&mut &data[..]).is_err() {
        return Ok(());
    }
    let first = snapshot(&store)?;
    let mut again = KvStore::new(KvConfig::default());
    again
        .restore(&mut &first[..])
        .map_err(|e| format!("its own snapshot did not restore: {e}"))?;
    if snapshot(&again)? != first {
        return Err("a snapshot restored and taken again changed".to_owned());
    }
    Ok(())
}

/// Opens a data directory (in memory) whose first WAL segment holds arbitrary bytes, as a node
/// does at start: a refusal ([`StorageError`](raft_std::storage::StorageError), naming the file
/// and offset) or what it recovered, never a panic. A directory recovered once (a torn tail cut)
/// must open again and recover the same.
///
/// # Errors
///
/// The fresh directory could not be made, or a recovered directory did not open again the same.
pub fn wal_segment(data: &[u8]) -> Result<(), String> {
    let dir = Path::new("/d");
    let open = |fs: FaultyFs| {
        let node = NodeId::new(1).ok_or("node id 1")?;
        let voters = [
            node,
            NodeId::new(2).ok_or("id")?,
            NodeId::new(3).ok_or("id")?,
        ];
        let membership = Membership::new(&voters).map_err(|e| e.to_string())?;
        let identity = Identity {
            cluster_id: 7,
            node_id: node,
        };
        let options = FileStorageOptions {
            segment_size: 2048,
            write_buffer: 512,
        };
        Ok::<_, String>(FileStorage::open_with(
            fs, dir, identity, membership, options,
        ))
    };
    let fs = FaultyFs::new(1);
    // A fresh directory: its IDENTITY file and first segment.
    drop(open(fs.clone())?.map_err(|e| format!("a fresh directory: {e}"))?);
    let names = fs.list_dir(dir).map_err(|e| e.to_string())?;
    let segment = names
        .iter()
        .find(|n| n.ends_with(".wal"))
        .ok_or("a fresh directory has no segment")?;
    fs.put(&dir.join(segment), data);
    let Ok((storage, first)) = open(fs.clone())? else {
        return Ok(());
    };
    drop(storage);
    let (_, again) = open(fs)?.map_err(|e| format!("recovered once, then refused: {e}"))?;
    if again != first {
        return Err("a second open recovered something else".to_owned());
    }
    Ok(())
}
