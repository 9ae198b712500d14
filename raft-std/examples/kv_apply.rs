//! The KV state machine's apply path alone, no log or disk: applies `SET`s of 256-byte values
//! (new keys, then overwrites in a scattered order, then overwrites while a snapshot view is
//! held, where the store supports one) and prints the time per write.
//!
//! Run: `cargo run --release -p raft-std --example kv_apply [keys]` (default 1,000,000).

use std::error::Error;
use std::time::Instant;

use raft_core::Index;
use raft_std::kv::{ClientId, KvCommand, KvConfig, KvRequest, KvStore};
use raft_std::state_machine::StateMachine;

fn main() -> Result<(), Box<dyn Error>> {
    let keys: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |s| s.parse())?;
    let commands = |order: fn(u64, u64) -> u64| {
        (0..keys)
            .map(|i| {
                let command = KvCommand::set(format!("key{:08}", order(i, keys)), vec![b'v'; 256]);
                KvRequest::new(ClientId(0), 0, command).encode()
            })
            .collect::<Vec<_>>()
    };
    let fresh = commands(|i, _| i);
    // A stride coprime with the key count scatters the overwrites over the whole map.
    let scattered = commands(|i, n| (i * 7_919) % n);
    let mut store = KvStore::new(KvConfig::default());
    let mut index = 0;
    let mut run = |what: &str, store: &mut KvStore, batch: &[Vec<u8>]| {
        let t0 = Instant::now();
        for c in batch {
            index += 1;
            store.apply(Index(index), c);
        }
        let per = t0.elapsed() / u32::try_from(batch.len()).unwrap_or(u32::MAX).max(1);
        println!("{what:<40} {per:>10.2?} per write");
    };
    run("new keys", &mut store, &fresh);
    run("overwrites", &mut store, &scattered);
    run("overwrites", &mut store, &scattered);
    // A view shares the maps: each node written while it lives is copied first (once).
    let view = store.snapshot_source();
    run(
        "overwrites while a snapshot view lives",
        &mut store,
        &scattered,
    );
    drop(view);
    let view = store.snapshot_source();
    run(
        "overwrites of 1% while a view lives",
        &mut store,
        &scattered[..scattered.len() / 100],
    );
    drop(view);
    run("overwrites (no view)", &mut store, &scattered);
    println!("{} keys, {} bytes", store.len(), store.bytes_used());
    Ok(())
}
