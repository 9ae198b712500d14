//! `lincheck`: checks that a key-value history (JSON lines, see `chaos::history`) is
//! linearizable, or generates a random linearizable one and times its check.
//!
//! Exit codes: 0 linearizable, 1 not linearizable, 2 undecided within the budget, 3 a bad file
//! or bad arguments.

use core::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chaos::generate::{GenOptions, generate};
use chaos::history::History;
use chaos::linearizability::{CheckOptions, CheckReport, KeyReport, Verdict, check};
use clap::Parser;

/// Checks that a key-value history is linearizable.
///
/// FILE holds one operation per line:
/// {"client":1,"op":"set","key":"k","arg":"v1","call":100,"ret":180}
/// ("ret": null for an unknown outcome). Exit code: 0 linearizable, 1 not linearizable,
/// 2 undecided within the time limit, 3 a bad file or bad arguments.
#[derive(Parser, Debug)]
#[command(name = "lincheck", version, verbatim_doc_comment)]
struct Args {
    /// The history to check; with --generate, where to write the generated one (optional).
    #[arg(required_unless_present = "generate")]
    file: Option<PathBuf>,

    /// Seconds the search may spend on each key before it gives up (verdict unknown).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    timeout: f64,

    /// Show every key's statistics, not only the slowest ones.
    #[arg(long)]
    per_key: bool,

    /// Instead of reading FILE, generate a random linearizable history of N operations and
    /// check it, timing both: a way to measure the checker's speed.
    #[arg(long, value_name = "N")]
    generate: Option<usize>,

    /// With --generate: concurrent clients.
    #[arg(long, default_value_t = 5, requires = "generate")]
    clients: usize,

    /// With --generate: keys.
    #[arg(long, default_value_t = 50, requires = "generate")]
    keys: usize,

    /// With --generate: the share of operations with an unknown outcome (0 to 1).
    #[arg(long, default_value_t = 0.01, requires = "generate")]
    unknown_rate: f64,

    /// With --generate: the random seed.
    #[arg(long, default_value_t = 0, requires = "generate")]
    seed: u64,
}

/// The exit code for a bad file or bad arguments.
const BAD_INPUT: u8 = 3;

/// How many violating or undecided keys are shown in full.
const SHOWN: usize = 5;

/// How many of the slowest keys are listed without --per-key.
const SLOWEST: usize = 3;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { BAD_INPUT } else { 0 };
            // Nothing more to do if even that cannot be printed.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("lincheck: {message}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

/// Reads or generates the history, checks it and prints the report: the exit code, or what
/// was wrong with the input.
fn run(args: &Args) -> Result<u8, String> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            format!(
                "--timeout must be a positive number of seconds, not {}",
                args.timeout
            )
        })?;
    let mut out = io::stdout().lock();
    let history = match args.generate {
        Some(ops) => {
            if !(0.0..=1.0).contains(&args.unknown_rate) {
                return Err(format!(
                    "--unknown-rate must be between 0 and 1, not {}",
                    args.unknown_rate
                ));
            }
            let started = Instant::now();
            let history = generate(&GenOptions {
                ops,
                clients: args.clients,
                keys: args.keys,
                unknown_rate: args.unknown_rate,
                seed: args.seed,
                ..GenOptions::default()
            });
            let took = started.elapsed();
            if let Some(path) = &args.file {
                let file = std::fs::File::create(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                history
                    .write_to(io::BufWriter::new(file))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            let written = args
                .file
                .as_ref()
                .map(|p| format!(", written to {}", p.display()))
                .unwrap_or_default();
            print(
                &mut out,
                format_args!(
                    "generated {} operations ({} clients, {} keys, unknown rate {}, seed {}) in {}{written}\n",
                    history.len(),
                    args.clients,
                    args.keys,
                    args.unknown_rate,
                    args.seed,
                    ms(took)
                ),
            );
            history
        }
        None => {
            let Some(path) = &args.file else {
                return Err("no history file given".into());
            };
            History::read_file(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };

    let options = CheckOptions {
        timeout,
        ..CheckOptions::default()
    };
    let report = check(&history, &options);
    print(&mut out, format_args!("{}", render(&report, args.per_key)));
    let _ = out.flush();
    Ok(match report.verdict {
        Verdict::Ok => 0,
        Verdict::Violation { .. } => 1,
        Verdict::Unknown { .. } => 2,
    })
}

/// Writes to stdout, ignoring a closed pipe (the exit code still says the verdict).
fn print(out: &mut impl Write, text: fmt::Arguments<'_>) {
    let _ = out.write_fmt(text);
}

/// A duration in milliseconds, readable.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A number with thousands separators.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn key_line(k: &KeyReport) -> String {
    let verdict = match &k.verdict {
        Verdict::Ok => "ok",
        Verdict::Violation { .. } => "NOT LINEARIZABLE",
        Verdict::Unknown { .. } => "unknown",
    };
    format!(
        "  {:?}: {} ops ({} unknown outcome), {} configurations, {}: {verdict}",
        k.key,
        count(k.ops as u64),
        count(k.unknown_ops as u64),
        count(k.states),
        ms(k.elapsed)
    )
}

/// The report as text: the verdict, the keys in trouble, the totals.
fn render(report: &CheckReport, per_key: bool) -> String {
    let mut s = String::new();
    let headline = match &report.verdict {
        Verdict::Ok => "verdict: linearizable".to_owned(),
        Verdict::Violation { .. } => format!(
            "verdict: NOT LINEARIZABLE ({} of {} keys)",
            report.violations().count(),
            report.keys.len()
        ),
        Verdict::Unknown { .. } => format!(
            "verdict: UNKNOWN: {} of {} keys undecided within the time limit",
            report.unknowns().count(),
            report.keys.len()
        ),
    };
    s.push_str(&headline);
    s.push('\n');
    let troubled: Vec<&KeyReport> = report.violations().chain(report.unknowns()).collect();
    for k in troubled.iter().take(SHOWN) {
        s.push('\n');
        s.push_str(&k.verdict.to_string());
        s.push('\n');
    }
    if troubled.len() > SHOWN {
        s.push_str(&format!(
            "\n... and {} more keys: {}\n",
            troubled.len() - SHOWN,
            troubled[SHOWN..]
                .iter()
                .map(|k| format!("{:?}", k.key))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s.push_str(&format!(
        "\n{} operations, {} keys, {} with unknown outcome; checked in {} ({} configurations)\n",
        count(report.ops() as u64),
        count(report.keys.len() as u64),
        count(report.unknown_ops() as u64),
        ms(report.elapsed),
        count(report.states())
    ));
    let mut keys: Vec<&KeyReport> = report.keys.iter().collect();
    if per_key {
        s.push_str("per key:\n");
    } else {
        keys.sort_by_key(|k| core::cmp::Reverse(k.elapsed));
        keys.truncate(SLOWEST);
        if !keys.is_empty() {
            s.push_str("slowest keys:\n");
        }
    }
    for k in keys {
        s.push_str(&key_line(k));
        s.push('\n');
    }
    s
}
