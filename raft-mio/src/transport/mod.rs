//! The peer transport: [`PeerNet`] runs one `mio` event loop per node that dials every peer,
//! accepts their connections, and moves [frames](crate::frame) both ways; [`MioTransport`] is
//! its [`Transport`] for the node thread.
//!
//! - Each node dials each peer and sends only on the connection it dialed; what it accepts, it
//!   only reads from. A connection starts with a [`Hello`](crate::frame::Hello) naming the
//!   cluster and both ids, answered by `Welcome` or `Refused`.
//! - The listener refuses a dialer from another cluster, one that expects another id, one whose
//!   id it does not know, and one whose claimed address (or, when the record names an IP, whose
//!   source IP) differs from what it has on record for that id. There is no authentication
//!   beyond this: run the peer port on a network only the cluster reaches.
//! - Every message the node thread sends in one round to one peer goes out in one write.
//! - A lost connection is dialed again with exponential backoff (50 ms doubling to 500 ms,
//!   with jitter). A dial that is not up within 500 ms, or a connection whose sent data stays
//!   unacknowledged for 1 s, is given up and dialed again, so that a healed network is used
//!   within about a second rather than after TCP's own retransmission backoff. Until it is up, sends to the peer fail with [`Unreachable`], which the runtime
//!   passes to the core.
//! - A connection that sends garbage, an oversized frame, a message it may not send (another
//!   sender's id), or nothing within the handshake timeout is closed and logged once; every
//!   other connection carries on.

mod connection;
mod event_loop;

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::Waker;
use raft_core::{Message, NodeId};
use raft_std::transport::{InboxSender, Transport, Unreachable};

/// Receives the application frames peers send ([`PeerNet::send_app`]), on the event loop's
/// thread: keep it short and never block in it.
pub type AppHandler = Arc<dyn Fn(NodeId, Vec<u8>) + Send + Sync>;

/// How a [`PeerNet`] runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PeerNetConfig {
    /// The cluster's name: nodes of other clusters are refused.
    pub cluster: String,
    /// This node.
    pub id: NodeId,
    /// Where to listen for peers.
    pub listen: SocketAddr,
    /// This node's peer address as the others have it on record (sent in the handshake).
    /// Default: `listen`.
    pub advertise: Option<SocketAddr>,
    /// The other nodes' peer addresses (more can be added with [`PeerNet::set_peer`]).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The largest frame accepted or sent, in bytes (a larger one to send is dropped, and
    /// [`PeerNet::send_app`] refuses it). Default 64 MiB: above the core's largest entry (8 MiB)
    /// plus a message's framing, and the store's largest read reply (32 MiB).
    pub max_frame: usize,
    /// The most bytes queued for one peer; past it, messages to that peer are dropped (Raft
    /// sends them again). Default 64 MiB.
    pub max_queued: usize,
    /// The first pause before dialing a peer again. Default 50 ms.
    pub backoff_min: Duration,
    /// The longest pause between dials. Default 500 ms.
    pub backoff_max: Duration,
    /// How long a peer that dialed this node may take to finish its handshake. Default 5 s.
    pub handshake_timeout: Duration,
    /// How long a dial may take, connect and handshake together, before it is given up and
    /// dialed again (after the backoff). Default 500 ms. A dial whose SYN a partition dropped
    /// would otherwise wait out TCP's own SYN retransmissions (1 s, 3 s, 7 s, ...) after the
    /// network heals.
    pub connect_timeout: Duration,
    /// How long data sent on a connection may stay unacknowledged before the connection is
    /// given up and dialed again (`TCP_USER_TIMEOUT` on Linux). Default 1 s. Without it, a
    /// connection whose packets a partition dropped stays in TCP's exponential retransmission
    /// backoff (seconds, doubling up to two minutes) long after the network heals, and the
    /// peer hears nothing from this node for that long: found by the chaos runs, where a
    /// healed cluster took up to 7 s to elect a leader.
    pub unacked_timeout: Duration,
}

impl PeerNetConfig {
    /// Node `id` of `cluster`, listening on `listen`, with the default limits and no peers yet.
    #[must_use]
    pub fn new(cluster: impl Into<String>, id: NodeId, listen: SocketAddr) -> Self {
        Self {
            cluster: cluster.into(),
            id,
            listen,
            advertise: None,
            peers: BTreeMap::new(),
            max_frame: 64 << 20,
            max_queued: 64 << 20,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_millis(500),
            unacked_timeout: Duration::from_secs(1),
        }
    }
}

/// What is known of one peer, for `INFO` and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer.
    pub id: NodeId,
    /// Its address on record.
    pub addr: SocketAddr,
    /// Whether this node's connection to it is up.
    pub connected: bool,
    /// Frames sent to it.
    pub frames_out: u64,
    /// Frames received from it.
    pub frames_in: u64,
    /// Times the connection to it was lost.
    pub disconnects: u64,
    /// Messages dropped because too much was queued for it.
    pub dropped: u64,
}

/// Counters of the whole transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Connections refused at the handshake (another cluster, an unknown id, a wrong address).
    pub refused: u64,
    /// Connections closed for sending bytes that are not frames, or frames they may not send.
    pub bad_input: u64,
}

/// What the node thread, the server and the event loop share.
struct Shared {
    outbox: Mutex<Outbox>,
    waker: Waker,
    /// A wake-up is pending: senders skip the syscall until the loop has taken it.
    woken: AtomicBool,
    stop: AtomicBool,
    app: Mutex<Option<AppHandler>>,
    /// Published by the loop after every round in which something changed.
    info: Mutex<(Vec<PeerInfo>, NetCounters)>,
}

