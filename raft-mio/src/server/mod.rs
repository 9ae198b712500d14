//! The `raft-kv` server: a node ([`RaftNode`] on [`FileStorage`]) with its peer transport
//! ([`PeerNet`]) and a RESP2 client listener, in one process.
//!
//! - Writes go through the log and are answered once a majority has them durable; reads are
//!   linearizable (ReadIndex at the leader). Any node answers any client: a follower forwards
//!   to the leader (over the peer connection) and relays the answer.
//! - Every write a connection sends is stamped with that connection's session, so the server's
//!   own retries (a lost forward, a change of leader) apply it once. `RAFT.ONCE` lets a client
//!   stamp its writes itself, to retry them through another server after losing a connection.
//! - A write that fails says whether it was applied: `-TRYAGAIN` (not applied: send it again),
//!   `-UNCERTAIN` (it may have been), `-ERR` (refused for good).

mod clients;
pub(crate) mod commands;
mod forward;
mod info;
mod machine;
mod nosync;
mod ops;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Interest, Poll, Waker};
use raft_core::{Membership, NodeId};
use raft_std::client::RequestError;
use raft_std::kv::KvConfig;
use raft_std::runtime::{RaftNode, RuntimeConfig};
use raft_std::storage::StorageError;
use raft_std::storage::file::{FileStorage, Identity};
use raft_std::storage::fs::{FileSystem, StdFs};
use raft_std::transport::Inbox;

pub use info::disk_usage;
pub use machine::{PeerSink, ServerMachine, StoreGauges};

use crate::transport::{PeerNet, PeerNetConfig};
use forward::ForwardFrame;
use ops::{DoneQueue, Ops};

/// How a `raft-kv` node runs. Every field has a default but the node's identity and addresses.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// This node.
    pub id: NodeId,
    /// The cluster's name: nodes of another cluster are refused, and a data directory of
    /// another cluster is not opened.
    pub cluster: String,
    /// Every member's peer address, this node's included (it listens there).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Where clients connect.
    pub client: SocketAddr,
    /// The data directory.
    pub data: PathBuf,
    /// Start as a learner joining a running cluster whose voters are the other `peers`, rather
    /// than as one of the founding voters. Only used when the data directory is new.
    pub join: bool,
    /// Whether writes are fsynced before they are acknowledged. Off is for tests only: a machine
    /// crash can then lose acknowledged writes.
    pub fsync: bool,
    /// The runtime's configuration: tick, election and heartbeat timeouts, snapshot threshold.
    pub runtime: RuntimeConfig,
    /// The longest a client request may take before it is answered `-TRYAGAIN` or
    /// `-UNCERTAIN`. Default 5 s.
    pub request_timeout: Duration,
    /// The most clients connected at once. Default 10,000.
    pub max_clients: usize,
    /// The store's limits.
    pub kv: KvConfig,
}

impl ServerConfig {
    /// Node `id` of the cluster `peers` (this node's peer address among them), serving clients
    /// on `client`, with data in `data`, and the defaults for the rest.
    #[must_use]
    pub fn new(
        id: NodeId,
        peers: BTreeMap<NodeId, SocketAddr>,
        client: SocketAddr,
        data: impl Into<PathBuf>,
    ) -> Self {
        Self {
            id,
            cluster: "raft-kv".into(),
            peers,
            client,
            data: data.into(),
            join: false,
            fsync: true,
            runtime: RuntimeConfig::new(id),
            request_timeout: Duration::from_secs(5),
            max_clients: 10_000,
            // Every connection has a session: keep many more than connections at once, so that
            // an idle connection's session outlives a churn of short ones.
            kv: KvConfig {
                max_sessions: 100_000,
                ..KvConfig::default()
            },
        }
    }
}

