//! The state of one peer connection and of one peer's outbound side, and why a connection
//! closes (what the event loop logs and counts).

use std::net::SocketAddr;
use std::time::Instant;

use mio::Token;
use mio::net::TcpStream;
use raft_core::NodeId;

use super::PeerInfo;

/// Which end of a connection this node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// This node dialed `peer`: it sends on this connection.
    Outbound { peer: NodeId },
    /// A peer dialed this node: it only reads. `peer` once the handshake named it.
    Inbound { peer: Option<NodeId> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Outbound, waiting for the TCP connect to finish.
    Connecting,
    /// Outbound: Hello sent, waiting for Welcome. Inbound: waiting for Hello.
    Handshake,
    /// Frames flow.
    Ready,
}

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) remote: SocketAddr,
    pub(super) side: Side,
    pub(super) phase: Phase,
    /// Bytes read and not yet decoded (from `rpos`).
    pub(super) rbuf: Vec<u8>,
    pub(super) rpos: usize,
    /// Bytes to write (from `wpos`).
    pub(super) wbuf: Vec<u8>,
    pub(super) wpos: usize,
    /// Whether WRITABLE interest is registered.
    pub(super) want_write: bool,
    /// The handshake must be done by then.
    pub(super) deadline: Option<Instant>,
}

impl Conn {
    pub(super) fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

/// The outbound side of one peer.
pub(super) struct Peer {
    pub(super) addr: SocketAddr,
    pub(super) conn: Option<Token>,
    pub(super) ready: bool,
    /// Dial failures in a row (sets the backoff).
    pub(super) failures: u32,
    /// Not dialed again before this.
    pub(super) retry_at: Instant,
    /// Whether the loss of the connection has been logged (once per loss).
    pub(super) down_logged: bool,
    /// Whether the connection was ever up.
    pub(super) was_up: bool,
    pub(super) info: PeerInfo,
}

/// Why a connection is closed, for the log line.
pub(super) struct Close {
    pub(super) level: log::Level,
    pub(super) why: String,
    /// It broke the protocol (counted in `bad_input`) or was refused (`refused`).
    pub(super) bad: Option<Bad>,
}

#[derive(Clone, Copy)]
pub(super) enum Bad {
    Input,
    Refused,
}

impl Close {
    pub(super) fn lost(why: impl Into<String>) -> Self {
        Self {
            level: log::Level::Debug,
            why: why.into(),
            bad: None,
        }
    }

    pub(super) fn bad(why: impl Into<String>) -> Self {
        Self {
            level: log::Level::Warn,
            why: why.into(),
            bad: Some(Bad::Input),
        }
    }

    pub(super) fn refused(why: impl Into<String>) -> Self {
        Self {
            level: log::Level::Warn,
            why: why.into(),
            bad: Some(Bad::Refused),
        }
    }
}

impl Conn {
    pub(super) fn new(
        stream: TcpStream,
        remote: SocketAddr,
        side: Side,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            stream,
            remote,
            side,
            phase: Phase::Handshake,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            wpos: 0,
            want_write: false,
            deadline,
        }
    }
}

impl Peer {
    pub(super) fn new(id: NodeId, addr: SocketAddr, now: Instant) -> Self {
        Self {
            addr,
            conn: None,
            ready: false,
            failures: 0,
            retry_at: now,
            down_logged: false,
            was_up: false,
            info: PeerInfo {
                id,
                addr,
                connected: false,
                frames_out: 0,
                frames_in: 0,
                disconnects: 0,
                dropped: 0,
            },
        }
    }
}
