//! Random linearizable histories, for testing the checker and measuring its speed.
//!
//! Simulated clients issue operations one after another on a simulated sequential key-value
//! store: each operation gets a call time, a return time, and a point in between at which it
//! takes effect; the operations then run on the store in the order of those points, and each
//! records the result it got. Some operations end with an unknown outcome (the client gave up):
//! half of those take effect at some point after their call (possibly after the client gave up),
//! half never do. Such a history is linearizable by construction.
//!
//! Values are chosen so that a history says which write a read saw: every `set` writes a value
//! of its own, `w<n>`, which no other operation can produce (`append` adds `.<n>`, `incr`
//! produces digits). An `incr` that finds a value that is not an integer would fail without
//! effect, a definite "not applied" that a recorder leaves out of the history: the simulated
//! client reads the value instead, so that the history has as many operations as asked for.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::history::{History, Op, OpResult, Operation};

/// The workspace's seeded generator (re-exported for the runner's modules).
pub use raft_core::SplitMix64;

/// What history [`generate`] makes.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    /// Operations in the history.
    pub ops: usize,
    /// Concurrent clients (at least 1).
    pub clients: usize,
    /// Keys, chosen uniformly (at least 1).
    pub keys: usize,
    /// The share of operations with an unknown outcome, `0.0..=1.0`.
    pub unknown_rate: f64,
    /// Longest time an operation takes, in nanoseconds (at least 1).
    pub max_latency: u64,
    /// Longest pause of a client between two operations, in nanoseconds.
    pub max_think: u64,
    /// The random seed.
    pub seed: u64,
}

impl Default for GenOptions {
    /// 1,000 operations, 5 clients, 10 keys, 2% unknown outcomes, up to 1 ms per operation and
    /// 100 µs between two, seed 0.
    fn default() -> Self {
        Self {
            ops: 1_000,
            clients: 5,
            keys: 10,
            unknown_rate: 0.02,
            max_latency: 1_000_000,
            max_think: 100_000,
            seed: 0,
        }
    }
}

/// An operation before it has run.
struct Planned {
    op: Operation,
    /// When it takes effect; `None`: never.
    at: Option<u64>,
}

/// A random linearizable history (see the [module documentation](self)), in call order.
#[must_use]
pub fn generate(options: &GenOptions) -> History {
    let mut rng = SplitMix64::new(options.seed);
    let clients = options.clients.max(1);
    let keys = options.keys.max(1);
    let latency = options.max_latency.max(1);
    let mut ready: BinaryHeap<Reverse<(u64, usize)>> = (0..clients)
        .map(|c| Reverse((1_000 + rng.below(latency), c)))
        .collect();
    let mut planned = Vec::with_capacity(options.ops);
    for n in 0..options.ops {
        let Some(Reverse((call, client))) = ready.pop() else {
            break;
        };
        let key = format!("k{}", rng.index(keys));
        let op = match rng.below(100) {
            0..35 => Op::Get,
            35..60 => Op::Set(format!("w{n}")),
            60..70 => Op::Append(format!(".{n}")),
            70..90 => Op::Incr(1 + rng.below(5).cast_signed()),
            _ => Op::Del,
        };
        let took = 1 + rng.below(latency);
        let unknown = rng.chance(options.unknown_rate);
        let at = if !unknown {
            Some(call + rng.below(took + 1))
        } else if rng.chance(0.5) {
            // Applied, possibly long after the client gave up.
            Some(call + rng.below(10 * took + 1))
        } else {
            None
        };
        planned.push(Planned {
            op: Operation {
                client: client as u64,
                key,
                op,
                call,
                ret: (!unknown).then_some(call + took),
                result: None,
            },
            at,
        });
        ready.push(Reverse((
            call + took + rng.below(options.max_think + 1),
            client,
        )));
    }

    // Run them in the order they take effect.
    let mut order: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].at.is_some())
        .collect();
    order.sort_by_key(|&i| (planned[i].at, i));
    let mut store: HashMap<String, String> = HashMap::new();
    let mut record_del = SplitMix64::new(options.seed ^ 0x5eed);
    for i in order {
        let p = &mut planned[i];
        let key = p.op.key.clone();
        let known = p.op.ret.is_some();
        let mut reads_instead = false;
        let result = match &p.op.op {
            Op::Get => Some(OpResult::Value(store.get(&key).cloned())),
            Op::Set(v) => {
                store.insert(key, v.clone());
                None
            }
            Op::Append(v) => {
                let value = store.entry(key).or_default();
                value.push_str(v);
                Some(OpResult::Integer(
                    i64::try_from(value.len()).unwrap_or(i64::MAX),
                ))
            }
            Op::Incr(delta) => {
                // As the store reads it: the canonical decimal form only.
                let now = match store.get(&key) {
                    None => Some(0),
                    Some(v) => v.parse::<i64>().ok().filter(|n| n.to_string() == *v),
                };
                if let Some(new) = now.and_then(|n| n.checked_add(*delta)) {
                    store.insert(key, new.to_string());
                    Some(OpResult::Integer(new))
                } else {
                    reads_instead = known;
                    Some(OpResult::Value(store.get(&key).cloned()))
                }
            }
            Op::Del => {
                let removed = i64::from(store.remove(&key).is_some());
                record_del.chance(0.5).then_some(OpResult::Integer(removed))
            }
        };
        if reads_instead {
            p.op.op = Op::Get;
        }
        if known {
            p.op.result = result;
        }
    }
    let ops = planned.into_iter().map(|p| p.op).collect();
    // Every operation was built to pass validation; an empty history is the fallback.
    History::new(ops).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(10) < 10);
            b.below(10);
        }
        assert_eq!(a.below(0), 0);
        let hits = (0..10_000).filter(|_| a.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }

    #[test]
    fn generates_what_was_asked() {
        let h = generate(&GenOptions {
            ops: 2_000,
            clients: 4,
            keys: 3,
            unknown_rate: 0.1,
            ..GenOptions::default()
        });
        let ops = h.ops();
        assert_eq!(ops.len(), 2_000);
        assert!(ops.iter().all(|op| op.client < 4));
        assert!(
            ops.iter()
                .all(|op| ["k0", "k1", "k2"].contains(&op.key.as_str()))
        );
        let unknown = ops.iter().filter(|op| op.is_unknown()).count();
        assert!((100..300).contains(&unknown), "{unknown}");
        assert!(ops.windows(2).all(|w| w[0].call <= w[1].call));
        // Each client's operations do not overlap.
        for c in 0..4 {
            let mine: Vec<&Operation> = ops.iter().filter(|op| op.client == c).collect();
            assert!(
                mine.windows(2)
                    .all(|w| w[0].ret.is_none_or(|r| r <= w[1].call))
            );
        }
        assert_eq!(
            generate(&GenOptions::default()),
            generate(&GenOptions::default())
        );
    }
}
