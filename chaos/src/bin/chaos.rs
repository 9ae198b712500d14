//! `chaos`: real `raft-kv` processes under partitions, loss, kills, pauses, membership changes,
//! leadership transfers, restarts after snapshots, fsync errors, full disks and clock jumps, with
//! every history checked for linearizability.
//!
//! - `chaos run --seconds 40 --runs 3 --seed 1 [--nodes 3|5] [--faults partition,kill,...]`:
//!   prints a table of runs and writes each run's history (`<run>.jsonl.gz`, for `lincheck`) and
//!   fault log (`<run>.faults.txt`) to `--out` (default `chaos/histories`). Exit code 1 on any
//!   violation or non-convergence.
//! - `chaos teeth --runs 3 --seconds 30`: builds `raft-kv` with each deliberately broken feature
//!   (`bug-...`) in its own target directory and reports in how many runs, and how fast, the
//!   check caught each. Exit code 1 when one was never caught.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chaos::runner::teeth::{self, BUGS};
use chaos::runner::{Fault, NetMode, RunConfig, RunOutcome, install_handlers, run_one};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "chaos", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Chaos runs against the normal `raft-kv`.
    Run(RunArgs),
    /// Each deliberately broken build must fail the check.
    Teeth(TeethArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum NetArg {
    Auto,
    Netns,
    Loopback,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Seconds of clients and faults per run (then heal, converge, check).
    #[arg(long, default_value_t = 40)]
    seconds: u64,
    /// How many runs.
    #[arg(long, default_value_t = 3)]
    runs: u64,
    /// The first run's seed; run i has seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Voters: 3 or 5.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// Client threads.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Client threads that only read (GET), after the others: they keep asking a node (a
    /// deposed leader, say) while the read-write clients wait on a write.
    #[arg(long, default_value_t = 3)]
    readers: usize,
    /// Keys taking strings, and keys taking numbers.
    #[arg(long, default_value_t = 4)]
    string_keys: usize,
    #[arg(long, default_value_t = 2)]
    counter_keys: usize,
    /// A client's pause between two operations, in milliseconds.
    #[arg(long, default_value_t = 25)]
    interval_ms: u64,
    /// The faults to mix (comma-separated; `all`): partition, loss, kill, pause, member,
    /// transfer, snapshot-restart, fsync, disk-full, clock, slow-clock.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Namespaces (root), loopback with proxies, or namespaces where they work.
    #[arg(long, value_enum, default_value_t = NetArg::Auto)]
    net: NetArg,
    /// Where the data directories and node logs go (kept for failed runs).
    #[arg(long, default_value = "/tmp/chaos-work")]
    work: PathBuf,
    /// The checker's budget per key, in seconds.
    #[arg(long, default_value_t = 60)]
    check_timeout: u64,
    /// Keep the data and logs of runs that pass too.
    #[arg(long)]
    keep: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// The raft-kv binary (default: next to this one).
    #[arg(long)]
    exe: Option<PathBuf>,
    /// Where histories and fault logs go.
    #[arg(long, default_value = "chaos/histories")]
    out: PathBuf,
    /// A prefix for the run names.
    #[arg(long, default_value = "run")]
    name: String,
}

#[derive(Args, Debug)]
struct TeethArgs {
    #[command(flatten)]
    common: Common,
    /// The target directory of the broken builds.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Which bugs (comma-separated features; default all three).
    #[arg(long)]
    bugs: Option<String>,
    /// Where their histories go.
    #[arg(long, default_value = "chaos/histories/teeth")]
    out: PathBuf,
    /// Stop a bug's runs at the first one that catches it.
    #[arg(long)]
    first: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_handlers();
    let result = match cli.command {
        Cmd::Run(a) => run(&a),
        Cmd::Teeth(a) => teeth_cmd(&a),
    };
    chaos::runner::cleanup_all();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("chaos: {e}");
            ExitCode::from(2)
        }
    }
}

fn resolve_net(arg: NetArg) -> NetMode {
    let mode = match arg {
        NetArg::Auto => NetMode::Auto,
        NetArg::Netns => NetMode::Netns,
        NetArg::Loopback => NetMode::Loopback,
    };
    let (mode, why) = mode.resolve();
    if let Some(why) = why {
        println!(
            "network namespaces are not available here ({why}): running on loopback with a TCP proxy per node instead (no fsync or disk-full faults)"
        );
    }
    mode
}

fn configs(
    c: &Common,
    exe: &std::path::Path,
    out: &std::path::Path,
    name: &str,
) -> Result<Vec<RunConfig>, String> {
    let faults = Fault::parse_list(&c.faults)?;
    let net = resolve_net(c.net);
    Ok((0..c.runs)
        .map(|i| RunConfig {
            exe: exe.to_path_buf(),
            id: format!("{name}-{}", c.seed + i),
            seed: c.seed + i,
            seconds: c.seconds,
            nodes: c.nodes as usize,
            clients: c.clients,
            readers: c.readers,
            string_keys: c.string_keys,
            counter_keys: c.counter_keys,
            interval: Duration::from_millis(c.interval_ms),
            faults: faults.clone(),
            net,
            work: c.work.clone(),
            out: out.to_path_buf(),
            check_timeout: Duration::from_secs(c.check_timeout),
            keep: c.keep,
        })
        .collect())
}

