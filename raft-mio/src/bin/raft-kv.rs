//! `raft-kv`: a replicated, linearizable key-value server that speaks the Redis protocol.
//!
//! - `raft-kv serve --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//!   --client 127.0.0.1:6401 --data DIR`: runs one node.
//! - `raft-kv demo`: starts a 3-node cluster on loopback, drives a workload, kills the leader,
//!   restarts it, checks every acknowledged write, prints a summary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raft_mio::config::ServeArgs;
use raft_mio::demo::DemoArgs;

/// A replicated key-value store on Raft that speaks the Redis protocol (RESP2): redis-cli,
/// redis-benchmark and Redis client libraries work against it unchanged.
#[derive(Parser, Debug)]
#[command(name = "raft-kv", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one node of a cluster (until SIGTERM or SIGINT: then it shuts down cleanly).
    Serve(Box<ServeArgs>),
    /// Start a 3-node cluster on loopback, run a workload through a leader kill and a restart,
    /// check every acknowledged write, and print a summary.
    Demo(DemoArgs),
}

fn init_logs(level: Option<&str>) {
    let default = level.unwrap_or("info");
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(args) => {
            let args = match (*args).with_file() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("raft-kv: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logs(args.log_level.as_deref());
            let config = match args.server_config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("raft-kv: {e}");
                    return ExitCode::from(2);
                }
            };
            match raft_mio::server::run(config, |_| {}) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    eprintln!("raft-kv: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Demo(args) => {
            init_logs(Some("warn"));
            raft_mio::demo::run(&args)
        }
    }
}
