//! What a run leaves outside this process (node processes, strace, tmpfs mounts, network
//! namespaces, the bridge, the nftables table), in one registry, so that every exit path tears it
//! down: the end of a run, an error, a panic, and SIGINT/SIGTERM/SIGHUP.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// The bridge every namespace's veth is attached to.
pub(crate) const BRIDGE: &str = "rkvbr0";
/// The nftables bridge table (in the root namespace) holding every link fault.
pub(crate) const TABLE: &str = "rkvchaos";
/// The prefix of the namespaces (`rkv-ns<id>`) and of their root-side veths (`rkv-v<id>`).
pub(crate) const NS_PREFIX: &str = "rkv-ns";

#[derive(Default)]
struct Registry {
    /// Processes this runner started and has not reaped (raft-kv nodes, strace).
    pids: BTreeSet<u32>,
    /// tmpfs mount points.
    mounts: Vec<PathBuf>,
    /// Network namespaces created.
    namespaces: BTreeSet<String>,
    /// Whether the bridge and the table exist.
    bridge: bool,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = registry();
    f(guard.get_or_insert_with(Registry::default))
}

pub(crate) fn add_pid(pid: u32) {
    with(|r| r.pids.insert(pid));
}

pub(crate) fn remove_pid(pid: u32) {
    with(|r| r.pids.remove(&pid));
}

pub(crate) fn add_mount(path: PathBuf) {
    with(|r| r.mounts.push(path));
}

pub(crate) fn remove_mount(path: &PathBuf) {
    with(|r| r.mounts.retain(|p| p != path));
}

pub(crate) fn add_namespace(name: &str) {
    with(|r| r.namespaces.insert(name.to_owned()));
}

pub(crate) fn set_bridge(up: bool) {
    with(|r| r.bridge = up);
}

/// Runs a command quietly; an error names it and says what it printed.
pub(crate) fn run(program: &str, args: &[&str]) -> io::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{program} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to `pid` with kill(1) (this crate has no
/// unsafe code, so no libc::kill).
pub(crate) fn signal(pid: u32, signal: &str) -> io::Result<()> {
    run("kill", &[&format!("-{signal}"), &pid.to_string()])
}

/// Deletes the namespaces, the bridge and the table of a runner that died without cleaning up
/// (SIGKILL): they are recognised by their names, and the processes left in the namespaces
/// (nodes that runner started) are killed by PID first.
pub(crate) fn remove_leftovers() {
    let listed = Command::new("ip").args(["netns", "list"]).output();
    if let Ok(out) = listed {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if !name.starts_with(NS_PREFIX) {
                continue;
            }
            if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
                for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                    let _ = run("kill", &["-KILL", pid]);
                }
            }
            let _ = run("ip", &["netns", "del", name]);
        }
    }
    let _ = run("nft", &["delete", "table", "bridge", TABLE]);
    let _ = run("ip", &["link", "del", BRIDGE]);
    wait_veths_gone();
}

/// Namespace teardown is asynchronous: waits (up to 5 s) until no `rkv-v*` link is left.
pub(crate) fn wait_veths_gone() {
    for _ in 0..50 {
        let links = Command::new("ip").args(["-o", "link", "show"]).output();
        match links {
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains("rkv-v") => {
                thread::sleep(Duration::from_millis(100));
            }
            _ => return,
        }
    }
}

/// Tears down everything in the registry; safe to call more than once and from any thread.
pub fn cleanup_all() {
    let taken = registry().take();
    let Some(reg) = taken else {
        return;
    };
    for &pid in &reg.pids {
        let _ = signal(pid, "CONT");
        let _ = signal(pid, "KILL");
    }
    if !reg.pids.is_empty() {
        thread::sleep(Duration::from_millis(200));
    }
    for path in reg.mounts.iter().rev() {
        let _ = run("umount", &["-l", &path.to_string_lossy()]);
    }
    if reg.bridge {
        let _ = run("nft", &["delete", "table", "bridge", TABLE]);
    }
    for ns in &reg.namespaces {
        let _ = run("ip", &["netns", "del", ns]);
    }
    if reg.bridge {
        let _ = run("ip", &["link", "del", BRIDGE]);
    }
    if !reg.namespaces.is_empty() {
        wait_veths_gone();
    }
}

/// Installs the handlers that clean up on SIGINT, SIGTERM and SIGHUP (then exit 130) and on a
/// panic (then the panic goes on as usual).
pub fn install_handlers() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        cleanup_all();
        previous(info);
    }));
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut signals) => {
            thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    eprintln!("chaos: signal {sig}: cleaning up");
                    cleanup_all();
                    std::process::exit(130);
                }
            });
        }
        Err(e) => eprintln!("chaos: cannot install signal handlers: {e}"),
    }
}
