//! The checker on hand-made histories, on random linearizable ones, and on their mutants.

use std::time::Duration;

use chaos::generate::{GenOptions, SplitMix64, generate};
use chaos::history::{History, Op, OpResult, Operation};
use chaos::linearizability::{CheckOptions, CheckReport, Verdict, check};

fn op(
    client: u64,
    key: &str,
    op: Op,
    result: Option<OpResult>,
    call: u64,
    ret: impl Into<Option<u64>>,
) -> Operation {
    let ret = ret.into();
    Operation {
        client,
        key: key.into(),
        op,
        call,
        ret,
        result: if ret.is_some() { result } else { None },
    }
}

fn set(c: u64, k: &str, v: &str, call: u64, ret: impl Into<Option<u64>>) -> Operation {
    op(c, k, Op::Set(v.into()), None, call, ret)
}

fn get(c: u64, k: &str, v: Option<&str>, call: u64, ret: impl Into<Option<u64>>) -> Operation {
    let value = OpResult::Value(v.map(str::to_owned));
    op(c, k, Op::Get, Some(value), call, ret)
}

fn append(c: u64, k: &str, v: &str, len: i64, call: u64, ret: impl Into<Option<u64>>) -> Operation {
    let len = OpResult::Integer(len);
    op(c, k, Op::Append(v.into()), Some(len), call, ret)
}

fn incr(c: u64, k: &str, d: i64, new: i64, call: u64, ret: impl Into<Option<u64>>) -> Operation {
    let new = OpResult::Integer(new);
    op(c, k, Op::Incr(d), Some(new), call, ret)
}

fn del(c: u64, k: &str, removed: Option<i64>, call: u64, ret: impl Into<Option<u64>>) -> Operation {
    op(c, k, Op::Del, removed.map(OpResult::Integer), call, ret)
}

fn run(ops: Vec<Operation>) -> CheckReport {
    let history = History::new(ops).expect("a valid history");
    check(&history, &CheckOptions::default())
}

#[track_caller]
fn assert_ok(ops: Vec<Operation>) {
    let report = run(ops);
    assert!(report.verdict.is_ok(), "{}", report.verdict);
}

/// Asserts that the history is not linearizable, on `key` alone, and returns the verdict.
#[track_caller]
fn assert_violation(ops: Vec<Operation>, key: &str) -> Verdict {
    let report = run(ops);
    assert!(report.verdict.is_violation(), "{}", report.verdict);
    assert_eq!(report.verdict.key(), Some(key), "{}", report.verdict);
    let bad: Vec<&str> = report.violations().map(|k| k.key.as_str()).collect();
    assert_eq!(bad, [key]);
    report.verdict
}

// ---- linearizable ----

#[test]
fn empty_history() {
    let report = run(vec![]);
    assert!(report.verdict.is_ok());
    assert!(report.keys.is_empty());
}

#[test]
fn sequential_history() {
    assert_ok(vec![
        get(1, "k", None, 0, 10),
        set(1, "k", "a", 20, 30),
        get(2, "k", Some("a"), 40, 50),
        append(1, "k", "bc", 3, 60, 70),
        get(2, "k", Some("abc"), 80, 90),
        del(1, "k", Some(1), 100, 110),
        get(2, "k", None, 120, 130),
        del(1, "k", Some(0), 140, 150),
        incr(1, "k", 5, 5, 160, 170),
        incr(2, "k", -7, -2, 180, 190),
        get(1, "k", Some("-2"), 200, 210),
        set(1, "other", "x", 0, 5),
        get(3, "other", Some("x"), 6, 7),
    ]);
}

#[test]
fn lines_in_any_order() {
    // The file need not be sorted: the checker orders by call time.
    assert_ok(vec![
        get(2, "k", Some("b"), 40, 50),
        set(1, "k", "b", 20, 30),
        set(1, "k", "a", 0, 10),
    ]);
}

