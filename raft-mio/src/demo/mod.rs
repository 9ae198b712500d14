//! `raft-kv demo`: a whole cluster on loopback in one command.
//!
//! 1. Starts 3 `raft-kv` processes (this same binary) with their data in a temporary directory.
//! 2. Runs a mixed workload from several clients (SET, GET, INCR, APPEND, MGET), with a live
//!    progress line.
//! 3. Kills the leader with SIGKILL, and measures the failover: from the kill to the first write
//!    acknowledged by the new leader.
//! 4. Keeps writing until the new leader has compacted its log past the killed node, restarts
//!    it, and waits for it to catch up (through a snapshot).
//! 5. Checks every node's own state: every acknowledged write is there, counters are exact.
//! 6. Prints a summary (throughput, latency, failover, catch-up, bytes on disk), stops the nodes
//!    with SIGTERM and removes the directory, also on Ctrl-C. Exits 0 only if every check held.
// The demo indexes its own node lists and samples, never bytes from a peer or a disk.
#![allow(clippy::indexing_slicing)]

mod workload;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::local::LocalCluster;
use crate::resp::client::{Client, Value};
use crate::server::disk_usage;
use workload::{Model, Shared};

/// The demo's settings.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Clients running the workload at once.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds of workload before the leader is killed (and again after the restart).
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Keep the data directory (its path is printed) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

/// Why the demo stopped early.
type Failure = String;

struct Demo {
    cluster: LocalCluster,
    shared: Arc<Shared>,
    clients: Vec<thread::JoinHandle<Model>>,
    epoch: Instant,
    interrupted: Arc<AtomicBool>,
    bar: ProgressBar,
}

