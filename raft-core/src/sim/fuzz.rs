//! Entry points for the fuzz targets in `fuzz/`, which are one-line wrappers around these. A
//! plain test replays the committed corpora through the same functions.
//!
//! Each returns `Err` with a description when a property breaks; the fuzz target turns it into a
//! panic, so the fuzzer records the input.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use arbitrary::{Arbitrary, Unstructured};

use super::{SimDisk, SimOptions, SimRng, Simulation};
use crate::input::{Input, ReadId};
use crate::membership::Membership;
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::node::Node;
use crate::output::{Outputs, WriteId};
use crate::restore::Restored;
use crate::types::{Index, LogId, NodeId, Payload, Term};
use crate::{Config, StepError};

/// One thing that happens to the node under test.
#[derive(Arbitrary, Debug)]
enum Op {
    Tick,
    /// Any message at all, as a confused or malicious peer might send.
    Raw(Message),
    /// A message addressed to this node from a member, with an arbitrary body and term.
    FromPeer {
        from: u8,
        term: u64,
        body: MessageBody,
    },
    Propose(Payload),
    /// Several commands at once (`Input::ProposeBatch`).
    ProposeBatch(Vec<Payload>),
    Read(u64),
    TransferLeader(u8),
    Campaign,
    /// The adapter makes every write issued so far durable and acknowledges it.
    PersistAll,
    /// The adapter makes the oldest outstanding writes durable (a slow disk).
    PersistSome(u8),
    /// An acknowledgement for an arbitrary id: one never issued (misuse the node must refuse) or
    /// one already durable (stale or duplicate). Not the id of a write still pending: that would
    /// be an adapter lying about durability, which no node can detect.
    PersistBogus(u64),
    /// The state machine catches up with what was handed out.
    ApplyAll,
    AppliedBogus(u64),
    Unreachable(u8),
    Restart,
    /// The application snapshots its state machine at an applied index (picked from this).
    TakeSnapshot(u16),
    /// The adapter answers the chunk requests the node made.
    ServeChunks,
    /// A chunk nobody asked for.
    RawChunk(crate::SnapshotChunk),
}

