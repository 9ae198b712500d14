//! Replays the committed fuzz corpora of the raft-mio targets (`fuzz/corpus/peer_frame`,
//! `resp_request`, `kv_snapshot`, `wal_segment`, `kv_request`) and any saved crash inputs
//! (`fuzz/regressions/<target>/`) through the functions the targets wrap, so that `cargo test` catches a regression without
//! a fuzzer (ARCHITECTURE.md, "Testing layers").

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            assert!(kind != "corpus", "{} is missing", dir.display());
            continue;
        };
        files.extend(
            entries.map(|e| e.unwrap().path()).filter(|p| {
                p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.')
            }),
        );
    }
    files.sort();
    assert!(!files.is_empty(), "no inputs for {target}");
    files
}

fn replay(target: &str, run: fn(&[u8]) -> Result<(), String>) {
    let mut failed = Vec::new();
    let files = inputs(target);
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if let Err(e) = run(&data) {
            failed.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(failed.is_empty(), "{target}: {failed:#?}");
    println!("{target}: {} inputs replayed", files.len());
}

#[test]
fn peer_frame_corpus() {
    replay("peer_frame", raft_mio::fuzz::peer_frame);
}

#[test]
fn resp_request_corpus() {
    replay("resp_request", raft_mio::fuzz::resp_request);
}

#[test]
fn kv_snapshot_corpus() {
    replay("kv_snapshot", raft_mio::fuzz::kv_snapshot);
}

#[test]
fn wal_segment_corpus() {
    replay("wal_segment", raft_mio::fuzz::wal_segment);
}

#[test]
fn kv_request_corpus() {
    replay("kv_request", |data| {
        if let Ok(request) = raft_std::kv::decode_request(data) {
            let again = raft_std::kv::decode_request(&request.encode())
                .map_err(|e| format!("re-decoding failed: {e}"))?;
            if again != request {
                return Err(format!("{request:?} re-decoded as {again:?}"));
            }
        }
        Ok(())
    });
}
