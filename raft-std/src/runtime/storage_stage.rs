//! The storage stage: a thread that appends the core's writes and syncs them while the node
//! thread goes on stepping (Raft thesis §10.2.1: the leader replicates, and everyone keeps
//! answering, while its own disk write is in flight).
//!
//! The node thread hands every drained [`Write`] to [`StorageStage::submit`], in order. The
//! stage thread takes all the writes queued since its last sync, appends them, syncs once (group
//! commit: the longer a sync takes, the more writes the next one covers) and posts the last id
//! to the node's inbox, where the driver steps it as
//! [`Input::Persisted`](raft_core::Input::Persisted). So nothing is acknowledged before it is
//! durable, and the core's persistence contract (responses that vouch for a write are held until
//! it is acknowledged) does the rest. A failed append or sync is posted instead and stops the
//! node; the stage then takes no more writes.
//!
//! The storage itself sits behind a mutex shared with the node thread, which uses it directly
//! for what is rare and not on the write path: taking and loading snapshots, reading snapshot
//! chunks for followers. Those wait for a sync in flight to finish.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use raft_core::Write;

use crate::error::NodeError;
use crate::storage::{Storage, StorageError};
use crate::transport::InboxSender;

/// Writes waiting for the stage thread.
#[derive(Default)]
struct Queue {
    writes: Vec<Write>,
    /// The node thread is stopping: finish what is queued, then exit.
    stop: bool,
    /// The stage failed: it takes nothing more.
    failed: bool,
}

struct Pending {
    queue: Mutex<Queue>,
    more: Condvar,
}

/// The storage stage of one node (see the module docs).
pub(super) struct StorageStage<St> {
    pending: Arc<Pending>,
    thread: Option<JoinHandle<()>>,
    _storage: std::marker::PhantomData<fn(St)>,
}

/// Locks the storage; a thread that panicked while holding it leaves it in an unknown state,
/// which stops the node.
pub(super) fn lock<St>(storage: &Mutex<St>) -> Result<MutexGuard<'_, St>, NodeError> {
    storage
        .lock()
        .map_err(|_| NodeError::Panicked("the storage stage panicked while writing".to_owned()))
}

impl<St: Storage> StorageStage<St> {
    /// Starts the stage thread for node `id` over `storage` (which the node thread keeps a handle
    /// to for its snapshot work); completions go to `inbox`.
    pub(super) fn start(
        id: raft_core::NodeId,
        storage: Arc<Mutex<St>>,
        inbox: InboxSender,
    ) -> Result<Self, NodeError> {
        let pending = Arc::new(Pending {
            queue: Mutex::new(Queue::default()),
            more: Condvar::new(),
        });
        let thread = {
            let pending = Arc::clone(&pending);
            thread::Builder::new()
                .name(format!("raft-storage-{id}"))
                .spawn(move || run(&storage, &pending, &inbox))
                .map_err(NodeError::Spawn)?
        };
        Ok(Self {
            pending,
            thread: Some(thread),
            _storage: std::marker::PhantomData,
        })
    }

    /// Queues writes (in the order the core emitted them) for the next sync.
    pub(super) fn submit(&self, writes: impl Iterator<Item = Write>) {
        let mut q = self
            .pending
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if q.failed {
            // The failure is already on its way to the node thread, which will stop.
            return;
        }
        let was_empty = q.writes.is_empty();
        q.writes.extend(writes);
        if was_empty && !q.writes.is_empty() {
            self.pending.more.notify_one();
        }
    }
}

impl<St> Drop for StorageStage<St> {
    /// Finishes the writes already queued (a stopping node syncs what it wrote), then stops the
    /// thread.
    fn drop(&mut self) {
        self.pending
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.pending.more.notify_one();
        if let Some(t) = self.thread.take() {
            // A panic in the stage thread was already reported as a poisoned storage lock or a
            // missing completion; nothing more to do with it here.
            let _ = t.join();
        }
    }
}

/// The stage thread: take everything queued, append it, sync once, post the last id.
fn run<St: Storage>(storage: &Mutex<St>, pending: &Pending, inbox: &InboxSender) {
    let mut batch = Vec::new();
    loop {
        {
            let mut q = pending.queue.lock().unwrap_or_else(PoisonError::into_inner);
            while q.writes.is_empty() && !q.stop {
                q = pending.more.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            if q.writes.is_empty() {
                return; // stopping, and nothing left to write
            }
            std::mem::swap(&mut batch, &mut q.writes);
        }
        let Some(last) = batch.last().map(|w| w.id) else {
            continue;
        };
        // A poisoned lock means the node thread panicked with the storage in hand: its state is
        // unknown, so write nothing more (the node thread is stopping).
        let Ok(mut st) = storage.lock() else { return };
        let result = write_batch(&mut *st, &batch).map(|()| last);
        drop(st);
        batch.clear();
        let failed = result.is_err();
        if failed {
            pending
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .failed = true;
        }
        if !inbox.synced(result) || failed {
            return; // the node is gone, or the storage refuses everything from now on
        }
    }
}

/// Appends `batch` and syncs once.
fn write_batch<St: Storage>(st: &mut St, batch: &[Write]) -> Result<(), StorageError> {
    for w in batch {
        st.append(w)?;
    }
    st.sync()
}
