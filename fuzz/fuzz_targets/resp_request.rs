#![no_main]
//! The RESP request parser and the command parser fed arbitrary bytes; see
//! `raft_mio::fuzz::resp_request`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = raft_mio::fuzz::resp_request(data) {
        panic!("{e}")
    }
});
