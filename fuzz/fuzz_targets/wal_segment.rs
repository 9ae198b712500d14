#![no_main]
//! WAL recovery fed a first segment of arbitrary bytes (what a node reads from its disk at
//! start): a refusal naming the file and offset, or what it recovered, never a panic; and a
//! directory recovered once (a torn tail cut) opens again to the same.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = raft_mio::fuzz::wal_segment(data) {
        panic!("{e}");
    }
});
