//! The node thread: steps the core, persists, applies, and completes requests (the loop the
//! [module docs](super) describe).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use raft_core::{
    Apply, EntryKind, Event, Index, Input, LogId, Node, NodeId, Outputs, Payload, ReadId,
    ReadResult, Role, SnapshotChunk, SplitMix64, StepError, Term,
};

use super::handle::{Observed, Request, Shared};
use super::snapshot_task::{SnapshotTask, panic_message};
use super::storage_stage::{StorageStage, lock};
use crate::client::{Completion, RequestError, Uncertainty};
use crate::error::NodeError;
use crate::state_machine::StateMachine;
use crate::storage::{Storage, StorageError};
use crate::transport::{Inbound, Inbox, Transport};

/// Runs the driver until it stops, records why, and completes every request left.
pub(super) fn run_thread<M: StateMachine, St: Storage, T: Transport>(
    mut driver: Driver<M, St, T>,
    shared: &Shared,
) {
    let result = catch_unwind(AssertUnwindSafe(|| driver.run()));
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(panic) => Some(NodeError::Panicked(panic_message(&*panic))),
    };
    if let Some(e) = &failure {
        log::error!("node {}: stopped: {e}", driver.node.id());
    }
    if let Some(e) = failure {
        *shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(e));
    }
    shared.stop.store(true, Ordering::Release);
    // No request is queued once the gate is closed: what is in the queue now is all there is.
    *shared.open.lock().unwrap_or_else(PoisonError::into_inner) = false;
    // A panic in the middle of a completion leaves the driver's maps as they were; completing
    // what they hold cannot panic again unless a completion does.
    let _ = catch_unwind(AssertUnwindSafe(|| driver.fail_everything(shared)));
}

/// At most this many inbox items are stepped before a round of outputs, so that a flood of
/// messages cannot delay the disk and the replies indefinitely.
const MAX_BATCH: usize = 4096;

/// A proposal waiting to be applied.
struct PendingProposal<R> {
    /// The term of its entry: another entry at its index means it was dropped.
    term: Term,
    deadline: Instant,
    done: Completion<R>,
}

/// A read waiting for the core to confirm leadership, then for the state machine to apply its
/// read point.
struct PendingRead<M: StateMachine> {
    query: M::Query,
    /// The last index this node had appended for a proposal when the read arrived: the read is
    /// served no earlier, so it sees every write this node accepted before it.
    after: Index,
    deadline: Instant,
    /// Refused unless this node leads when its round starts.
    leader_only: bool,
    done: Completion<M::QueryResponse>,
}

/// The node thread's state.
pub(super) struct Driver<M: StateMachine, St, T> {
    node: Node<SplitMix64>,
    out: Outputs,
    /// The storage; the stage thread (if any) shares it.
    storage: Arc<Mutex<St>>,
    /// The storage stage, which appends and syncs off this thread (`None`: this thread does,
    /// blocking for every sync).
    stage: Option<StorageStage<St>>,
    /// The snapshot being written off this thread, if any.
    snapshots: SnapshotTask<St>,
    sm: M,
    transport: T,
    inbox: Inbox,
    requests: Receiver<Request<M>>,
    shared: Arc<Shared>,
    tick: Duration,
    /// When the last tick was stepped.
    last_tick: Instant,
    /// Proposals waiting to be applied, by log index.
    proposals: BTreeMap<Index, PendingProposal<M::Response>>,
    /// Reads not yet answered, by this thread's number for each.
    reads: HashMap<u64, PendingRead<M>>,
    /// Reads that arrived in this batch of requests: they share one ReadIndex round, stepped
    /// once the batch is taken (every one of them arrived before it, so its read point serves
    /// them all).
    read_batch: Vec<u64>,
    /// The reads each ReadIndex round the core knows of serves, by the core's read id.
    read_rounds: HashMap<u64, Vec<u64>>,
    next_read_round: u64,
    /// Confirmed reads waiting for the state machine to apply their index. The core releases a
    /// node's reads with non-decreasing indexes (each is the commit index when the read
    /// arrived, released in arrival order, and the commit index never decreases), so they are
    /// appended at the back and served from the front. An id no longer in `reads` timed out.
    /// Numbers of reads, not of rounds.
    reads_ready: VecDeque<(Index, u64)>,
    next_read: u64,
    /// The index of the last entry appended for a proposal here.
    last_proposed: Index,
    /// No request deadline passes before this (`None`: no request waits).
    next_deadline: Option<Instant>,
    /// A reusable buffer for snapshot chunks.
    chunk: Vec<u8>,
    /// Peers the transport could not reach in this round.
    unreachable: Vec<NodeId>,
    /// Peers reported unreachable to the core in this round of outputs.
    reported: Vec<NodeId>,
    /// What was last published to the handles.
    published: Observed,
}

