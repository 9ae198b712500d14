//! Where the nodes live and how links between them fail.
//!
//! - [`Netns`]: each node in its own network namespace (`rkv-ns<id>`, address `10.77.0.<id>`) on
//!   the bridge `rkvbr0` (`10.77.0.254` on the root side, so that this process, the clients, can
//!   reach every node directly: client traffic never crosses the bridge's forward hook, only
//!   node-to-node traffic does). Link faults are rules in one nftables bridge table in the root
//!   namespace (`rkvchaos`), rebuilt atomically (`nft -f`) at each change.
//! - [`super::proxy::ProxyNet`]: the fallback where namespaces are not available: loopback, with
//!   a TCP proxy in this process in front of every node's peer port.
//!
//! # One-way partitions
//!
//! A one-way drop at the packet level stalls a TCP connection both ways (its ACKs need the
//! reverse path). But the transport of raft-kv uses one connection per direction: each node
//! sends only on the connection it dialed. So "A's messages do not reach B, B's reach A" is the
//! connection A dialed to B's peer port being blackholed (both ways) and the one B dialed left
//! alone. With namespaces that is `iifname vA oifname vB tcp dport 7001` plus `iifname vB oifname
//! vA tcp sport 7001`; the proxy does the same per connection.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::cleanup::{self, BRIDGE, NS_PREFIX, TABLE, run};

/// The peer port of every node in namespaces.
pub(crate) const PEER_PORT: u16 = 7001;
/// The client port of every node in namespaces.
pub(crate) const CLIENT_PORT: u16 = 6379;

/// The link faults in force: directed message cuts and loss.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkFaults {
    /// `(a, b)`: a's messages do not reach b.
    pub(crate) cut: BTreeSet<(u64, u64)>,
    /// `(a, b) -> p`: p% of the packets (frames, with the proxy) from a to b are dropped.
    pub(crate) loss: BTreeMap<(u64, u64), u8>,
}

impl LinkFaults {
    /// Cuts both directions between every node of `a` and every node of `b`.
    pub(crate) fn cut_between(&mut self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                if x != y {
                    self.cut.insert((x, y));
                    self.cut.insert((y, x));
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cut.is_empty() && self.loss.is_empty()
    }
}

/// A topology: addresses, how to start a node in it, and link faults.
pub(crate) trait Net: Send + Sync {
    /// `netns` or `loopback`.
    fn name(&self) -> &'static str;
    /// Whether it runs as root (tmpfs mounts and strace are then available).
    fn privileged(&self) -> bool;
    /// Makes room for node `id` (a namespace, or ports and a proxy).
    fn add_node(&self, id: u64) -> io::Result<()>;
    /// The peer address of `id` as node `seen_by` dials it (its own: where it listens); with
    /// `seen_by` 0, as the others see it (what `RAFT.ADDLEARNER` records).
    fn peer_addr(&self, id: u64, seen_by: u64) -> SocketAddr;
    /// Where clients reach node `id`.
    fn client_addr(&self, id: u64) -> SocketAddr;
    /// A command that runs `exe` as node `id` (inside its namespace).
    fn command(&self, id: u64, exe: &Path) -> Command;
    /// Puts `faults` in force, replacing the ones before.
    fn set_faults(&self, faults: &LinkFaults) -> io::Result<()>;
    /// Removes everything it set up.
    fn teardown(&self);
}

/// Namespaces on a bridge, faults in nftables.
pub(crate) struct Netns {
    nodes: Mutex<BTreeSet<u64>>,
}

fn ns(id: u64) -> String {
    format!("{NS_PREFIX}{id}")
}

fn veth(id: u64) -> String {
    format!("rkv-v{id}")
}

fn ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, u8::try_from(id).unwrap_or(253))
}

impl Netns {
    /// Whether namespaces, veths and nftables work here (root, iproute2, nft): tries them.
    pub(crate) fn available() -> Result<(), String> {
        let probe = format!("{NS_PREFIX}probe");
        run("ip", &["netns", "add", &probe]).map_err(|e| e.to_string())?;
        let _ = run("ip", &["netns", "del", &probe]);
        run("nft", &["list", "tables"]).map_err(|e| format!("nft: {e}"))?;
        Ok(())
    }

    /// The bridge and the table (after removing any left by a runner that was killed).
    pub(crate) fn up() -> io::Result<Self> {
        cleanup::remove_leftovers();
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        cleanup::set_bridge(true);
        let _ = run(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{BRIDGE}.disable_ipv6=1")],
        );
        run("ip", &["addr", "add", "10.77.0.254/24", "dev", BRIDGE])?;
        run("ip", &["link", "set", BRIDGE, "up"])?;
        nft(&format!(
            "add table bridge {TABLE}\nadd chain bridge {TABLE} links {{ type filter hook forward priority 0; policy accept; }}\n"
        ))?;
        Ok(Self {
            nodes: Mutex::new(BTreeSet::new()),
        })
    }
}

