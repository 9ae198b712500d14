//! The checker's teeth: `raft-kv` built with one deliberately broken feature (off by default,
//! named `bug-...`, reached by no normal build) must fail the check.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A deliberately broken build.
#[derive(Clone, Copy, Debug)]
pub struct Bug {
    /// The `raft-mio` feature that breaks it.
    pub feature: &'static str,
    /// What is broken.
    pub what: &'static str,
}

/// The three broken builds.
pub const BUGS: [Bug; 3] = [
    Bug {
        feature: "bug-follower-local-read",
        what: "followers serve GET from their own state",
    },
    Bug {
        feature: "bug-early-ack",
        what: "the leader acknowledges a SET before a majority has it",
    },
    Bug {
        feature: "bug-read-index-no-heartbeat",
        what: "ReadIndex without the heartbeat round",
    },
];

/// The workspace this crate was built from.
#[must_use]
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Builds `raft-kv` with `bug`'s feature in `target` (a target directory of its own, so that
/// no normal build ever picks it up), and copies it to `target/raft-kv-<feature>`.
///
/// # Errors
///
/// cargo failed.
pub fn build(bug: &Bug, target: &Path) -> io::Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace())
        .args(["build", "--release", "-p", "raft-mio", "--bin", "raft-kv"])
        // The feature's plain name: `raft-mio/<feature>` names a feature of a dependency
        // called raft-mio, which cargo silently ignores here (every "broken" build was the
        // normal one).
        .args(["--features", bug.feature])
        .env("CARGO_TARGET_DIR", target)
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "cargo build with {} failed: {status}",
            bug.feature
        )));
    }
    let exe = target.join(format!("raft-kv-{}", bug.feature));
    fs::copy(target.join("release").join("raft-kv"), &exe)?;
    Ok(exe)
}
