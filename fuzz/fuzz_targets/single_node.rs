#![no_main]
//! A single node fed arbitrary inputs; see `raft_core::sim::fuzz::single_node`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = raft_core::sim::fuzz::single_node(data) {
        panic!("{e}")
    }
});