fn faults_cell(o: &RunOutcome) -> String {
    o.faults
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

const HEADER: &str = "| run | seed | ops | unknown | faults injected | verdict | check | wall |\n|---|---|---|---|---|---|---|---|";

fn row(o: &RunOutcome) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {:.2} s | {:.0} s |",
        o.id,
        o.seed,
        o.ops,
        o.unknown,
        faults_cell(o),
        o.verdict,
        o.check_time.as_secs_f64(),
        o.wall.as_secs_f64()
    )
}

fn show_outcome(o: &RunOutcome) {
    println!("{}", row(o));
    for n in &o.notes {
        println!("    note: {n}");
    }
    if let Some(r) = &o.report {
        for line in r.lines().take(30) {
            println!("    {line}");
        }
    }
    let _ = std::io::stdout().flush();
}

fn run(a: &RunArgs) -> Result<u8, String> {
    let exe = match &a.exe {
        Some(e) => e.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("raft-kv"),
    };
    if !exe.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release -p raft-mio --bin raft-kv) or pass --exe",
            exe.display()
        ));
    }
    let configs = configs(&a.common, &exe, &a.out, &a.name)?;
    println!("{HEADER}");
    let mut outcomes = Vec::new();
    for c in &configs {
        match run_one(c) {
            Ok(o) => {
                show_outcome(&o);
                outcomes.push(o);
            }
            Err(e) => {
                println!("| {} | {} | - | - | - | ERROR {e} | - | - |", c.id, c.seed);
                return Ok(1);
            }
        }
    }
    let failed = outcomes.iter().filter(|o| o.failed).count();
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "\n{} runs: {} failed the check, {} ops in all, {} with an unknown outcome; histories in {}",
        outcomes.len(),
        failed,
        outcomes.iter().map(|o| o.ops).sum::<usize>(),
        outcomes.iter().map(|o| o.unknown).sum::<usize>(),
        a.out.display()
    );
    print!("{summary}");
    append_table(&a.out, &outcomes);
    println!("{} passed, {} failed", outcomes.len() - failed, failed);
    Ok(u8::from(failed > 0))
}

/// Appends the rows to `<out>/runs.md`.
fn append_table(out: &std::path::Path, outcomes: &[RunOutcome]) {
    let path = out.join("runs.md");
    let fresh = !path.exists();
    let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return;
    };
    if fresh {
        let _ = writeln!(f, "{HEADER}");
    }
    for o in outcomes {
        let _ = writeln!(f, "{}", row(o));
    }
}

fn teeth_cmd(a: &TeethArgs) -> Result<u8, String> {
    let target = a.target.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| teeth::workspace().join("target"), PathBuf::from)
            .join("teeth")
    });
    let wanted: Vec<&str> = a
        .bugs
        .as_deref()
        .map(|b| b.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let bugs: Vec<_> = BUGS
        .iter()
        .filter(|b| wanted.is_empty() || wanted.contains(&b.feature))
        .collect();
    let mut lines = Vec::new();
    let mut missed = 0;
    for bug in bugs {
        println!("\n== {} ({}): building", bug.feature, bug.what);
        let built = Instant::now();
        let exe = teeth::build(bug, &target).map_err(|e| e.to_string())?;
        println!(
            "built in {:.0} s: {}",
            built.elapsed().as_secs_f64(),
            exe.display()
        );
        let configs = configs(&a.common, &exe, &a.out, bug.feature)?;
        println!("{HEADER}");
        let mut caught = Vec::new();
        let mut ran = 0;
        for c in &configs {
            let o = run_one(c).map_err(|e| e.to_string())?;
            show_outcome(&o);
            ran += 1;
            if o.failed {
                caught.push(o);
                if a.first {
                    break;
                }
            }
        }
        let first = caught
            .iter()
            .filter_map(|o| o.caught_at)
            .fold(f64::INFINITY, f64::min);
        let line = if caught.is_empty() {
            missed += 1;
            format!("{}: NOT caught in {ran} runs", bug.feature)
        } else {
            format!(
                "{}: caught in {}/{ran} runs ({}); earliest violating operation {:.1} s into its run; wall time of a catching run {:.0} s",
                bug.feature,
                caught.len(),
                caught
                    .iter()
                    .map(|o| o.verdict.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                first,
                caught
                    .iter()
                    .map(|o| o.wall.as_secs_f64())
                    .fold(f64::INFINITY, f64::min),
            )
        };
        println!("{line}");
        lines.push(line);
    }
    println!("\nteeth:");
    for l in &lines {
        println!("  {l}");
    }
    Ok(u8::from(missed > 0))
}
