//! `raft-kv serve`'s settings: command-line flags, an optional TOML file with the same names,
//! and the defaults, in that order of precedence.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use raft_core::NodeId;
use serde::Deserialize;

use crate::server::ServerConfig;
use crate::transport::{parse_peers, resolve};

/// The settings of one node. Every flag can also be given in the file `--config` names, as
/// `name = value` with the flag's name (`id = 1`, `peers = "1=127.0.0.1:7001,..."`,
/// `fsync = false`); a flag on the command line wins over the file.
#[derive(Args, Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// A TOML file with any of these settings.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// This node's id: a number from 1, unique in the cluster for all time.
    #[arg(long)]
    pub id: Option<u64>,

    /// Every member's peer address, this node's included: `1=host:port,2=host:port,...`.
    #[arg(long, value_name = "LIST")]
    pub peers: Option<String>,

    /// Where clients (redis-cli, any Redis client) connect. Default 127.0.0.1:6379.
    #[arg(long, value_name = "ADDR")]
    pub client: Option<String>,

    /// The data directory (created if missing). Default `./raft-kv-<id>`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// The cluster's name. Nodes of another cluster are refused, and so is a data directory
    /// made for another. Default raft-kv.
    #[arg(long)]
    pub cluster: Option<String>,

    /// Start as a learner joining a running cluster whose voters are the other --peers
    /// (then `RAFT.ADDLEARNER` it at any node, and `RAFT.PROMOTE` it). Only for a new data
    /// directory.
    #[arg(long)]
    #[serde(default)]
    pub join: bool,

    /// Whether to fsync writes before acknowledging them: on or off. Off is for tests only:
    /// a machine crash can lose acknowledged writes. Default on.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    #[serde(default, deserialize_with = "on_off_or_bool")]
    pub fsync: Option<bool>,

    /// What one tick is worth, in milliseconds. Default 10.
    #[arg(long, value_name = "MS")]
    pub tick_ms: Option<u64>,

    /// How often the leader sends heartbeats, in milliseconds. Default 20.
    #[arg(long, value_name = "MS")]
    pub heartbeat_ms: Option<u64>,

    /// The shortest election timeout, in milliseconds. Default 100.
    #[arg(long, value_name = "MS")]
    pub election_min_ms: Option<u64>,

    /// The longest election timeout, in milliseconds. Default 200.
    #[arg(long, value_name = "MS")]
    pub election_max_ms: Option<u64>,

    /// Take a snapshot (and compact the log) every this many entries. Default 100000 (the
    /// snapshot is written off the node thread, from a copy-on-write view of the store).
    #[arg(long, value_name = "N")]
    pub snapshot_entries: Option<u64>,

    /// Whether a follower serves linearizable reads itself (it asks the leader for a read index,
    /// waits until it has applied that far, and answers from its own store) rather than
    /// forwarding them to the leader: on or off. Default on.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    #[serde(default, deserialize_with = "on_off_or_bool")]
    pub follower_reads: Option<bool>,

    /// The longest a client request may take before it is answered -TRYAGAIN or -UNCERTAIN,
    /// in milliseconds. Default 5000.
    #[arg(long, value_name = "MS")]
    pub request_timeout_ms: Option<u64>,

    /// The most clients connected at once. Default 10000.
    #[arg(long, value_name = "N")]
    pub max_clients: Option<usize>,

    /// The log level: error, warn, info, debug or trace (RUST_LOG, if set, wins). Default info.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!("'{text}' is not on or off")),
    }
}

