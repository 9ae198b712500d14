//! The linearizability checker: Wing–Gong–Lowe search with memoization, one key at a time.
//!
//! A history is linearizable when every operation can be given a point in time between its call
//! and its return (or, for an unknown outcome, any point after its call, or none) such that
//! running the operations one by one in the order of those points, on a plain sequential
//! key-value store, gives every result the clients saw.
//!
//! # The search
//!
//! Each operation touches one key, and a history is linearizable if and only if each key's
//! sub-history is (linearizability is compositional), so keys are checked one by one, each from
//! an absent value.
//!
//! For one key, the operations' call and return events are put in one doubly-linked list in time
//! order (at equal times calls come first, so operations that only touch count as concurrent).
//! The operations whose call comes before the first return in the list are the candidates to take
//! effect next: the search tries one, and if the sequential model accepts it (a `get` must see
//! the current value, an `incr` must answer the value it would produce...) its two events are
//! lifted out of the list and the search goes on; when the first entry of the list is a return,
//! every candidate has been tried, and the search backtracks: it puts the last lifted operation
//! back and tries the candidate after it. This is the algorithm of Wing and Gong with Lowe's
//! memoization ("Testing for linearizability", 2017), as in porcupine: a configuration, the set
//! of operations already linearized (a bitset) with the model's state after them, that was seen
//! before is not explored again, since it failed then.
//!
//! An operation with an unknown outcome has no return event: it may take effect at any point
//! after its call, its result is not checked, and the search ends with success as soon as every
//! *completed* operation is linearized, so it may also never take effect. An unknown `get` is
//! dropped: it neither changes the state nor constrains it. The others stay candidates for the
//! rest of the history, which is what makes them expensive; so that they cost little when few
//! of them matter:
//!
//! - they are tried only after every completed candidate has failed, latest call first, so that
//!   one takes effect when something needs it (a read that sees its write);
//! - a configuration is also skipped when one with the same completed operations and state but
//!   a *subset* of its unknown operations was seen (an unknown operation not taken is never a
//!   loss: it may still be taken, or never);
//! - a run of unknown operations is only of use if the completed operation after it accepts a
//!   state it would not have accepted before it, so an unknown operation is not tried when the
//!   state it leaves cannot lead to what a pending completed operation needs (a `get` of
//!   another value, an `append` answering another length...), nor is an unknown `set` or `del`
//!   right after another unknown operation (it would undo it);
//! - the search runs in rounds: first no unknown operation takes effect; then each may, but
//!   only within a horizon after its call (4, 16, 64... 4,096 times the key's median operation
//!   time), so that old ones stop being candidates; then without limits. A round that finds a
//!   linearization ends the search, since a linearization found under a limit is one; a limited
//!   round that has to backtrack far below the deepest point it reached gives up (it is most
//!   likely missing what its limit forbids); only the last round, which limits nothing, can
//!   conclude a violation.
//!
//! So a linearizable history is cheap to check when its unknown operations took effect soon
//! after their call or never, as they do in practice (a request lost, or applied while the
//! client waited). Proving a violation on a key is another matter: the last round has to rule
//! out every placement of every unknown operation, and with more than a few of them on one busy
//! key it may run out of budget, and the key comes out [`Verdict::Unknown`].
//!
//! # The model
//!
//! One key's value is `Option<String>`, absent at first. `set` stores; `append` concatenates
//! (absent counts as empty) and answers the new length in bytes; `incr` reads the value as the
//! canonical decimal form of an `i64` (an optional `-`, no leading zeros, no `+`, as Redis and the
//! store do; absent counts as 0), adds the delta and answers the sum: on a value that is not an
//! integer, or on overflow, it fails and changes nothing, so a completed `incr` with a result
//! requires an integer, and an unknown one is then a no-op; `del` removes, answering 1 if the key
//! existed and 0 if not (when that count is recorded); `get` answers the value.
//!
//! # Limits
//!
//! The search is exponential in the worst case. [`CheckOptions`] bounds the time, the steps and
//! the memory spent on each key; a key whose search runs out is [`Verdict::Unknown`], never
//! [`Verdict::Ok`].

use core::fmt;
use core::hash::{BuildHasherDefault, Hasher};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::history::{History, Op, OpResult, Operation};

