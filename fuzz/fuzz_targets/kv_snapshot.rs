#![no_main]
//! The KV store's snapshot decoder (a snapshot file read at start, or one installed from a
//! leader) fed arbitrary bytes: an error or a store, never a panic, and a store restored
//! snapshots to bytes that restore to the same store.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = raft_mio::fuzz::kv_snapshot(data) {
        panic!("{e}");
    }
});
