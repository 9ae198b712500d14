//! One key's search: the event list, the rounds, and the backtracking over candidates.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use super::memo::{Cache, LinSet, bit, set_bit};
use super::model::{ABSENT, StateId, States, Step};
use super::{CheckOptions, PREFIX_SHOWN, Verdict};
use crate::history::{Op, OpResult, Operation};

/// One operation of the key being searched.
struct KeyOp<'a> {
    step: Step,
    /// The outcome is unknown: no return event, result unchecked, may never take effect.
    unknown: bool,
    /// Its index among the key's completed operations, or among its unknown ones.
    slot: usize,
    op: &'a Operation,
}

/// No list node.
const NIL: usize = usize::MAX;
/// The list's head node.
const HEAD: usize = 0;

/// How a key's search ended.
pub(super) enum Outcome {
    Ok,
    Violation(Deepest),
    Unknown(String),
    /// A limited round stopped early (see [`Round::give_up`]).
    GaveUp,
}

/// The deepest point the search reached before it failed.
pub(super) struct Deepest {
    /// Completed operations linearized.
    completed: usize,
    /// All operations linearized.
    depth: usize,
    /// The last operations linearized, in order (indices into [`Search::ops`]).
    tail: Vec<usize>,
    state: StateId,
    /// The completed operations pending there.
    stuck: Vec<usize>,
    /// How many unknown-outcome operations were pending there.
    pending_unknown: usize,
}

/// A linearized operation on the search's stack.
struct Frame {
    /// The operation (an index into [`Search::ops`]).
    op: usize,
    /// The state before it.
    state: StateId,
    /// Whether it was tried in the second pass (unknown outcomes).
    pass2: bool,
    /// The second pass's frontier then.
    frontier: u64,
}

/// What the unknown-outcome operations that may take effect could add to a state: the lengths
/// of the pending appends' suffixes, and whether an incr is pending.
#[derive(Default)]
struct Pending {
    suffixes: Vec<usize>,
    incr: bool,
}

/// How far below the deepest point it reached a limited round may backtrack before it gives up
/// (in completed operations): backtracking within a linearizable history is local, so a round
/// that has to go back this far is most likely failing for want of what its limits forbid,
/// and would fail only after exploring everything before.
const GIVE_UP_BELOW: usize = 256;

/// What one round of the search lets unknown-outcome operations do.
#[derive(Clone, Copy)]
struct Round {
    /// At most this many take effect.
    cap: Option<usize>,
    /// Each only within this long (in nanoseconds) after its call: before the return that
    /// stops the search.
    horizon: Option<u64>,
    /// Whether to stop early (the round is not the last): when it has to backtrack more than
    /// [`GIVE_UP_BELOW`] completed operations below the deepest point it reached.
    give_up: bool,
}

/// One key's search.
pub(super) struct Search<'a> {
    ops: Vec<KeyOp<'a>>,
    states: States,
    /// Results of `append` and `incr` steps: (state, op) to the next state.
    memo: HashMap<(StateId, u32), StateId>,
    next: Vec<usize>,
    prev: Vec<usize>,
    completed: usize,
    /// The unknown-outcome operations (indices into `ops`) in call order, which is their slots'
    /// order. They are not in the event list: having no return, they would stay at its head for
    /// ever, to be stepped over at every step.
    unknown_ops: Vec<usize>,
    /// Configurations explored in earlier rounds.
    pub(super) explored: u64,
    /// The most completed operations linearized at once so far.
    most_completed: usize,
    pub(super) cache: Cache,
    pub(super) steps: u64,
}

