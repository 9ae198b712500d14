#![no_main]
//! The peer frame decoder fed arbitrary bytes; see `raft_mio::fuzz::peer_frame`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = raft_mio::fuzz::peer_frame(data) {
        panic!("{e}")
    }
});