/// A single node fed an arbitrary sequence of inputs, including messages from arbitrary peers
/// with arbitrary terms and indexes. Checked after every step: no panic, the node's invariants,
/// a rejected input changes no state and produces no output, and no vote grant or append
/// acknowledgement leaves before the write it depends on is durable.
///
/// # Errors
/// A description of the property that broke.
pub fn single_node(data: &[u8]) -> Result<(), String> {
    let mut u = Unstructured::new(data);
    let Ok(membership) = Membership::arbitrary(&mut u) else {
        return Ok(());
    };
    let members: Vec<NodeId> = membership.members().collect();
    let me = members.first().copied().unwrap_or(NodeId::MIN);
    let mut config = Config::new(me);
    config.pre_vote = u.arbitrary().unwrap_or(true);
    config.check_quorum = u.arbitrary().unwrap_or(true);
    config.max_inflight_msgs = u.int_in_range(1..=4).unwrap_or(2);
    config.max_msg_entries = u.int_in_range(1..=4).unwrap_or(2);
    let mut disk = SimDisk::default();
    let restore = |disk: &SimDisk, seed: u64| {
        let snapshot = disk.snapshot.as_ref().map_or_else(
            || crate::SnapshotMeta {
                last: LogId::ZERO,
                membership: membership.clone(),
            },
            |(meta, _)| meta.clone(),
        );
        let state = Restored {
            hard_state: disk.hard_state,
            applied: snapshot.last.index,
            snapshot,
            entries: disk.entries.clone(),
        };
        Node::restore(config.clone(), SimRng::new(seed), state)
    };
    let mut node = restore(&disk, 1).map_err(|e| format!("initial restore failed: {e}"))?;
    let mut requests: Vec<crate::ChunkRequest> = Vec::new();
    let mut out = Outputs::new();
    let mut emitted = Index::ZERO;
    let mut restarts = 0;
    // The highest write id the node has issued, and the highest acknowledged truthfully, in this
    // incarnation.
    let (mut issued, mut acked) = (0u64, 0u64);
    let pick = |n: u8| members[n as usize % members.len()];

    for _ in 0..4096 {
        // `arbitrary` does not fail when the bytes run out, it decodes zeros (`Op::Tick`): stop
        // there, or every input would end in thousands of ticks of padding.
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        let input = match op {
            Op::Tick => Input::Tick,
            Op::Raw(m) => Input::Message(m),
            Op::FromPeer { from, term, body } => Input::Message(Message {
                from: pick(from),
                to: me,
                term: Term(term),
                body,
            }),
            Op::Propose(p) => Input::Propose(p),
            Op::ProposeBatch(ps) => Input::ProposeBatch(ps),
            Op::Read(r) => Input::Read(ReadId(r)),
            Op::TransferLeader(t) => Input::TransferLeader(pick(t)),
            Op::Campaign => Input::Campaign,
            Op::PersistAll => match disk.complete(usize::MAX).map_err(|e| e.0)? {
                Some(w) => Input::Persisted(w),
                None => continue,
            },
            Op::PersistSome(n) => match disk.complete(usize::from(n % 4) + 1).map_err(|e| e.0)? {
                Some(w) => Input::Persisted(w),
                None => continue,
            },
            Op::PersistBogus(w) if w > acked && w <= issued => continue,
            Op::PersistBogus(w) => Input::Persisted(WriteId(w)),
            Op::ApplyAll => Input::Applied(emitted),
            Op::AppliedBogus(i) => Input::Applied(Index(i)),
            Op::Unreachable(p) => Input::Unreachable(pick(p)),
            Op::Restart => {
                // A crash loses (or tears) every write not yet durable.
                disk.crash(&mut SimRng::new(restarts)).map_err(|e| e.0)?;
                restarts += 1;
                (issued, acked) = (0, 0);
                node = restore(&disk, restarts)
                    .map_err(|e| format!("restart from durable state failed: {e}"))?;
                out.clear();
                requests.clear();
                emitted = node.applied_index();
                continue;
            }
            Op::TakeSnapshot(pick) => {
                let from = node.snapshot().last.index.0;
                let applied = node.applied_index().0;
                if applied <= from {
                    continue;
                }
                let index = Index(from + 1 + u64::from(pick) % (applied - from));
                let Some(meta) = node.snapshot_meta(index) else {
                    return Err(format!(
                        "cannot describe a snapshot at applied index {index}"
                    ));
                };
                disk.take_snapshot(meta.clone(), super::snapshot_blob(index.0, 40));
                Input::SnapshotTaken(alloc::boxed::Box::new(meta))
            }
            Op::ServeChunks => {
                let Some(r) = requests.pop() else { continue };
                let Some((meta, blob)) = disk.snapshot.as_ref() else {
                    continue;
                };
                let start = usize::try_from(r.offset)
                    .unwrap_or(usize::MAX)
                    .min(blob.len());
                let end = start.saturating_add(r.max_len as usize).min(blob.len());
                Input::SnapshotChunk(crate::SnapshotChunk {
                    to: r.to,
                    snapshot: meta.last,
                    offset: r.offset,
                    data: Payload::new(blob.get(start..end).unwrap_or(&[])),
                    done: end == blob.len(),
                })
            }
            Op::RawChunk(c) => Input::SnapshotChunk(c),
        };
        if let Input::Persisted(WriteId(w)) = input {
            if w <= issued {
                acked = acked.max(w);
            }
        }
        let before = node.status();
        let (sends, writes, apply) = (out.sends.len(), out.writes.len(), out.apply.len());
        let result = node.step(input, &mut out);
        // Ids are issued in increasing order: the last write in the lane has the highest.
        if let Some(w) = out.writes.last() {
            issued = issued.max(w.id.0);
        }
        node.check_invariants().map_err(|v| format!("{v}"))?;
        if let Err(StepError::Rejected(r)) = result {
            if node.status() != before
                || (out.sends.len(), out.writes.len(), out.apply.len()) != (sends, writes, apply)
            {
                return Err(format!("rejected input ({r:?}) changed the node"));
            }
        }
        for w in out.drain_writes() {
            disk.submit(w, 0, 0);
        }
        requests.extend(out.drain_chunk_requests());
        for e in out.drain_apply() {
            emitted = e.index();
        }
        for m in out.drain_sends() {
            check_send(&disk, &m)?;
        }
        out.clear();
    }
    Ok(())
}

/// A vote grant or an append acknowledgement must rest on durable state.
fn check_send(disk: &SimDisk, m: &Message) -> Result<(), String> {
    match m.body {
        MessageBody::VoteResponse {
            granted: true,
            pre_vote: false,
        } => {
            let hs = disk.hard_state;
            if hs.term < m.term || (hs.term == m.term && hs.vote != Some(m.to)) {
                return Err(format!(
                    "vote granted in term {} before it was durable ({hs:?})",
                    m.term
                ));
            }
        }
        MessageBody::AppendResponse {
            outcome: AppendOutcome::Accepted { match_index },
        } if match_index.0 > disk.first() && !disk.was_durable(match_index.0, None) => {
            return Err(format!(
                "append acknowledged up to {match_index}, which was never durable"
            ));
        }
        _ => {}
    }
    Ok(())
}

/// A simulated cluster whose schedule (which message is delivered or dropped or duplicated,
/// crashes and restarts, partitions, proposals, reads, transfers, disk delays) comes from the
/// fuzzer's bytes, with every safety property of the simulator checked after every step, then a
/// healed phase that must make progress.
///
/// # Errors
/// The simulator's failure, with its description.
pub fn cluster(data: &[u8]) -> Result<(), String> {
    let mut u = Unstructured::new(data);
    let nodes = if u.arbitrary::<bool>().unwrap_or(false) {
        5
    } else {
        3
    };
    let seed = u.arbitrary::<u64>().unwrap_or(0);
    let mut opts = SimOptions::random(seed, nodes);
    opts.fault_ticks = 250;
    opts.heal_ticks = 300;
    let rng = SimRng::from_bytes(u.take_rest(), seed);
    let mut sim = Simulation::with_rng(opts, rng).map_err(|e| format!("{e}"))?;
    sim.run().map(drop).map_err(|e| format!("{e}"))
}
