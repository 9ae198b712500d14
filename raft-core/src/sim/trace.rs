//! How the simulator's trace describes what happens: one line per input a node receives and per
//! output it emits, in a fixed, compact wording of its own (never a `Debug` dump), with entry ids
//! but no payload bytes.
//!
//! The trace is both the replay aid (`RAFT_SIM_SEED`) and the golden transcripts
//! (`raft-core/tests/golden/`), which compare it verbatim: a change of wording here changes every
//! golden file. Formatting and [`Simulation::log`] only: nothing here draws from an RNG or
//! touches a node.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::adapter::{SimResult, Simulation};
use super::network::Network;
use crate::error::StepError;
use crate::input::{Input, SnapshotChunk};
use crate::membership::Membership;
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::output::{Apply, ChunkRequest, Event, Outputs, ReadResult, Write};
use crate::types::{Entry, EntryKind, HardState, LogId, NodeId};

/// `1,2,3`, or `-` for none.
pub(super) fn ids(ids: &[NodeId]) -> String {
    if ids.is_empty() {
        return String::from("-");
    }
    let mut s = String::new();
    for (k, id) in ids.iter().enumerate() {
        let _ = write!(s, "{}{id}", if k == 0 { "" } else { "," });
    }
    s
}

/// `voters 1,2,3 learners 4`, with the outgoing voters of a joint configuration.
pub(super) fn membership(m: &Membership) -> String {
    let mut s = format!("voters {}", ids(m.voters()));
    if m.is_joint() {
        let _ = write!(s, " (joint, outgoing {})", ids(m.outgoing_voters()));
    }
    if !m.learners().is_empty() {
        let _ = write!(s, " learners {}", ids(m.learners()));
    }
    s
}

pub(super) fn hard_state(hs: &HardState) -> String {
    match hs.vote {
        Some(v) => format!("term {} vote n{v}", hs.term),
        None => format!("term {} no vote", hs.term),
    }
}

/// `1.4..1.6`, `1.4`, or `-`.
fn entry_range(entries: &[Entry]) -> String {
    match (entries.first(), entries.last()) {
        (Some(a), Some(b)) if a.id == b.id => format!("{}", a.id),
        (Some(a), Some(b)) => format!("{}..{}", a.id, b.id),
        _ => String::from("-"),
    }
}

/// The entries that are not commands, by id: `noop 2.1, config 2.5 (voters 1,2,3,4)`.
fn special_entries(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        let what = match e.kind {
            EntryKind::Normal => continue,
            EntryKind::Noop => format!("noop {}", e.id),
            EntryKind::Config => match Membership::decode(&e.data) {
                Ok(m) => format!("config {} ({})", e.id, membership(&m)),
                Err(_) => format!("config {} (undecodable)", e.id),
            },
        };
        let _ = write!(s, "{}{what}", if s.is_empty() { "" } else { ", " });
    }
    s
}