/// Why a server could not start or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is not usable.
    Config(String),
    /// The data directory could not be opened (damaged, of another cluster or node).
    Storage(StorageError),
    /// A listener could not be bound, or the event loop failed.
    Io(String, io::Error),
    /// The node could not start, or stopped with an error.
    Node(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => write!(f, "configuration: {e}"),
            Self::Storage(e) => write!(f, "storage: {e}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::Node(e) => write!(f, "node: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// A stable number for a cluster name, tagged on its data directories.
fn cluster_id(name: &str) -> u64 {
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The membership a new data directory starts with.
fn initial_membership(config: &ServerConfig) -> Result<Membership, ServerError> {
    let all: Vec<NodeId> = config.peers.keys().copied().collect();
    let result = if config.join {
        let voters: Vec<NodeId> = all.iter().copied().filter(|&n| n != config.id).collect();
        Membership::with_learners(&voters, &[config.id])
    } else {
        Membership::new(&all)
    };
    result.map_err(|e| ServerError::Config(format!("membership: {e}")))
}

/// Runs a `raft-kv` node until SIGTERM or SIGINT, then shuts it down cleanly: no new clients,
/// requests in flight finished, leadership handed over if this node leads, everything synced.
///
/// `ready` is called with the client address once the node serves.
///
/// # Errors
///
/// [`ServerError`] if it cannot start, or stops on an error.
pub fn run(config: ServerConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), ServerError> {
    if config.fsync {
        serve(config, StdFs, ready)
    } else {
        serve(config, nosync::NoSyncFs, ready)
    }
}

fn serve<F: FileSystem>(
    config: ServerConfig,
    fs: F,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let started = Instant::now();
    let Some(&peer_listen) = config.peers.get(&config.id) else {
        return Err(ServerError::Config(format!(
            "--peers does not name this node ({})",
            config.id
        )));
    };
    let membership = initial_membership(&config)?;
    let identity = Identity {
        cluster_id: cluster_id(&config.cluster),
        node_id: config.id,
    };
    let (storage, recovered) =
        FileStorage::open(fs, &config.data, identity, membership).map_err(ServerError::Storage)?;

    let mut net_config = PeerNetConfig::new(config.cluster.clone(), config.id, peer_listen);
    net_config.peers = config.peers.clone();
    net_config.max_frame = usize::try_from(config.runtime.raft.max_entry_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20)
        .max(net_config.max_frame);
    let inbox = Inbox::new();
    let net = Arc::new(
        PeerNet::start(net_config, inbox.sender())
            .map_err(|e| ServerError::Io(format!("peer listener {peer_listen}"), e))?,
    );

    let gauges = Arc::new(StoreGauges::default());
    let sink_net = Arc::clone(&net);
    let machine = ServerMachine::new(
        config.kv,
        Arc::new(move |id, addr| sink_net.set_peer(id, addr)),
        Arc::clone(&gauges),
    );
    let mut runtime = config.runtime.clone();
    runtime.raft.id = config.id;
    runtime.request_timeout = config.request_timeout;
    let tick = runtime.tick;
    let election_max = tick * runtime.raft.election_ticks_max;
    let node = RaftNode::start(runtime, storage, recovered, machine, net.transport(), inbox)
        .map_err(|e| ServerError::Node(e.to_string()))?;

    let poll = Poll::new().map_err(|e| ServerError::Io("poll".into(), e))?;
    let waker = Waker::new(poll.registry(), clients::WAKER)
        .map_err(|e| ServerError::Io("waker".into(), e))?;
    let done = Arc::new(DoneQueue::new(waker));
    install_forwarding(&node, &net, &done);

    let mut listener = crate::transport::listen(config.client)
        .map_err(|e| ServerError::Io(format!("client listener {}", config.client), e))?;
    let client_addr = listener
        .local_addr()
        .map_err(|e| ServerError::Io("client listener".into(), e))?;
    poll.registry()
        .register(&mut listener, clients::LISTENER, Interest::READABLE)
        .map_err(|e| ServerError::Io("client listener".into(), e))?;
    let mut signals = signal_pipe().map_err(|e| ServerError::Io("signal handlers".into(), e))?;
    poll.registry()
        .register(&mut signals, clients::SIGNALS, Interest::READABLE)
        .map_err(|e| ServerError::Io("signal pipe".into(), e))?;

    let ops = Ops::new(
        node.clone(),
        Arc::clone(&net),
        Arc::clone(&done),
        config.peers.keys().copied(),
        config.request_timeout,
        (election_max * 5).max(Duration::from_millis(500)),
        tick,
    )
    .with_follower_reads(config.runtime.raft.follower_reads);
    let ctx = commands::Ctx {
        fsync: config.fsync,
        max_clients: config.max_clients,
        max_entry_bytes: usize::try_from(config.runtime.raft.max_entry_bytes).unwrap_or(usize::MAX),
    };
    let sources = info::InfoSources {
        id: config.id,
        cluster: config.cluster.clone(),
        node: node.clone(),
        net: Arc::clone(&net),
        gauges,
        started,
        client_addr,
        peer_addr: peer_listen,
        data_dir: config.data.clone(),
        fsync: config.fsync,
        follower_reads: config.runtime.raft.follower_reads,
    };
    log::info!(
        "node {} of cluster '{}' serving clients on {client_addr}, peers on {peer_listen}, data \
         in {} (fsync {})",
        config.id,
        config.cluster,
        config.data.display(),
        if config.fsync { "on" } else { "OFF" }
    );
    ready(client_addr);
    let mut event_loop = clients::ClientLoop::new(poll, listener, signals, ops, done, ctx, sources);
    let served = event_loop.run();
    drop(event_loop);
    hand_over_leadership(&node, election_max * 2);
    let stopped = node.shutdown();
    net.shutdown();
    served.map_err(|e| ServerError::Io("client event loop".into(), e))?;
    stopped.map_err(|e| ServerError::Node(e.to_string()))?;
    log::info!("node {}: shut down cleanly", config.id);
    Ok(())
}

/// Routes application frames from peers: requests to run here, replies to requests sent.
fn install_forwarding(node: &RaftNode<ServerMachine>, net: &Arc<PeerNet>, done: &Arc<DoneQueue>) {
    let node = node.clone();
    let handler_net = Arc::clone(net);
    let done = Arc::clone(done);
    net.set_app_handler(Arc::new(move |from, bytes| match forward::decode(&bytes) {
        Some(ForwardFrame::Request {
            id,
            timeout_ms,
            body,
        }) => forward::serve(&node, &handler_net, from, id, timeout_ms, body),
        Some(ForwardFrame::Reply { id, result }) => {
            done.forwarded(
                from,
                id,
                result.map_err(forward::WireError::into_request_error),
            );
        }
        None => log::warn!("peer {from} sent a forwarding frame that does not decode"),
    }));
}

/// If this node leads, hands leadership to a voter that is caught up, and waits (up to
/// `patience`) for it to take over, so that clients see no election timeout.
fn hand_over_leadership(node: &RaftNode<ServerMachine>, patience: Duration) {
    let Ok(status) = node.status() else {
        return;
    };
    if status.role != raft_core::Role::Leader {
        return;
    }
    let target = status
        .peers
        .iter()
        .filter(|p| !p.learner && status.membership.is_voter(p.id))
        .max_by_key(|p| p.match_index)
        .map(|p| p.id);
    let Some(target) = target else {
        return;
    };
    match node.transfer_leader(target) {
        Ok(()) => {
            let deadline = Instant::now() + patience;
            while Instant::now() < deadline && node.observed().role == raft_core::Role::Leader {
                std::thread::sleep(Duration::from_millis(5));
            }
            log::info!("node {}: handed leadership to {target}", node.id());
        }
        Err(RequestError::NotLeader { .. }) => {}
        Err(e) => log::warn!("node {}: could not hand over leadership: {e}", node.id()),
    }
}

/// A pipe that SIGTERM and SIGINT write a byte to, for the event loop to wake on.
fn signal_pipe() -> io::Result<UnixStream> {
    let (read, write) = std::os::unix::net::UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let write2 = write.try_clone()?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, write)?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, write2)?;
    Ok(UnixStream::from_std(read))
}