/// The thread should stop (shutdown, or every handle dropped).
struct Stop;

impl<M: StateMachine, St: Storage, T: Transport> Driver<M, St, T> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        node: Node<SplitMix64>,
        out: Outputs,
        storage: Arc<Mutex<St>>,
        stage: Option<StorageStage<St>>,
        sm: M,
        transport: T,
        inbox: Inbox,
        requests: Receiver<Request<M>>,
        shared: Arc<Shared>,
        tick: Duration,
    ) -> Self {
        let published = Observed {
            role: node.role(),
            term: node.term(),
            leader: node.leader(),
            applied: node.applied_index(),
        };
        let snapshots = SnapshotTask::new(node.id(), Arc::clone(&storage), inbox.sender());
        Self {
            node,
            out,
            storage,
            stage,
            snapshots,
            sm,
            transport,
            inbox,
            requests,
            shared,
            tick,
            last_tick: Instant::now(),
            proposals: BTreeMap::new(),
            reads: HashMap::new(),
            read_batch: Vec::new(),
            read_rounds: HashMap::new(),
            next_read_round: 0,
            reads_ready: VecDeque::new(),
            next_read: 0,
            last_proposed: Index::ZERO,
            next_deadline: None,
            chunk: Vec::new(),
            unreachable: Vec::new(),
            reported: Vec::new(),
            published,
        }
    }

    fn run(&mut self) -> Result<(), NodeError> {
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let mut wait = self.until_timer();
            // Say it may sleep, then look for requests sent meanwhile (see `Shared::asleep`).
            self.shared.asleep.store(true, Ordering::SeqCst);
            if self.shared.queued.load(Ordering::SeqCst) > 0 {
                wait = Duration::ZERO;
            }
            let first = self.inbox.recv_timeout(wait);
            self.shared.asleep.store(false, Ordering::SeqCst);
            if let Some(item) = first {
                self.inbound(item)?;
                for _ in 0..MAX_BATCH {
                    let Some(item) = self.inbox.try_recv() else {
                        break;
                    };
                    self.inbound(item)?;
                }
            }
            if self.shared.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.requests()?.is_err() {
                return Ok(());
            }
            self.ticks()?;
            self.outputs()?;
            self.expire(Instant::now());
            self.publish();
        }
    }

    /// How long to wait before the next timer fires or the next request deadline passes.
    fn until_timer(&self) -> Duration {
        let ticks = self.node.ticks_until_timer().min(1000);
        let mut deadline = self.last_tick + self.tick * ticks;
        if let Some(d) = self.next_deadline {
            deadline = deadline.min(d);
        }
        deadline.saturating_duration_since(Instant::now())
    }

    /// Steps the ticks that have passed.
    fn ticks(&mut self) -> Result<(), NodeError> {
        let elapsed = self.last_tick.elapsed();
        let n = elapsed.as_nanos() / self.tick.as_nanos().max(1);
        if n == 0 {
            return Ok(());
        }
        // After a long pause (a stopped process, a suspended machine) step enough ticks to fire
        // every timer, not millions.
        let limit = u128::from(self.node.config().election_ticks_max) * 2;
        if n > limit {
            self.last_tick = Instant::now();
        } else {
            // `n` is at most `limit`, a u32 doubled.
            self.last_tick += self.tick * u32::try_from(n).unwrap_or(u32::MAX);
        }
        for _ in 0..n.min(limit) {
            self.step(Input::Tick)?;
        }
        Ok(())
    }

    /// Steps an input; only a misuse (a bug here) is an error. Rejected network input is
    /// counted by the core; refusals are for the caller to report.
    fn step(&mut self, input: Input) -> Result<(), NodeError> {
        match self.node.step(input, &mut self.out) {
            Ok(()) | Err(StepError::Rejected(_) | StepError::Refused(_)) => Ok(()),
            Err(e) => Err(NodeError::Core(e)),
        }
    }

    fn inbound(&mut self, item: Inbound) -> Result<(), NodeError> {
        match item {
            Inbound::Message(msg) => self.step(Input::Message(msg)),
            Inbound::Wake => Ok(()),
            Inbound::Synced(Ok(id)) => self.step(Input::Persisted(id)),
            Inbound::Synced(Err(e)) => Err(NodeError::Storage(e)),
            Inbound::Snapshot(written) => {
                let every = self.node.config().snapshot_log_entries;
                match self.snapshots.finished(written, every)? {
                    Some(meta) => self.step(Input::SnapshotTaken(meta)),
                    None => Ok(()),
                }
            }
        }
    }

    /// Steps every waiting client request. `Err(Stop)` when every handle is gone.
    fn requests(&mut self) -> Result<Result<(), Stop>, NodeError> {
        loop {
            let request = match self.requests.try_recv() {
                Ok(r) => {
                    self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                    r
                }
                Err(TryRecvError::Empty) => {
                    self.start_read_round()?;
                    return Ok(Ok(()));
                }
                Err(TryRecvError::Disconnected) => return Ok(Err(Stop)),
            };
            match request {
                Request::Propose {
                    command,
                    deadline,
                    done,
                } => self.propose(command, deadline, done)?,
                Request::Read {
                    query,
                    deadline,
                    leader_only,
                    done,
                } => self.read(query, deadline, leader_only, done),
                Request::ReadLocal { query, done } => done.complete(Ok(self.sm.query(&query))),
                Request::Status(done) => done.complete(Ok(self.node.status())),
                Request::Stats(done) => done.complete(Ok(*self.node.stats())),
                Request::Transfer { to, done } => {
                    let result = self.answer(Input::TransferLeader(to))?;
                    done.complete(result);
                }
                Request::ChangeMembership { target, done } => {
                    let result = match self.node.change_membership(&target, &mut self.out) {
                        Ok(id) => Ok(id),
                        Err(StepError::Refused(r)) => Err(RequestError::from_refusal(r)),
                        Err(e) => return Err(NodeError::Core(e)),
                    };
                    done.complete(result);
                }
            }
        }
    }

    /// Steps `input` for a caller: a refusal is the caller's answer, a misuse is fatal.
    fn answer(&mut self, input: Input) -> Result<Result<(), RequestError>, NodeError> {
        match self.node.step(input, &mut self.out) {
            Ok(()) => Ok(Ok(())),
            Err(StepError::Refused(r)) => Ok(Err(RequestError::from_refusal(r))),
            Err(e) => Err(NodeError::Core(e)),
        }
    }

    fn propose(
        &mut self,
        command: Payload,
        deadline: Instant,
        done: Completion<M::Response>,
    ) -> Result<(), NodeError> {
        match self.node.propose(command, &mut self.out) {
            Ok(LogId { term, index }) => {
                self.note_deadline(deadline);
                self.last_proposed = index;
                let pending = PendingProposal {
                    term,
                    deadline,
                    done,
                };
                if let Some(earlier) = self.proposals.insert(index, pending) {
                    // A proposal from an earlier term at the same index: its entry is gone
                    // from this leader's log.
                    earlier.done.complete(Err(RequestError::LeaderChanged));
                }
            }
            Err(StepError::Refused(r)) => done.complete(Err(RequestError::from_refusal(r))),
            Err(e) => return Err(NodeError::Core(e)),
        }
        Ok(())
    }

    /// Queues a read for the next ReadIndex round (see `read_batch`).
    fn read(
        &mut self,
        query: M::Query,
        deadline: Instant,
        leader_only: bool,
        done: Completion<M::QueryResponse>,
    ) {
        self.next_read += 1;
        let id = self.next_read;
        self.note_deadline(deadline);
        self.reads.insert(
            id,
            PendingRead {
                query,
                after: Index::ZERO,
                deadline,
                leader_only,
                done,
            },
        );
        self.read_batch.push(id);
    }

    /// Starts one ReadIndex round for the reads of this batch.
    fn start_read_round(&mut self) -> Result<(), NodeError> {
        if self.read_batch.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.read_batch);
        if self.node.role() != Role::Leader {
            // Leader-only reads are refused here, whatever the core would do with them.
            let leader = self.node.leader();
            let reads = &mut self.reads;
            batch.retain(|id| {
                if !reads.get(id).is_some_and(|r| r.leader_only) {
                    return true;
                }
                if let Some(r) = reads.remove(id) {
                    r.done.complete(Err(RequestError::NotLeader { leader }));
                }
                false
            });
            if batch.is_empty() {
                return Ok(());
            }
        }
        self.next_read_round += 1;
        let round = self.next_read_round;
        match self.answer(Input::Read(ReadId(round)))? {
            Ok(()) => {
                // Not past the log: a proposal from an earlier term may have been cut from it,
                // and waiting for its index would hold the read back for nothing.
                let after = self.last_proposed.min(self.node.last_log().index);
                for id in &batch {
                    if let Some(r) = self.reads.get_mut(id) {
                        r.after = after;
                    }
                }
                self.read_rounds.insert(round, batch);
            }
            Err(e) => {
                for id in batch {
                    if let Some(r) = self.reads.remove(&id) {
                        r.done.complete(Err(e.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    fn note_deadline(&mut self, deadline: Instant) {
        self.next_deadline = Some(self.next_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// Completes every request whose deadline has passed: a proposal is in the log and may
    /// still commit (its outcome is unknown); a read changed nothing.
    fn expire(&mut self, now: Instant) {
        if self.next_deadline.is_none_or(|d| d > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        let mut earliest = |d: Instant| next = Some(next.map_or(d, |n| n.min(d)));
        let expired: Vec<Index> = self
            .proposals
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&i, _)| i)
            .collect();
        for index in expired {
            if let Some(p) = self.proposals.remove(&index) {
                p.done
                    .complete(Err(RequestError::Uncertain(Uncertainty::TimedOut)));
            }
        }
        self.proposals.values().for_each(|p| earliest(p.deadline));
        let expired: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some(r) = self.reads.remove(&id) {
                r.done.complete(Err(RequestError::Timeout));
            }
        }
        self.reads.values().for_each(|r| earliest(r.deadline));
        self.next_deadline = next;
    }

    /// Rounds of outputs until the core is quiet.
    fn outputs(&mut self) -> Result<(), NodeError> {
        self.reported.clear();
        while !self.out.is_empty() {
            self.sends()?;
            self.writes()?;
            self.apply()?;
            self.ready_reads();
            self.chunks()?;
            self.events()?;
        }
        Ok(())
    }

    fn sends(&mut self) -> Result<(), NodeError> {
        if self.out.sends().is_empty() {
            return Ok(());
        }
        // Report each peer once per round of outputs: a probe to a peer that is down fails
        // again, and reporting that at once would never let the round end.
        for msg in self.out.drain_sends() {
            if let Err(e) = self.transport.send(msg)
                && !self.unreachable.contains(&e.to)
                && !self.reported.contains(&e.to)
            {
                self.unreachable.push(e.to);
            }
        }
        self.transport.flush();
        let mut report = std::mem::take(&mut self.unreachable);
        for peer in report.drain(..) {
            self.reported.push(peer);
            self.step(Input::Unreachable(peer))?;
        }
        // Keep the buffer's capacity for the next round.
        self.unreachable = report;
        Ok(())
    }

    /// Hands every write to the storage stage, or (without one) appends them, syncs once and
    /// acknowledges the last.
    fn writes(&mut self) -> Result<(), NodeError> {
        if self.out.writes().is_empty() {
            return Ok(());
        }
        if let Some(stage) = &self.stage {
            stage.submit(self.out.drain_writes());
            return Ok(());
        }
        let mut last = None;
        {
            let mut storage = lock(&self.storage)?;
            for w in self.out.drain_writes() {
                storage.append(&w)?;
                last = Some(w.id);
            }
            if last.is_some() {
                storage.sync()?;
            }
        }
        if let Some(id) = last {
            self.step(Input::Persisted(id))?;
        }
        Ok(())
    }

    fn apply(&mut self) -> Result<(), NodeError> {
        if self.out.apply().is_empty() {
            return Ok(());
        }
        let mut applied = None;
        for item in self.out.drain_apply() {
            match item {
                Apply::Entry(entry) => {
                    let response = if entry.kind == EntryKind::Normal {
                        Some(self.sm.apply(entry.id.index, &entry.data))
                    } else {
                        None
                    };
                    if let Some(p) = self.proposals.remove(&entry.id.index) {
                        let result = match response {
                            Some(r) if p.term == entry.id.term => Ok(r),
                            _ => Err(RequestError::LeaderChanged),
                        };
                        p.done.complete(result);
                    }
                    applied = Some(entry.id.index);
                }
                Apply::Snapshot(meta) => {
                    load_snapshot(&mut *lock(&self.storage)?, &mut self.sm, meta.last)?;
                    log::info!(
                        "node {}: installed a snapshot from the leader at {}",
                        self.node.id(),
                        meta.last
                    );
                    // Proposals the snapshot covers: whether they made it is unknown here. (A
                    // snapshot at the last possible index covers them all.)
                    let later = match meta.last.index.next() {
                        Some(next) => self.proposals.split_off(&next),
                        None => BTreeMap::new(),
                    };
                    for (_, p) in std::mem::replace(&mut self.proposals, later) {
                        p.done
                            .complete(Err(RequestError::Uncertain(Uncertainty::CoveredBySnapshot)));
                    }
                    applied = Some(meta.last.index);
                }
            }
        }
        if let Some(index) = applied {
            self.step(Input::Applied(index))?;
            if self.snapshots.retry_due(index) {
                self.snapshot()?;
            }
        }
        self.serve_ready_reads();
        Ok(())
    }

    fn ready_reads(&mut self) {
        if self.out.reads().is_empty() {
            return;
        }
        for r in self.out.drain_reads() {
            match r {
                ReadResult::Ready { id, index } => {
                    for read in self.read_rounds.remove(&id.0).unwrap_or_default() {
                        if let Some(r) = self.reads.get(&read) {
                            let index = index.max(r.after);
                            // At the back, as the core promises (see `reads_ready`); were it
                            // ever not so, the read still goes in its place in index order.
                            let at = self.reads_ready.partition_point(|r| r.0 <= index);
                            self.reads_ready.insert(at, (index, read));
                        }
                    }
                }
                ReadResult::Aborted { id } => {
                    for read in self.read_rounds.remove(&id.0).unwrap_or_default() {
                        if let Some(r) = self.reads.remove(&read) {
                            r.done.complete(Err(RequestError::LeaderChanged));
                        }
                    }
                }
            }
        }
        self.serve_ready_reads();
    }

    /// Answers the confirmed reads whose index the state machine has applied.
    fn serve_ready_reads(&mut self) {
        let applied = self.node.applied_index();
        while self.reads_ready.front().is_some_and(|r| r.0 <= applied) {
            if let Some((_, id)) = self.reads_ready.pop_front()
                && let Some(r) = self.reads.remove(&id)
            {
                r.done.complete(Ok(self.sm.query(&r.query)));
            }
        }
    }

    fn chunks(&mut self) -> Result<(), NodeError> {
        if self.out.chunk_requests().is_empty() {
            return Ok(());
        }
        let requests: Vec<_> = self.out.drain_chunk_requests().collect();
        for r in requests {
            let read = lock(&self.storage)?.read_snapshot_chunk(
                r.snapshot,
                r.offset,
                r.max_len,
                &mut self.chunk,
            );
            match read {
                Ok(done) => {
                    let chunk = SnapshotChunk {
                        to: r.to,
                        snapshot: r.snapshot,
                        offset: r.offset,
                        data: Payload::new(&self.chunk),
                        done,
                    };
                    self.step(Input::SnapshotChunk(chunk))?;
                }
                // A newer snapshot replaced it; the core moves the transfer to the new one.
                Err(StorageError::SnapshotGone { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn events(&mut self) -> Result<(), NodeError> {
        if self.out.events().is_empty() {
            return Ok(());
        }
        let id = self.node.id();
        let mut suggested = false;
        for event in self.out.drain_events() {
            match event {
                Event::StateChanged { role, term, leader } => log_state(id, role, term, leader),
                Event::SnapshotSuggested { .. } => suggested = true,
                _ => {}
            }
        }
        if suggested {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Publishes the role, term, leader and applied index to the handles, if they changed.
    fn publish(&mut self) {
        let now = Observed {
            role: self.node.role(),
            term: self.node.term(),
            leader: self.node.leader(),
            applied: self.node.applied_index(),
        };
        if now != self.published {
            self.shared.publish(now);
            self.published = now;
        }
    }

    /// Snapshots the state machine at its applied index: hands its view to the snapshot task
    /// (which tells this thread when it is stored), or without a view, stores it here and
    /// tells the core.
    fn snapshot(&mut self) -> Result<(), NodeError> {
        if self.snapshots.busy() {
            return Ok(());
        }
        let applied = self.node.applied_index();
        if applied <= self.node.snapshot().last.index {
            return Ok(());
        }
        let Some(meta) = self.node.snapshot_meta(applied) else {
            return Ok(());
        };
        if let Some(source) = self.sm.snapshot_source() {
            return self.snapshots.start(meta, source);
        }
        let started = Instant::now();
        {
            let mut storage = lock(&self.storage)?;
            let mut writer = storage.begin_snapshot(&meta)?;
            self.sm
                .snapshot(&mut writer)
                .map_err(NodeError::StateMachine)?;
            storage.finish_snapshot(writer)?;
        }
        log::info!(
            "node {}: snapshot at {} taken in {:?} (on the node thread)",
            self.node.id(),
            meta.last,
            started.elapsed()
        );
        self.step(Input::SnapshotTaken(Box::new(meta)))
    }

    /// Completes every request the thread still holds, as it stops: proposals in the log have
    /// an unknown outcome; reads and requests never stepped were not applied.
    fn fail_everything(&mut self, shared: &Shared) {
        let stopped = shared.stopped();
        for (_, p) in std::mem::take(&mut self.proposals) {
            p.done
                .complete(Err(RequestError::Uncertain(Uncertainty::NodeStopped(
                    stopped.clone(),
                ))));
        }
        for (_, r) in std::mem::take(&mut self.reads) {
            r.done.complete(Err(RequestError::Stopped(stopped.clone())));
        }
        while let Ok(request) = self.requests.try_recv() {
            request.fail(RequestError::Stopped(stopped.clone()));
        }
    }
}

/// Logs a change of role, term or leader.
fn log_state(id: NodeId, role: Role, term: Term, leader: Option<NodeId>) {
    match (role, leader) {
        (Role::Leader, _) => log::info!("node {id}: leader in term {term}"),
        (Role::Follower, Some(l)) => log::info!("node {id}: follower of {l} in term {term}"),
        (Role::Follower, None) => log::info!("node {id}: follower, no leader, term {term}"),
        (Role::PreCandidate, _) => log::info!("node {id}: pre-candidate in term {term}"),
        (Role::Candidate, _) => log::info!("node {id}: candidate in term {term}"),
    }
}

/// Restores `sm` from the snapshot `storage` holds, which must be `expected`.
pub(super) fn load_snapshot<M: StateMachine, St: Storage>(
    storage: &mut St,
    sm: &mut M,
    expected: LogId,
) -> Result<(), NodeError> {
    if storage.snapshot_meta().last != expected {
        return Err(NodeError::SnapshotMissing { expected });
    }
    let Some(mut reader) = storage.open_snapshot()? else {
        return Err(NodeError::SnapshotMissing { expected });
    };
    sm.restore(&mut reader).map_err(NodeError::StateMachine)
}
