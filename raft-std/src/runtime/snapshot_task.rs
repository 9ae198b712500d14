//! Snapshots written off the node thread.
//!
//! When the core suggests a snapshot, the node thread takes the state machine's view
//! ([`StateMachine::snapshot_source`](crate::state_machine::StateMachine::snapshot_source)) at
//! the applied index and begins the snapshot in storage (a temporary file and its header:
//! cheap), then hands both to a thread of this module's, which streams the view into the
//! writer without holding the storage (the storage stage goes on appending and syncing), and
//! takes the storage only for [`Storage::finish_snapshot`], which makes the snapshot durable
//! and the latest and compacts the log on disk. It posts the outcome to the node's inbox,
//! where the node thread steps [`Input::SnapshotTaken`](raft_core::Input::SnapshotTaken) for a
//! stored snapshot: the core drops its log only once the snapshot is durable.
//!
//! One snapshot at a time. The outcomes:
//!
//! - stored: the node steps `SnapshotTaken` (the core ignores a snapshot older than one
//!   installed from the leader meanwhile; storage discards it too);
//! - the view failed (its own error, not the writer's): logged, the snapshot dropped (its
//!   temporary file is garbage, deleted when storage is next opened), and the node goes on; it
//!   tries again once another [`Config::snapshot_log_entries`](raft_core::Config) entries are
//!   applied;
//! - the storage failed (`begin_snapshot`, a write to the writer, `finish_snapshot`), or the
//!   view panicked: fatal, the node stops, as when the snapshot was written on the node thread
//!   (the policy of the [module docs](super), "Failures").
//!
//! A node that stops with a snapshot in flight does not wait for the view: the writer fails
//! the view's next write, and the thread never calls `finish_snapshot` once the node has
//! stopped (checked under the storage lock, which the stopping node takes once after it says
//! so), so no snapshot is stored half-written or after the node is gone.

use std::any::Any;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use raft_core::{Index, NodeId, SnapshotMeta};

use crate::error::NodeError;
use crate::state_machine::SnapshotSource;
use crate::storage::Storage;
use crate::transport::{InboxSender, SnapshotWritten};

/// The snapshot in flight, if any, of one node (see the module docs).
pub(super) struct SnapshotTask<St> {
    id: NodeId,
    storage: Arc<Mutex<St>>,
    inbox: InboxSender,
    in_flight: Option<InFlight>,
    /// After a dropped snapshot: try again once the applied index passes this.
    retry_after: Option<Index>,
}

struct InFlight {
    last: raft_core::LogId,
    started: Instant,
    /// The node is stopping: fail the view's writes, never finish.
    cancel: Arc<AtomicBool>,
}

impl<St: Storage> SnapshotTask<St> {
    pub(super) const fn new(id: NodeId, storage: Arc<Mutex<St>>, inbox: InboxSender) -> Self {
        Self {
            id,
            storage,
            inbox,
            in_flight: None,
            retry_after: None,
        }
    }

    /// Whether a snapshot is being written.
    pub(super) const fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether a dropped snapshot should be tried again now that `applied` is applied.
    pub(super) fn retry_due(&self, applied: Index) -> bool {
        self.in_flight.is_none() && self.retry_after.is_some_and(|r| applied > r)
    }

    /// Begins a snapshot of `source` (a view at `meta.last`) in storage, here, and writes it
    /// on a thread of its own.
    pub(super) fn start(
        &mut self,
        meta: SnapshotMeta,
        source: Box<dyn SnapshotSource>,
    ) -> Result<(), NodeError> {
        let writer = super::storage_stage::lock(&self.storage)?.begin_snapshot(&meta)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let last = meta.last;
        let spawned = {
            let (storage, inbox, cancel) = (
                Arc::clone(&self.storage),
                self.inbox.clone(),
                Arc::clone(&cancel),
            );
            thread::Builder::new()
                .name(format!("raft-snapshot-{}", self.id))
                .spawn(move || {
                    if let Some(written) = write(&storage, meta, writer, source, &cancel) {
                        // `false`: the node is gone; nothing to tell.
                        let _ = inbox.snapshot_written(written);
                    }
                })
        };
        match spawned {
            Ok(_) => {
                self.retry_after = None;
                self.in_flight = Some(InFlight {
                    last,
                    started: Instant::now(),
                    cancel,
                });
            }
            Err(e) => {
                // The temporary file is garbage, deleted when storage is next opened.
                log::warn!(
                    "node {}: snapshot at {last} dropped: cannot start its thread: {e}",
                    self.id
                );
                self.retry_after = Some(last.index);
            }
        }
        Ok(())
    }