#[test]
fn concurrent_writes_and_a_read_that_sees_either() {
    for seen in ["v1", "v2"] {
        assert_ok(vec![
            set(1, "k", "v1", 0, 100),
            set(2, "k", "v2", 10, 90),
            get(3, "k", Some(seen), 120, 130),
            get(4, "k", Some(seen), 140, 150),
        ]);
    }
    // A read concurrent with a write sees the old value or the new one.
    for seen in [None, Some("v1")] {
        assert_ok(vec![set(1, "k", "v1", 0, 100), get(2, "k", seen, 50, 60)]);
    }
    // Operations that only touch (one's return is the other's call) count as concurrent.
    assert_ok(vec![set(1, "k", "v1", 0, 100), get(2, "k", None, 100, 110)]);
}

#[test]
fn unknown_write_seen_or_not() {
    // Seen by a later read.
    assert_ok(vec![
        set(1, "k", "v1", 0, 10),
        set(2, "k", "v2", 20, None),
        get(3, "k", Some("v2"), 30, 40),
    ]);
    // Never seen: it may never have taken effect.
    assert_ok(vec![
        set(1, "k", "v1", 0, 10),
        set(2, "k", "v2", 20, None),
        get(3, "k", Some("v1"), 30, 40),
        get(3, "k", Some("v1"), 50, 60),
    ]);
    // Seen late: it may take effect long after the client gave up.
    assert_ok(vec![
        set(1, "k", "v1", 0, 10),
        set(2, "k", "v2", 20, None),
        get(3, "k", Some("v1"), 30, 40),
        set(2, "k", "v3", 50, 60),
        get(3, "k", Some("v3"), 70, 80),
        get(3, "k", Some("v2"), 90, 100),
    ]);
    // Unknown gets, appends, incrs and dels constrain nothing of their own.
    assert_ok(vec![
        get(1, "k", None, 0, None),
        append(2, "k", "x", 0, 0, None),
        incr(3, "n", 1, 0, 0, None),
        del(4, "k", None, 1, None),
        get(5, "k", Some("x"), 10, 20),
        get(5, "n", Some("1"), 10, 20),
        get(5, "k", None, 30, 40),
    ]);
}

#[test]
fn unknown_write_seen_much_later() {
    // Taking effect a thousand operations after its call, far past every horizon of the early
    // rounds: only the last, unlimited round finds it.
    let mut ops = vec![set(1, "k", "old", 0, 5), set(2, "k", "late", 10, None)];
    for i in 0..1_000 {
        ops.push(get(3, "k", Some("old"), 20 + 20 * i, 30 + 20 * i));
    }
    ops.push(get(3, "k", Some("late"), 30_000, 30_010));
    ops.push(get(4, "k", Some("late"), 30_020, 30_030));
    assert_ok(ops.clone());
    // And once seen, it stays.
    ops.push(get(4, "k", Some("old"), 30_040, 30_050));
    assert_violation(ops, "k");
}

#[test]
fn incr_results() {
    // Two concurrent incrs answer 1 and 2 in either order.
    assert_ok(vec![
        incr(1, "n", 1, 2, 0, 100),
        incr(2, "n", 1, 1, 10, 90),
        get(3, "n", Some("2"), 110, 120),
    ]);
    // Absent counts as 0; a set integer is read as an integer.
    assert_ok(vec![
        incr(1, "n", 3, 3, 0, 10),
        set(1, "n", "-10", 20, 30),
        incr(2, "n", 4, -6, 40, 50),
        get(1, "n", Some("-6"), 60, 70),
    ]);
    // An unknown incr on a value that is not an integer fails and changes nothing.
    assert_ok(vec![
        set(1, "n", "abc", 0, 10),
        incr(2, "n", 1, 0, 20, None),
        get(3, "n", Some("abc"), 30, 40),
    ]);
    // An unknown incr in between explains a jump.
    assert_ok(vec![
        incr(1, "n", 1, 1, 0, 10),
        incr(2, "n", 5, 0, 20, None),
        incr(1, "n", 1, 7, 30, 40),
    ]);
}

#[test]
fn append_results() {
    assert_ok(vec![
        append(1, "k", "ab", 2, 0, 100),
        append(2, "k", "cde", 5, 10, 90),
        get(3, "k", Some("abcde"), 110, 120),
    ]);
    assert_ok(vec![
        append(1, "k", "ab", 5, 0, 100),
        append(2, "k", "cde", 3, 10, 90),
        get(3, "k", Some("cdeab"), 110, 120),
    ]);
    // Lengths are in bytes.
    assert_ok(vec![append(1, "k", "\u{e9}", 2, 0, 10)]);
}

