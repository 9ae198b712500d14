//! The handshake: a dialer's Hello checked against the address book and answered Welcome or
//! Refused, an outbound connection marked ready on Welcome, and handshakes past their deadline
//! closed.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::Token;
use raft_core::NodeId;

use super::super::connection::{Close, Phase, Side};
use super::EventLoop;
use crate::frame::{self, Hello, PeerFrame};

impl EventLoop {
    /// Checks a dialer's Hello; answers Welcome, or Refused and closes.
    pub(super) fn on_hello(
        &mut self,
        token: Token,
        remote: SocketAddr,
        hello: &Hello,
    ) -> Result<(), Close> {
        let me = self.config.id;
        let refusal = if hello.cluster != self.config.cluster {
            Some(format!(
                "it is of cluster '{}', this node of '{}'",
                hello.cluster, self.config.cluster
            ))
        } else if hello.to != me {
            Some(format!("it expected node {}, this is node {me}", hello.to))
        } else if hello.from == me {
            Some(format!("it claims this node's own id {me}"))
        } else {
            match self.peers.get(&hello.from) {
                // A node this one has not heard of: a member added by a configuration change
                // this node has not applied yet (it is behind, or restarted behind). Refusing it
                // would keep this node from ever catching up, so its address is learned from its
                // Hello, if the connection comes from that host. The core decides what its
                // messages are worth.
                None => match hello.addr.parse::<SocketAddr>() {
                    Ok(addr)
                        if !addr.ip().is_unspecified() && same_host(addr.ip(), remote.ip()) =>
                    {
                        log::info!(
                            "node {me}: learned peer {} at {addr} from its hello (not yet in the \
                             configuration this node applied)",
                            hello.from
                        );
                        self.change_peer(hello.from, Some(addr));
                        None
                    }
                    _ => Some(format!(
                        "node {} is not a known member, and {} is not an address of the host \
                         it connects from ({})",
                        hello.from,
                        hello.addr,
                        remote.ip()
                    )),
                },
                Some(p) if p.addr.to_string() != hello.addr => Some(format!(
                    "node {} is on record at {}, not {}",
                    hello.from, p.addr, hello.addr
                )),
                Some(p) if !same_host(p.addr.ip(), remote.ip()) => Some(format!(
                    "node {} is on record at {}, and this connection comes from {}",
                    hello.from,
                    p.addr.ip(),
                    remote.ip()
                )),
                Some(_) => None,
            }
        };
        if let Some(reason) = refusal {
            if let Some(conn) = self.conns.get_mut(&token) {
                frame::encode(
                    &PeerFrame::Refused {
                        reason: reason.clone(),
                    },
                    &mut conn.wbuf,
                );
                // Best effort: the connection is closed right after.
                let _ = conn
                    .stream
                    .write(conn.wbuf.get(conn.wpos..).unwrap_or_default());
            }
            return Err(Close::refused(format!(
                "refused a peer connection from {remote} claiming node {}: {reason}",
                hello.from
            )));
        }
        // A peer that reconnects (it restarted) replaces its older connection.
        let older: Vec<Token> = self
            .conns
            .iter()
            .filter(|(t, c)| {
                **t != token
                    && c.side
                        == (Side::Inbound {
                            peer: Some(hello.from),
                        })
            })
            .map(|(&t, _)| t)
            .collect();
        for t in older {
            self.close(
                t,
                &Close::lost("replaced by a newer connection from the peer"),
            );
        }
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.side = Side::Inbound {
                peer: Some(hello.from),
            };
            conn.phase = Phase::Ready;
            conn.deadline = None;
            frame::encode(
                &PeerFrame::Welcome {
                    cluster: self.config.cluster.clone(),
                    id: me,
                },
                &mut conn.wbuf,
            );
        }
        log::debug!("node {me}: accepted peer {} from {remote}", hello.from);
        Ok(())
    }

    pub(super) fn on_ready(&mut self, token: Token, peer: NodeId) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.phase = Phase::Ready;
            conn.deadline = None;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.ready = true;
            p.failures = 0;
            if p.was_up {
                log::info!(
                    "node {}: peer {peer} ({}) reconnected",
                    self.config.id,
                    p.addr
                );
            } else {
                log::info!(
                    "node {}: connected to peer {peer} ({})",
                    self.config.id,
                    p.addr
                );
            }
            p.down_logged = false;
            p.was_up = true;
            p.info.connected = true;
            self.dirty = true;
        }
    }

    pub(super) fn expire_handshakes(&mut self) {
        let now = Instant::now();
        let late: Vec<(Token, Side)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(&t, c)| (t, c.side))
            .collect();
        for (token, side) in late {
            let close = match side {
                // The network, most likely (a partition dropped the SYN): dial again.
                Side::Outbound { .. } => Close::lost("no answer within the connect timeout"),
                Side::Inbound { .. } => Close::bad("no handshake within the timeout"),
            };
            self.close(token, &close);
        }
    }
}

/// Whether a connection from `from` may come from the host on record at `recorded`: the same
/// IP, or any when the record names no particular host (0.0.0.0 or ::).
pub(super) fn same_host(recorded: IpAddr, from: IpAddr) -> bool {
    recorded.is_unspecified() || recorded == from || (recorded.is_loopback() && from.is_loopback())
}
