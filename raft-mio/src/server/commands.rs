//! The commands `raft-kv` serves: what a request's arguments mean, with Redis's arity rules and
//! error texts (clients and scripts match on them).

use std::net::SocketAddr;

use raft_core::{Change, NodeId};
use raft_std::client::{ClientId, Stamp};
use raft_std::kv::{KvCommand, KvQuery, SetCondition};

use crate::resp::Reply;

/// What a request asks of the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Answered at once with these bytes.
    Now(Vec<u8>),
    /// Answered at once with these bytes; then the connection is closed (`QUIT`).
    Close(Vec<u8>),
    /// A write through the log, stamped by the connection's session unless it carries its own
    /// stamp (`RAFT.ONCE`).
    Write {
        command: KvCommand,
        stamp: Option<Stamp>,
    },
    /// A linearizable read.
    Read(KvQuery),
    /// `RAFT.STALE <read>`: a read of this node's own state, without confirming leadership.
    ReadLocal(KvQuery),
    /// `INFO` with these sections (lowercase; empty for the default set).
    Info(Vec<String>),
    /// `RAFT.MEMBERS`.
    Members,
    /// `RAFT.TRANSFER id`.
    Transfer(NodeId),
    /// `RAFT.PROMOTE id`, `RAFT.REMOVE id`.
    Change(Change),
    /// `RAFT.ADDLEARNER id host:port`: record the address, then add the learner.
    AddLearner { id: NodeId, addr: SocketAddr },
    /// `CLIENT SETNAME name`: answered `+OK` once the name is set.
    SetName(String),
    /// `CLIENT GETNAME`.
    GetName,
    /// `CLIENT ID`.
    ClientId,
    /// `HELLO [2|3] [AUTH user pass] [SETNAME name]`: switch to this protocol version (none:
    /// keep it), name the connection.
    Hello {
        resp3: Option<bool>,
        name: Option<String>,
    },
    /// `CONFIG GET`: these settings, as a map (an array of pairs in RESP2).
    ConfigGet(Vec<(&'static str, String)>),
}

/// What the parser needs to know of the server.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    /// Whether writes are fsynced (`CONFIG GET appendonly`).
    pub(crate) fsync: bool,
    /// `CONFIG GET maxclients`.
    pub(crate) max_clients: usize,
    /// The largest write the log takes, encoded (`Config::max_entry_bytes`).
    pub(crate) max_entry_bytes: usize,
}

fn reply(f: impl FnOnce(&mut Reply<'_>)) -> Command {
    let mut out = Vec::new();
    f(&mut Reply::new(&mut out));
    Command::Now(out)
}

fn error(text: &str) -> Command {
    reply(|r| r.error(text))
}

/// `ERR wrong number of arguments for 'name' command`.
pub(crate) fn arity_error(name: &str) -> Command {
    error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

const SYNTAX: &str = "ERR syntax error";
/// The longest `CONFIG GET` pattern looked at (longer ones match nothing).
const MAX_PATTERN: usize = 256;
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// The command table: name and Redis arity (n: exactly n arguments counting the name; -n: at
/// least n).
const ARITY: &[(&str, i32)] = &[
    ("ping", -1),
    ("echo", 2),
    ("get", 2),
    ("set", -3),
    ("del", -2),
    ("exists", -2),
    ("incr", 2),
    ("decr", 2),
    ("incrby", 3),
    ("decrby", 3),
    ("append", 3),
    ("mget", -2),
    ("mset", -3),
    ("dbsize", 1),
    ("flushdb", -1),
    ("flushall", -1),
    ("info", -1),
    ("config", -2),
    ("client", -2),
    ("command", -1),
    ("hello", -1),
    ("select", 2),
    ("quit", -1),
    ("raft.addlearner", 3),
    ("raft.promote", 2),
    ("raft.remove", 2),
    ("raft.transfer", 2),
    ("raft.members", 1),
    ("raft.once", -5),
    ("raft.stale", -2),
];

const NESTED: &str = "ERR RAFT.ONCE and RAFT.STALE take a plain command, not another RAFT.*";

/// Argument `i` of a request, empty if it has fewer (callers check the arity first).
fn arg(args: &[Vec<u8>], i: usize) -> &[u8] {
    args.get(i).map_or(&[], Vec::as_slice)
}

/// Whether the command in `args` is itself a `RAFT.*` command (which a prefix may not take).
fn nests(args: &[Vec<u8>]) -> bool {
    args.first()
        .is_some_and(|a| a.get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"raft.")))
}