#[test]
fn del_results() {
    assert_ok(vec![
        del(1, "k", Some(0), 0, 10),
        set(1, "k", "a", 20, 30),
        del(2, "k", Some(1), 40, 50),
        get(3, "k", None, 60, 70),
        set(1, "k", "b", 80, 90),
        del(2, "k", None, 100, 110),
        get(3, "k", None, 120, 130),
    ]);
    // Two concurrent dels of a present key: one removed it, the other found nothing.
    assert_ok(vec![
        set(1, "k", "a", 0, 10),
        del(2, "k", Some(0), 20, 100),
        del(3, "k", Some(1), 30, 90),
    ]);
}

// ---- not linearizable ----

#[test]
fn stale_read_after_a_completed_write() {
    let verdict = assert_violation(
        vec![
            set(1, "k", "v1", 0, 10),
            set(2, "k", "v2", 20, 30),
            get(3, "k", Some("v1"), 40, 50),
            set(4, "k", "v3", 35, None),
            set(1, "fine", "x", 0, 10),
            get(3, "fine", Some("x"), 40, 50),
        ],
        "k",
    );
    let Verdict::Violation {
        ops,
        pending_unknown,
        linearized,
        prefix,
        value,
        ..
    } = &verdict
    else {
        unreachable!()
    };
    assert_eq!(*linearized, 2);
    assert_eq!(prefix.len(), 2);
    assert_eq!(value.as_deref(), Some("v2"));
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].op, Op::Get);
    assert_eq!(ops[0].client, 3);
    assert_eq!(*pending_unknown, 1);
    let shown = verdict.to_string();
    assert!(
        shown.contains(r#"client 3: get("k") -> "v1" [40..50]"#),
        "{shown}"
    );
    assert!(shown.contains(r#"the value is then "v2""#), "{shown}");
}

#[test]
fn read_of_a_value_never_written() {
    assert_violation(
        vec![set(1, "k", "v1", 0, 10), get(2, "k", Some("v9"), 5, 50)],
        "k",
    );
    assert_violation(vec![get(2, "k", Some("v9"), 5, 50)], "k");
}

#[test]
fn reads_seeing_writes_in_opposite_orders() {
    assert_violation(
        vec![
            set(1, "k", "a", 0, 100),
            set(2, "k", "b", 0, 100),
            get(3, "k", Some("a"), 10, 20),
            get(3, "k", Some("b"), 30, 40),
            get(4, "k", Some("b"), 10, 20),
            get(4, "k", Some("a"), 30, 40),
        ],
        "k",
    );
}

#[test]
fn incr_result_that_skips_a_value() {
    assert_violation(
        vec![incr(1, "n", 1, 1, 0, 10), incr(2, "n", 1, 3, 20, 30)],
        "n",
    );
    // Concurrent incrs cannot both answer the same value.
    assert_violation(
        vec![incr(1, "n", 1, 1, 0, 100), incr(2, "n", 1, 1, 0, 100)],
        "n",
    );
    // An incr with a result needs an integer.
    assert_violation(
        vec![set(1, "n", "abc", 0, 10), incr(2, "n", 1, 1, 20, 30)],
        "n",
    );
    assert_violation(
        vec![set(1, "n", "01", 0, 10), incr(2, "n", 1, 2, 20, 30)],
        "n",
    );
}

#[test]
fn lost_acknowledged_append() {
    assert_violation(
        vec![
            append(1, "k", "x", 1, 0, 10),
            append(2, "k", "y", 2, 20, 30),
            get(3, "k", Some("y"), 40, 50),
        ],
        "k",
    );
    assert_violation(
        vec![
            append(1, "k", "x", 1, 0, 10),
            append(2, "k", "y", 1, 20, 30),
        ],
        "k",
    );
}

#[test]
fn wrong_del_count() {
    assert_violation(vec![del(1, "k", Some(1), 0, 10)], "k");
    assert_violation(
        vec![set(1, "k", "a", 0, 10), del(1, "k", Some(0), 20, 30)],
        "k",
    );
}

#[test]
fn unknown_write_seen_then_unseen() {
    // Once a read has seen it, it has taken effect: a later read cannot see the old value.
    assert_violation(
        vec![
            set(1, "k", "v1", 0, 10),
            set(2, "k", "v2", 20, None),
            get(3, "k", Some("v2"), 30, 40),
            get(3, "k", Some("v1"), 50, 60),
        ],
        "k",
    );
    // And it cannot take effect before its call.
    assert_violation(
        vec![get(3, "k", Some("v2"), 0, 10), set(2, "k", "v2", 20, None)],
        "k",
    );
}

#[test]
fn every_bad_key_is_reported() {
    let report = run(vec![
        get(1, "b", Some("x"), 0, 10),
        set(1, "ok", "x", 0, 10),
        get(1, "a", Some("x"), 0, 10),
    ]);
    assert_eq!(report.verdict.key(), Some("a"));
    let bad: Vec<&str> = report.violations().map(|k| k.key.as_str()).collect();
    assert_eq!(bad, ["a", "b"]);
    assert_eq!(report.keys.len(), 3);
    assert_eq!(report.ops(), 3);
}

// ---- budget ----

/// Thirty concurrent unknown incrs whose deltas are powers of two, so that every subset of them
/// leaves its own number, and a read of something no number is: deciding means trying every
/// subset.
fn too_hard() -> Vec<Operation> {
    let mut ops: Vec<Operation> = (0..30).map(|i| incr(i, "k", 1 << i, 0, 0, None)).collect();
    ops.push(get(99, "k", Some("impossible"), 1, 1_000));
    ops
}

#[test]
fn too_hard_for_the_budget_is_unknown() {
    let history = History::new(too_hard()).expect("valid");
    for options in [
        CheckOptions {
            timeout: Duration::from_millis(20),
            ..CheckOptions::default()
        },
        CheckOptions {
            max_steps: Some(10_000),
            ..CheckOptions::default()
        },
        CheckOptions {
            max_memory: 1 << 20,
            ..CheckOptions::default()
        },
    ] {
        let report = check(&history, &options);
        let Verdict::Unknown { key, reason } = &report.verdict else {
            panic!("{options:?}: {}", report.verdict)
        };
        assert_eq!(key, "k");
        assert!(!reason.is_empty());
        assert_eq!(report.unknowns().count(), 1);
    }
}

#[test]
fn a_violation_elsewhere_outranks_an_unknown() {
    let mut ops = too_hard();
    ops.push(get(1, "z", Some("x"), 0, 10));
    let history = History::new(ops).expect("valid");
    let options = CheckOptions {
        max_steps: Some(10_000),
        ..CheckOptions::default()
    };
    let report = check(&history, &options);
    assert_eq!(report.verdict.key(), Some("z"));
    assert!(report.verdict.is_violation());
    assert_eq!(report.unknowns().count(), 1);
}

// ---- random histories and their mutants ----

fn options() -> CheckOptions {
    CheckOptions {
        timeout: Duration::from_secs(30),
        ..CheckOptions::default()
    }
}

fn is_completed_set(op: &Operation) -> Option<(&str, u64)> {
    match (&op.op, op.ret) {
        (Op::Set(v), Some(ret)) => Some((v, ret)),
        _ => None,
    }
}

fn read_value(op: &Operation) -> Option<Option<&str>> {
    match (&op.op, &op.result) {
        (Op::Get, Some(OpResult::Value(v))) => Some(v.as_deref()),
        _ => None,
    }
}

/// Mutants of the first kind: a read (index) and a value it cannot see: written by a completed
/// set that a later completed set of another value overwrote before the read began.
fn impossible_reads(ops: &[Operation]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (r, read) in ops.iter().enumerate() {
        let Some(seen) = read_value(read) else {
            continue;
        };
        for w in ops.iter().filter(|w| w.key == read.key) {
            let Some((v, w_ret)) = is_completed_set(w) else {
                continue;
            };
            if seen == Some(v) {
                continue;
            }
            let overwritten = ops.iter().any(|w2| {
                w2.key == read.key
                    && is_completed_set(w2)
                        .is_some_and(|(v2, ret2)| v2 != v && w_ret < w2.call && ret2 < read.call)
            });
            if overwritten {
                found.push((r, v.to_owned()));
                break;
            }
        }
    }
    found
}

/// Mutants of the second kind: two completed sets in sequence and a read between them that
/// saw the first; swapping their values makes the read see a value written only after it.
fn swappable_writes(ops: &[Operation]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for (a, w1) in ops.iter().enumerate() {
        let Some((v1, ret1)) = is_completed_set(w1) else {
            continue;
        };
        for (b, w2) in ops.iter().enumerate() {
            if w2.key != w1.key || w2.call <= ret1 {
                continue;
            }
            if is_completed_set(w2).is_none_or(|(v2, _)| v2 == v1) {
                continue;
            }
            let observed = ops.iter().any(|r| {
                r.key == w1.key
                    && read_value(r) == Some(Some(v1))
                    && ret1 < r.call
                    && r.ret.is_some_and(|ret| ret < w2.call)
            });
            if observed {
                found.push((a, b));
            }
        }
    }
    found
}

fn pick<T: Clone>(rng: &mut SplitMix64, items: &[T], n: usize) -> Vec<T> {
    (0..n.min(items.len()))
        .map(|_| items[rng.index(items.len())].clone())
        .collect()
}

#[test]
fn random_histories_pass_and_their_mutants_fail() {
    let (mut histories, mut mutants) = (0, 0);
    for seed in 0..150_u64 {
        let gen_options = GenOptions {
            ops: 200 + (seed as usize % 5) * 100,
            clients: 2 + seed as usize % 9,
            keys: 1 + seed as usize % 4,
            unknown_rate: [0.0, 0.01, 0.02][seed as usize % 3],
            max_latency: 1_000,
            max_think: [0, 200, 2_000][(seed as usize / 3) % 3],
            seed,
        };
        let history = generate(&gen_options);
        let report = check(&history, &options());
        assert!(
            report.verdict.is_ok(),
            "seed {seed} {gen_options:?}: {}",
            report.verdict
        );
        histories += 1;

        let ops = history.ops();
        let mut rng = SplitMix64::new(seed);
        for (r, value) in pick(&mut rng, &impossible_reads(ops), 3) {
            let mut mutant = ops.to_vec();
            mutant[r].result = Some(OpResult::Value(Some(value.clone())));
            let report = check(&History::new(mutant).expect("valid"), &options());
            assert!(
                report.verdict.is_violation(),
                "seed {seed}: read {} changed to {value:?}: {}",
                ops[r],
                report.verdict
            );
            assert_eq!(report.verdict.key(), Some(ops[r].key.as_str()));
            mutants += 1;
        }
        for (a, b) in pick(&mut rng, &swappable_writes(ops), 3) {
            let mut mutant = ops.to_vec();
            let (va, vb) = (mutant[a].op.clone(), mutant[b].op.clone());
            mutant[a].op = vb;
            mutant[b].op = va;
            let report = check(&History::new(mutant).expect("valid"), &options());
            assert!(
                report.verdict.is_violation(),
                "seed {seed}: swapping {} and {}: {}",
                ops[a],
                ops[b],
                report.verdict
            );
            assert_eq!(report.verdict.key(), Some(ops[a].key.as_str()));
            mutants += 1;
        }
    }
    assert_eq!(histories, 150);
    // Most histories offer both kinds of mutant.
    assert!(mutants > 500, "only {mutants} mutants");
}

#[test]
fn history_file_round_trip_checks_the_same() {
    let history = generate(&GenOptions {
        ops: 500,
        clients: 5,
        keys: 5,
        unknown_rate: 0.05,
        seed: 42,
        ..GenOptions::default()
    });
    let mut text = Vec::new();
    history.write_to(&mut text).expect("write");
    let again = History::from_reader(&text[..]).expect("read");
    assert_eq!(again, history);
    let report = check(&again, &options());
    assert!(report.verdict.is_ok(), "{}", report.verdict);
    assert_eq!(report.ops(), 500.min(history.len()));
    assert!(report.unknown_ops() > 0);
}

// ---- against brute force ----

/// The model, written again as plainly as possible.
fn brute_step(state: &Option<String>, op: &Operation) -> Option<Option<String>> {
    let known = op.ret.is_some();
    let int = |s: &Option<String>| match s {
        None => Some(0),
        Some(v) => v.parse::<i64>().ok().filter(|n| n.to_string() == *v),
    };
    match (&op.op, &op.result) {
        (Op::Get, Some(OpResult::Value(v))) if known => (v == state).then(|| state.clone()),
        (Op::Get, _) => Some(state.clone()),
        (Op::Set(v), _) => Some(Some(v.clone())),
        (Op::Append(v), r) => {
            let new = format!("{}{v}", state.as_deref().unwrap_or(""));
            match r {
                Some(OpResult::Integer(n)) if known && *n != new.len() as i64 => None,
                _ => Some(Some(new)),
            }
        }
        (Op::Incr(d), r) => match (int(state).and_then(|n| n.checked_add(*d)), r) {
            (None, Some(_)) if known => None,
            (None, _) => Some(state.clone()),
            (Some(sum), Some(OpResult::Integer(n))) if known && *n != sum => None,
            (Some(sum), _) => Some(Some(sum.to_string())),
        },
        (Op::Del, Some(OpResult::Integer(n))) if known && *n != i64::from(state.is_some()) => None,
        (Op::Del, _) => Some(None),
    }
}

/// Tries every order: `used` ops are linearized, `state` is the value after them.
fn brute_force(ops: &[Operation], used: &mut Vec<bool>, state: &Option<String>) -> bool {
    if ops
        .iter()
        .zip(used.iter())
        .all(|(op, &u)| u || op.ret.is_none())
    {
        return true;
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        // Real time: every op that returned before this one's call must already be in.
        let blocked = (0..ops.len())
            .any(|j| !used[j] && j != i && ops[j].ret.is_some_and(|r| r < ops[i].call));
        if blocked {
            continue;
        }
        if let Some(next) = brute_step(state, &ops[i]) {
            used[i] = true;
            let ok = brute_force(ops, used, &next);
            used[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

fn random_small_history(rng: &mut SplitMix64) -> Vec<Operation> {
    let values = ["a", "b", "ab", "1", "2", "-", "-1"];
    let n = 1 + rng.index(9);
    let unknown = [0.1, 0.3, 0.5][rng.index(3)];
    (0..n)
        .map(|c| {
            let call = rng.below(12);
            let ret = (!rng.chance(unknown)).then(|| call + rng.below(6));
            let pick = |rng: &mut SplitMix64| values[rng.index(values.len())].to_owned();
            let (kind, result) = match rng.below(5) {
                0 => {
                    let v = (!rng.chance(0.25)).then(|| pick(rng));
                    (Op::Get, Some(OpResult::Value(v)))
                }
                1 => (Op::Set(pick(rng)), None),
                2 => (
                    Op::Append(pick(rng)),
                    Some(OpResult::Integer(rng.below(5) as i64)),
                ),
                3 => (
                    Op::Incr(rng.below(4) as i64 - 1),
                    Some(OpResult::Integer(rng.below(5) as i64 - 1)),
                ),
                _ => (
                    Op::Del,
                    rng.chance(0.6)
                        .then(|| OpResult::Integer(rng.below(2) as i64)),
                ),
            };
            op(c as u64, "k", kind, result, call, ret)
        })
        .collect()
}

#[test]
fn agrees_with_brute_force_on_small_histories() {
    let mut rng = SplitMix64::new(2024);
    let (mut ok, mut bad) = (0, 0);
    for case in 0..60_000 {
        let ops = random_small_history(&mut rng);
        let want = brute_force(&ops, &mut vec![false; ops.len()], &None);
        let report = run(ops.clone());
        let shown: Vec<String> = ops.iter().map(ToString::to_string).collect();
        assert!(!report.verdict.is_unknown(), "case {case}: {shown:#?}");
        assert_eq!(
            report.verdict.is_ok(),
            want,
            "case {case}: brute force says {want}: {shown:#?}\n{}",
            report.verdict
        );
        if want {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    // Both outcomes are well represented.
    assert!(ok > 10_000 && bad > 10_000, "{ok} linearizable, {bad} not");
}
