//! The server's state machine: the [`KvStore`], and a view of what the server needs to know of
//! it without asking the node thread (the peer address book, the key count).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use raft_core::{Index, NodeId};
use raft_std::kv::{KvCommand, KvConfig, KvQuery, KvResponse, KvStore, decode_request};
use raft_std::state_machine::{SnapshotSource, StateMachine};

/// Called with every change of the replicated peer address book, on the node thread.
pub type PeerSink = Arc<dyn Fn(NodeId, Option<SocketAddr>) + Send + Sync>;

/// Counters of the store, published after every apply.
#[derive(Debug, Default)]
pub struct StoreGauges {
    /// Keys in the store.
    pub keys: AtomicU64,
    /// Bytes of keys and values.
    pub bytes: AtomicU64,
}

/// A [`KvStore`] that tells the transport where peers are.
pub struct ServerMachine {
    kv: KvStore,
    /// The address book as last passed to `sink`.
    book: BTreeMap<u64, String>,
    sink: PeerSink,
    gauges: Arc<StoreGauges>,
}

impl ServerMachine {
    /// An empty store with `config`.
    #[must_use]
    pub fn new(config: KvConfig, sink: PeerSink, gauges: Arc<StoreGauges>) -> Self {
        Self {
            kv: KvStore::new(config),
            book: BTreeMap::new(),
            sink,
            gauges,
        }
    }

    /// Passes every change between the book last seen and the store's to the sink.
    fn sync_book(&mut self) {
        let now = self.kv.peers();
        if *now == self.book {
            return;
        }
        for (id, addr) in now {
            if self.book.get(id) != Some(addr)
                && let Some(node) = NodeId::new(*id)
            {
                match addr.parse::<SocketAddr>() {
                    Ok(a) => (self.sink)(node, Some(a)),
                    Err(e) => log::warn!("peer {id}'s recorded address {addr:?}: {e}"),
                }
            }
        }
        for id in self.book.keys() {
            if !now.contains_key(id)
                && let Some(node) = NodeId::new(*id)
            {
                (self.sink)(node, None);
            }
        }
        self.book.clone_from(now);
    }

    fn publish(&self) {
        self.gauges
            .keys
            .store(self.kv.len() as u64, Ordering::Relaxed);
        self.gauges
            .bytes
            .store(self.kv.bytes_used() as u64, Ordering::Relaxed);
    }
}

impl StateMachine for ServerMachine {
    type Response = KvResponse;
    type Query = KvQuery;
    type QueryResponse = KvResponse;

    fn apply(&mut self, index: Index, command: &[u8]) -> KvResponse {
        let response = match decode_request(command) {
            Ok(request) => {
                let peer = matches!(request.command, KvCommand::SetPeer { .. });
                let response = self.kv.apply_request(index, request);
                if peer {
                    self.sync_book();
                }
                response
            }
            Err(e) => KvResponse::Error(e),
        };
        self.publish();
        response
    }

    fn query(&self, query: &KvQuery) -> KvResponse {
        self.kv.query(query)
    }

    fn snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
        self.kv.snapshot(out)
    }

    /// The store's view: an O(1) copy, written off the node thread.
    fn snapshot_source(&self) -> Option<Box<dyn SnapshotSource>> {
        self.kv.snapshot_source()
    }

    fn restore(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
        self.kv.restore(input)?;
        self.sync_book();
        self.publish();
        Ok(())
    }
}