/// Runs the demo; the process's exit code.
#[must_use]
pub fn run(args: &DemoArgs) -> ExitCode {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&interrupted));
    }
    let dir = match tempfile::Builder::new().prefix("raft-kv-demo-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("raft-kv demo: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run_in(args, dir.path(), &interrupted);
    if args.keep {
        let kept = dir.keep();
        println!("data and logs kept in {}", kept.display());
    }
    match result {
        Ok(()) => {
            println!("all checks passed");
            ExitCode::SUCCESS
        }
        Err(why) if interrupted.load(Ordering::Relaxed) => {
            eprintln!("raft-kv demo: interrupted ({why}); cleaned up");
            ExitCode::from(130)
        }
        Err(why) => {
            eprintln!("raft-kv demo FAILED: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run_in(
    args: &DemoArgs,
    dir: &std::path::Path,
    interrupted: &Arc<AtomicBool>,
) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    // Compacting often, so that the restarted node has to catch up through a snapshot.
    let flags = ["--snapshot-entries", "2000"];
    let cluster = LocalCluster::new(exe, dir, args.nodes.max(3), &flags)
        .map_err(|e| format!("no free ports: {e}"))?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut demo = Demo {
        cluster,
        shared: Arc::new(Shared::default()),
        clients: Vec::new(),
        epoch: Instant::now(),
        interrupted: Arc::clone(interrupted),
        bar,
    };
    let result = demo.run(args);
    demo.shared.stop.store(true, Ordering::Relaxed);
    for c in demo.clients.drain(..) {
        let _ = c.join();
    }
    demo.bar.finish_and_clear();
    demo.stop_nodes();
    result
}

impl Demo {
    fn say(&self, line: &str) {
        self.bar.println(line);
        if self.bar.is_hidden() {
            println!("{line}");
        }
    }

    fn check_interrupt(&self) -> Result<(), Failure> {
        if self.interrupted.load(Ordering::Relaxed) {
            return Err("Ctrl-C".into());
        }
        let failures = self
            .shared
            .failures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default();
        if let Some(first) = failures.first() {
            return Err(first.clone());
        }
        Ok(())
    }

    fn clients_addrs(&self) -> Vec<SocketAddr> {
        self.cluster.nodes().values().map(|n| n.client).collect()
    }

    /// `INFO raft` of node `id`, as fields.
    fn info(&self, id: u64) -> Option<std::collections::BTreeMap<String, String>> {
        let addr = self.cluster.node(id).client;
        let mut c = Client::connect(addr, Duration::from_millis(500)).ok()?;
        let Ok(Value::Bulk(Some(text))) = c.call(&[b"INFO", b"raft"]) else {
            return None;
        };
        Some(
            String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                .collect(),
        )
    }

    fn field(&self, id: u64, name: &str) -> Option<u64> {
        self.info(id)?.get(name)?.parse().ok()
    }

    fn leader(&self) -> Option<u64> {
        self.cluster
            .running()
            .into_iter()
            .filter(|&id| {
                self.info(id)
                    .is_some_and(|i| i.get("role").map(String::as_str) == Some("leader"))
            })
            .max_by_key(|&id| self.field(id, "term"))
    }

    /// Waits up to `timeout` for `f` to find something, showing `what`.
    fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> Result<T, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_interrupt()?;
            if let Some(v) = f(self) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(format!("timed out after {timeout:?} waiting for {what}"));
            }
            self.bar.set_message(format!("waiting for {what}"));
            self.bar.tick();
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the workload for `seconds` with a live line, or until `until` holds.
    fn drive(
        &self,
        phase: &str,
        seconds: Duration,
        mut until: impl FnMut(&Self) -> bool,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let ops0 = self.shared.ops.load(Ordering::Relaxed);
        let mut last = (Instant::now(), ops0);
        let mut rate = 0.0;
        while started.elapsed() < seconds || !until(self) {
            self.check_interrupt()?;
            if started.elapsed() > seconds + Duration::from_secs(60) {
                return Err(format!("{phase}: the condition to move on never held"));
            }
            thread::sleep(Duration::from_millis(100));
            let ops = self.shared.ops.load(Ordering::Relaxed);
            let dt = last.0.elapsed().as_secs_f64();
            if dt >= 0.5 {
                rate = (ops - last.1) as f64 / dt;
                last = (Instant::now(), ops);
            }
            self.bar.set_message(format!(
                "{phase}: {} ops ({:.0} ops/s), {} retries, nodes up: {:?}",
                ops,
                rate,
                self.shared.retries.load(Ordering::Relaxed),
                self.cluster.running()
            ));
            self.bar.tick();
        }
        Ok(())
    }

    #[allow(clippy::too_many_lines)] // the demo's script, step by step
    fn run(&mut self, args: &DemoArgs) -> Result<(), Failure> {
        let n = self.cluster.nodes().len();
        self.say(&format!(
            "raft-kv demo: {n} nodes on loopback, {} clients; data and logs in {}",
            args.clients,
            self.cluster.dir().display()
        ));
        let ids: Vec<u64> = self.cluster.nodes().keys().copied().collect();
        for &id in &ids {
            self.cluster
                .spawn(id)
                .map_err(|e| format!("cannot start node {id}: {e}"))?;
        }
        let started = Instant::now();
        let leader = self.wait("a leader", Duration::from_secs(20), Self::leader)?;
        self.say(&format!(
            "  node {leader} leads after {:.0?}",
            started.elapsed()
        ));

        // The workload.
        let nodes = self.clients_addrs();
        let work_started = Instant::now();
        for c in 0..args.clients {
            self.clients.push(workload::spawn(
                c,
                nodes.clone(),
                Arc::clone(&self.shared),
                self.epoch,
            ));
        }
        let phase = Duration::from_secs(args.seconds.max(1));
        self.drive("writing", phase, |_| true)?;
        let before_kill = self.shared.ops.load(Ordering::Relaxed);

        // Kill the leader.
        let victim = self.leader().ok_or("no leader before the kill")?;
        let killed_at_commit = self.field(victim, "commit_index").unwrap_or(0);
        let killed = Instant::now();
        self.cluster.kill(victim);
        let survivors: Vec<SocketAddr> = self
            .cluster
            .nodes()
            .values()
            .filter(|n| n.id != victim)
            .map(|n| n.client)
            .collect();
        let acked = workload::probe_write(&survivors, 1, killed + Duration::from_secs(20))
            .ok_or("no write was acknowledged within 20 s of the leader's death")?;
        let failover = acked - killed;
        let new_leader = self.wait("the new leader", Duration::from_secs(10), |d| {
            d.leader().filter(|&l| l != victim)
        })?;
        self.say(&format!(
            "  killed the leader, node {victim} (SIGKILL); node {new_leader} leads; first write \
             acknowledged {failover:.0?} after the kill"
        ));

        // Write until the new leader has compacted past the dead node, so that it needs a
        // snapshot to catch up.
        let trailing = 1024 + 100;
        self.drive("writing with a node down", phase, |d| {
            d.field(new_leader, "snapshot_index")
                .is_some_and(|s| s > killed_at_commit + trailing)
        })?;
        let snapshot_at = self.field(new_leader, "snapshot_index").unwrap_or(0);
        self.say(&format!(
            "  node {new_leader} compacted its log to a snapshot at index {snapshot_at} (node {victim} stopped at {killed_at_commit})"
        ));

        // Restart it and wait for it to catch up.
        let restarted = Instant::now();
        self.cluster
            .spawn(victim)
            .map_err(|e| format!("cannot restart node {victim}: {e}"))?;
        self.wait(
            "the restarted node to catch up",
            Duration::from_secs(60),
            |d| {
                let target = d.field(new_leader, "commit_index")?;
                (d.field(victim, "applied_index")? + 50 >= target).then_some(())
            },
        )?;
        let catch_up = restarted.elapsed();
        let via_snapshot = self
            .cluster
            .log(victim)
            .contains("installed a snapshot from the leader");
        self.say(&format!(
            "  restarted node {victim}: caught up in {catch_up:.0?}{}",
            if via_snapshot {
                ", through a snapshot from the leader"
            } else {
                ", from the leader's log"
            }
        ));
        self.drive("writing with every node up", phase / 2, |_| true)?;

        // Stop the clients and check.
        self.shared.stop.store(true, Ordering::Relaxed);
        let work_time = work_started.elapsed();
        let models: Vec<Model> = self
            .clients
            .drain(..)
            .filter_map(|c| c.join().ok())
            .collect();
        self.check_interrupt()?;
        let total_ops = self.shared.ops.load(Ordering::Relaxed);
        let writes = self.shared.writes.load(Ordering::Relaxed);
        self.wait(
            "every node to apply everything",
            Duration::from_secs(30),
            |d| {
                let target = d.field(d.leader()?, "commit_index")?;
                ids.iter()
                    .all(|&id| d.field(id, "applied_index").is_some_and(|a| a >= target))
                    .then_some(())
            },
        )?;
        let checked = self.verify(&ids, &models)?;

        // The summary.
        let mut wl: Vec<u32> = models
            .iter()
            .flat_map(|m| m.write_latency_us.iter().copied())
            .collect();
        let mut rl: Vec<u32> = models
            .iter()
            .flat_map(|m| m.read_latency_us.iter().copied())
            .collect();
        wl.sort_unstable();
        rl.sort_unstable();
        let secs = work_time.as_secs_f64();
        let lat = |v: &[u32]| {
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.0} ms",
                workload::percentile_ms(v, 50.0),
                workload::percentile_ms(v, 99.0),
                workload::percentile_ms(v, 100.0)
            )
        };
        let disk: Vec<String> = ids
            .iter()
            .map(|&id| {
                format!(
                    "node {id} {:.1} MiB",
                    disk_usage(&self.cluster.node(id).data) as f64 / f64::from(1 << 20)
                )
            })
            .collect();
        let reads_checked: u64 = models.iter().map(|m| m.reads_checked).sum();
        self.bar.finish_and_clear();
        println!("summary");
        println!(
            "  workload    {total_ops} ops in {secs:.1} s: {:.0} ops/s ({writes} writes, {} reads; {before_kill} before the kill), {} retries",
            total_ops as f64 / secs,
            total_ops - writes,
            self.shared.retries.load(Ordering::Relaxed)
        );
        println!("  writes      {}", lat(&wl));
        println!("  reads       {}", lat(&rl));
        println!(
            "  failover    {failover:.0?} from the leader's SIGKILL to the first acknowledged write"
        );
        println!(
            "  catch-up    {catch_up:.0?} for the restarted node{}",
            if via_snapshot {
                ", through a snapshot"
            } else {
                ""
            }
        );
        println!("  on disk     {}", disk.join(", "));
        println!("  checks      {checked}; {reads_checked} reads checked as they ran");
        if !via_snapshot {
            return Err(format!(
                "node {victim} caught up without a snapshot: the demo meant to show one"
            ));
        }
        Ok(())
    }

    /// Checks every node's own state against what the clients were acknowledged.
    fn verify(&self, ids: &[u64], models: &[Model]) -> Result<String, Failure> {
        let mut keys = 0;
        for &id in ids {
            let addr = self.cluster.node(id).client;
            let mut c = Client::connect(addr, Duration::from_secs(5))
                .map_err(|e| format!("node {id}: {e}"))?;
            for m in models {
                let mut names: Vec<&String> = m.keys.keys().collect();
                names.push(&m.counter.0);
                names.push(&m.appended.0);
                for chunk in names.chunks(500) {
                    let mut args: Vec<&[u8]> = vec![b"RAFT.STALE", b"MGET"];
                    args.extend(chunk.iter().map(|k| k.as_bytes()));
                    let Ok(Value::Array(Some(values))) = c.call(&args) else {
                        return Err(format!("node {id}: MGET failed"));
                    };
                    for (key, got) in chunk.iter().zip(values) {
                        let want = if **key == m.counter.0 {
                            (m.counter.1 > 0).then(|| m.counter.1.to_string().into_bytes())
                        } else if **key == m.appended.0 {
                            (m.appended.1 > 0).then(|| {
                                "x".repeat(usize::try_from(m.appended.1).unwrap_or(0))
                                    .into_bytes()
                            })
                        } else {
                            m.keys.get(*key).map(|v| v.as_bytes().to_vec())
                        };
                        if got != Value::Bulk(want.clone()) {
                            return Err(format!(
                                "node {id}: {key} is {got:?}, but {:?} was acknowledged",
                                want.map(|w| String::from_utf8_lossy(&w).into_owned())
                            ));
                        }
                    }
                }
            }
            keys = models.iter().map(|m| m.keys.len()).sum::<usize>();
        }
        let sizes: Vec<i64> = ids
            .iter()
            .filter_map(|&id| {
                let mut c =
                    Client::connect(self.cluster.node(id).client, Duration::from_secs(5)).ok()?;
                match c.call(&[b"RAFT.STALE", b"DBSIZE"]) {
                    Ok(Value::Integer(n)) => Some(n),
                    _ => None,
                }
            })
            .collect();
        if sizes.len() != ids.len() || sizes.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!(
                "the nodes hold different numbers of keys: {sizes:?}"
            ));
        }
        let counters: i64 = models.iter().map(|m| m.counter.1).sum();
        Ok(format!(
            "every node holds all {keys} acknowledged SETs, {} counters exact ({counters} increments), {} appends exact, {} keys on each",
            models.len(),
            models.len(),
            sizes.first().copied().unwrap_or(0)
        ))
    }

    /// SIGTERM to every node still running (they exit 0 on a clean shutdown).
    fn stop_nodes(&mut self) {
        for id in self.cluster.running() {
            match self.cluster.terminate(id, Duration::from_secs(10)) {
                Ok(status) if status.success() => {}
                Ok(status) => eprintln!("node {id} exited with {status}"),
                Err(e) => eprintln!("node {id}: {e}"),
            }
        }
    }
}