/// The names of the commands served (for `COMMAND COUNT`).
pub(crate) fn command_count() -> usize {
    ARITY.len()
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = i32::try_from(argc).unwrap_or(i32::MAX);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// Parses a decimal `i64` exactly as Redis does (no spaces, no `+`, no leading zeros).
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(bytes).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

fn node_id(bytes: &[u8]) -> Option<NodeId> {
    std::str::from_utf8(bytes)
        .ok()?
        .parse::<u64>()
        .ok()
        .and_then(NodeId::new)
}

/// The `unknown command` error, as Redis words it.
fn unknown_command(args: &[Vec<u8>]) -> Command {
    let mut rest = String::new();
    for a in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let a = String::from_utf8_lossy(a);
        let a: String = a.chars().take(room).collect();
        rest.push_str(&format!("'{a}' "));
    }
    let name: String = String::from_utf8_lossy(arg(args, 0))
        .chars()
        .take(128)
        .collect();
    error(&format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    ))
}

fn unknown_subcommand(sub: &[u8], command: &str) -> Command {
    let sub: String = String::from_utf8_lossy(sub).chars().take(128).collect();
    error(&format!(
        "ERR unknown subcommand '{sub}'. Try {command} HELP."
    ))
}

/// What `args` (a whole request: the command name first) asks.
pub(crate) fn parse(args: Vec<Vec<u8>>, ctx: &Ctx) -> Command {
    let Some(first) = args.first() else {
        return Command::Now(Vec::new());
    };
    let name = String::from_utf8_lossy(first).to_ascii_lowercase();
    let Some(&(name, arity)) = ARITY.iter().find(|(n, _)| *n == name) else {
        return unknown_command(&args);
    };
    if !arity_ok(arity, args.len()) {
        return arity_error(name);
    }
    let mut args = args.into_iter();
    args.next();
    let args: Vec<Vec<u8>> = args.collect();
    parse_known(name, args, ctx)
}

#[allow(clippy::too_many_lines)] // one arm per command: a table, read top to bottom
fn parse_known(name: &str, mut args: Vec<Vec<u8>>, ctx: &Ctx) -> Command {
    let write = |command| Command::Write {
        command,
        stamp: None,
    };
    let take = |args: &mut Vec<Vec<u8>>| -> Vec<u8> {
        if args.is_empty() {
            Vec::new()
        } else {
            args.remove(0)
        }
    };
    match name {
        "ping" => match args.len() {
            0 => reply(|r| r.simple("PONG")),
            1 => reply(|r| r.bulk(Some(arg(&args, 0)))),
            _ => arity_error("ping"),
        },
        "echo" => reply(|r| r.bulk(Some(arg(&args, 0)))),
        "get" => Command::Read(KvQuery::Get {
            key: take(&mut args),
        }),
        "set" => parse_set(args),
        "del" => write(KvCommand::Del { keys: args }),
        "exists" => Command::Read(KvQuery::Exists { keys: args }),
        "incr" | "decr" => write(KvCommand::IncrBy {
            key: take(&mut args),
            delta: if name == "incr" { 1 } else { -1 },
        }),
        "incrby" | "decrby" => {
            let Some(n) = parse_i64(arg(&args, 1)) else {
                return error(NOT_INTEGER);
            };
            let delta = if name == "incrby" {
                n
            } else if let Some(neg) = n.checked_neg() {
                neg
            } else {
                return error("ERR decrement would overflow");
            };
            write(KvCommand::IncrBy {
                key: take(&mut args),
                delta,
            })
        }
        "append" => {
            let key = take(&mut args);
            write(KvCommand::Append {
                key,
                value: take(&mut args),
            })
        }
        "mget" => Command::Read(KvQuery::MGet { keys: args }),
        "mset" => {
            if !args.len().is_multiple_of(2) {
                return arity_error("mset");
            }
            let mut pairs = Vec::with_capacity(args.len() / 2);
            let mut it = args.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            write(KvCommand::MSet { pairs })
        }
        "dbsize" => Command::Read(KvQuery::DbSize),
        "flushdb" | "flushall" => match args.first().map(|a| a.to_ascii_lowercase()) {
            None => write(KvCommand::FlushAll),
            Some(mode) if (mode == b"sync" || mode == b"async") && args.len() == 1 => {
                write(KvCommand::FlushAll)
            }
            Some(_) => error(SYNTAX),
        },
        "info" => Command::Info(
            args.iter()
                .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
                .collect(),
        ),
        "config" => parse_config(&args, ctx),
        "client" => parse_client(&args),
        "command" => parse_command(&args),
        "hello" => parse_hello(&args),
        "select" => match parse_i64(arg(&args, 0)) {
            Some(0) => reply(|r| r.ok()),
            Some(_) => error("ERR DB index is out of range"),
            None => error(NOT_INTEGER),
        },
        "quit" => {
            let mut out = Vec::new();
            Reply::new(&mut out).ok();
            Command::Close(out)
        }
        "raft.addlearner" => {
            let Some(id) = node_id(arg(&args, 0)) else {
                return error("ERR invalid node id");
            };
            // An IP address, not a name: resolving would block every client of this loop.
            match String::from_utf8_lossy(arg(&args, 1)).parse::<SocketAddr>() {
                Ok(addr) => Command::AddLearner { id, addr },
                Err(_) => error("ERR the address must be ip:port"),
            }
        }
        "raft.promote" | "raft.remove" | "raft.transfer" => {
            let Some(id) = node_id(arg(&args, 0)) else {
                return error("ERR invalid node id");
            };
            match name {
                "raft.promote" => Command::Change(Change::AddVoter(id)),
                "raft.remove" => Command::Change(Change::Remove(id)),
                _ => Command::Transfer(id),
            }
        }
        "raft.members" => Command::Members,
        "raft.once" if args.get(3..).is_some_and(nests) => error(NESTED),
        "raft.once" => parse_once(args, ctx),
        "raft.stale" if nests(&args) => error(NESTED),
        "raft.stale" => match parse(args, ctx) {
            Command::Read(query) => Command::ReadLocal(query),
            Command::Now(reply) => Command::Now(reply),
            _ => error("ERR RAFT.STALE takes a read command (GET, MGET, EXISTS, DBSIZE)"),
        },
        _ => unknown_command(&[name.as_bytes().to_vec()]),
    }
}