/// How much each key's search may spend before it gives up with [`Verdict::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Wall-clock time per key.
    pub timeout: Duration,
    /// Search steps (candidates looked at) per key; `None` for no limit.
    pub max_steps: Option<u64>,
    /// Bytes (roughly) of remembered configurations per key.
    pub max_memory: usize,
}

impl Default for CheckOptions {
    /// 60 seconds, no step limit and 2 GiB per key.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_steps: None,
            max_memory: 2 << 30,
        }
    }
}

/// How many operations of the longest partial linearization a [`Verdict::Violation`] shows.
pub const PREFIX_SHOWN: usize = 8;

/// The outcome of a check, of one key or of a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Linearizable.
    Ok,
    /// Not linearizable: no order of `key`'s operations explains what the clients saw.
    Violation {
        /// The key whose operations cannot be linearized.
        key: String,
        /// The completed operations none of which could take effect next after the longest
        /// partial linearization found: the pending ones, among them one whose return came
        /// before it could be placed.
        ops: Vec<Operation>,
        /// How many operations with an unknown outcome could also have taken effect there (and
        /// did not help).
        pending_unknown: usize,
        /// How many operations that longest partial linearization has.
        linearized: usize,
        /// Its last operations (at most [`PREFIX_SHOWN`]), in linearization order.
        prefix: Vec<Operation>,
        /// The key's value after it (`None`: absent).
        value: Option<String>,
    },
    /// The search ran out of its budget ([`CheckOptions`]) before deciding.
    Unknown {
        /// The key whose search ran out.
        key: String,
        /// What ran out, and how far the search got.
        reason: String,
    },
}

impl Verdict {
    /// Whether this is [`Verdict::Ok`].
    #[must_use]
    pub const fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }

    /// Whether this is a [`Verdict::Violation`].
    #[must_use]
    pub const fn is_violation(&self) -> bool {
        matches!(self, Self::Violation { .. })
    }

    /// Whether this is [`Verdict::Unknown`].
    #[must_use]
    pub const fn is_unknown(&self) -> bool {
        matches!(self, Self::Unknown { .. })
    }

    /// The key a violation or an unknown verdict is about.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Ok => None,
            Self::Violation { key, .. } | Self::Unknown { key, .. } => Some(key),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("linearizable"),
            Self::Unknown { key, reason } => {
                write!(f, "key {key:?}: could not decide: {reason}")
            }
            Self::Violation {
                key,
                ops,
                pending_unknown,
                linearized,
                prefix,
                value,
            } => {
                writeln!(f, "key {key:?}: not linearizable")?;
                if *linearized == 0 {
                    writeln!(f, "  no operation can take effect first")?;
                } else {
                    writeln!(
                        f,
                        "  the longest partial linearization found has {linearized} operation(s); it ends with:"
                    )?;
                    for op in prefix {
                        writeln!(f, "    {op}")?;
                    }
                }
                match value {
                    Some(v) => writeln!(f, "  the value is then {v:?}")?,
                    None => writeln!(f, "  the key is then absent")?,
                }
                write!(f, "  and none of these can take effect next:")?;
                for op in ops {
                    write!(f, "\n    {op}")?;
                }
                if *pending_unknown > 0 {
                    write!(
                        f,
                        "\n  (nor can the {pending_unknown} operation(s) with an unknown outcome pending there help)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// What the check of one key found and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// Its operations.
    pub ops: usize,
    /// How many of them have an unknown outcome.
    pub unknown_ops: usize,
    /// Configurations (linearized set and state) explored: the size of the memo.
    pub states: u64,
    /// Search steps (candidates looked at).
    pub steps: u64,
    /// Time spent on the key.
    pub elapsed: Duration,
    /// The key's verdict.
    pub verdict: Verdict,
}

/// What the check of a history found: an overall verdict and one report per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// The first violation (keys in order), else the first unknown, else ok.
    pub verdict: Verdict,
    /// One report per key, in key order.
    pub keys: Vec<KeyReport>,
    /// Time spent in all.
    pub elapsed: Duration,
}

impl CheckReport {
    /// The number of operations.
    #[must_use]
    pub fn ops(&self) -> usize {
        self.keys.iter().map(|k| k.ops).sum()
    }

    /// The number of operations with an unknown outcome.
    #[must_use]
    pub fn unknown_ops(&self) -> usize {
        self.keys.iter().map(|k| k.unknown_ops).sum()
    }

    /// The number of configurations explored over all keys.
    #[must_use]
    pub fn states(&self) -> u64 {
        self.keys.iter().map(|k| k.states).sum()
    }

    /// The reports of the keys that are not linearizable.
    pub fn violations(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| k.verdict.is_violation())
    }

    /// The reports of the keys whose search ran out.
    pub fn unknowns(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| k.verdict.is_unknown())
    }
}

