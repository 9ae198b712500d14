#![no_main]
//! A simulated cluster whose schedule the fuzzer chooses; see `raft_core::sim::fuzz::cluster`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = raft_core::sim::fuzz::cluster(data) {
        panic!("{e}")
    }
});