impl<'a> Search<'a> {
    /// Sets up the model and the event list. Node `2i + 1` is op `i`'s call, `2i + 2` its
    /// return (unused for an unknown outcome).
    pub(super) fn new(history: &[&'a Operation]) -> Self {
        let mut states = States::new();
        let mut sorted: Vec<&Operation> = history
            .iter()
            .copied()
            // An unknown get neither changes nor constrains anything.
            .filter(|op| !(op.is_unknown() && op.op == Op::Get))
            .collect();
        sorted.sort_by_key(|op| (op.call, op.ret.unwrap_or(u64::MAX)));
        let (mut completed, mut unknown) = (0, 0);
        let ops: Vec<KeyOp<'a>> = sorted
            .into_iter()
            .map(|op| {
                let int = |r: &Option<OpResult>| match r {
                    Some(OpResult::Integer(n)) => Some(*n),
                    _ => None,
                };
                let step = match &op.op {
                    Op::Get => match &op.result {
                        Some(OpResult::Value(Some(v))) => Step::Get(states.intern(v)),
                        // History validation makes a completed get's result a value.
                        _ => Step::Get(ABSENT),
                    },
                    Op::Set(v) => Step::Set(states.intern(v)),
                    Op::Append(v) => Step::Append {
                        suffix: Rc::from(v.as_str()),
                        len: int(&op.result),
                    },
                    Op::Incr(delta) => Step::Incr {
                        delta: *delta,
                        result: int(&op.result),
                    },
                    Op::Del => Step::Del {
                        removed: int(&op.result),
                    },
                };
                let counter = if op.is_unknown() {
                    &mut unknown
                } else {
                    &mut completed
                };
                *counter += 1;
                KeyOp {
                    step,
                    unknown: op.is_unknown(),
                    slot: *counter - 1,
                    op,
                }
            })
            .collect();

        // Events in time order; at equal times calls first, then by operation.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            if let Some(ret) = op.op.ret {
                events.push((op.op.call, 0, 2 * i + 1));
                events.push((ret, 1, 2 * i + 2));
            }
        }
        // The unknown ones, in call order (`ops` is): their slots.
        let unknown_ops: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].unknown).collect();
        events.sort_unstable();
        let nodes = 2 * ops.len() + 1;
        let mut next = vec![NIL; nodes];
        let mut prev = vec![NIL; nodes];
        let mut last = HEAD;
        for &(_, _, node) in &events {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        Self {
            ops,
            states,
            memo: HashMap::new(),
            next,
            prev,
            completed,
            unknown_ops,
            most_completed: 0,
            explored: 0,
            cache: Cache::new(unknown.div_ceil(64)),
            steps: 0,
        }
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    /// Takes a completed operation's call and return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(call + 1);
    }

    /// Puts back the completed operation lifted last.
    fn unlift(&mut self, call: usize) {
        self.relink(call + 1);
        self.relink(call);
    }

    /// Runs op `i` on `state`: the next state, or `None` if its result does not fit.
    fn step(&mut self, state: StateId, i: usize) -> Option<StateId> {
        let memo_key = (state, u32::try_from(i).unwrap_or(u32::MAX));
        match &self.ops[i].step {
            Step::Get(want) => (state == *want).then_some(state),
            Step::Set(value) => Some(*value),
            Step::Del { removed } => match removed {
                Some(n) if *n != i64::from(state != ABSENT) => None,
                _ => Some(ABSENT),
            },
            Step::Append { suffix, len } => {
                let old = self.states.value(state).unwrap_or_default();
                let new_len = old.len() + suffix.len();
                if len.is_some_and(|l| usize::try_from(l) != Ok(new_len)) {
                    return None;
                }
                if let Some(&next) = self.memo.get(&memo_key) {
                    return Some(next);
                }
                let mut value = String::with_capacity(new_len);
                value.push_str(old);
                value.push_str(suffix);
                let next = self.states.intern(&value);
                self.memo.insert(memo_key, next);
                Some(next)
            }
            Step::Incr { delta, result } => {
                let Some(sum) = self.states.int(state).and_then(|n| n.checked_add(*delta)) else {
                    // The incr fails and changes nothing; a recorded result says it did not.
                    return result.is_none().then_some(state);
                };
                if result.is_some_and(|r| r != sum) {
                    return None;
                }
                if let Some(&next) = self.memo.get(&memo_key) {
                    return Some(next);
                }
                let next = self.states.intern(&sum.to_string());
                self.memo.insert(memo_key, next);
                Some(next)
            }
        }
    }

    /// Whether the budget is spent: what ran out.
    fn over_budget(&self, options: &CheckOptions, start: Instant) -> Option<String> {
        let how_far = || {
            format!(
                "{} steps, {} configurations; at most {} of the {} completed operations linearized",
                self.steps,
                self.cache.len(),
                self.most_completed,
                self.completed,
            )
        };
        if start.elapsed() > options.timeout {
            return Some(format!(
                "timed out after {:?} ({})",
                options.timeout,
                how_far()
            ));
        }
        if options.max_steps.is_some_and(|max| self.steps >= max) {
            return Some(format!("step limit reached ({})", how_far()));
        }
        if self.cache.memory() > options.max_memory {
            return Some(format!(
                "memory limit of {} MiB reached ({})",
                options.max_memory >> 20,
                how_far()
            ));
        }
        None
    }

    /// The search, in rounds that restrict the unknown-outcome operations more and more
    /// loosely: first none takes effect; then each may only take effect within a horizon after
    /// its call, 4, 16, 64... 4,096 times the key's median operation time; then there is no
    /// limit. A round that finds a linearization ends the search (a linearization under a limit
    /// is one); a limited round that has to backtrack far gives up; only the last round can
    /// conclude a violation. The budget is shared by the rounds.
    pub(super) fn run(&mut self, options: &CheckOptions, start: Instant) -> Outcome {
        let mut rounds = Vec::new();
        if self.ops.len() > self.completed {
            rounds.push(Round {
                cap: Some(0),
                horizon: None,
                give_up: true,
            });
            let mut durations: Vec<u64> = self
                .ops
                .iter()
                .filter_map(|op| op.op.ret.map(|ret| ret.saturating_sub(op.op.call)))
                .collect();
            durations.sort_unstable();
            let median = durations
                .get(durations.len() / 2)
                .copied()
                .unwrap_or(0)
                .max(1);
            let first = self.ops.first().map_or(0, |op| op.op.call);
            let last = self
                .ops
                .iter()
                .filter_map(|op| op.op.ret)
                .max()
                .unwrap_or(0);
            for factor in [4, 16, 64, 256, 1024, 4096] {
                let horizon = median.saturating_mul(factor);
                if horizon < last.saturating_sub(first) {
                    rounds.push(Round {
                        cap: None,
                        horizon: Some(horizon),
                        give_up: true,
                    });
                }
            }
        }
        rounds.push(Round {
            cap: None,
            horizon: None,
            give_up: false,
        });
        let last = rounds.len() - 1;
        for (n, round) in rounds.into_iter().enumerate() {
            match self.run_round(options, start, round) {
                Outcome::Violation(_) | Outcome::GaveUp if n < last => {
                    self.explored += self.cache.len() as u64;
                    self.cache = Cache::new(self.cache.unknown_words);
                }
                outcome => return outcome,
            }
        }
        Outcome::Unknown("no round of the search ran".into())
    }

    /// One round of the search, within `round`'s limits on unknown-outcome operations.
    ///
    /// Candidates are tried in two passes: the completed ones first, in call order from the
    /// head of the event list; then, if none leads anywhere, the unknown-outcome ones called by
    /// the first return in the list (kept apart, in call order), the latest call first (the one
    /// a read is most likely to have seen).
    fn run_round(&mut self, options: &CheckOptions, start: Instant, round: Round) -> Outcome {
        let Round {
            cap,
            horizon,
            give_up,
        } = round;
        let mut applied_unknown = 0;
        let mut completed_left = self.completed;
        let mut lin = LinSet::new(self.completed);
        let mut unknown = vec![0_u64; self.cache.unknown_words];
        let mut stack: Vec<Frame> = Vec::new();
        let mut key = Vec::new();
        let mut deepest: Option<Deepest> = None;
        let mut state = ABSENT;
        // The first pass walks the event list from `node`; the second the unknown operations
        // called by `frontier` (the first return's time), from slot `below` down.
        let mut node = self.next[HEAD];
        let mut pass2 = false;
        let mut frontier = 0;
        let mut below = 0;
        let mut pending = Pending::default();
        loop {
            if completed_left == 0 {
                return Outcome::Ok;
            }
            self.steps += 1;
            if self.steps.is_multiple_of(1024)
                && let Some(reason) = self.over_budget(options, start)
            {
                return Outcome::Unknown(reason);
            }
            // The candidate to try now (an index into `ops`), if any is left in this pass.
            let candidate = if pass2 {
                self.next_unknown(&unknown, &mut below, frontier, horizon)
            } else if node != NIL && node % 2 == 1 {
                let i = (node - 1) / 2;
                node = self.next[node];
                Some(i)
            } else if node != NIL
                && !self.unknown_ops.is_empty()
                && cap.is_none_or(|cap| applied_unknown < cap)
            {
                // A return: every completed candidate is tried; now the unknown ones.
                pass2 = true;
                frontier = self.ops[(node - 1) / 2].op.ret.unwrap_or(u64::MAX);
                below = self.called_by(frontier);
                pending = self.pending(&unknown, below, frontier, horizon);
                continue;
            } else {
                None
            };
            if let Some(i) = candidate {
                let op = &self.ops[i];
                // An unknown set or del right after an unknown operation would undo it: the
                // same with the earlier one left pending is tried anyway.
                let overwrites = matches!(op.step, Step::Set(_) | Step::Del { .. });
                let after_unknown = stack.last().is_some_and(|f| self.ops[f.op].unknown);
                if op.unknown && overwrites && after_unknown {
                    continue;
                }
                let (is_unknown, slot) = (op.unknown, op.slot);
                let next_state = self
                    .step(state, i)
                    .filter(|&s| !is_unknown || self.may_serve(s, &pending));
                let Some(new_state) = next_state else {
                    continue;
                };
                if is_unknown {
                    set_bit(&mut unknown, slot, true);
                } else {
                    lin.set(slot);
                }
                lin.key(new_state, &mut key);
                if !self.cache.insert(&key, &unknown) {
                    if is_unknown {
                        set_bit(&mut unknown, slot, false);
                    } else {
                        lin.clear(slot);
                    }
                    continue;
                }
                stack.push(Frame {
                    op: i,
                    state,
                    pass2,
                    frontier,
                });
                state = new_state;
                if is_unknown {
                    applied_unknown += 1;
                } else {
                    self.lift(2 * i + 1);
                    completed_left -= 1;
                    self.most_completed = self.most_completed.max(self.completed - completed_left);
                }
                node = self.next[HEAD];
                pass2 = false;
                continue;
            }
            // Every candidate here has been tried: backtrack.
            let done = self.completed - completed_left;
            if deepest.as_ref().is_none_or(|d| done > d.completed) {
                deepest = Some(self.deepest(&stack, &unknown, state, done));
            }
            if give_up
                && deepest
                    .as_ref()
                    .is_some_and(|d| done + GIVE_UP_BELOW < d.completed)
            {
                // Put the list back as it was for the next round.
                while let Some(frame) = stack.pop() {
                    if !self.ops[frame.op].unknown {
                        self.unlift(2 * frame.op + 1);
                    }
                }
                return Outcome::GaveUp;
            }
            let Some(frame) = stack.pop() else {
                return match deepest {
                    Some(d) => Outcome::Violation(d),
                    None => Outcome::Unknown("the search ended without a verdict".into()),
                };
            };
            let op = &self.ops[frame.op];
            let slot = op.slot;
            if op.unknown {
                set_bit(&mut unknown, slot, false);
                applied_unknown -= 1;
            } else {
                self.unlift(2 * frame.op + 1);
                lin.clear(slot);
                completed_left += 1;
            }
            state = frame.state;
            pass2 = frame.pass2;
            frontier = frame.frontier;
            if pass2 {
                // Carry on below it.
                below = slot;
                pending = self.pending(&unknown, self.called_by(frontier), frontier, horizon);
            } else {
                node = self.next[2 * frame.op + 1];
            }
        }
    }

    /// How many unknown-outcome operations are called by `time` (a return's time: a call at
    /// the same time counts as before it).
    fn called_by(&self, time: u64) -> usize {
        self.unknown_ops
            .partition_point(|&i| self.ops[i].op.call <= time)
    }

    /// The next unknown-outcome candidate of the second pass: the latest called below slot
    /// `below` that has not taken effect, unless it is past the horizon (then so are all older
    /// ones: none).
    fn next_unknown(
        &self,
        unknown: &[u64],
        below: &mut usize,
        frontier: u64,
        horizon: Option<u64>,
    ) -> Option<usize> {
        while *below > 0 {
            *below -= 1;
            if bit(unknown, *below) {
                continue;
            }
            let i = self.unknown_ops[*below];
            if horizon.is_some_and(|h| frontier.saturating_sub(self.ops[i].op.call) > h) {
                *below = 0;
                return None;
            }
            return Some(i);
        }
        None
    }

    /// What the unknown-outcome operations that may take effect now (the first `called` in call
    /// order, within the horizon, not taken yet) could add: see [`Self::may_serve`].
    fn pending(
        &self,
        unknown: &[u64],
        called: usize,
        frontier: u64,
        horizon: Option<u64>,
    ) -> Pending {
        let mut pending = Pending::default();
        for slot in (0..called).rev() {
            let op = &self.ops[self.unknown_ops[slot]];
            if horizon.is_some_and(|h| frontier.saturating_sub(op.op.call) > h) {
                break;
            }
            if bit(unknown, slot) {
                continue;
            }
            match &op.step {
                Step::Append { suffix, .. } => pending.suffixes.push(suffix.len()),
                Step::Incr { .. } => pending.incr = true,
                _ => {}
            }
        }
        pending
    }

    /// Whether an unknown-outcome operation taking effect now, leaving `state`, could be of use,
    /// given what the `pending` ones could add after it.
    ///
    /// A run of unknown-outcome operations is of use only if the completed operation after it
    /// accepts what it would not have accepted before it: a linearization in which it accepts
    /// the state before the run with the same outcome stays one without the run (those
    /// operations may never take effect). So the run must end at a state that satisfies a
    /// completed candidate: a `get` of that value, an `append` answering that length plus its
    /// own, an `incr` answering that number plus its delta, a `del` answering whether a value
    /// was there; a `set` or an unanswered `del` accepts anything the same way and is no reason.
    /// Only appends and incrs can follow in the run (an unknown set or del right after an
    /// unknown operation is never tried), so this over-approximates what the pending ones can
    /// reach: strings that have this one as a prefix and are longer by a sum of pending
    /// suffixes' lengths, or, from an integer (or what appends can make one) with an incr
    /// pending, anything.
    fn may_serve(&self, state: StateId, pending: &Pending) -> bool {
        let value = self.states.value(state).unwrap_or_default();
        let (suffixes, incr_pending) = (&pending.suffixes, pending.incr);
        // An incr can take an integer anywhere; appends can make "" or "-" an integer first.
        if incr_pending && (self.states.int(state).is_some() || value.is_empty() || value == "-") {
            return true;
        }
        // What appends can add to `value`: sums of distinct pending suffixes' lengths.
        let extends_to = |longer: &str| {
            longer.starts_with(value) && is_subset_sum(suffixes, longer.len() - value.len())
        };
        let mut node = self.next[HEAD];
        while node != NIL && node % 2 == 1 {
            let op = &self.ops[(node - 1) / 2];
            node = self.next[node];
            let serves = match &op.step {
                Step::Get(want) => match self.states.value(*want) {
                    None => state == ABSENT,
                    Some(w) => extends_to(w),
                },
                Step::Append { suffix, len } => len
                    .and_then(|l| usize::try_from(l).ok())
                    .and_then(|l| l.checked_sub(value.len() + suffix.len()))
                    .is_some_and(|extra| is_subset_sum(suffixes, extra)),
                Step::Incr { delta, result } => result
                    .and_then(|r| r.checked_sub(*delta))
                    .is_some_and(|want| {
                        self.states.int(state) == Some(want) || extends_to(&want.to_string())
                    }),
                Step::Del { removed: Some(1) } => state != ABSENT || !suffixes.is_empty(),
                Step::Del { removed: Some(_) } => state == ABSENT,
                Step::Set(_) | Step::Del { removed: None } => false,
            };
            if serves {
                return true;
            }
        }
        false
    }

    /// Where the search is: `stack` linearized, `state` after it, `completed` of them completed.
    fn deepest(
        &self,
        stack: &[Frame],
        unknown: &[u64],
        state: StateId,
        completed: usize,
    ) -> Deepest {
        let tail = stack[stack.len().saturating_sub(PREFIX_SHOWN)..]
            .iter()
            .map(|f| f.op)
            .collect();
        let mut stuck = Vec::new();
        let mut node = self.next[HEAD];
        while node != NIL && node % 2 == 1 {
            stuck.push((node - 1) / 2);
            node = self.next[node];
        }
        let frontier = match node {
            NIL => u64::MAX,
            ret => self.ops[(ret - 1) / 2].op.ret.unwrap_or(u64::MAX),
        };
        let pending_unknown = (0..self.called_by(frontier))
            .filter(|&slot| !bit(unknown, slot))
            .count();
        Deepest {
            completed,
            depth: stack.len(),
            tail,
            state,
            stuck,
            pending_unknown,
        }
    }

    pub(super) fn violation(&self, key: &str, deepest: &Deepest) -> Verdict {
        let op = |&i: &usize| self.ops[i].op.clone();
        Verdict::Violation {
            key: key.to_owned(),
            ops: deepest.stuck.iter().map(op).collect(),
            pending_unknown: deepest.pending_unknown,
            linearized: deepest.depth,
            prefix: deepest.tail.iter().map(op).collect(),
            value: self.states.value(deepest.state).map(str::to_owned),
        }
    }
}

/// Whether some of `lens` (each at most once) add up to `sum`; true for large sums rather than
/// spending time on them.
fn is_subset_sum(lens: &[usize], sum: usize) -> bool {
    if sum == 0 {
        return true;
    }
    if sum > 4096 || lens.iter().sum::<usize>() < sum {
        return sum > 4096;
    }
    let mut reachable = vec![0_u64; sum / 64 + 1];
    reachable[0] = 1;
    for &len in lens.iter().filter(|&&l| l > 0 && l <= sum) {
        for bit in (len..=sum).rev() {
            let from = bit - len;
            if reachable[from / 64] >> (from % 64) & 1 == 1 {
                reachable[bit / 64] |= 1 << (bit % 64);
            }
        }
    }
    reachable[sum / 64] >> (sum % 64) & 1 == 1
}
