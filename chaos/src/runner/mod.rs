//! The chaos runner: real `raft-kv` processes, clients recording a history, a nemesis injecting
//! faults; then everything is healed and three things are checked:
//!
//! 1. the cluster converges: every member applies the same state (`RAFT.STALE DBSIZE` and
//!    `RAFT.STALE MGET` of every key agree), and `INFO` agrees (commit index = applied index, the
//!    same on every member);
//! 2. every acknowledged write is present: after convergence each member answers a
//!    linearizable `GET` of every key, and these reads join the history, so that a write that was
//!    acknowledged and then lost makes the history not linearizable;
//! 3. the history is linearizable ([`crate::linearizability::check`], in this process).
//!
//! [`run_one`] does one run; the `chaos` binary runs many and prints a table.

mod cleanup;
mod cluster;
mod nemesis;
mod net;
mod proxy;
pub mod teeth;
mod workload;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use raft_mio::resp::client::Value;

pub use cleanup::{cleanup_all, install_handlers};
pub use nemesis::Fault;

use crate::generate::SplitMix64;
use crate::history::{History, HistoryWriter, Op, OpResult, Operation};
use crate::linearizability::{CheckOptions, Verdict, check};
use cluster::Cluster;
use nemesis::Nemesis;
use net::{Net, Netns};
use proxy::ProxyNet;
use workload::{Clock, Workload, WorkloadConfig};

/// Where the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetMode {
    /// Network namespaces if they work here, else loopback.
    Auto,
    /// Network namespaces on a bridge, faults in nftables (root).
    Netns,
    /// Loopback, with a TCP proxy in front of every node's peer port.
    Loopback,
}

impl NetMode {
    /// Resolves `Auto`: namespaces if they work here; the reason when they do not.
    #[must_use]
    pub fn resolve(self) -> (Self, Option<String>) {
        match self {
            Self::Auto => match Netns::available() {
                Ok(()) => (Self::Netns, None),
                Err(e) => (Self::Loopback, Some(e)),
            },
            m => (m, None),
        }
    }
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The `raft-kv` binary.
    pub exe: PathBuf,
    /// The run's name (file names).
    pub id: String,
    /// The seed of the clients' and the nemesis's choices.
    pub seed: u64,
    /// How long the clients and the nemesis run.
    pub seconds: u64,
    /// Voters (3 or 5).
    pub nodes: usize,
    /// Client threads.
    pub clients: usize,
    /// Client threads that only read.
    pub readers: usize,
    /// Keys taking strings (get, set, append, del).
    pub string_keys: usize,
    /// Keys taking numbers (get, incr, del, set).
    pub counter_keys: usize,
    /// A client's pause between two operations.
    pub interval: Duration,
    /// The faults to mix.
    pub faults: Vec<Fault>,
    /// Namespaces or loopback (resolved).
    pub net: NetMode,
    /// Data directories and node logs.
    pub work: PathBuf,
    /// Where the history and the fault log go.
    pub out: PathBuf,
    /// The checker's time budget per key.
    pub check_timeout: Duration,
    /// Keep the work directory (logs, data) even when the run passes.
    pub keep: bool,
}

/// What one run found.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The run's name.
    pub id: String,
    /// Its seed.
    pub seed: u64,
    /// Operations in the history (final reads included).
    pub ops: usize,
    /// Of which with an unknown outcome.
    pub unknown: usize,
    /// Faults injected, by name.
    pub faults: BTreeMap<String, u32>,
    /// `ok`, `VIOLATION <key>`, `unknown <key>`, `NOT CONVERGED`, `ERROR ...`.
    pub verdict: String,
    /// Whether this run failed the check (a violation, non-convergence, an error).
    pub failed: bool,
    /// The checker's time.
    pub check_time: Duration,
    /// The whole run's time.
    pub wall: Duration,
    /// The earliest call, in seconds into the run, of the operations a violation names.
    pub caught_at: Option<f64>,
    /// What the runner found odd besides the verdict.
    pub notes: Vec<String>,
    /// The history file.
    pub history: PathBuf,
    /// The checker's report of a violation, in full.
    pub report: Option<String>,
}

