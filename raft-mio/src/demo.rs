//! `raft-kv demo` (not yet written).

use std::process::ExitCode;

use clap::Args;

/// The demo's settings.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {}

/// Runs the demo.
#[must_use]
pub fn run(_args: &DemoArgs) -> ExitCode {
    ExitCode::SUCCESS
}
