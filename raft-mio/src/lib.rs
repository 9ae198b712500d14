//! The network adapter: TCP transport on `mio` and the `raft-kv` server.
//!
//! Not built yet: this crate is a placeholder until its issue is taken.
