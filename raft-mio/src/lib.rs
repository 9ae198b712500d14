//! The network adapter for [`raft_std`]: a TCP peer transport on `mio`, and `raft-kv`, a
//! replicated, linearizable key-value server that speaks the Redis protocol (RESP2).
//!
//! - [`config`]: `raft-kv serve`'s flags and config file.
//! - [`local`]: `raft-kv` processes on loopback, for the demo and the tests.
//! - `fuzz` (only with the feature `fuzz`; test support): what the fuzz targets for the peer
//!   frames, RESP requests, KV snapshots and WAL segments run.
//! - [`frame`]: the peer wire format (length-prefixed postcard frames with a version byte).
//! - [`transport`]: [`PeerNet`](transport::PeerNet), one `mio` event loop per node, and
//!   [`MioTransport`](transport::MioTransport), its [`Transport`](raft_std::transport::Transport).
//! - [`resp`]: the RESP2 request parser, reply writer and a small blocking client.
//! - [`server`]: the `raft-kv` server: [`server::run`] serves one node until SIGTERM.

#![deny(missing_docs)]
// Nothing reachable from the network or the disk may panic: the lints raft-core uses (tests
// may unwrap).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

pub mod config;
pub mod demo;
pub mod frame;
#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod local;
pub mod resp;
pub mod server;
pub mod transport;
