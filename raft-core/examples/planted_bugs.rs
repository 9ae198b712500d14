//! The planted-bug runner (raft-core/PLANTED-BUGS.md): for each planted bug, the first seed of
//! the CI simulator's fault mix that catches it, per cluster size.
//!
//! Only meaningful in a build with the planted bugs compiled in; `.ci/planted-bugs` builds and
//! runs it:
//!
//! ```text
//! RUSTFLAGS="--cfg raft_planted" cargo run --release -p raft-core --features sim \
//!     --example planted_bugs -- [--short | --full] [--max-seeds N] [--sanity K] \
//!     [--threads T] [--record] [--list | --tests] [BUG ...]
//! ```
//!
//! - `--short` (the default): for each bug and size with a recorded first failing seed
//!   (`raft-core/planted-bugs.txt`), runs seeds from 0 up to that seed plus a margin
//!   (`max(20, 25%)`) and fails, naming it, if the bug is not caught by then.
//! - `--full`: runs seeds 0 to `--max-seeds` (default 1000) for every bug and size and prints
//!   the table; `--record` also rewrites `raft-core/planted-bugs.txt` from it.
//! - `--sanity K`: first, with no bug in force, seeds 0 to K of every scenario must pass
//!   (default 20).
//! - `--list`: the bugs, the rule each breaks and the tests in `raft-core/tests` that catch it;
//!   `--tests`: the same tests as `<bug> <file> <test>` lines, for `.ci/planted-bugs`.
//! - `BUG ...`: only these bugs (their kebab-case names); else `RAFT_PLANTED_BUG`, else all.
//!
//! Each (bug, size) stops at its first failing seed; threads (`--threads`, default: the
//! machine's cores) take seeds in order, so the seed reported is the smallest that fails.

#[cfg(not(raft_planted))]
fn main() {
    eprintln!(
        "planted_bugs: this build has no planted bugs; build it with RUSTFLAGS=\"--cfg \
         raft_planted\" (.ci/planted-bugs does)"
    );
    std::process::exit(2);
}

#[cfg(raft_planted)]
fn main() {
    std::process::exit(runner::main());
}

#[cfg(raft_planted)]
mod runner {
    use std::fmt::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use raft_core::planted::{self, Bug};
    use raft_core::sim::{SimOptions, run_options};

    /// The recorded first failing seeds (`--short` runs up to them; `--full --record` rewrites
    /// the file).
    const RECORDED: &str = include_str!("../planted-bugs.txt");
    const RECORDED_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/planted-bugs.txt");

    /// The cluster sizes of the CI simulator test (raft-core/tests/simulator.rs).
    const SIZES: [usize; 3] = [3, 5, 7];

