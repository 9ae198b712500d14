//! The clients: threads that issue random operations with unique values on a few keys, each
//! through one node at a time (moving on when it does not answer), and record what they saw.
//!
//! - Replies: `+OK`, integers and bulk strings complete the operation; `-TRYAGAIN` (not applied)
//!   and `-ERR value is not an integer` (an `incr` on a string: refused, changed nothing) leave it
//!   out of the history; `-UNCERTAIN`, any other error, a timeout or a lost connection record it
//!   with an unknown outcome (`ret: null`) and the client moves to another node.
//! - Readers: clients that only GET, each sticking to its node like the others. A stale read
//!   needs a GET *called* at a deposed leader after the new leader acknowledged a write; the
//!   read-write clients rarely give one, since their first SET at an isolated leader holds
//!   them there until it times out, long after the old leader has stepped down.
//!   With the slow-clock fault, the read-write clients keep off the slow node.
//! - Keys: `s0..` take get, set, append and del with values no other operation writes (`s` +
//!   client + sequence); `n0..` take get, incr, del and now and then a set of a unique number.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use raft_mio::resp::client::{Client, Value};

use crate::generate::SplitMix64;
use crate::history::{Op, OpResult, Operation};

/// One clock for every timestamp of a run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }

    /// Monotonic nanoseconds since the run started.
    pub(crate) fn now(self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Counts of what the clients saw.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) ok: u64,
    pub(crate) tryagain: u64,
    pub(crate) refused: u64,
    pub(crate) uncertain: u64,
    pub(crate) lost: u64,
    pub(crate) other_errors: BTreeMap<String, u64>,
}

