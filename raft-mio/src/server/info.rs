//! `INFO`, `RAFT.MEMBERS` and `HELLO`: what the server says about itself.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use raft_core::{NodeId, ReplicationState, Role, Status};
use raft_std::runtime::RaftNode;

use super::machine::{ServerMachine, StoreGauges};
use crate::resp::Reply;
use crate::transport::PeerNet;

/// What `INFO` reads besides the node's status.
pub(crate) struct InfoSources {
    pub(crate) id: NodeId,
    pub(crate) cluster: String,
    pub(crate) node: RaftNode<ServerMachine>,
    pub(crate) net: Arc<PeerNet>,
    pub(crate) gauges: Arc<StoreGauges>,
    pub(crate) started: Instant,
    pub(crate) client_addr: SocketAddr,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) fsync: bool,
    /// Whether this node serves reads itself when it follows (`--follower-reads`).
    pub(crate) follower_reads: bool,
}

/// Counters of the client listener.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClientCounters {
    pub(crate) connections_received: u64,
    pub(crate) rejected: u64,
    pub(crate) commands: u64,
}

const fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
    }
}

const fn state_name(state: ReplicationState) -> &'static str {
    match state {
        ReplicationState::Probe => "probe",
        ReplicationState::Replicate => "replicate",
        ReplicationState::Snapshot => "snapshot",
    }
}

/// Bytes in the files under `dir`, recursively (0 for what cannot be read).
pub fn disk_usage(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => disk_usage(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn ids(list: &[NodeId]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The `INFO` reply: a bulk string of `# Section` headers and `field:value` lines.
pub(crate) fn info(
    src: &InfoSources,
    status: &Status,
    sections: &[String],
    counters: &ClientCounters,
    connected: usize,
) -> Vec<u8> {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| s == "all" || s == "everything" || s == "default");
    let want = |name: &str| all || sections.iter().any(|s| s == name);
    let mut text = String::new();
    let (peers, net) = src.net.info();
    if want("server") {
        let _ = write!(
            text,
            "# Server\r\nredis_version:7.0.0\r\nraft_kv_version:{}\r\nredis_mode:standalone\r\n\
             os:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nnode_id:{}\r\n\
             cluster_name:{}\r\nclient_addr:{}\r\npeer_addr:{}\r\ndata_dir:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            src.client_addr.port(),
            src.started.elapsed().as_secs(),
            src.id,
            src.cluster,
            src.client_addr,
            src.peer_addr,
            src.data_dir.display(),
        );
    }
    if want("clients") {
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{connected}\r\nblocked_clients:0\r\n\
             total_connections_received:{}\r\nrejected_connections:{}\r\n\
             total_commands_processed:{}\r\n\r\n",
            counters.connections_received, counters.rejected, counters.commands,
        );
    }
    if want("persistence") {
        let _ = write!(
            text,
            "# Persistence\r\nappendonly:{}\r\naof_fsync:{}\r\ndisk_bytes:{}\r\n\r\n",
            u8::from(src.fsync),
            if src.fsync { "always" } else { "no" },
            disk_usage(&src.data_dir),
        );
    }
    if want("raft") {
        let leader_addr = status
            .leader
            .and_then(|l| {
                if l == src.id {
                    Some(src.peer_addr)
                } else {
                    peers.iter().find(|p| p.id == l).map(|p| p.addr)
                }
            })
            .map_or_else(String::new, |a| a.to_string());
        let _ = write!(
            text,
            "# Raft\r\nrole:{}\r\nterm:{}\r\nleader_id:{}\r\nleader_addr:{leader_addr}\r\n\
             commit_index:{}\r\napplied_index:{}\r\nlast_log_index:{}\r\nsnapshot_index:{}\r\n\
             log_entries:{}\r\nvoters:{}\r\nlearners:{}\r\njoint:{}\r\n\
             follower_reads:{}\r\npeer_connections_refused:{}\r\npeer_bad_input:{}\r\n",
            role_name(status.role),
            status.term,
            status.leader.map_or_else(String::new, |l| l.to_string()),
            status.commit,
            status.applied,
            status.last_log.index,
            status.snapshot.index,
            status.log_len,
            ids(status.membership.voters()),
            ids(status.membership.learners()),
            u8::from(status.membership.is_joint()),
            u8::from(src.follower_reads),
            net.refused,
            net.bad_input,
        );
        for p in &peers {
            let progress = status.peers.iter().find(|s| s.id == p.id);
            let _ = write!(
                text,
                "peer_{}:addr={},connected={},match={},state={},learner={},disconnects={}\r\n",
                p.id,
                p.addr,
                u8::from(p.connected),
                progress.map_or_else(String::new, |s| s.match_index.to_string()),
                progress.map_or("", |s| state_name(s.state)),
                u8::from(progress.is_some_and(|s| s.learner)),
                p.disconnects,
            );
        }
        text.push_str("\r\n");
    }
    if want("keyspace") {
        let keys = src.gauges.keys.load(Ordering::Relaxed);
        let _ = write!(
            text,
            "# Keyspace\r\ndb0:keys={keys},expires=0,avg_ttl=0\r\nused_bytes:{}\r\n",
            src.gauges.bytes.load(Ordering::Relaxed)
        );
    }
    let mut out = Vec::with_capacity(text.len() + 16);
    Reply::new(&mut out).bulk(Some(text.trim_end().as_bytes()));
    out
}

/// The `RAFT.MEMBERS` reply: one line per member, `id role address [connected]`.
pub(crate) fn members(src: &InfoSources, status: &Status) -> Vec<u8> {
    let (peers, _) = src.net.info();
    let addr = |id: NodeId| {
        if id == src.id {
            src.peer_addr.to_string()
        } else {
            peers
                .iter()
                .find(|p| p.id == id)
                .map_or_else(|| "?".to_owned(), |p| p.addr.to_string())
        }
    };
    let mut lines = Vec::new();
    let m = &status.membership;
    for id in m.members() {
        let role = if status.leader == Some(id) {
            "leader"
        } else if m.is_learner(id) {
            "learner"
        } else {
            "voter"
        };
        lines.push(format!("{id} {role} {}", addr(id)));
    }
    let mut out = Vec::new();
    let mut r = Reply::new(&mut out);
    r.array(lines.len());
    for line in &lines {
        r.bulk(Some(line.as_bytes()));
    }
    out
}

/// The `HELLO` reply: a map (a flat array of names and values in RESP2).
pub(crate) fn hello(id: NodeId, conn: u64, role: Role, resp3: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reply::with_protocol(&mut out, resp3);
    r.map(8);
    for (k, v) in [("server", "redis"), ("version", "7.0.0")] {
        r.bulk(Some(k.as_bytes()));
        r.bulk(Some(v.as_bytes()));
    }
    r.bulk(Some(b"proto"));
    r.integer(if resp3 { 3 } else { 2 });
    r.bulk(Some(b"id"));
    r.integer(i64::try_from(conn).unwrap_or(i64::MAX));
    r.bulk(Some(b"mode"));
    r.bulk(Some(b"standalone"));
    r.bulk(Some(b"role"));
    r.bulk(Some(if role == Role::Leader {
        &b"master"[..]
    } else {
        b"replica"
    }));
    r.bulk(Some(b"modules"));
    r.array(0);
    r.bulk(Some(b"raft_node"));
    r.integer(i64::try_from(id.get()).unwrap_or(i64::MAX));
    out
}
