#![no_main]
//! The KV request decoder (what every replica applies from the log) fed arbitrary bytes: a
//! request decoded must encode back to the same bytes' meaning.

use libfuzzer_sys::fuzz_target;
use raft_std::kv::decode_request;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_request(data) {
        let again = decode_request(&request.encode()).expect("an encoded request decodes");
        assert_eq!(again, request);
    }
});
