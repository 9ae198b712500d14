//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and every saved crash input
//! (`fuzz/regressions/<target>/`) through the functions the fuzz targets wrap, so `cargo test`
//! catches regressions without a fuzzer (ARCHITECTURE.md, "Testing layers", item 3).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use raft_core::sim::fuzz;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files directly in `dir`, sorted, leaving out names starting with `.` (`.gitkeep`).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every corpus and regression input of `target` through `run`; fails listing every input
/// that returned an error or panicked.
fn replay(target: &str, run: fn(&[u8]) -> Result<(), String>) {
    let corpus_dir = fuzz_dir().join("corpus").join(target);
    assert!(
        corpus_dir.is_dir(),
        "corpus directory {} is missing",
        corpus_dir.display()
    );
    let corpus = files_in(&corpus_dir);
    assert!(
        !corpus.is_empty(),
        "corpus directory {} is empty",
        corpus_dir.display()
    );
    let regressions_root = fuzz_dir().join("regressions");
    assert!(
        regressions_root.is_dir(),
        "{} is missing",
        regressions_root.display()
    );
    let regressions_dir = regressions_root.join(target);
    let regressions = if regressions_dir.is_dir() {
        files_in(&regressions_dir)
    } else {
        Vec::new()
    };

    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match catch_unwind(AssertUnwindSafe(|| run(&data))) {
            Ok(Ok(())) => {}
            Ok(Err(what)) => failures.push(format!("{}: {what}", path.display())),
            Err(_) => failures.push(format!("{}: panicked", path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {target} inputs ({} corpus, {} regressions) failed:\n{}",
        failures.len(),
        corpus.len() + regressions.len(),
        corpus.len(),
        regressions.len(),
        failures.join("\n")
    );
}

#[test]
fn single_node_corpus_and_regressions() {
    replay("single_node", fuzz::single_node);
}

#[test]
fn cluster_corpus_and_regressions() {
    replay("cluster", fuzz::cluster);
}