impl Stats {
    fn add(&mut self, o: &Self) {
        self.ok += o.ok;
        self.tryagain += o.tryagain;
        self.refused += o.refused;
        self.uncertain += o.uncertain;
        self.lost += o.lost;
        for (k, v) in &o.other_errors {
            *self.other_errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// What the workload is made of.
#[derive(Clone, Debug)]
pub(crate) struct WorkloadConfig {
    pub(crate) clients: usize,
    /// Clients that only read (numbered after the others).
    pub(crate) readers: usize,
    /// A node the read-write clients never use (the slow-clock node: it then gets only reads,
    /// and raft-kv holds a read until the node's own pending writes are applied, so writes
    /// reaching it would hide a leader that serves reads without confirming it still leads).
    pub(crate) writers_avoid: Option<u64>,
    pub(crate) string_keys: usize,
    pub(crate) counter_keys: usize,
    /// The pause between two operations of a client.
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) seed: u64,
}

impl WorkloadConfig {
    pub(crate) fn keys(&self) -> Vec<String> {
        (0..self.string_keys)
            .map(|i| format!("s{i}"))
            .chain((0..self.counter_keys).map(|i| format!("n{i}")))
            .collect()
    }
}

/// The running clients.
pub(crate) struct Workload {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<(Vec<Operation>, Stats)>>,
}

impl Workload {
    pub(crate) fn start(
        config: &WorkloadConfig,
        addrs: &Arc<RwLock<Vec<(u64, SocketAddr)>>>,
        clock: Clock,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (1..=config.clients + config.readers)
            .map(|c| {
                let (config, addrs, stop) = (config.clone(), Arc::clone(addrs), Arc::clone(&stop));
                thread::spawn(move || client_loop(c as u64, &config, &addrs, clock, &stop))
            })
            .collect();
        Self { stop, handles }
    }

    /// Stops the clients (each finishes the operation it is in) and returns their history.
    pub(crate) fn stop(self) -> (Vec<Operation>, Stats) {
        self.stop.store(true, Ordering::Release);
        let mut ops = Vec::new();
        let mut stats = Stats::default();
        for h in self.handles {
            if let Ok((o, s)) = h.join() {
                ops.extend(o);
                stats.add(&s);
            }
        }
        ops.sort_by_key(|o| o.call);
        (ops, stats)
    }
}

/// What a reply means for the history.
pub(crate) enum Outcome {
    /// Completed, with this result.
    Done(Option<OpResult>),
    /// Not applied: leave it out.
    NotApplied,
    /// Unknown outcome.
    Unknown,
}

/// Builds the request for `op` on `key`.
pub(crate) fn request(op: &Op, key: &str) -> Vec<Vec<u8>> {
    let k = key.as_bytes().to_vec();
    match op {
        Op::Get => vec![b"GET".to_vec(), k],
        Op::Set(v) => vec![b"SET".to_vec(), k, v.as_bytes().to_vec()],
        Op::Append(v) => vec![b"APPEND".to_vec(), k, v.as_bytes().to_vec()],
        Op::Incr(d) => vec![b"INCRBY".to_vec(), k, d.to_string().into_bytes()],
        Op::Del => vec![b"DEL".to_vec(), k],
    }
}

/// Reads a reply to `op`.
pub(crate) fn outcome(op: &Op, reply: &Value, stats: &mut Stats) -> Outcome {
    match (op, reply) {
        (Op::Get, Value::Bulk(v)) => Outcome::Done(Some(OpResult::Value(
            v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
        ))),
        (Op::Set(_), Value::Simple(s)) if s == "OK" => Outcome::Done(None),
        (Op::Append(_) | Op::Incr(_), Value::Integer(n)) => {
            Outcome::Done(Some(OpResult::Integer(*n)))
        }
        (Op::Del, Value::Integer(n @ (0 | 1))) => Outcome::Done(Some(OpResult::Integer(*n))),
        (_, Value::Error(e)) if e.starts_with("TRYAGAIN") => {
            stats.tryagain += 1;
            Outcome::NotApplied
        }
        (Op::Incr(_), Value::Error(e)) if e.contains("not an integer") => {
            stats.refused += 1;
            Outcome::NotApplied
        }
        (_, Value::Error(e)) if e.starts_with("UNCERTAIN") => {
            stats.uncertain += 1;
            Outcome::Unknown
        }
        (_, other) => {
            let text = match other {
                Value::Error(e) => e.split_whitespace().take(4).collect::<Vec<_>>().join(" "),
                v => format!("unexpected reply {v:?}"),
            };
            *stats.other_errors.entry(text).or_default() += 1;
            Outcome::Unknown
        }
    }
}

fn is_reader(config: &WorkloadConfig, client: u64) -> bool {
    usize::try_from(client).is_ok_and(|c| c > config.clients)
}

fn pick_op(rng: &mut SplitMix64, config: &WorkloadConfig, client: u64, seq: u64) -> (String, Op) {
    let total = config.string_keys + config.counter_keys;
    let k = rng.index(total.max(1));
    let r = rng.below(100);
    if is_reader(config, client) {
        let key = if k < config.string_keys {
            format!("s{k}")
        } else {
            format!("n{}", k - config.string_keys)
        };
        return (key, Op::Get);
    }
    if k < config.string_keys {
        let key = format!("s{k}");
        let op = match r {
            0..35 => Op::Get,
            35..60 => Op::Set(format!("s{client}.{seq}")),
            60..92 => Op::Append(format!("a{client}.{seq};")),
            _ => Op::Del,
        };
        (key, op)
    } else {
        let key = format!("n{}", k - config.string_keys);
        let op = match r {
            0..40 => Op::Get,
            40..92 => Op::Incr(i64::try_from(rng.below(5) + 1).unwrap_or(1)),
            92..96 => Op::Del,
            // A unique integer: client and sequence.
            _ => Op::Set((client * 1_000_000 + seq).to_string()),
        };
        (key, op)
    }
}

fn client_loop(
    client: u64,
    config: &WorkloadConfig,
    addrs: &RwLock<Vec<(u64, SocketAddr)>>,
    clock: Clock,
    stop: &AtomicBool,
) -> (Vec<Operation>, Stats) {
    let mut rng = SplitMix64::new(config.seed ^ client.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let reader = is_reader(config, client);
    let mut ops = Vec::new();
    let mut stats = Stats::default();
    // The node this client sticks to, by position in the list (which changes with membership):
    // its home, or after a failure the next ones for a while, then home again (else the
    // clients would drift away from nodes that failed once and never come back).
    let home = usize::try_from(client).unwrap_or(0);
    let mut at = home;
    let mut away_until = 0_u64;
    let mut conn: Option<Client> = None;
    let mut seq = 0_u64;
    while !stop.load(Ordering::Acquire) {
        if conn.is_some() && at != home && seq >= away_until {
            conn = None;
        }
        if conn.is_none() {
            if seq >= away_until {
                at = home;
            }
            let mut list = addrs.read().unwrap_or_else(PoisonError::into_inner).clone();
            if !reader && list.len() > 1 {
                list.retain(|&(id, _)| Some(id) != config.writers_avoid);
            }
            if list.is_empty() {
                thread::sleep(Duration::from_millis(50));
                continue;
            }
            let (_, addr) = list[at % list.len()];
            match Client::connect(addr, config.timeout) {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    at += 1;
                    away_until = seq + 40;
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        seq += 1;
        let (key, op) = pick_op(&mut rng, config, client, seq);
        let req = request(&op, &key);
        let args: Vec<&[u8]> = req.iter().map(Vec::as_slice).collect();
        let call = clock.now();
        let reply: io::Result<Value> = c.call(&args);
        let ret = clock.now();
        let (result, move_on) = match reply {
            Ok(v) => match outcome(&op, &v, &mut stats) {
                Outcome::Done(r) => {
                    stats.ok += 1;
                    (Some((Some(ret), r)), false)
                }
                Outcome::NotApplied => (
                    None,
                    matches!(v, Value::Error(ref e) if e.starts_with("TRYAGAIN")),
                ),
                Outcome::Unknown => (Some((None, None)), true),
            },
            Err(_) => {
                stats.lost += 1;
                conn = None;
                (Some((None, None)), true)
            }
        };
        if let Some((ret, result)) = result {
            ops.push(Operation {
                client,
                key,
                op,
                call,
                ret,
                result,
            });
        }
        if move_on {
            conn = None;
            at += 1;
            away_until = seq + 40;
        }
        if !config.interval.is_zero() {
            thread::sleep(config.interval);
        }
    }
    (ops, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(op: &Op, reply: Value) -> (&'static str, Option<OpResult>) {
        let mut stats = Stats::default();
        match outcome(op, &reply, &mut stats) {
            Outcome::Done(r) => ("done", r),
            Outcome::NotApplied => ("not applied", None),
            Outcome::Unknown => ("unknown", None),
        }
    }

    #[test]
    fn replies_map_to_history_outcomes() {
        let set = Op::Set("v".into());
        assert_eq!(out(&set, Value::Simple("OK".into())), ("done", None));
        assert_eq!(
            out(&Op::Get, Value::Bulk(None)),
            ("done", Some(OpResult::Value(None)))
        );
        assert_eq!(
            out(&Op::Incr(2), Value::Integer(7)),
            ("done", Some(OpResult::Integer(7)))
        );
        assert_eq!(
            out(&set, Value::Error("TRYAGAIN no leader".into())).0,
            "not applied"
        );
        assert_eq!(
            out(
                &Op::Incr(1),
                Value::Error("ERR value is not an integer or out of range".into())
            )
            .0,
            "not applied"
        );
        assert_eq!(
            out(&set, Value::Error("UNCERTAIN outcome unknown".into())).0,
            "unknown"
        );
        // Anything else is not known to be harmless: unknown outcome.
        assert_eq!(out(&set, Value::Integer(1)).0, "unknown");
        assert_eq!(out(&Op::Del, Value::Integer(2)).0, "unknown");
        assert_eq!(
            request(&Op::Append("x".into()), "k"),
            vec![b"APPEND".to_vec(), b"k".to_vec(), b"x".to_vec()]
        );
    }
}