/// `SET key value [NX | XX] [KEEPTTL]`; expiry options get a clear error.
fn parse_set(mut args: Vec<Vec<u8>>) -> Command {
    let options: Vec<Vec<u8>> = args.drain(2..).collect();
    let mut it = args.into_iter();
    let (Some(key), Some(value)) = (it.next(), it.next()) else {
        return arity_error("set");
    };
    let mut condition = None;
    for option in &options {
        match option.to_ascii_lowercase().as_slice() {
            b"nx" if condition.is_none() => condition = Some(SetCondition::IfAbsent),
            b"xx" if condition.is_none() => condition = Some(SetCondition::IfPresent),
            b"keepttl" => {}
            b"ex" | b"px" | b"exat" | b"pxat" => {
                return error(
                    "ERR SET with EX, PX, EXAT or PXAT is not supported: raft-kv keys do not \
                     expire",
                );
            }
            b"get" => return error("ERR SET with GET is not supported by raft-kv"),
            _ => return error(SYNTAX),
        }
    }
    let command = match condition {
        None => KvCommand::Set { key, value },
        Some(condition) => KvCommand::SetIf {
            key,
            value,
            condition,
        },
    };
    Command::Write {
        command,
        stamp: None,
    }
}

/// `CONFIG GET pattern...`: the few settings clients and benchmarks ask for.
fn parse_config(args: &[Vec<u8>], ctx: &Ctx) -> Command {
    let sub = arg(args, 0).to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if args.len() >= 2 => {
            let settings = [
                ("appendonly", if ctx.fsync { "yes" } else { "no" }),
                ("appendfsync", if ctx.fsync { "always" } else { "no" }),
                ("save", ""),
                ("databases", "1"),
                ("maxclients", &*ctx.max_clients.to_string()),
            ]
            .map(|(k, v)| (k, v.to_owned()));
            let matched = settings
                .into_iter()
                .filter(|(k, _)| {
                    args.iter().skip(1).any(|p| {
                        p.len() <= MAX_PATTERN && glob(&p.to_ascii_lowercase(), k.as_bytes())
                    })
                })
                .collect();
            Command::ConfigGet(matched)
        }
        b"get" => arity_error("config|get"),
        b"set" => error("ERR CONFIG SET is not supported by raft-kv: restart with new flags"),
        b"resetstat" => reply(|r| r.ok()),
        b"help" => reply(|r| {
            r.array(2);
            r.simple("CONFIG GET <pattern>");
            r.simple("CONFIG RESETSTAT");
        }),
        _ => unknown_subcommand(arg(args, 0), "CONFIG"),
    }
}

