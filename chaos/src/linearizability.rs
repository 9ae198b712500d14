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

mod memo;
mod model;
mod search;

use core::fmt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::history::{History, Operation};

use search::{Outcome, Search};

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