/// A message from its header on: `n1->n2 t3 Append prev=3.4 entries=3.5..3.7 commit=4`.
pub(super) fn message(m: &Message) -> String {
    let body = match &m.body {
        MessageBody::VoteRequest {
            last_log,
            pre_vote,
            leader_transfer,
        } => format!(
            "{} last={last_log}{}",
            if *pre_vote { "PreVote" } else { "Vote" },
            if *leader_transfer { " transfer" } else { "" }
        ),
        MessageBody::VoteResponse { granted, pre_vote } => format!(
            "{} {}",
            if *pre_vote { "PreVoteResp" } else { "VoteResp" },
            if *granted { "granted" } else { "denied" }
        ),
        MessageBody::AppendEntries {
            prev,
            entries,
            commit,
        } => {
            let mut s = format!(
                "Append prev={prev} entries={} commit={commit}",
                entry_range(entries)
            );
            let special = special_entries(entries);
            if !special.is_empty() {
                let _ = write!(s, " [{special}]");
            }
            s
        }
        MessageBody::AppendResponse { outcome } => match outcome {
            AppendOutcome::Accepted { match_index } => format!("AppendResp ok match={match_index}"),
            AppendOutcome::Conflict { rejected, hint } => {
                format!("AppendResp conflict rejected={rejected} hint={hint}")
            }
            AppendOutcome::Outdated => String::from("AppendResp outdated"),
        },
        MessageBody::Heartbeat { commit, read_round } => {
            format!("Heartbeat commit={commit} read_round={read_round}")
        }
        MessageBody::HeartbeatResponse {
            read_round,
            writes_pending,
        } => {
            let pending = if *writes_pending {
                " writes-pending"
            } else {
                ""
            };
            format!("HeartbeatResp read_round={read_round}{pending}")
        }
        MessageBody::TimeoutNow => String::from("TimeoutNow"),
        MessageBody::Commit { commit } => format!("Commit commit={commit}"),
        MessageBody::ReadIndexRequest { request } => format!("ReadIndex #{request}"),
        MessageBody::ReadIndexResponse { request, index } => match index {
            Some(index) => format!("ReadIndexResp #{request} index={index}"),
            None => format!("ReadIndexResp #{request} refused"),
        },
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
        } => format!(
            "Snapshot {} ({}) offset={offset} len={}{}",
            meta.last,
            membership(&meta.membership),
            data.len(),
            if *done { " done" } else { "" }
        ),
        MessageBody::SnapshotResponse {
            snapshot,
            received,
            installed,
        } => format!(
            "SnapshotResp {snapshot} received={received}{}",
            if *installed { " installed" } else { "" }
        ),
    };
    format!("n{}->n{} t{} {body}", m.from, m.to, m.term)
}

fn chunk(c: &SnapshotChunk) -> String {
    format!(
        "chunk of snapshot {} for n{} offset={} len={}{}",
        c.snapshot,
        c.to,
        c.offset,
        c.data.len(),
        if c.done { " done" } else { "" }
    )
}

/// An input stepped into a node (proposals and membership changes are not inputs here: the
/// simulator calls `Node::propose` and `Node::change_membership` and logs those itself).
pub(super) fn input(input: &Input) -> String {
    match input {
        Input::Tick => String::from("tick"),
        Input::Message(m) => format!("recv {}", message(m)),
        Input::Propose(p) => format!("propose ({} bytes)", p.len()),
        Input::ProposeBatch(ps) => format!("propose a batch of {}", ps.len()),
        Input::Read(id) => format!("read #{}", id.0),
        Input::TransferLeader(to) => format!("transfer leadership to n{to}"),
        Input::ChangeMembership(m) => format!("change membership to {}", membership(m)),
        Input::Campaign => String::from("campaign"),
        Input::Persisted(id) => format!("persisted through write #{}", id.get()),
        Input::Applied(index) => format!("applied through {index}"),
        Input::Unreachable(id) => format!("n{id} unreachable"),
        Input::SnapshotTaken(meta) => format!(
            "snapshot taken at {} ({})",
            meta.last,
            membership(&meta.membership)
        ),
        Input::SnapshotChunk(c) => chunk(c),
    }
}

/// `write #3 hs=term 2 vote n1 truncate-from=5 entries=2.5..2.7`.
pub(super) fn write(w: &Write) -> String {
    let mut s = format!("write #{}", w.id.get());
    if let Some(hs) = &w.hard_state {
        let _ = write!(s, " hs=({})", hard_state(hs));
    }
    if let Some(from) = w.truncate_from {
        let _ = write!(s, " truncate-from={from}");
    }
    if let Some(part) = &w.snapshot {
        let _ = write!(
            s,
            " snapshot={} offset={} len={}{}",
            part.meta.last,
            part.offset,
            part.data.len(),
            if part.done { " done" } else { "" }
        );
    }
    if !w.entries.is_empty() || (w.hard_state.is_none() && w.snapshot.is_none()) {
        let _ = write!(s, " entries={}", entry_range(&w.entries));
    }
    let special = special_entries(&w.entries);
    if !special.is_empty() {
        let _ = write!(s, " [{special}]");
    }
    s
}