/// A glob match with `*` and `?` only (enough for `CONFIG GET`): iterative, in time linear in
/// the pattern times the text, whatever the pattern (a recursive one is exponential in its stars).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last star was, and the text position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star take one more byte, and go on from there.
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`. There is no password to
/// check: AUTH is accepted and ignored, as by a Redis without `requirepass`.
fn parse_hello(args: &[Vec<u8>]) -> Command {
    let mut it = args.iter();
    let resp3 = match it.next() {
        None => None,
        Some(v) => match parse_i64(v) {
            Some(2) => Some(false),
            Some(3) => Some(true),
            Some(_) => return error("NOPROTO unsupported protocol version"),
            None => return error("ERR Protocol version is not an integer or out of range"),
        },
    };
    let mut name = None;
    while let Some(option) = it.next() {
        match option.to_ascii_lowercase().as_slice() {
            b"auth" => {
                if it.next().is_none() || it.next().is_none() {
                    return error(SYNTAX);
                }
            }
            b"setname" => match it.next() {
                Some(n) => name = Some(String::from_utf8_lossy(n).into_owned()),
                None => return error(SYNTAX),
            },
            _ => return error(SYNTAX),
        }
    }
    Command::Hello { resp3, name }
}

fn parse_client(args: &[Vec<u8>]) -> Command {
    let sub = arg(args, 0).to_ascii_lowercase();
    match sub.as_slice() {
        b"setname" if args.len() == 2 => {
            let name = String::from_utf8_lossy(arg(args, 1)).into_owned();
            if name.bytes().any(|b| b <= b' ' || b > b'~') {
                error("ERR Client names cannot contain spaces, newlines or special characters.")
            } else {
                Command::SetName(name)
            }
        }
        b"setname" => arity_error("client|setname"),
        b"getname" => Command::GetName,
        b"id" => Command::ClientId,
        b"setinfo" if args.len() == 3 => reply(|r| r.ok()),
        b"setinfo" => arity_error("client|setinfo"),
        b"help" => reply(|r| {
            r.array(4);
            for line in [
                "CLIENT SETNAME <name>",
                "CLIENT GETNAME",
                "CLIENT ID",
                "CLIENT SETINFO <attr> <value>",
            ] {
                r.simple(line);
            }
        }),
        _ => unknown_subcommand(arg(args, 0), "CLIENT"),
    }
}

fn parse_command(args: &[Vec<u8>]) -> Command {
    match args.first().map(|a| a.to_ascii_lowercase()) {
        // No command table: clients that ask (redis-cli for its hints) do without.
        None => reply(|r| r.array(0)),
        Some(sub) if sub == b"docs" || sub == b"info" => reply(|r| r.array(0)),
        Some(sub) if sub == b"count" => reply(|r| {
            r.integer(i64::try_from(command_count()).unwrap_or(i64::MAX));
        }),
        Some(_) => unknown_subcommand(arg(args, 0), "COMMAND"),
    }
}

/// `RAFT.ONCE client seq ack command args...`: a write with the client's own stamp, so that it
/// can retry it, even through another server, and have it applied once.
fn parse_once(mut args: Vec<Vec<u8>>, ctx: &Ctx) -> Command {
    let stamp_args = args.len().min(3);
    let nums: Vec<Option<u64>> = args
        .drain(..stamp_args)
        .map(|a| std::str::from_utf8(&a).ok().and_then(|s| s.parse().ok()))
        .collect();
    let [Some(client), Some(seq), Some(ack)] = nums[..] else {
        return error(NOT_INTEGER);
    };
    if client == 0 || seq == 0 {
        return error("ERR RAFT.ONCE needs a client id and a sequence number from 1");
    }
    match parse(args, ctx) {
        Command::Write { command, .. } => Command::Write {
            command,
            stamp: Some(ClientId(client).stamp(seq, ack.min(seq))),
        },
        Command::Now(reply) => Command::Now(reply),
        _ => error("ERR RAFT.ONCE takes a write command (SET, DEL, INCR, ...)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx {
            fsync: true,
            max_clients: 10_000,
            max_entry_bytes: 8 << 20,
        }
    }

    fn run(words: &[&str]) -> Command {
        parse(
            words.iter().map(|w| w.as_bytes().to_vec()).collect(),
            &ctx(),
        )
    }

    fn err(words: &[&str]) -> String {
        match run(words) {
            Command::Now(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("{words:?}: expected an immediate reply, got {other:?}"),
        }
    }

    #[test]
    fn errors_are_worded_as_redis_words_them() {
        assert_eq!(
            err(&["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            err(&["foo", "a", "b"]),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            err(&["nope"]),
            "-ERR unknown command 'nope', with args beginning with: \r\n"
        );
        assert_eq!(
            err(&["INCRBY", "k", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(err(&["SELECT", "1"]), "-ERR DB index is out of range\r\n");
        assert_eq!(err(&["SELECT", "0"]), "+OK\r\n");
        assert_eq!(
            err(&["CONFIG", "FOO"]),
            "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n"
        );
        assert_eq!(err(&["SET", "k", "v", "BAD"]), "-ERR syntax error\r\n");
        assert_eq!(
            err(&["MSET", "a", "1", "b"]),
            "-ERR wrong number of arguments for 'mset' command\r\n"
        );
        assert!(err(&["HELLO", "4"]).starts_with("-NOPROTO"));
        assert_eq!(
            run(&["HELLO", "3", "AUTH", "u", "p", "SETNAME", "me"]),
            Command::Hello {
                resp3: Some(true),
                name: Some("me".into())
            }
        );
        assert!(err(&["SET", "k", "v", "EX", "10"]).contains("do not expire"));
        assert_eq!(
            err(&["DECRBY", "k", "-9223372036854775808"]),
            "-ERR decrement would overflow\r\n"
        );
    }

    #[test]
    fn commands_parse_into_writes_and_reads() {
        assert_eq!(
            run(&["set", "k", "v", "nx"]),
            Command::Write {
                command: KvCommand::SetIf {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    condition: SetCondition::IfAbsent
                },
                stamp: None
            }
        );
        assert_eq!(
            run(&["DECRBY", "k", "5"]),
            Command::Write {
                command: KvCommand::IncrBy {
                    key: b"k".to_vec(),
                    delta: -5
                },
                stamp: None
            }
        );
        assert_eq!(run(&["dbsize"]), Command::Read(KvQuery::DbSize));
        assert_eq!(
            run(&["RAFT.ONCE", "7", "3", "2", "INCR", "c"]),
            Command::Write {
                command: KvCommand::incr("c"),
                stamp: Some(ClientId(7).stamp(3, 2))
            }
        );
        assert_eq!(err(&["PING"]), "+PONG\r\n");
        assert_eq!(err(&["PING", "hi"]), "$2\r\nhi\r\n");
        assert!(matches!(run(&["QUIT"]), Command::Close(_)));
    }

    #[test]
    fn prefixes_do_not_nest() {
        assert!(err(&["RAFT.STALE", "RAFT.STALE", "GET", "k"]).contains("not another RAFT"));
        assert!(
            err(&[
                "RAFT.ONCE",
                "1",
                "1",
                "1",
                "raft.once",
                "1",
                "1",
                "1",
                "INCR",
                "c"
            ])
            .contains("not another RAFT")
        );
        // Deep nesting answers at once instead of recursing.
        let mut deep = vec!["raft.stale"; 100_000];
        deep.extend(["GET", "k"]);
        assert!(err(&deep).contains("not another RAFT"));
    }

    #[test]
    fn glob_is_linear_in_the_stars() {
        let stars = "*".repeat(200) + "x";
        let t = std::time::Instant::now();
        assert!(!glob(stars.as_bytes(), b"appendfsync"));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert!(glob(b"a*f*c", b"appendfsync"));
        assert!(glob(b"*sync", b"appendfsync"));
        assert!(!glob(b"*syn", b"appendfsync"));
        assert!(glob(b"**", b""));
    }

    #[test]
    fn config_get_matches_globs() {
        let Command::ConfigGet(found) = run(&["CONFIG", "GET", "append*"]) else {
            panic!("not a CONFIG GET");
        };
        assert_eq!(found.len(), 2);
        assert_eq!(
            run(&["CONFIG", "GET", "nothing"]),
            Command::ConfigGet(vec![])
        );
        assert!(glob(b"*", b"save"));
        assert!(glob(b"s?ve", b"save"));
        assert!(!glob(b"s?ve", b"sve"));
    }
}