/// What waits to be sent, and what the loop tells the senders.
#[derive(Default)]
struct Outbox {
    raft: Vec<Message>,
    app: Vec<(NodeId, Vec<u8>)>,
    /// Address book changes to apply.
    peer_changes: Vec<(NodeId, Option<SocketAddr>)>,
    /// The peers whose connection is up (set by the loop).
    ready: HashSet<NodeId>,
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            // A failed wake (the loop is gone) leaves nothing to do.
            let _ = self.waker.wake();
        }
    }
}

/// A running peer transport. Dropping it stops the event loop.
pub struct PeerNet {
    shared: Arc<Shared>,
    max_frame: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for PeerNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerNet")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl PeerNet {
    /// Binds the peer listener and starts the event loop; messages received are delivered to
    /// `inbox`.
    ///
    /// # Errors
    ///
    /// The listener cannot be bound (the address is in use, say), or the loop cannot start.
    pub fn start(config: PeerNetConfig, inbox: InboxSender) -> io::Result<Self> {
        let max_frame = config.max_frame;
        let (event_loop, waker, local_addr) = event_loop::EventLoop::bind(config, inbox)?;
        let shared = Arc::new(Shared {
            outbox: Mutex::new(Outbox::default()),
            waker,
            woken: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            app: Mutex::new(None),
            info: Mutex::new((Vec::new(), NetCounters::default())),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("raft-peer-net".into())
            .spawn(move || event_loop.run(&thread_shared))?;
        Ok(Self {
            shared,
            max_frame,
            thread: Mutex::new(Some(thread)),
            local_addr,
        })
    }

    /// The address the listener is bound to.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The [`Transport`] the node thread sends through.
    #[must_use]
    pub fn transport(&self) -> MioTransport {
        MioTransport {
            shared: Arc::clone(&self.shared),
            pending: Vec::new(),
            ready: HashSet::new(),
        }
    }

    /// Where application frames from peers go (frames that arrive before one is set are
    /// dropped).
    pub fn set_app_handler(&self, handler: AppHandler) {
        *self
            .shared
            .app
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(handler);
    }

    /// Sends application bytes to peer `to`.
    ///
    /// # Errors
    ///
    /// [`Unreachable`] if the connection to `to` is not up, or the bytes would not fit in a
    /// frame.
    pub fn send_app(&self, to: NodeId, bytes: Vec<u8>) -> Result<(), Unreachable> {
        // The frame adds a few bytes of framing to the payload's own.
        if bytes.len().saturating_add(32) > self.max_frame {
            return Err(Unreachable { to });
        }
        {
            let mut out = self.shared.outbox();
            if !out.ready.contains(&to) {
                return Err(Unreachable { to });
            }
            out.app.push((to, bytes));
        }
        self.shared.wake();
        Ok(())
    }

    /// Records (or, with `None`, forgets) the peer address of node `id`. A connection to an old
    /// address is closed and the new one dialed.
    pub fn set_peer(&self, id: NodeId, addr: Option<SocketAddr>) {
        self.shared.outbox().peer_changes.push((id, addr));
        self.shared.wake();
    }

    /// Every peer on record, and the transport's counters.
    #[must_use]
    pub fn info(&self) -> (Vec<PeerInfo>, NetCounters) {
        self.shared
            .info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the event loop and closes every connection.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The node thread's end of a [`PeerNet`]: messages are queued by [`Transport::send`] and
/// handed to the event loop, all at once, by [`Transport::flush`].
pub struct MioTransport {
    shared: Arc<Shared>,
    /// Messages of this round, not yet handed over.
    pending: Vec<Message>,
    /// The peers whose connection was up at the last flush.
    ready: HashSet<NodeId>,
}

impl Transport for MioTransport {
    fn send(&mut self, msg: Message) -> Result<(), Unreachable> {
        if !self.ready.contains(&msg.to) {
            return Err(Unreachable { to: msg.to });
        }
        self.pending.push(msg);
        Ok(())
    }

    fn flush(&mut self) {
        {
            let mut out = self.shared.outbox();
            out.raft.append(&mut self.pending);
            if out.ready != self.ready {
                self.ready.clone_from(&out.ready);
            }
        }
        self.shared.wake();
    }
}

/// A non-blocking listener on `addr` with a backlog of 1,024 connections (the standard library
/// and `mio` ask for 128: a burst of connections then overflows the queue, and each dropped
/// SYN costs its client a one-second retransmission).
///
/// # Errors
///
/// The address cannot be bound.
pub fn listen(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Parses `1=127.0.0.1:7001,2=127.0.0.1:7002`.
///
/// # Errors
///
/// A description of the first item that is not `id=host:port` with a non-zero id and a socket
/// address, or of an id given twice.
pub fn parse_peers(text: &str) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("'{item}' is not id=host:port"))?;
        let id = id
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(NodeId::new)
            .ok_or_else(|| format!("'{id}' is not a node id (a number from 1)"))?;
        let addr = resolve(addr.trim())?;
        if peers.insert(id, addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    Ok(peers)
}

/// Resolves `host:port` to its first socket address.
///
/// # Errors
///
/// A description if it does not resolve.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| format!("'{addr}' is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("'{addr}' resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists_parse_and_errors_say_what_is_wrong() {
        let peers = parse_peers("1=127.0.0.1:7001, 2=127.0.0.1:7002").unwrap();
        assert_eq!(peers.len(), 2);
        assert!(
            parse_peers("0=127.0.0.1:1")
                .unwrap_err()
                .contains("node id")
        );
        assert!(
            parse_peers("1:127.0.0.1:1")
                .unwrap_err()
                .contains("id=host:port")
        );
        assert!(
            parse_peers("1=nowhere")
                .unwrap_err()
                .contains("not an address")
        );
        assert!(
            parse_peers("1=127.0.0.1:1,1=127.0.0.1:2")
                .unwrap_err()
                .contains("twice")
        );
    }
}
