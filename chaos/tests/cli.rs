//! The `lincheck` binary: its exit codes and what it prints.

use std::path::PathBuf;
use std::process::{Command, Output};

fn lincheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lincheck"))
        .args(args)
        .output()
        .expect("lincheck runs")
}

/// A file in a fresh temporary directory, holding `text`.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const OK: &str = r#"{"client":1,"op":"set","key":"k","arg":"v1","call":100,"ret":180}
{"client":2,"op":"get","key":"k","result":"v1","call":190,"ret":250}
{"client":3,"op":"incr","key":"n","arg":2,"call":10}
"#;

const STALE: &str = r#"{"client":1,"op":"set","key":"k","arg":"v1","call":100,"ret":180}
{"client":2,"op":"get","key":"k","result":null,"call":190,"ret":250}
"#;

#[test]
fn linearizable_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lincheck(&[file(&dir, "h", OK).to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("verdict: linearizable"), "{text}");
    assert!(
        text.contains("3 operations, 2 keys, 1 with unknown outcome"),
        "{text}"
    );
}

#[test]
fn violation_exits_1_and_names_the_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lincheck(&[file(&dir, "h", STALE).to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("NOT LINEARIZABLE"), "{text}");
    assert!(
        text.contains(r#"client 2: get("k") -> nil [190..250]"#),
        "{text}"
    );
}

#[test]
fn undecided_exits_2() {
    // Thirty unknown incrs by powers of two and a read no sum explains.
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!(
            "{{\"client\":{i},\"op\":\"incr\",\"key\":\"k\",\"arg\":{},\"call\":0}}\n",
            1_u64 << i
        ));
    }
    text.push_str(r#"{"client":99,"op":"get","key":"k","result":"x","call":1,"ret":1000}"#);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(&dir, "h", &text);
    let out = lincheck(&[path.to_str().expect("utf-8"), "--timeout", "0.05"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stdout(&out).contains("UNKNOWN"), "{}", stdout(&out));
}

#[test]
fn bad_input_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = file(
        &dir,
        "h",
        "{\"client\":1,\"op\":\"get\",\"key\":\"k\",\"call\":1,\"ret\":2}\n",
    );
    let out = lincheck(&[bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1: get: result must be"), "{err}");

    let missing = dir.path().join("missing");
    let out = lincheck(&[missing.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(lincheck(&[]).status.code(), Some(3));
    let good = file(&dir, "g", OK);
    let out = lincheck(&[good.to_str().expect("utf-8"), "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn generate_checks_and_writes_a_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("generated.jsonl");
    let path = path.to_str().expect("utf-8");
    let out = lincheck(&["--generate", "2000", "--clients", "4", "--keys", "7", path]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("generated 2000 operations"), "{text}");
    assert!(text.contains("2,000 operations, 7 keys"), "{text}");
    // The file it wrote checks the same.
    let out = lincheck(&[path, "--per-key"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out).matches(": ok").count(), 7);
}