fn on_off_or_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OnOff {
        Bool(bool),
        Text(String),
    }
    match OnOff::deserialize(d)? {
        OnOff::Bool(b) => Ok(Some(b)),
        OnOff::Text(t) => parse_on_off(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

impl ServeArgs {
    /// These flags, with what the `--config` file sets for the ones not given.
    ///
    /// # Errors
    ///
    /// The file cannot be read or is not valid TOML of these settings.
    pub fn with_file(self) -> Result<Self, String> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            config: self.config,
            id: self.id.or(file.id),
            peers: self.peers.or(file.peers),
            client: self.client.or(file.client),
            data: self.data.or(file.data),
            cluster: self.cluster.or(file.cluster),
            join: self.join || file.join,
            fsync: self.fsync.or(file.fsync),
            tick_ms: self.tick_ms.or(file.tick_ms),
            heartbeat_ms: self.heartbeat_ms.or(file.heartbeat_ms),
            election_min_ms: self.election_min_ms.or(file.election_min_ms),
            election_max_ms: self.election_max_ms.or(file.election_max_ms),
            snapshot_entries: self.snapshot_entries.or(file.snapshot_entries),
            follower_reads: self.follower_reads.or(file.follower_reads),
            request_timeout_ms: self.request_timeout_ms.or(file.request_timeout_ms),
            max_clients: self.max_clients.or(file.max_clients),
            log_level: self.log_level.or(file.log_level),
        })
    }

    /// The server configuration these settings describe.
    ///
    /// # Errors
    ///
    /// A setting missing or out of range, described for the operator.
    pub fn server_config(&self) -> Result<ServerConfig, String> {
        let id = self
            .id
            .and_then(NodeId::new)
            .ok_or("--id is required: a node id from 1")?;
        let peers = parse_peers(self.peers.as_deref().ok_or(
            "--peers is required: every member's peer address, e.g. 1=127.0.0.1:7001,2=...",
        )?)?;
        if !peers.contains_key(&id) {
            return Err(format!("--peers does not name this node ({id})"));
        }
        let client = resolve(self.client.as_deref().unwrap_or("127.0.0.1:6379"))?;
        let data = self
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("raft-kv-{id}")));
        let mut config = ServerConfig::new(id, peers, client, data);
        if let Some(c) = &self.cluster {
            config.cluster.clone_from(c);
        }
        config.join = self.join;
        config.fsync = self.fsync.unwrap_or(true);
        let tick = self.tick_ms.unwrap_or(10).max(1);
        let ticks = |ms: u64, what: &str| -> Result<u32, String> {
            let n = ms / tick;
            u32::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| {
                format!("{what} of {ms} ms is not a whole number of {tick} ms ticks")
            })
        };
        let raft = &mut config.runtime.raft;
        raft.heartbeat_ticks = ticks(self.heartbeat_ms.unwrap_or(20), "--heartbeat-ms")?;
        raft.election_ticks_min = ticks(self.election_min_ms.unwrap_or(100), "--election-min-ms")?;
        raft.election_ticks_max = ticks(self.election_max_ms.unwrap_or(200), "--election-max-ms")?;
        raft.snapshot_log_entries = self.snapshot_entries.unwrap_or(100_000).max(1);
        raft.follower_reads = self.follower_reads.unwrap_or(true);
        raft.validate().map_err(|e| format!("timeouts: {e}"))?;
        config.runtime.tick = Duration::from_millis(tick);
        config.request_timeout = Duration::from_millis(self.request_timeout_ms.unwrap_or(5000));
        if let Some(n) = self.max_clients {
            config.max_clients = n.max(1);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(id: u64) -> ServeArgs {
        ServeArgs {
            id: Some(id),
            peers: Some("1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003".into()),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let c = args(2).server_config().unwrap();
        assert_eq!(c.id.get(), 2);
        assert_eq!(c.client.port(), 6379);
        assert_eq!(c.data, PathBuf::from("raft-kv-2"));
        assert!(c.fsync);
        assert_eq!(c.runtime.raft.election_ticks_min, 10);
        assert!(
            c.runtime.raft.follower_reads,
            "followers serve reads by default"
        );
        let mut off = args(2);
        off.follower_reads = Some(false);
        assert!(!off.server_config().unwrap().runtime.raft.follower_reads);
    }

    #[test]
    fn missing_and_bad_settings_are_described() {
        let mut a = args(4);
        assert!(
            a.server_config()
                .unwrap_err()
                .contains("does not name this node")
        );
        a.id = None;
        assert!(a.server_config().unwrap_err().contains("--id is required"));
        let mut b = args(1);
        b.election_min_ms = Some(10);
        assert!(b.server_config().unwrap_err().contains("timeouts"));
    }

    #[test]
    fn a_file_fills_in_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 1\npeers = \"1=127.0.0.1:7001\"\nfsync = \"off\"\nclient = \"127.0.0.1:7777\"\n",
        )
        .unwrap();
        let a = ServeArgs {
            config: Some(path.clone()),
            client: Some("127.0.0.1:6400".into()),
            ..ServeArgs::default()
        };
        let c = a.with_file().unwrap().server_config().unwrap();
        assert_eq!(c.id.get(), 1);
        assert!(!c.fsync);
        assert_eq!(c.client.port(), 6400, "the flag wins");
        std::fs::write(&path, "idd = 1\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        }
        .with_file()
        .unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }
}