/// Checks a history, key by key, each within the budget of `options`.
///
/// The overall verdict is the first violation in key order if there is one, else the first key
/// whose search ran out ([`Verdict::Unknown`]), else [`Verdict::Ok`]; every key is checked
/// either way, and [`CheckReport::keys`] has each one's verdict.
#[must_use]
pub fn check(history: &History, options: &CheckOptions) -> CheckReport {
    let start = Instant::now();
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history.ops() {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let keys: Vec<KeyReport> = by_key
        .into_iter()
        .map(|(key, ops)| check_key(key, &ops, options))
        .collect();
    let verdict = keys
        .iter()
        .find(|k| k.verdict.is_violation())
        .or_else(|| keys.iter().find(|k| k.verdict.is_unknown()))
        .map_or(Verdict::Ok, |k| k.verdict.clone());
    CheckReport {
        verdict,
        keys,
        elapsed: start.elapsed(),
    }
}

/// Checks the operations of one key (all of which must be on `key`; the others are ignored).
///
/// The operations should pass [`Operation::validate`], as those of a [`History`] do; for others
/// (a `get` without a result...) the verdict means little, but nothing panics.
#[must_use]
pub fn check_key(key: &str, ops: &[&Operation], options: &CheckOptions) -> KeyReport {
    let start = Instant::now();
    let ops: Vec<&Operation> = ops.iter().copied().filter(|op| op.key == key).collect();
    let unknown_ops = ops.iter().filter(|op| op.is_unknown()).count();
    let mut search = Search::new(&ops);
    let outcome = search.run(options, start);
    let verdict = match outcome {
        Outcome::Ok => Verdict::Ok,
        Outcome::Unknown(reason) => Verdict::Unknown {
            key: key.to_owned(),
            reason,
        },
        Outcome::Violation(deepest) => search.violation(key, &deepest),
        // Only limited rounds give up, and the last round is not limited.
        Outcome::GaveUp => Verdict::Unknown {
            key: key.to_owned(),
            reason: "the search gave up".into(),
        },
    };
    KeyReport {
        key: key.to_owned(),
        ops: ops.len(),
        unknown_ops,
        states: search.explored + search.cache.len() as u64,
        steps: search.steps,
        elapsed: start.elapsed(),
        verdict,
    }
}

/// A model state: an index into [`States`]; [`ABSENT`] is the absent key.
type StateId = u32;

/// The absent key.
const ABSENT: StateId = 0;

/// The values a key takes during the search, interned so that a state is a small number.
struct States {
    ids: HashMap<Rc<str>, StateId>,
    /// Index 0 is [`ABSENT`].
    values: Vec<Option<Rc<str>>>,
    /// Each value read as an integer, as `incr` reads it (`ABSENT` is 0).
    ints: Vec<Option<i64>>,
}

impl States {
    fn new() -> Self {
        Self {
            ids: HashMap::new(),
            values: vec![None],
            ints: vec![Some(0)],
        }
    }

    fn intern(&mut self, value: &str) -> StateId {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = StateId::try_from(self.values.len()).unwrap_or(StateId::MAX);
        let value: Rc<str> = Rc::from(value);
        self.ids.insert(Rc::clone(&value), id);
        self.ints.push(parse_i64(value.as_bytes()));
        self.values.push(Some(value));
        id
    }

    fn value(&self, id: StateId) -> Option<&str> {
        self.values.get(id as usize).and_then(|v| v.as_deref())
    }

    fn int(&self, id: StateId) -> Option<i64> {
        self.ints.get(id as usize).copied().flatten()
    }
}

/// Parses the canonical decimal form of an `i64`, as the store's `incr` does (and Redis's
/// `string2ll`): an optional `-`, then digits without leading zeros (`0` alone, not `-0`), no
/// `+`, no spaces, no overflow.
fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        // Accumulate negatively so that i64::MIN parses.
        n = n.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

/// One operation as the model runs it.
enum Step {
    /// Must see this state.
    Get(StateId),
    /// Stores this state.
    Set(StateId),
    /// Appends; must answer this length if known.
    Append { suffix: Rc<str>, len: Option<i64> },
    /// Adds; must answer this value if known.
    Incr { delta: i64, result: Option<i64> },
    /// Removes; must answer this count if known.
    Del { removed: Option<i64> },
}

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

/// The operations linearized so far, with the first unset and one past the last set index kept
/// up to date so that a configuration's key covers only the bits that can still differ.
struct LinSet {
    words: Vec<u64>,
    /// Every index below this is set.
    low: usize,
    /// No index at or above this is set.
    high: usize,
}

impl LinSet {
    fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            low: 0,
            high: 0,
        }
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
        self.high = self.high.max(i + 1);
        if i == self.low {
            while let Some(&word) = self.words.get(self.low / 64) {
                let off = self.low % 64;
                let ones = (!(word >> off)).trailing_zeros() as usize;
                self.low += ones;
                if ones < 64 - off {
                    break;
                }
            }
        }
    }

    fn clear(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
        self.low = self.low.min(i);
        if i + 1 == self.high {
            self.high = 0;
            for w in (0..=i / 64).rev() {
                let word = self.words.get(w).copied().unwrap_or(0);
                if word != 0 {
                    self.high = w * 64 + 64 - word.leading_zeros() as usize;
                    break;
                }
            }
        }
    }

    /// Writes the memo key of this set with `state` into `out`: the state, the first word not
    /// all ones, and the words from there to the last set bit. Every word below is all ones and
    /// every word above is zero, so equal keys mean equal sets.
    fn key(&self, state: StateId, out: &mut Vec<u64>) {
        let start = self.low / 64;
        let end = self.high.div_ceil(64).max(start);
        out.clear();
        out.push(u64::from(state));
        out.push(start as u64);
        out.extend_from_slice(self.words.get(start..end).unwrap_or_default());
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The configurations seen, with dominance: a configuration is the completed operations
/// linearized with the state after them ([`LinSet::key`]), plus the set of unknown-outcome
/// operations that took effect. Having more unknown operations behind it never helps (one that
/// has not taken effect still may, or may never), so a configuration is not explored again if
/// one with the same key and a subset of its unknown operations was.
///
/// Entries are stored end to end in one arena (the key, then the unknown set) and found through
/// a table from the key's hash to a chain of entries.
struct Cache {
    table: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    /// Per entry: where it starts in `arena`, its key's length, and the next entry with the same
    /// hash (`u32::MAX`: none).
    entries: Vec<(usize, u32, u32)>,
    arena: Vec<u64>,
    /// Words of every entry's unknown set.
    unknown_words: usize,
}

impl Cache {
    fn new(unknown_words: usize) -> Self {
        Self {
            table: HashMap::default(),
            entries: Vec::new(),
            arena: Vec::new(),
            unknown_words,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Roughly the bytes used.
    fn memory(&self) -> usize {
        self.arena.capacity() * 8 + self.entries.capacity() * 16 + self.table.capacity() * 16
    }

    /// Adds the configuration `key` with `unknown` unless one with that key and a subset of
    /// `unknown` is there; whether it was added.
    fn insert(&mut self, key: &[u64], unknown: &[u64]) -> bool {
        let hash = hash_words(key);
        let new = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let slot = self.table.entry(hash).or_insert(u32::MAX);
        let head = *slot;
        let mut at = head;
        while let Some(&(start, len, next)) = self.entries.get(at as usize) {
            let end = start + len as usize;
            let seen_key = self.arena.get(start..end).unwrap_or_default();
            let seen_unknown = self
                .arena
                .get(end..end + self.unknown_words)
                .unwrap_or_default();
            if seen_key == key && is_subset(seen_unknown, unknown) {
                return false;
            }
            at = next;
        }
        *slot = new;
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        self.entries.push((self.arena.len(), len, head));
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(unknown);
        true
    }
}

/// Whether every bit of `a` is in `b`.
fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(a, b)| a & !b == 0)
}

/// FxHash's word step with a murmur3 finish, so that both the low and the high bits (which the
/// table uses) are mixed.
fn hash_words(words: &[u64]) -> u64 {
    let mut h: u64 = 0;
    for &w in words {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// How a key's search ended.
enum Outcome {
    Ok,
    Violation(Deepest),
    Unknown(String),
    /// A limited round stopped early (see [`Round::give_up`]).
    GaveUp,
}

/// The deepest point the search reached before it failed.
struct Deepest {
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
struct Search<'a> {
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
    explored: u64,
    /// The most completed operations linearized at once so far.
    most_completed: usize,
    cache: Cache,
    steps: u64,
}

impl<'a> Search<'a> {
    /// Sets up the model and the event list. Node `2i + 1` is op `i`'s call, `2i + 2` its
    /// return (unused for an unknown outcome).
    fn new(history: &[&'a Operation]) -> Self {
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
    fn run(&mut self, options: &CheckOptions, start: Instant) -> Outcome {
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

    fn violation(&self, key: &str, deepest: &Deepest) -> Verdict {
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

/// Whether bit `i` is set.
fn bit(words: &[u64], i: usize) -> bool {
    words.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
}

/// Sets or clears bit `i`.
fn set_bit(words: &mut [u64], i: usize, on: bool) {
    if let Some(w) = words.get_mut(i / 64) {
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_is_canonical() {
        for (s, want) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("42", Some(42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("007", None),
            ("+1", None),
            (" 1", None),
            ("", None),
            ("-", None),
            ("1a", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), want, "{s:?}");
        }
    }

    #[test]
    fn linset_tracks_low_and_high() {
        let mut s = LinSet::new(200);
        let mut key = Vec::new();
        s.key(0, &mut key);
        assert_eq!(key, [0, 0]);
        for i in 0..70 {
            s.set(i);
        }
        assert_eq!((s.low, s.high), (70, 70));
        s.key(3, &mut key);
        assert_eq!(key, [3, 1, (1 << 6) - 1]);
        s.set(130);
        assert_eq!((s.low, s.high), (70, 131));
        s.clear(130);
        assert_eq!((s.low, s.high), (70, 70));
        s.clear(5);
        assert_eq!((s.low, s.high), (5, 70));
        s.set(5);
        assert_eq!((s.low, s.high), (70, 70));
        for i in 0..128 {
            s.set(i);
        }
        assert_eq!((s.low, s.high), (128, 128));
        s.key(1, &mut key);
        assert_eq!(key, [1, 2]);
        for i in (0..128).rev() {
            s.clear(i);
        }
        assert_eq!((s.low, s.high), (0, 0));
    }

    #[test]
    fn equal_sets_give_equal_keys() {
        // Built in different orders, the same set gives the same key; different sets differ.
        let mut a = LinSet::new(150);
        let mut b = LinSet::new(150);
        for i in [3, 0, 1, 2, 64, 100] {
            a.set(i);
        }
        for i in [100, 64, 2, 1, 0, 3, 7] {
            b.set(i);
        }
        b.clear(7);
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        a.key(1, &mut ka);
        b.key(1, &mut kb);
        assert_eq!(ka, kb);
        b.clear(64);
        b.key(1, &mut kb);
        assert_ne!(ka, kb);
    }

    #[test]
    fn cache_remembers_keys_and_dominance() {
        let mut cache = Cache::new(1);
        assert!(cache.insert(&[1, 2, 3], &[0b01]));
        assert!(!cache.insert(&[1, 2, 3], &[0b01]));
        // More unknown operations behind the same key: dominated.
        assert!(!cache.insert(&[1, 2, 3], &[0b11]));
        // Fewer, or others: not.
        assert!(cache.insert(&[1, 2, 3], &[0b10]));
        assert!(cache.insert(&[1, 2, 3], &[0b00]));
        assert!(!cache.insert(&[1, 2, 3], &[0b10]));
        assert!(cache.insert(&[1, 2], &[0b11]));
        assert!(cache.insert(&[], &[0]));
        assert!(!cache.insert(&[], &[0]));
        assert_eq!(cache.len(), 5);
        let mut none = Cache::new(0);
        assert!(none.insert(&[7], &[]));
        assert!(!none.insert(&[7], &[]));
    }
}
