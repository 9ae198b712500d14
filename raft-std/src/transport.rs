//! How messages travel between nodes: the [`Transport`] trait a node sends through, the
//! [`Inbox`] it receives from, and [`ChannelTransport`], an in-process network over channels
//! that can be partitioned.
//!
//! A transport delivers each message it receives from the network to the addressee's inbox with
//! an [`InboxSender`] (cheap to clone, usable from any thread). The node thread waits on its
//! [`Inbox`] for messages and client requests alike.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use raft_core::{Message, NodeId, SnapshotMeta, WriteId};

use crate::error::NodeError;
use crate::storage::StorageError;

/// Sends a node's messages to its peers.
///
/// Called from the node thread: [`Transport::send`] MUST NOT block for long (queue the message
/// and return; a TCP transport hands it to its I/O thread). Messages may be lost, duplicated or
/// reordered: Raft tolerates all three.
pub trait Transport: Send + 'static {
    /// Queues `msg` for `msg.to`.
    ///
    /// # Errors
    ///
    /// [`Unreachable`] if the peer cannot be reached right now (no connection, the peer is
    /// down). The runtime then tells the core ([`raft_core::Input::Unreachable`]), which stops
    /// pipelining to that peer and probes. A message silently lost is not an error.
    fn send(&mut self, msg: Message) -> Result<(), Unreachable>;

    /// Called after each batch of sends: a transport that batches messages to the same peer
    /// into one write may write them out now. The default does nothing.
    fn flush(&mut self) {}
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, msg: Message) -> Result<(), Unreachable> {
        (**self).send(msg)
    }

    fn flush(&mut self) {
        (**self).flush();
    }
}

/// A peer cannot be reached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Unreachable {
    /// The peer the message was for (`Message::to`).
    pub to: NodeId,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} is unreachable", self.to)
    }
}

impl std::error::Error for Unreachable {}

/// What wakes a node thread.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A message from a peer.
    Message(Message),
    /// A client request is waiting in the runtime's request queue (or the node should stop).
    Wake,
    /// The storage stage synced every write up to this id, or failed.
    Synced(Result<WriteId, StorageError>),
    /// A snapshot written off the node thread is done.
    Snapshot(SnapshotWritten),
}

/// How a snapshot written off the node thread ended.
#[derive(Debug)]
pub(crate) enum SnapshotWritten {
    /// Durable and the latest in storage (or discarded there for a newer one): the node steps
    /// `SnapshotTaken` with this.
    Stored(Box<SnapshotMeta>),
    /// The state machine's view failed: nothing was stored, the node goes on.
    Dropped(io::Error),
    /// Storage failed (or the view panicked): the node stops.
    Failed(NodeError),
}

/// A node's inbox: messages from peers and wake-ups from clients, read by the node thread.
#[derive(Debug)]
pub struct Inbox {
    rx: Receiver<Inbound>,
    tx: Sender<Inbound>,
}

impl Default for Inbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Inbox {
    /// An empty inbox.
    #[must_use]
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Self { rx, tx }
    }

    /// A handle that delivers into this inbox, for a transport.
    #[must_use]
    pub fn sender(&self) -> InboxSender {
        InboxSender {
            tx: self.tx.clone(),
        }
    }

    /// Waits up to `timeout` for the next item.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Option<Inbound> {
        // The inbox holds a sender itself, so it never disconnects: `None` is a timeout.
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next item, if one is waiting.
    pub(crate) fn try_recv(&self) -> Option<Inbound> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for the next message delivered, skipping wake-ups: for a test of a
    /// transport, or a runtime of one's own that reads this inbox.
    pub fn recv_message(&self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left).ok()? {
                Inbound::Message(msg) => return Some(msg),
                Inbound::Wake | Inbound::Synced(_) | Inbound::Snapshot(_) => {}
            }
        }
    }
}

/// Delivers into a node's [`Inbox`]. Clone it for every thread that delivers.
#[derive(Clone, Debug)]
pub struct InboxSender {
    tx: Sender<Inbound>,
}

impl InboxSender {
    /// Delivers a message received from the network.
    ///
    /// # Errors
    ///
    /// [`InboxClosed`] if the node is gone (its inbox was dropped).
    pub fn deliver(&self, msg: Message) -> Result<(), InboxClosed> {
        self.tx.send(Inbound::Message(msg)).map_err(|_| InboxClosed)
    }

