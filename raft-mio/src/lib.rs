//! The network adapter for [`raft_std`]: a TCP peer transport on `mio`, and `raft-kv`, a
//! replicated, linearizable key-value server that speaks the Redis protocol (RESP2).
//!
//! - [`frame`]: the peer wire format (length-prefixed postcard frames with a version byte).
//! - [`transport`]: [`PeerNet`](transport::PeerNet), one `mio` event loop per node, and
//!   [`MioTransport`](transport::MioTransport), its [`Transport`](raft_std::transport::Transport).

#![deny(missing_docs)]

pub mod frame;
pub mod transport;