    /// A fault mix, as in raft-core/tests/simulator.rs.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Scenario {
        /// `SimOptions::random(seed, n)`: the `simulator_<n>_nodes` tests.
        Fixed(usize),
        /// `SimOptions::reconfiguring(seed)`: the `simulator_membership_changes` test.
        Reconfiguring,
    }

    impl Scenario {
        fn options(self, seed: u64) -> SimOptions {
            match self {
                Self::Fixed(n) => SimOptions::random(seed, n),
                Self::Reconfiguring => SimOptions::reconfiguring(seed),
            }
        }

        fn key(self) -> String {
            match self {
                Self::Fixed(n) => n.to_string(),
                Self::Reconfiguring => String::from("reconfiguring"),
            }
        }
    }

    /// The scenarios a bug is measured in: membership changes need the reconfiguring one.
    fn scenarios(bug: Bug) -> Vec<Scenario> {
        if bug == Bug::NoJointPhase {
            vec![Scenario::Reconfiguring]
        } else {
            SIZES.into_iter().map(Scenario::Fixed).collect()
        }
    }

    /// The tests in raft-core/tests that fail with the bug in force, as (file, test): checked by
    /// `.ci/planted-bugs` (`RAFT_PLANTED_BUG=<name> cargo test -p raft-core --features sim --test
    /// <file> -- --exact <test>` must fail), the first named being the one written for the rule.
    fn catching_tests(bug: Bug) -> &'static [(&'static str, &'static str)] {
        match bug {
            Bug::DoubleVote => &[
                (
                    "paper_elections",
                    "one_vote_per_term_first_come_first_served",
                ),
                ("restore", "restored_node_keeps_term_and_vote"),
            ],
            Bug::VoteSkipsLogCheck => &[
                (
                    "paper_replication",
                    "vote_refused_to_candidate_with_older_last_term",
                ),
                (
                    "paper_replication",
                    "vote_refused_to_candidate_with_shorter_log_at_equal_last_term",
                ),
            ],
            Bug::CommitPreviousTerm => &[(
                "paper_replication",
                "leader_commits_only_current_term_entries_by_counting",
            )],
            Bug::AckBeforeDurable => &[(
                "paper_replication",
                "append_ack_withheld_until_follower_write_is_acknowledged",
            )],
            Bug::GrantBeforeDurable => &[(
                "paper_elections",
                "vote_not_granted_before_hard_state_write_is_acknowledged",
            )],
            Bug::ReadWithoutHeartbeat => &[(
                "paper_reads",
                "read_on_leader_is_ready_only_after_quorum_answers_heartbeat_sent_after_read",
            )],
            Bug::LeaderSelfCountEarly => &[(
                "paper_replication",
                "leader_counts_itself_toward_commit_only_after_its_own_write_is_acknowledged",
            )],
            Bug::FollowerCommitUnclamped => &[(
                "paper_replication",
                "follower_sets_commit_to_min_of_leader_commit_and_last_new_entry",
            )],
            Bug::CandidateSelfVoteEarly => &[(
                "paper_elections",
                "candidate_counts_its_own_vote_only_once_durable",
            )],
            Bug::SnapshotKeepsConflictingSuffix => &[(
                "paper_compaction",
                "snapshot_discards_a_log_that_conflicts_with_it",
            )],
            Bug::SnapshotAppliedBeforeDurable => &[
                (
                    "paper_compaction",
                    "snapshot_from_the_leader_is_applied_only_once_durable",
                ),
                ("snapshots", "follower_crash_in_the_middle_of_a_transfer"),
            ],
            Bug::NoJointPhase => &[
                ("membership", "add_a_voter"),
                (
                    "paper_transfer_membership",
                    "change_whose_new_majority_has_not_caught_up_is_refused",
                ),
            ],
            Bug::ReadJoinsSentRound => &[
                (
                    "paper_reads",
                    "reads_stepped_between_two_drains_share_one_heartbeat_round",
                ),
                (
                    "paper_reads",
                    "read_on_leader_is_ready_only_after_quorum_answers_heartbeat_sent_after_read",
                ),
            ],
            Bug::LeaseBeforeTermCommit => &[(
                "lease_reads",
                "a_new_leader_serves_no_lease_read_before_committing_an_entry_of_its_term",
            )],
            Bug::CommitNoticePastMatch => &[(
                "paper_pipelining",
                "a_commit_advance_waits_for_the_acknowledgement_in_flight",
            )],
        }
    }

    struct Args {
        full: bool,
        max_seeds: u64,
        sanity: u64,
        threads: usize,
        record: bool,
        list: bool,
        /// `--tests`: print the catching tests, one `<bug> <file> <test>` a line, for scripts.
        tests: bool,
        bugs: Vec<Bug>,
    }

    fn parse_args() -> Result<Args, String> {
        let mut a = Args {
            full: false,
            max_seeds: 1000,
            sanity: 20,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            record: false,
            list: false,
            tests: false,
            bugs: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        let number = |v: Option<String>, what: &str| -> Result<u64, String> {
            v.and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--short" => a.full = false,
                "--full" => a.full = true,
                "--max-seeds" => a.max_seeds = number(args.next(), "--max-seeds")?,
                "--sanity" => a.sanity = number(args.next(), "--sanity")?,
                "--threads" => a.threads = number(args.next(), "--threads")?.max(1) as usize,
                "--record" => a.record = true,
                "--list" => a.list = true,
                "--tests" => a.tests = true,
                "-h" | "--help" => return Err(String::from("help")),
                name => a.bugs.push(
                    Bug::from_name(name).ok_or_else(|| format!("no planted bug named {name:?}"))?,
                ),
            }
        }
        if a.bugs.is_empty() {
            if let Ok(name) = std::env::var("RAFT_PLANTED_BUG") {
                a.bugs.push(
                    Bug::from_name(&name).ok_or_else(|| {
                        format!("RAFT_PLANTED_BUG: no planted bug named {name:?}")
                    })?,
                );
            }
        }
        if a.bugs.is_empty() {
            a.bugs = Bug::ALL.to_vec();
        }
        if a.record && !(a.full && a.bugs.len() == Bug::ALL.len()) {
            return Err(String::from("--record needs --full over every bug"));
        }
        Ok(a)
    }

    /// The recorded first failing seed of `bug` in `scenario`: `Some(None)` if none failed in
    /// the recorded search, `None` if nothing is recorded.
    fn recorded(bug: Bug, scenario: Scenario) -> Option<Option<u64>> {
        let key = scenario.key();
        RECORDED
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(char::is_whitespace))
            .filter(|(name, _)| *name == bug.name())
            .flat_map(|(_, rest)| rest.split_whitespace())
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.parse().ok())
    }

    /// How far past the recorded seed `--short` looks.
    fn margin(seed: u64) -> u64 {
        (seed / 4).max(20)
    }

    /// The first failing seed below `limit`, with its failure's message, and how many seeds ran.
    struct Search {
        first: Option<(u64, String)>,
        seeds: u64,
        time: Duration,
    }

    /// Runs seeds 0.. below `limit` of `scenario` with the bug in force that `planted::set` put
    /// there, on `threads` threads, until the smallest failing seed is known.
    fn search(scenario: Scenario, limit: u64, threads: usize) -> Search {
        let start = Instant::now();
        let next = AtomicU64::new(0);
        let ran = AtomicU64::new(0);
        // The smallest failing seed found so far (u64::MAX: none): no thread starts a seed past it.
        let bound = AtomicU64::new(u64::MAX);
        let found: Mutex<Option<(u64, String)>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        if seed >= limit || seed > bound.load(Ordering::Relaxed) {
                            break;
                        }
                        ran.fetch_add(1, Ordering::Relaxed);
                        if let Err(f) = run_options(scenario.options(seed)) {
                            bound.fetch_min(seed, Ordering::Relaxed);
                            let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
                            if found.as_ref().is_none_or(|(s, _)| seed < *s) {
                                *found = Some((seed, f.what.clone()));
                            }
                        }
                    }
                });
            }
        });
        Search {
            first: found.into_inner().unwrap_or_else(PoisonError::into_inner),
            seeds: ran.into_inner(),
            time: start.elapsed(),
        }
    }

    /// A failure's kind: its first line, shortened for a table cell.
    fn kind(what: &str) -> String {
        let line = what.lines().next().unwrap_or("").replace('|', "/");
        let mut short: String = line.chars().take(110).collect();
        if short.len() < line.len() {
            short.push_str("...");
        }
        short
    }

    fn list() {
        println!("| bug | rule it breaks | caught by the tests |");
        println!("|---|---|---|");
        for bug in Bug::ALL {
            println!(
                "| `{}` | {} | {} |",
                bug.name(),
                bug.rule(),
                catching_tests(bug)
                    .iter()
                    .map(|(file, test)| format!("`{file}::{test}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    pub(crate) fn main() -> i32 {
        let args = match parse_args() {
            Ok(a) => a,
            Err(e) => {
                if e != "help" {
                    eprintln!("planted_bugs: {e}");
                }
                eprintln!(
                    "usage: planted_bugs [--short | --full] [--max-seeds N] [--sanity K] \
                     [--threads T] [--record] [--list | --tests] [BUG ...]\nbugs: {}",
                    Bug::ALL.map(Bug::name).join(", ")
                );
                return 2;
            }
        };
        if args.list {
            list();
            return 0;
        }
        if args.tests {
            for &bug in &args.bugs {
                for (file, test) in catching_tests(bug) {
                    println!("{} {file} {test}", bug.name());
                }
            }
            return 0;
        }
        let total = Instant::now();
        let mut failed = false;

        // Sanity: the planted build with no bug in force is the correct protocol.
        planted::set(None);
        let mut all_scenarios: Vec<Scenario> = SIZES.into_iter().map(Scenario::Fixed).collect();
        all_scenarios.push(Scenario::Reconfiguring);
        for &scenario in &all_scenarios {
            let s = search(scenario, args.sanity, args.threads);
            match s.first {
                None => eprintln!(
                    "sanity, no bug, {}: seeds 0..{} pass ({:.1}s)",
                    scenario.key(),
                    args.sanity,
                    s.time.as_secs_f64()
                ),
                Some((seed, what)) => {
                    eprintln!(
                        "SANITY FAILED: with no bug in force, {} seed {seed} failed: {what}",
                        scenario.key()
                    );
                    failed = true;
                }
            }
        }

        let mut table = String::new();
        let _ = writeln!(
            table,
            "| bug | 3 nodes | 5 nodes | 7 nodes | caught as | seeds run | time |"
        );
        let _ = writeln!(table, "|---|---|---|---|---|---|---|");
        let mut record = String::new();
        let mut missed = Vec::new();
        for &bug in &args.bugs {
            planted::set(Some(bug));
            let started = Instant::now();
            let mut cells = Vec::new();
            let mut caught_as = None;
            let mut seeds = 0;
            let mut line = format!("{:<34}", bug.name());
            for scenario in scenarios(bug) {
                let (limit, expected) = if args.full {
                    (args.max_seeds, None)
                } else {
                    match recorded(bug, scenario) {
                        Some(Some(seed)) => (seed + margin(seed) + 1, Some(seed)),
                        // Not caught when recorded (an escape, see PLANTED-BUGS.md), or
                        // nothing recorded: nothing to hold it to.
                        Some(None) => {
                            cells.push(String::from("escapes (recorded)"));
                            continue;
                        }
                        None => {
                            cells.push(String::from("not recorded"));
                            continue;
                        }
                    }
                };
                let s = search(scenario, limit, args.threads);
                seeds += s.seeds;
                let cell = match &s.first {
                    Some((seed, what)) => {
                        caught_as.get_or_insert_with(|| kind(what));
                        let _ = write!(line, " {}={seed}", scenario.key());
                        match expected {
                            Some(e) if e != *seed => format!("{seed} (recorded {e})"),
                            _ => seed.to_string(),
                        }
                    }
                    None => {
                        let _ = write!(line, " {}=-", scenario.key());
                        if expected.is_some() {
                            missed.push(format!(
                                "{} ({}): not caught in seeds 0..{limit}",
                                bug.name(),
                                scenario.key()
                            ));
                        }
                        format!("not in {limit}")
                    }
                };
                eprintln!(
                    "{} {}: {cell} ({} seeds, {:.1}s)",
                    bug.name(),
                    scenario.key(),
                    s.seeds,
                    s.time.as_secs_f64()
                );
                cells.push(match scenario {
                    Scenario::Fixed(_) => cell,
                    Scenario::Reconfiguring => format!("{cell} (reconfiguring)"),
                });
            }
            if cells.len() == 1 {
                // The reconfiguring scenario: one run for all sizes.
                let c = cells.remove(0);
                cells = vec![c, String::from("-"), String::from("-")];
            }
            let _ = writeln!(
                table,
                "| `{}` | {} | {} | {} | {} | {seeds} | {:.1}s |",
                bug.name(),
                cells[0],
                cells[1],
                cells[2],
                caught_as
                    .as_deref()
                    .unwrap_or(if seeds == 0 { "-" } else { "not caught" }),
                started.elapsed().as_secs_f64()
            );
            record.push_str(line.trim_end());
            record.push('\n');
        }
        planted::set(None);
        println!("{table}");
        println!(
            "{} in {:.1}s on {} thread(s)",
            if args.full {
                format!("--full --max-seeds {}", args.max_seeds)
            } else {
                String::from("--short")
            },
            total.elapsed().as_secs_f64(),
            args.threads
        );
        if args.record {
            let text = format!(
                "# The first failing seed of each planted bug per scenario (raft-core/PLANTED-BUGS.md):\n\
                 # `<bug> <scenario>=<seed>`, scenario 3, 5, 7 (SimOptions::random(seed, n)) or\n\
                 # reconfiguring (SimOptions::reconfiguring(seed)); `-`: no seed below {} failed.\n\
                 # Written by `planted_bugs --full --record --max-seeds {}`; `--short` runs each up\n\
                 # to its seed plus max(20, 25%).\n{record}",
                args.max_seeds, args.max_seeds
            );
            if let Err(e) = std::fs::write(RECORDED_PATH, text) {
                eprintln!("planted_bugs: cannot write {RECORDED_PATH}: {e}");
                failed = true;
            } else {
                eprintln!("recorded in {RECORDED_PATH}");
            }
        }
        for m in &missed {
            eprintln!("NOT CAUGHT: {m}");
        }
        if failed || !missed.is_empty() { 1 } else { 0 }
    }
}
