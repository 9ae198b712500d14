//! The demo's clients: each runs a mixed workload on keys of its own, retries what is safe to
//! retry (every write is either idempotent or stamped with `RAFT.ONCE`), records every latency,
//! and keeps a model of what the cluster acknowledged, to check the cluster against.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use raft_core::SplitMix64;

use crate::resp::client::{Client, Value};

/// What every client shares with the demo's main thread.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) ops: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) retries: AtomicU64,
    /// The last time any write was acknowledged, in microseconds since `epoch`.
    pub(super) last_write_us: AtomicU64,
    /// Problems the clients saw: a wrong answer, a write never acknowledged.
    pub(super) failures: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, what: String) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(what);
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What one client knows the cluster acknowledged.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) keys: BTreeMap<String, String>,
    pub(super) counter: (String, i64),
    pub(super) appended: (String, i64),
    pub(super) write_latency_us: Vec<u32>,
    pub(super) read_latency_us: Vec<u32>,
    pub(super) reads_checked: u64,
}

/// A connection to any node that moves on when a node goes away.
struct Conn {
    nodes: Vec<SocketAddr>,
    at: usize,
    client: Option<Client>,
}

impl Conn {
    /// Sends `args` until the cluster answers with something other than `-TRYAGAIN` or
    /// `-UNCERTAIN`, or `deadline` passes. Only for commands that are safe to send again.
    fn call(&mut self, args: &[&[u8]], deadline: Instant, shared: &Shared) -> Option<Value> {
        while Instant::now() < deadline {
            if self.client.is_none() {
                let addr = self.nodes[self.at % self.nodes.len()];
                match Client::connect(addr, Duration::from_secs(2)) {
                    Ok(c) => self.client = Some(c),
                    Err(_) => {
                        self.at += 1;
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
            let client = self.client.as_mut()?;
            match client.call(args) {
                Ok(Value::Error(e)) if e.starts_with("TRYAGAIN") || e.starts_with("UNCERTAIN") => {
                    shared.retries.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(5));
                }
                Ok(v) => return Some(v),
                Err(_) => {
                    shared.retries.fetch_add(1, Ordering::Relaxed);
                    self.client = None;
                    self.at += 1;
                }
            }
        }
        None
    }
}

/// A tiny generator for the op mix.
/// Starts client `c`; it runs until `shared.stop`, and returns its model.
pub(super) fn spawn(
    c: usize,
    nodes: Vec<SocketAddr>,
    shared: Arc<Shared>,
    epoch: Instant,
) -> thread::JoinHandle<Model> {
    thread::spawn(move || run(c, nodes, &shared, epoch))
}

fn run(c: usize, nodes: Vec<SocketAddr>, shared: &Shared, epoch: Instant) -> Model {
    let at = c % nodes.len();
    let mut conn = Conn {
        nodes,
        at,
        client: None,
    };
    let mut model = Model {
        counter: (format!("counter:{c}"), 0),
        appended: (format!("log:{c}"), 0),
        ..Model::default()
    };
    let client_id = (u64::from(std::process::id()) << 16) | (c as u64 + 1);
    let mut seq: u64 = 0;
    let mut written: Vec<String> = Vec::new();
    let mut rng = SplitMix64::new(c as u64 + 1);
    let value = "v".repeat(24);
    while !shared.stop.load(Ordering::Relaxed) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let roll = rng.below(100);
        let started = Instant::now();
        let write = roll < 70;
        let ok = if roll < 40 {
            let key = format!("key:{c}:{}", written.len());
            let v = format!("{value}{}", written.len());
            let reply = conn.call(&[b"SET", key.as_bytes(), v.as_bytes()], deadline, shared);
            let ok = matches!(&reply, Some(Value::Simple(s)) if s == "OK");
            if ok {
                model.keys.insert(key.clone(), v);
                written.push(key);
            }
            ok.then_some(()).ok_or_else(|| format!("SET: {reply:?}"))
        } else if roll < 70 {
            // INCR or APPEND, stamped so that a retry anywhere is applied once.
            seq += 1;
            let (key, cmd): (&str, &[&[u8]]) = if roll < 60 {
                (&model.counter.0, &[b"INCR"])
            } else {
                (&model.appended.0, &[b"APPEND"])
            };
            let (client_s, seq_s) = (client_id.to_string(), seq.to_string());
            let mut args: Vec<&[u8]> = vec![
                b"RAFT.ONCE",
                client_s.as_bytes(),
                seq_s.as_bytes(),
                seq_s.as_bytes(),
            ];
            args.extend_from_slice(cmd);
            args.push(key.as_bytes());
            if roll >= 60 {
                args.push(b"x");
            }
            let reply = conn.call(&args, deadline, shared);
            let slot = if roll < 60 {
                &mut model.counter
            } else {
                &mut model.appended
            };
            match reply {
                Some(Value::Integer(n)) if n == slot.1 + 1 => {
                    slot.1 = n;
                    Ok(())
                }
                other => Err(format!(
                    "{} {}: {other:?} (expected {})",
                    String::from_utf8_lossy(cmd[0]),
                    slot.0,
                    slot.1 + 1
                )),
            }
        } else if roll < 90 && !written.is_empty() {
            // A linearizable read of a key this client wrote: it must see the last value.
            let key = &written[rng.index(written.len())];
            let reply = conn.call(&[b"GET", key.as_bytes()], deadline, shared);
            let want = model.keys.get(key).map(|v| v.as_bytes().to_vec());
            model.reads_checked += 1;
            match reply {
                Some(Value::Bulk(got)) if got == want => Ok(()),
                other => Err(format!("GET {key}: {other:?}, expected {want:?}")),
            }
        } else {
            let reply = conn.call(
                &[
                    b"MGET",
                    model.counter.0.as_bytes(),
                    model.appended.0.as_bytes(),
                ],
                deadline,
                shared,
            );
            model.reads_checked += 1;
            match reply {
                Some(Value::Array(Some(items))) if items.len() == 2 => Ok(()),
                other => Err(format!("MGET: {other:?}")),
            }
        };
        let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match ok {
            Ok(()) => {
                shared.ops.fetch_add(1, Ordering::Relaxed);
                if write {
                    shared.writes.fetch_add(1, Ordering::Relaxed);
                    let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                    shared.last_write_us.fetch_max(now, Ordering::Relaxed);
                    model.write_latency_us.push(us);
                } else {
                    model.read_latency_us.push(us);
                }
            }
            Err(what) => {
                if !shared.stop.load(Ordering::Relaxed) {
                    shared.fail(format!("client {c}: {what}"));
                }
                break;
            }
        }
    }
    model
}

/// Writes `SET probe:<n>` at the surviving nodes until one is acknowledged; returns when.
pub(super) fn probe_write(nodes: &[SocketAddr], n: u64, deadline: Instant) -> Option<Instant> {
    let key = format!("probe:{n}");
    let mut at = 0;
    while Instant::now() < deadline {
        let addr = nodes[at % nodes.len()];
        at += 1;
        let Ok(mut c) = Client::connect(addr, Duration::from_millis(200)) else {
            continue;
        };
        loop {
            match c.call(&[b"SET", key.as_bytes(), b"1"]) {
                Ok(Value::Simple(s)) if s == "OK" => return Some(Instant::now()),
                Ok(Value::Error(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(1));
                }
                _ => break,
            }
        }
    }
    None
}

/// Percentile `p` (0 to 100) of sorted `v`, in milliseconds.
pub(super) fn percentile_ms(v: &[u32], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * p / 100.0).round() as usize;
    f64::from(v[i.min(v.len() - 1)]) / 1000.0
}