/// The apply lane, one line per run of entries and per snapshot.
pub(super) fn applies(applies: &[Apply]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut run: Vec<Entry> = Vec::new();
    let flush = |run: &mut Vec<Entry>, lines: &mut Vec<String>| {
        if run.is_empty() {
            return;
        }
        let mut s = format!("apply {}", entry_range(run));
        let special = special_entries(run);
        if !special.is_empty() {
            let _ = write!(s, " [{special}]");
        }
        lines.push(s);
        run.clear();
    };
    for a in applies {
        match a {
            Apply::Entry(e) => run.push(e.clone()),
            Apply::Snapshot(meta) => {
                flush(&mut run, &mut lines);
                lines.push(format!(
                    "apply snapshot {} ({})",
                    meta.last,
                    membership(&meta.membership)
                ));
            }
        }
    }
    flush(&mut run, &mut lines);
    lines
}

pub(super) fn read_result(r: &ReadResult) -> String {
    match r {
        ReadResult::Ready { id, index } => format!("read #{} ready at {index}", id.0),
        ReadResult::Aborted { id } => format!("read #{} aborted", id.0),
    }
}

pub(super) fn chunk_request(r: &ChunkRequest) -> String {
    format!(
        "chunk request: snapshot {} for n{} offset={} max={}",
        r.snapshot, r.to, r.offset, r.max_len
    )
}

pub(super) fn event(ev: &Event) -> String {
    match ev {
        Event::StateChanged { role, term, leader } => match leader {
            Some(l) => format!("now {role:?} in term {term}, leader n{l}"),
            None => format!("now {role:?} in term {term}, no leader"),
        },
        Event::SnapshotSuggested {
            applied,
            log_entries,
        } => format!("snapshot suggested (applied {applied}, {log_entries} log entries)"),
    }
}

/// What an output lane holds, to tell whether a step emitted anything (a write may grow in
/// place: the last one is compared too).
#[derive(PartialEq)]
pub(super) struct OutputMark {
    lens: [usize; 6],
    last_write: Option<Write>,
}

impl OutputMark {
    pub(super) fn of(out: &Outputs) -> Self {
        Self {
            lens: [
                out.sends().len(),
                out.writes().len(),
                out.apply().len(),
                out.reads().len(),
                out.chunk_requests().len(),
                out.events().len(),
            ],
            last_write: out.writes().last().cloned(),
        }
    }
}

/// A proposal's or a membership change's outcome: the new entry's id, or why not.
pub(super) fn outcome(result: &Result<LogId, StepError>) -> String {
    match result {
        Ok(id) => format!("entry {id}"),
        Err(e) => format!("{e}"),
    }
}

/// The links a partition cuts: `cut n1->n2 n2->n1`, or `no link cut`.
pub(super) fn cuts(net: &Network, n: usize) -> String {
    let mut s = String::new();
    for from in 0..n {
        for to in 0..n {
            if from != to && net.is_blocked(from, to) {
                let _ = write!(
                    s,
                    "{}n{}->n{}",
                    if s.is_empty() { "cut " } else { " " },
                    from + 1,
                    to + 1
                );
            }
        }
    }
    if s.is_empty() {
        s.push_str("no link cut");
    }
    s
}

impl Simulation {
    /// The trace recorded so far (empty unless `opts.trace`).
    #[must_use]
    pub fn trace(&self) -> &str {
        self.trace.as_deref().unwrap_or("")
    }

    /// [`Simulation::step`] with the trace recorded: the input (a tick only if the node emitted
    /// something on it: every running node ticks every tick, and most ticks do nothing visible),
    /// then the step's refusal or rejection, if any. Kept apart so that a run without a trace
    /// pays nothing for it.
    #[inline(never)]
    pub(super) fn step_traced(&mut self, i: usize, input: Input) -> SimResult {
        let tick = matches!(input, Input::Tick);
        let mark = tick.then(|| OutputMark::of(&self.nodes[i].out));
        if !tick {
            let line = self::input(&input);
            self.log(|| format!("n{} <- {line}", i + 1));
        }
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else {
            return Ok(());
        };
        let result = node.step(input, &mut n.out);
        if mark.is_some_and(|m| m != OutputMark::of(&self.nodes[i].out)) {
            self.log(|| format!("n{} <- tick", i + 1));
        }
        if let Err(e) = result {
            self.log(|| format!("n{} {e}", i + 1));
        }
        self.after_step(i, result)
    }

    /// Appends a line at the current tick if the run records a trace (`line` is called only
    /// then).
    pub(super) fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            let _ = writeln!(t, "t{} {}", self.now, line());
        }
    }
}