    /// The snapshot in flight ended as `written`: the metadata to step as `SnapshotTaken`, if
    /// stored. `every` is how many entries apart snapshots are suggested.
    pub(super) fn finished(
        &mut self,
        written: SnapshotWritten,
        every: u64,
    ) -> Result<Option<Box<SnapshotMeta>>, NodeError> {
        let started = self.in_flight.take().map(|f| (f.last, f.started));
        match written {
            SnapshotWritten::Stored(meta) => {
                if let Some((_, t)) = started {
                    log::info!(
                        "node {}: snapshot at {} written in {:?} (off the node thread)",
                        self.id,
                        meta.last,
                        t.elapsed()
                    );
                }
                Ok(Some(meta))
            }
            SnapshotWritten::Dropped(e) => {
                let last = started.map_or(Index::ZERO, |(l, _)| l.index);
                log::warn!(
                    "node {}: snapshot at index {last} dropped: the state machine failed to \
                     write it: {e}",
                    self.id
                );
                self.retry_after = Some(Index(last.0.saturating_add(every)));
                Ok(None)
            }
            SnapshotWritten::Failed(e) => Err(e),
        }
    }
}

impl<St> Drop for SnapshotTask<St> {
    /// Stops the snapshot in flight, if any: after this returns it is never stored.
    fn drop(&mut self) {
        if let Some(f) = self.in_flight.take() {
            f.cancel.store(true, Ordering::Release);
            // The thread checks the flag under the lock before it finishes: once the lock is
            // had here, a finish in progress is over and none can start. (Poisoned: the
            // thread that held it panicked; nothing more is written either way.)
            drop(self.storage.lock());
            log::info!(
                "node {}: snapshot at {} abandoned: the node stopped",
                self.id,
                f.last
            );
        }
    }
}

/// What the thread does: stream the view, then finish under the storage lock. `None` when the
/// node stopped meanwhile.
fn write<St: Storage>(
    storage: &Mutex<St>,
    meta: SnapshotMeta,
    mut writer: St::SnapshotWriter,
    source: Box<dyn SnapshotSource>,
    cancel: &AtomicBool,
) -> Option<SnapshotWritten> {
    let mut out = Guarded {
        inner: &mut writer,
        cancel,
        failed: false,
    };
    let result = catch_unwind(AssertUnwindSafe(|| source.write_to(&mut out)));
    let writer_failed = out.failed;
    match result {
        Err(panic) => {
            return Some(SnapshotWritten::Failed(NodeError::Panicked(format!(
                "the state machine's snapshot: {}",
                panic_message(&*panic)
            ))));
        }
        _ if cancel.load(Ordering::Acquire) => return None,
        // The writer's error is the storage's: fatal, as on the node thread.
        Ok(Err(e)) if writer_failed => {
            return Some(SnapshotWritten::Failed(NodeError::StateMachine(e)));
        }
        Ok(Err(e)) => return Some(SnapshotWritten::Dropped(e)),
        Ok(Ok(())) => {}
    }
    let Ok(mut st) = storage.lock() else {
        return Some(SnapshotWritten::Failed(NodeError::Panicked(
            "a thread panicked while holding the storage".to_owned(),
        )));
    };
    if cancel.load(Ordering::Acquire) {
        return None;
    }
    Some(match st.finish_snapshot(writer) {
        Ok(()) => SnapshotWritten::Stored(Box::new(meta)),
        Err(e) => SnapshotWritten::Failed(e.into()),
    })
}

/// The storage's writer, failing every write once the node stops, and noting whether it
/// failed itself.
struct Guarded<'a, W> {
    inner: &'a mut W,
    cancel: &'a AtomicBool,
    failed: bool,
}

impl<W: io::Write> Guarded<'_, W> {
    fn check(&self) -> io::Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("the node stopped"));
        }
        Ok(())
    }
}

impl<W: io::Write> io::Write for Guarded<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        let r = self.inner.write(buf);
        self.failed |= r.is_err();
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        let r = self.inner.flush();
        self.failed |= r.is_err();
        r
    }
}

/// The message a panic carried.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