    /// Wakes the node thread; `false` if it is gone.
    pub(crate) fn wake(&self) -> bool {
        self.tx.send(Inbound::Wake).is_ok()
    }

    /// Tells the node thread what its storage stage synced; `false` if it is gone.
    pub(crate) fn synced(&self, result: Result<WriteId, StorageError>) -> bool {
        self.tx.send(Inbound::Synced(result)).is_ok()
    }

    /// Reports a snapshot written off the node thread; `false` if the node is gone.
    pub(crate) fn snapshot_written(&self, written: SnapshotWritten) -> bool {
        self.tx.send(Inbound::Snapshot(written)).is_ok()
    }
}

/// The node an [`InboxSender`] delivers to is gone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InboxClosed;

impl fmt::Display for InboxClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the node's inbox is closed")
    }
}

impl std::error::Error for InboxClosed {}

/// An in-process network of [`ChannelTransport`]s. Clone the handle freely: every clone is the
/// same network.
///
/// Links can be cut ([`ChannelNetwork::partition`], [`ChannelNetwork::cut`]) and restored
/// ([`ChannelNetwork::heal`]); a message on a cut link is silently lost. A message to a node
/// that is not registered (or whose inbox is gone) is reported [`Unreachable`].
#[derive(Clone, Debug, Default)]
pub struct ChannelNetwork {
    inner: Arc<Mutex<NetState>>,
}

#[derive(Debug, Default)]
struct NetState {
    inboxes: HashMap<NodeId, InboxSender>,
    /// Directed links that drop every message: (from, to).
    cut: HashSet<(NodeId, NodeId)>,
    delivered: u64,
    dropped: u64,
}

impl ChannelNetwork {
    /// A network with no nodes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connects node `id`: returns its transport and its inbox. Registering an id again (a node
    /// restarting) replaces its inbox; messages to the old one are lost.
    #[must_use]
    pub fn register(&self, id: NodeId) -> (ChannelTransport, Inbox) {
        let inbox = Inbox::new();
        self.lock().inboxes.insert(id, inbox.sender());
        let transport = ChannelTransport {
            id,
            network: self.clone(),
        };
        (transport, inbox)
    }

    /// Disconnects node `id`: messages to it are reported unreachable until it registers again.
    pub fn unregister(&self, id: NodeId) {
        self.lock().inboxes.remove(&id);
    }

    /// Cuts every link between a node in `a` and a node in `b`, both ways.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut net = self.lock();
        for &x in a {
            for &y in b {
                net.cut.insert((x, y));
                net.cut.insert((y, x));
            }
        }
    }

    /// Cuts the link from `from` to `to` only: `to` still reaches `from`.
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.lock().cut.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// Delivers `msg` to `msg.to` as if it came off the wire, ignoring cut links: for tests
    /// that feed a node forged or malformed messages.
    ///
    /// # Errors
    ///
    /// [`Unreachable`] if the addressee is not registered.
    pub fn inject(&self, msg: Message) -> Result<(), Unreachable> {
        let peer = msg.to;
        let net = self.lock();
        let inbox = net.inboxes.get(&peer).ok_or(Unreachable { to: peer })?;
        inbox.deliver(msg).map_err(|_| Unreachable { to: peer })
    }

    /// Messages delivered and messages lost on cut links so far.
    #[must_use]
    pub fn counts(&self) -> (u64, u64) {
        let net = self.lock();
        (net.delivered, net.dropped)
    }
}

/// One node's end of a [`ChannelNetwork`].
#[derive(Clone, Debug)]
pub struct ChannelTransport {
    id: NodeId,
    network: ChannelNetwork,
}

impl ChannelTransport {
    /// The node this transport sends for.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }
}

impl Transport for ChannelTransport {
    fn send(&mut self, msg: Message) -> Result<(), Unreachable> {
        let peer = msg.to;
        let mut net = self.network.lock();
        if net.cut.contains(&(self.id, peer)) {
            net.dropped += 1;
            return Ok(());
        }
        let Some(inbox) = net.inboxes.get(&peer) else {
            return Err(Unreachable { to: peer });
        };
        if inbox.deliver(msg).is_err() {
            return Err(Unreachable { to: peer });
        }
        net.delivered += 1;
        Ok(())
    }
}