/// The flags every node gets: small snapshots (every 200 entries), server-side timeouts below
/// the clients' (2 s), so that most failures are answered rather than timed out.
fn node_flags() -> Vec<String> {
    [
        "--snapshot-entries",
        "200",
        "--request-timeout-ms",
        "1500",
        "--log-level",
        "info",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs one chaos run, start to check. Never panics on a cluster that misbehaves: that is the
/// verdict.
///
/// # Errors
///
/// Setting up failed (the topology, the first start).
pub fn run_one(config: &RunConfig) -> io::Result<RunOutcome> {
    let started = Instant::now();
    let dir = config.work.join(&config.id);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    fs::create_dir_all(&config.out)?;
    let net: Arc<dyn Net> = match config.net {
        NetMode::Netns | NetMode::Auto => Arc::new(Netns::up()?),
        NetMode::Loopback => Arc::new(ProxyNet::new()),
    };
    let mut faults = config.faults.clone();
    if !net.privileged() {
        faults.retain(|f| !f.needs_root());
    }
    let result = drive(config, &net, &faults, &dir);
    net.teardown();
    cleanup_all();
    let mut outcome = result?;
    outcome.wall = started.elapsed();
    if !outcome.failed && !config.keep {
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(outcome)
}

fn drive(
    config: &RunConfig,
    net: &Arc<dyn Net>,
    faults: &[Fault],
    dir: &std::path::Path,
) -> io::Result<RunOutcome> {
    let use_clock = faults.contains(&Fault::Clock);
    let mut cl = Cluster::new(
        config.exe.clone(),
        Arc::clone(net),
        dir.to_path_buf(),
        node_flags(),
        faults.contains(&Fault::DiskFull),
        use_clock,
    );
    let mut rng = SplitMix64::new(config.seed);
    let founders: Vec<u64> = (1..=config.nodes as u64).collect();
    for _ in &founders {
        let mono = rng.chance(0.5);
        cl.create(&founders, false, mono)?;
    }
    // The slow-clock node, for the whole run.
    let slow = faults.contains(&Fault::SlowClock).then_some(1);
    if let Some(n) = slow.and_then(|id| cl.nodes.get_mut(&id)) {
        n.slow = true;
    }
    for &id in &founders {
        cl.spawn(id)?;
    }
    let clock = Clock::new();
    let mut nemesis = Nemesis::new(config.seed, clock, config.nodes);
    nemesis.event(format!(
        "{} nodes on {} (faults: {})",
        config.nodes,
        net.name(),
        faults
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(",")
    ));
    if let Some(id) = slow {
        nemesis.event(format!(
            "node {id}'s clock runs at half speed (its Raft timers take twice as long)"
        ));
    }
    if cl.wait_leader(Duration::from_secs(20)).is_none() {
        return Err(io::Error::other(format!(
            "no leader 20 s after the start (logs in {})",
            dir.display()
        )));
    }
    nemesis.event("leader elected; clients start");
    let wl = WorkloadConfig {
        clients: config.clients,
        readers: config.readers,
        writers_avoid: slow,
        string_keys: config.string_keys,
        counter_keys: config.counter_keys,
        interval: config.interval,
        timeout: Duration::from_secs(2),
        seed: config.seed,
    };
    let workload = Workload::start(&wl, &cl.addrs, clock);
    let end = Instant::now() + Duration::from_secs(config.seconds);
    // A quiet second first, so that every run has a baseline.
    thread::sleep(Duration::from_secs(1));
    while Instant::now() < end && !faults.is_empty() {
        let fault = faults[rng.index(faults.len())];
        nemesis.inject(&mut cl, fault);
        for (id, status) in cl.reap(&format!("during or after {fault}")) {
            nemesis.event(format!(
                "NOTE node {id} exited on its own: {status}: restarting it"
            ));
            nemesis.notes.push(format!(
                "node {id} exited on its own ({status}) around a {fault} fault"
            ));
            let _ = cl.spawn(id);
        }
        let calm = Duration::from_millis(300 + rng.below(900));
        thread::sleep(calm.min(end.saturating_duration_since(Instant::now())));
    }
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(100));
    }
    nemesis.heal_all(&mut cl);
    // The clients run a few more seconds on the healed cluster, so that what the faults did
    // is read back.
    thread::sleep(Duration::from_secs(3));
    let (mut ops, stats) = workload.stop();
    nemesis.event(format!(
        "clients stopped: {} ok, {} TRYAGAIN, {} refused (incr on a string), {} UNCERTAIN, {} lost connections or timeouts, other errors {:?}",
        stats.ok, stats.tryagain, stats.refused, stats.uncertain, stats.lost, stats.other_errors
    ));
    for (id, status) in cl.reap("at the end") {
        nemesis
            .notes
            .push(format!("node {id} exited on its own at the end ({status})"));
        let _ = cl.spawn(id);
    }
    nemesis.reconcile(&mut cl);

    let keys = wl.keys();
    let converged = converge(&cl, &keys, Duration::from_secs(60));
    match &converged {
        Ok(summary) => nemesis.event(format!("converged: {summary}")),
        Err(why) => nemesis.event(format!("NOT CONVERGED: {why}")),
    }
    let final_ops = final_reads(&cl, &keys, clock);
    nemesis.event(format!("{} final reads", final_ops.len()));
    ops.extend(final_ops);

    for (id, status) in cl.shutdown() {
        match status {
            Some(s) if s.success() => {}
            Some(s) => nemesis
                .notes
                .push(format!("node {id} exited {s} on SIGTERM (expected 0)")),
            None => nemesis
                .notes
                .push(format!("node {id} did not exit within 5 s of SIGTERM")),
        }
    }

    let history_path = config.out.join(format!("{}.jsonl.gz", config.id));
    write_history(&history_path, &ops)?;
    let history = History::new(ops).map_err(|e| io::Error::other(e.to_string()))?;
    let check_started = Instant::now();
    let report = check(
        &history,
        &CheckOptions {
            timeout: config.check_timeout,
            ..CheckOptions::default()
        },
    );
    let check_time = check_started.elapsed();
    let unknown = history.ops().iter().filter(|o| o.is_unknown()).count();
    let mut caught_at = None;
    let mut report_text = None;
    let mut verdict = match &report.verdict {
        Verdict::Ok => "ok".to_owned(),
        Verdict::Violation { key, ops, .. } => {
            caught_at = ops.iter().map(|o| o.call).min().map(|c| c as f64 / 1e9);
            report_text = Some(report.verdict.to_string());
            format!("VIOLATION {key}")
        }
        Verdict::Unknown { key, .. } => format!("unknown {key}"),
    };
    let mut failed = report.verdict.is_violation();
    if let Err(why) = &converged {
        verdict = if failed {
            format!("{verdict}, NOT CONVERGED")
        } else {
            "NOT CONVERGED".to_owned()
        };
        nemesis.notes.push(format!("not converged: {why}"));
        failed = true;
    }
    nemesis.event(format!(
        "check: {verdict} ({} ops, {unknown} unknown, {:.2} s)",
        history.len(),
        check_time.as_secs_f64()
    ));
    let mut log = nemesis.log.join("\n");
    log.push('\n');
    if let Some(r) = &report_text {
        log.push_str(r);
        log.push('\n');
    }
    fs::write(config.out.join(format!("{}.faults.txt", config.id)), log)?;
    Ok(RunOutcome {
        id: config.id.clone(),
        seed: config.seed,
        ops: history.len(),
        unknown,
        faults: nemesis.counts,
        verdict,
        failed,
        check_time,
        wall: Duration::ZERO,
        caught_at,
        notes: nemesis.notes,
        history: history_path,
        report: report_text,
    })
}

fn write_history(path: &std::path::Path, ops: &[Operation]) -> io::Result<()> {
    let file = fs::File::create(path)?;
    let mut w = HistoryWriter::new(GzEncoder::new(
        io::BufWriter::new(file),
        Compression::best(),
    ));
    for op in ops {
        w.write(op)?;
    }
    w.flush()?;
    w.into_inner().finish()?.flush()
}

/// What a member says of itself once quiet: commit and applied index, key count, values.
#[derive(Debug, PartialEq, Eq)]
struct MemberState {
    commit: u64,
    applied: u64,
    dbsize: i64,
    values: Vec<Option<Vec<u8>>>,
}

fn member_state(cl: &Cluster, id: u64, keys: &[String]) -> Result<MemberState, String> {
    let info = cl.info(id).ok_or("no INFO")?;
    let num = |f: &str| -> Result<u64, String> {
        info.get(f)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {f}"))
    };
    let dbsize = match cl.call(id, &["RAFT.STALE", "DBSIZE"]) {
        Ok(Value::Integer(n)) => n,
        other => return Err(format!("RAFT.STALE DBSIZE: {}", nemesis::show(&other))),
    };
    let mut args = vec!["RAFT.STALE", "MGET"];
    args.extend(keys.iter().map(String::as_str));
    let values = match cl.call(id, &args) {
        Ok(Value::Array(Some(items))) => items
            .into_iter()
            .map(|v| match v {
                Value::Bulk(b) => b,
                _ => None,
            })
            .collect(),
        other => return Err(format!("RAFT.STALE MGET: {}", nemesis::show(&other))),
    };
    Ok(MemberState {
        commit: num("commit_index")?,
        applied: num("applied_index")?,
        dbsize,
        values,
    })
}

/// Waits for every member to have applied the same state.
fn converge(cl: &Cluster, keys: &[String], patience: Duration) -> Result<String, String> {
    let deadline = Instant::now() + patience;
    let mut last = String::new();
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        let Some(leader) = cl.leader() else {
            last = "no leader".into();
            continue;
        };
        let Some(info) = cl.info(leader) else {
            continue;
        };
        let mut members: Vec<u64> = Vec::new();
        for field in ["voters", "learners"] {
            if let Some(list) = info.get(field) {
                members.extend(list.split(',').filter_map(|s| s.parse::<u64>().ok()));
            }
        }
        let states: Vec<(u64, Result<MemberState, String>)> = members
            .iter()
            .map(|&m| (m, member_state(cl, m, keys)))
            .collect();
        let bad: Vec<String> = states
            .iter()
            .filter_map(|(m, s)| s.as_ref().err().map(|e| format!("node {m}: {e}")))
            .collect();
        if !bad.is_empty() {
            last = bad.join("; ");
            continue;
        }
        let ok: Vec<(u64, &MemberState)> = states
            .iter()
            .filter_map(|(m, s)| s.as_ref().ok().map(|s| (*m, s)))
            .collect();
        let (_, first) = ok[0];
        let same = ok.iter().all(|(_, s)| *s == first);
        if same && first.commit == first.applied {
            return Ok(format!(
                "members {members:?}, leader {leader}, commit = applied = {}, {} keys",
                first.commit, first.dbsize
            ));
        }
        last = ok
            .iter()
            .map(|(m, s)| {
                format!(
                    "node {m}: commit {} applied {} dbsize {} digest {:016x}",
                    s.commit,
                    s.applied,
                    s.dbsize,
                    digest(&s.values)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    Err(last)
}

fn digest(values: &[Option<Vec<u8>>]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for &b in v.as_deref().unwrap_or(b"\xff<nil>") {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h = h.rotate_left(7);
    }
    h
}

/// A linearizable GET of every key at every member, as history operations (clients 1000 + the
/// node's id).
fn final_reads(cl: &Cluster, keys: &[String], clock: Clock) -> Vec<Operation> {
    let mut ops = Vec::new();
    for id in cl.running() {
        let Ok(mut c) = cl.client(id) else { continue };
        for key in keys {
            for _ in 0..5 {
                let call = clock.now();
                let reply = c.call(&[b"GET", key.as_bytes()]);
                let ret = clock.now();
                match reply {
                    Ok(Value::Bulk(v)) => {
                        ops.push(Operation {
                            client: 1000 + id,
                            key: key.clone(),
                            op: Op::Get,
                            call,
                            ret: Some(ret),
                            result: Some(OpResult::Value(
                                v.map(|b| String::from_utf8_lossy(&b).into_owned()),
                            )),
                        });
                        break;
                    }
                    Ok(Value::Error(e)) if e.starts_with("TRYAGAIN") => {
                        thread::sleep(Duration::from_millis(200));
                    }
                    _ => break,
                }
            }
        }
    }
    ops
}