/// The nft script that replaces the link rules with `faults`.
pub(crate) fn rules(faults: &LinkFaults) -> String {
    let mut script = format!("flush chain bridge {TABLE} links\n");
    let mut rule = |body: String| {
        script.push_str(&format!("add rule bridge {TABLE} links {body}\n"));
    };
    for &(a, b) in &faults.cut {
        let (va, vb) = (veth(a), veth(b));
        // The connection a dialed to b's peer port, both ways; the one b dialed to a stays.
        rule(format!(
            "iifname \"{va}\" oifname \"{vb}\" tcp dport {PEER_PORT} drop"
        ));
        rule(format!(
            "iifname \"{vb}\" oifname \"{va}\" tcp sport {PEER_PORT} drop"
        ));
    }
    for (&(a, b), &p) in &faults.loss {
        let (va, vb) = (veth(a), veth(b));
        rule(format!(
            "iifname \"{va}\" oifname \"{vb}\" numgen random mod 100 < {p} drop"
        ));
    }
    script
}

/// Runs an nft script.
fn nft(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft -f: {}: {}\n{script}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Net for Netns {
    fn name(&self) -> &'static str {
        "netns"
    }

    fn privileged(&self) -> bool {
        true
    }

    fn add_node(&self, id: u64) -> io::Result<()> {
        if !(1..=250).contains(&id) {
            return Err(io::Error::other(format!("node id {id} out of 1..=250")));
        }
        let (n, v) = (ns(id), veth(id));
        let addr = format!("{}/24", ip(id));
        // A namespace of an earlier run lives on while a process in it does (one still shutting
        // down, say), and keeps its veth: remove both, or the names are taken.
        if let Ok(pids) = Command::new("ip").args(["netns", "pids", &n]).output() {
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                let _ = run("kill", &["-KILL", pid]);
            }
        }
        let _ = run("ip", &["link", "del", &v]);
        let _ = run("ip", &["netns", "del", &n]);
        run("ip", &["netns", "add", &n])?;
        cleanup::add_namespace(&n);
        run(
            "ip",
            &[
                "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns", &n,
            ],
        )?;
        run("ip", &["link", "set", &v, "master", BRIDGE, "up"])?;
        run("ip", &["-n", &n, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &n, "addr", "add", &addr, "dev", "eth0"])?;
        run("ip", &["-n", &n, "link", "set", "eth0", "up"])?;
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id);
        Ok(())
    }

    fn peer_addr(&self, id: u64, _seen_by: u64) -> SocketAddr {
        SocketAddr::from((ip(id), PEER_PORT))
    }

    fn client_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from((ip(id), CLIENT_PORT))
    }

    fn command(&self, id: u64, exe: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns(id)]).arg(exe);
        cmd
    }

    fn set_faults(&self, faults: &LinkFaults) -> io::Result<()> {
        nft(&rules(faults))
    }

    fn teardown(&self) {
        let _ = run("nft", &["delete", "table", "bridge", TABLE]);
        let ids: Vec<u64> = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        for id in ids {
            let _ = run("ip", &["netns", "del", &ns(id)]);
        }
        let _ = run("ip", &["link", "del", BRIDGE]);
        cleanup::set_bridge(false);
        cleanup::wait_veths_gone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_way_cut_drops_one_connection_both_ways_and_loss_is_per_link() {
        let mut f = LinkFaults::default();
        f.cut.insert((1, 2));
        f.loss.insert((2, 3), 30);
        let script = rules(&f);
        assert_eq!(
            script,
            "flush chain bridge rkvchaos links\n\
             add rule bridge rkvchaos links iifname \"rkv-v1\" oifname \"rkv-v2\" tcp dport 7001 drop\n\
             add rule bridge rkvchaos links iifname \"rkv-v2\" oifname \"rkv-v1\" tcp sport 7001 drop\n\
             add rule bridge rkvchaos links iifname \"rkv-v2\" oifname \"rkv-v3\" numgen random mod 100 < 30 drop\n"
        );
        let mut both = LinkFaults::default();
        both.cut_between(&[1], &[2, 3]);
        assert_eq!(both.cut.len(), 4);
        assert!(both.cut.contains(&(3, 1)) && both.cut.contains(&(1, 3)));
        assert!(LinkFaults::default().is_empty());
    }
}
