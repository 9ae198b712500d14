use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use raft_core::Index;
use raft_core::sim::SimRng;

use super::*;

/// One of `items`, chosen by `rng`.
fn pick<'a, T>(rng: &mut SimRng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

/// A store and the next log index to apply at.
struct Node {
    store: KvStore,
    index: u64,
}

impl Node {
    fn new(config: KvConfig) -> Self {
        Self {
            store: KvStore::new(config),
            index: 0,
        }
    }

    fn apply_bytes(&mut self, bytes: &[u8]) -> KvResponse {
        self.index += 1;
        self.store.apply(Index(self.index), bytes)
    }

    fn apply(&mut self, client: u64, seq: u64, command: KvCommand) -> KvResponse {
        self.apply_bytes(&KvRequest::new(ClientId(client), seq, command).encode())
    }

    /// A write without deduplication.
    fn run(&mut self, command: KvCommand) -> KvResponse {
        self.apply(0, 0, command)
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.store.get(key.as_bytes()).map(<[u8]>::to_vec)
    }
}

fn node() -> Node {
    Node::new(KvConfig::default())
}

fn snapshot_of(store: &KvStore) -> Vec<u8> {
    let mut out = Vec::new();
    store.snapshot(&mut out).unwrap();
    out
}

fn restored(config: KvConfig, bytes: &[u8]) -> io::Result<KvStore> {
    let mut store = KvStore::new(config);
    store.restore(&mut &bytes[..])?;
    Ok(store)
}

fn keys(keys: &[&str]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.as_bytes().to_vec()).collect()
}

fn value(v: &str) -> KvResponse {
    KvResponse::Value(Some(v.as_bytes().to_vec()))
}

fn append(key: &str, v: &str) -> KvCommand {
    KvCommand::Append {
        key: key.into(),
        value: v.into(),
    }
}

fn incr_by(key: &str, delta: i64) -> KvCommand {
    KvCommand::IncrBy {
        key: key.into(),
        delta,
    }
}

fn del(k: &[&str]) -> KvCommand {
    KvCommand::Del { keys: keys(k) }
}

const ERR_INT: KvResponse = KvResponse::Error(KvError::NotAnInteger);

// ---------------------------------------------------------------------------------------------
// Command semantics

#[test]
fn set_then_get_and_overwrite() {
    let mut n = node();
    assert_eq!(n.run(KvCommand::set("k", "v1")), KvResponse::Ok);
    assert_eq!(n.store.query(&KvQuery::get("k")), value("v1"));
    assert_eq!(n.run(KvCommand::set("k", "longer")), KvResponse::Ok);
    assert_eq!(n.get("k"), Some(b"longer".to_vec()));
    assert_eq!(
        n.store.query(&KvQuery::get("missing")),
        KvResponse::Value(None)
    );
    assert_eq!(n.store.len(), 1);
    assert_eq!(n.store.bytes_used(), 1 + 6);
    // Empty keys and values are allowed, as in Redis.
    assert_eq!(n.run(KvCommand::set("", "")), KvResponse::Ok);
    assert_eq!(n.store.query(&KvQuery::get("")), value(""));
    assert_eq!(n.store.len(), 2);
}

#[test]
fn del_counts_existing_keys_once_each() {
    let mut n = node();
    n.run(KvCommand::set("a", "1"));
    n.run(KvCommand::set("b", "22"));
    assert_eq!(n.run(del(&["a", "a", "missing"])), KvResponse::Integer(1));
    assert_eq!(n.run(del(&["a"])), KvResponse::Integer(0));
    assert_eq!(n.run(del(&[])), KvResponse::Integer(0));
    assert_eq!(n.store.len(), 1);
    assert_eq!(n.store.bytes_used(), 3);
    assert_eq!(n.run(del(&["b"])), KvResponse::Integer(1));
    assert!(n.store.is_empty());
    assert_eq!(n.store.bytes_used(), 0);
}

#[test]
fn incr_starts_missing_keys_at_zero() {
    let mut n = node();
    assert_eq!(n.run(KvCommand::incr("c")), KvResponse::Integer(1));
    assert_eq!(n.run(KvCommand::incr("c")), KvResponse::Integer(2));
    assert_eq!(n.run(incr_by("c", -10)), KvResponse::Integer(-8));
    assert_eq!(n.get("c"), Some(b"-8".to_vec()));
    assert_eq!(n.run(incr_by("d", 0)), KvResponse::Integer(0));
    assert_eq!(n.get("d"), Some(b"0".to_vec()));
}

#[test]
fn incr_accepts_only_canonical_integers_like_redis() {
    let mut n = node();
    for bad in [
        "",
        "abc",
        "1.5",
        " 1",
        "1 ",
        "+1",
        "007",
        "-0",
        "-",
        "--1",
        "0x10",
        "1e3",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
    ] {
        n.run(KvCommand::set("k", bad));
        assert_eq!(n.run(KvCommand::incr("k")), ERR_INT, "{bad:?}");
        assert_eq!(
            n.get("k"),
            Some(bad.as_bytes().to_vec()),
            "unchanged after {bad:?}"
        );
    }
    for (good, n0) in [
        ("0", 0),
        ("-1", -1),
        ("42", 42),
        ("9223372036854775806", i64::MAX - 1),
        ("-9223372036854775808", i64::MIN),
    ] {
        n.run(KvCommand::set("k", good));
        assert_eq!(
            n.run(KvCommand::incr("k")),
            KvResponse::Integer(n0 + 1),
            "{good:?}"
        );
    }
    n.run(KvCommand::set("bin", [0xff_u8, 0x31]));
    assert_eq!(n.run(KvCommand::incr("bin")), ERR_INT);
}

#[test]
fn incr_overflow_is_an_error_and_changes_nothing() {
    let mut n = node();
    n.run(KvCommand::set("k", i64::MAX.to_string()));
    assert_eq!(
        n.run(KvCommand::incr("k")),
        KvResponse::Error(KvError::Overflow)
    );
    assert_eq!(n.get("k"), Some(i64::MAX.to_string().into_bytes()));
    assert_eq!(n.run(incr_by("m", i64::MIN)), KvResponse::Integer(i64::MIN));
    assert_eq!(
        n.run(incr_by("m", -1)),
        KvResponse::Error(KvError::Overflow)
    );
    assert_eq!(
        KvError::NotAnInteger.message(),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn append_creates_and_returns_new_length() {
    let mut n = node();
    assert_eq!(n.run(append("a", "Hello")), KvResponse::Integer(5));
    assert_eq!(n.run(append("a", " World")), KvResponse::Integer(11));
    assert_eq!(n.get("a"), Some(b"Hello World".to_vec()));
    assert_eq!(n.run(append("a", "")), KvResponse::Integer(11));
    assert_eq!(n.run(append("e", "")), KvResponse::Integer(0));
    assert_eq!(
        n.get("e"),
        Some(Vec::new()),
        "APPEND of nothing still creates the key"
    );
    assert_eq!(n.store.bytes_used(), 1 + 11 + 1);
    // An appended counter is still a counter.
    n.run(KvCommand::set("c", "1"));
    n.run(append("c", "0"));
    assert_eq!(n.run(KvCommand::incr("c")), KvResponse::Integer(11));
}

#[test]
fn mset_sets_all_in_order_and_queries_read_them() {
    let mut n = node();
    let pairs = vec![
        (b"a".to_vec(), b"1".to_vec()),
        (b"b".to_vec(), b"2".to_vec()),
        (b"a".to_vec(), b"3".to_vec()),
    ];
    assert_eq!(n.run(KvCommand::MSet { pairs }), KvResponse::Ok);
    assert_eq!(n.get("a"), Some(b"3".to_vec()));
    assert_eq!(n.store.bytes_used(), 4);
    assert_eq!(
        n.store.query(&KvQuery::MGet {
            keys: keys(&["a", "x", "b"])
        }),
        KvResponse::Values(vec![Some(b"3".to_vec()), None, Some(b"2".to_vec())])
    );
    assert_eq!(
        n.store.query(&KvQuery::Exists {
            keys: keys(&["a", "a", "x", "b"])
        }),
        KvResponse::Integer(3),
        "EXISTS counts a repeated key each time"
    );
    assert_eq!(n.store.query(&KvQuery::DbSize), KvResponse::Integer(2));
    assert_eq!(n.run(KvCommand::MSet { pairs: vec![] }), KvResponse::Ok);
}

#[test]
fn reads_through_the_log_answer_like_queries() {
    let mut n = node();
    n.run(KvCommand::set("k", "v"));
    for q in [
        KvQuery::get("k"),
        KvQuery::MGet {
            keys: keys(&["k", "z"]),
        },
        KvQuery::Exists { keys: keys(&["k"]) },
        KvQuery::DbSize,
    ] {
        let direct = n.store.query(&q);
        assert_eq!(n.apply(9, 5, KvCommand::Read(q)), direct);
    }
    assert!(KvCommand::Read(KvQuery::DbSize).is_read());
    assert!(!KvCommand::incr("k").is_read());
    // Reads neither create nor consult sessions.
    assert_eq!(n.store.sessions(), 0);
}

#[test]
fn size_limits_reject_without_changing_anything() {
    let config = KvConfig {
        max_key_len: 4,
        max_value_len: 8,
        ..KvConfig::default()
    };
    let mut n = Node::new(config);
    let key_err = KvResponse::Error(KvError::KeyTooLarge);
    let value_err = KvResponse::Error(KvError::ValueTooLarge);
    assert_eq!(n.run(KvCommand::set("kkkk", "vvvvvvvv")), KvResponse::Ok);
    assert_eq!(n.run(KvCommand::set("kkkkk", "v")), key_err);
    assert_eq!(n.run(KvCommand::set("k", "vvvvvvvvv")), value_err);
    assert_eq!(n.run(KvCommand::incr("kkkkk")), key_err);
    assert_eq!(n.run(append("kkkkk", "")), key_err);
    assert_eq!(n.run(append("kkkk", "x")), value_err);
    let pairs = vec![
        (b"a".to_vec(), b"1".to_vec()),
        (b"b".to_vec(), b"123456789".to_vec()),
    ];
    assert_eq!(n.run(KvCommand::MSet { pairs }), value_err);
    assert_eq!(n.get("a"), None, "MSET is all or nothing");
    // A counter that would outgrow the value limit.
    n.run(KvCommand::set("c", "9999999"));
    assert_eq!(n.run(KvCommand::incr("c")), KvResponse::Integer(10_000_000));
    assert_eq!(n.run(KvCommand::incr("c")), KvResponse::Integer(10_000_001));
    n.run(KvCommand::set("c", "99999999"));
    assert_eq!(n.run(KvCommand::incr("c")), value_err);
    assert_eq!(n.store.len(), 2);
    assert_eq!(n.store.bytes_used(), 4 + 8 + 1 + 8);
}

// ---------------------------------------------------------------------------------------------
// Exactly-once

#[test]
fn retried_incr_is_applied_once() {
    let mut n = node();
    assert_eq!(n.apply(7, 1, KvCommand::incr("c")), KvResponse::Integer(1));
    assert_eq!(n.apply(7, 1, KvCommand::incr("c")), KvResponse::Integer(1));
    // Other clients write in between; the retry still gets the saved answer.
    assert_eq!(n.apply(8, 1, KvCommand::incr("c")), KvResponse::Integer(2));
    assert_eq!(n.apply(7, 1, KvCommand::incr("c")), KvResponse::Integer(1));
    assert_eq!(n.get("c"), Some(b"2".to_vec()));
    assert_eq!(n.apply(7, 2, KvCommand::incr("c")), KvResponse::Integer(3));
    assert_eq!(n.apply(7, 2, KvCommand::incr("c")), KvResponse::Integer(3));
    assert_eq!(n.get("c"), Some(b"3".to_vec()));
    assert_eq!(n.store.sessions(), 2);
}

#[test]
fn a_retry_is_answered_from_the_session_even_if_its_command_differs() {
    // The session keys on (client, seq): a client that reuses a seq for another command is
    // answered as a retry. Documented behaviour, pinned here.
    let mut n = node();
    assert_eq!(n.apply(1, 1, KvCommand::set("a", "1")), KvResponse::Ok);
    assert_eq!(n.apply(1, 1, KvCommand::incr("b")), KvResponse::Ok);
    assert_eq!(n.get("b"), None);
}

#[test]
fn retried_errors_are_answered_the_same() {
    let mut n = node();
    n.run(KvCommand::set("s", "text"));
    assert_eq!(n.apply(3, 1, KvCommand::incr("s")), ERR_INT);
    n.run(KvCommand::set("s", "5"));
    assert_eq!(
        n.apply(3, 1, KvCommand::incr("s")),
        ERR_INT,
        "saved, not re-run"
    );
    assert_eq!(n.get("s"), Some(b"5".to_vec()));
}

#[test]
fn older_sequence_numbers_are_stale() {
    let mut n = node();
    assert_eq!(n.apply(1, 1, KvCommand::incr("c")), KvResponse::Integer(1));
    assert_eq!(
        n.apply(1, 5, KvCommand::incr("c")),
        KvResponse::Integer(2),
        "gaps are fine"
    );
    let stale = KvResponse::Error(KvError::StaleSequence);
    assert_eq!(n.apply(1, 1, KvCommand::incr("c")), stale);
    assert_eq!(n.apply(1, 4, KvCommand::incr("c")), stale);
    assert_eq!(n.get("c"), Some(b"2".to_vec()));
    assert_eq!(n.apply(1, 5, KvCommand::incr("c")), KvResponse::Integer(2));
}

/// Applies `command` as client `client`'s write `seq`, with `ack`.
fn stamped(n: &mut Node, client: u64, seq: u64, ack: u64, command: KvCommand) -> KvResponse {
    let request = KvRequest::stamped(ClientId(client).stamp(seq, ack), command);
    n.apply_bytes(&request.encode())
}

#[test]
fn overlapping_writes_are_each_answered_once_in_any_order() {
    // A pipelining client: writes 1 to 4 in flight at once (ack 1), committed out of order,
    // then each retried (out of order again): every retry is answered from the session.
    let mut n = node();
    for seq in [2, 1, 4, 3] {
        let r = stamped(&mut n, 7, seq, 1, KvCommand::incr("c"));
        assert!(matches!(r, KvResponse::Integer(_)), "{r:?}");
    }
    assert_eq!(n.get("c"), Some(b"4".to_vec()));
    let first: Vec<KvResponse> = [1, 2, 3, 4]
        .iter()
        .map(|&seq| stamped(&mut n, 7, seq, 1, KvCommand::incr("c")))
        .collect();
    assert_eq!(
        first,
        [2, 1, 4, 3].map(KvResponse::Integer),
        "each retry gets its own write's answer"
    );
    assert_eq!(n.get("c"), Some(b"4".to_vec()), "nothing applied twice");
}

#[test]
fn acknowledged_responses_are_forgotten_and_their_retries_are_stale() {
    let mut n = node();
    for seq in 1..=3 {
        stamped(&mut n, 7, seq, 1, KvCommand::incr("c"));
    }
    // The client heard back from 1 and 2: its next write says so.
    assert_eq!(
        stamped(&mut n, 7, 4, 3, KvCommand::incr("c")),
        KvResponse::Integer(4)
    );
    let stale = KvResponse::Error(KvError::StaleSequence);
    assert_eq!(stamped(&mut n, 7, 2, 1, KvCommand::incr("c")), stale);
    assert_eq!(
        stamped(&mut n, 7, 3, 3, KvCommand::incr("c")),
        KvResponse::Integer(3),
        "3 is still kept"
    );
    assert_eq!(n.get("c"), Some(b"4".to_vec()));
}

#[test]
fn an_ack_above_the_seq_is_taken_as_the_seq() {
    let mut n = node();
    stamped(&mut n, 7, 1, 1, KvCommand::incr("c"));
    // Nonsense from a client (ack 9 on write 2) must not forget write 2's own response.
    assert_eq!(
        stamped(&mut n, 7, 2, 9, KvCommand::incr("c")),
        KvResponse::Integer(2)
    );
    assert_eq!(
        stamped(&mut n, 7, 2, 2, KvCommand::incr("c")),
        KvResponse::Integer(2)
    );
}

#[test]
fn a_session_keeps_at_most_its_cap_of_responses() {
    let mut n = Node::new(KvConfig {
        max_responses_per_session: 3,
        ..KvConfig::default()
    });
    for seq in 1..=5 {
        stamped(&mut n, 7, seq, 1, KvCommand::incr("c"));
    }
    let stale = KvResponse::Error(KvError::StaleSequence);
    assert_eq!(stamped(&mut n, 7, 2, 1, KvCommand::incr("c")), stale);
    assert_eq!(
        stamped(&mut n, 7, 3, 1, KvCommand::incr("c")),
        KvResponse::Integer(3)
    );
    assert_eq!(n.get("c"), Some(b"5".to_vec()));
}

#[test]
fn a_first_write_is_recognised_by_its_ack_not_its_seq() {
    let mut n = node();
    // Write 2 of a new client commits before write 1: both are its first (ack 1).
    assert_eq!(
        stamped(&mut n, 7, 2, 1, KvCommand::incr("c")),
        KvResponse::Integer(1)
    );
    assert_eq!(
        stamped(&mut n, 7, 1, 1, KvCommand::incr("c")),
        KvResponse::Integer(2)
    );
    // A client that heard back before, without a session here: expired.
    assert_eq!(
        stamped(&mut n, 8, 5, 4, KvCommand::incr("c")),
        KvResponse::Error(KvError::SessionExpired)
    );
}

#[test]
fn sessions_with_many_responses_survive_a_snapshot() {
    let mut n = node();
    for seq in [3, 1, 2] {
        stamped(&mut n, 7, seq, 1, KvCommand::incr("c"));
    }
    stamped(&mut n, 9, 1, 1, KvCommand::set("k", "v"));
    let snap = snapshot_of(&n.store);
    let back = restored(KvConfig::default(), &snap).unwrap();
    assert_eq!(back.sessions, n.store.sessions);
    assert_eq!(back.lru, n.store.lru);
    let mut m = Node {
        store: back,
        index: n.index,
    };
    assert_eq!(
        stamped(&mut m, 7, 1, 1, KvCommand::incr("c")),
        KvResponse::Integer(2)
    );
    assert_eq!(m.get("c"), Some(b"3".to_vec()));
}

#[test]
fn set_nx_and_xx_set_only_when_absent_or_present() {
    let mut n = node();
    let nx = |k: &str, v: &str| KvCommand::SetIf {
        key: k.into(),
        value: v.into(),
        condition: SetCondition::IfAbsent,
    };
    let xx = |k: &str, v: &str| KvCommand::SetIf {
        key: k.into(),
        value: v.into(),
        condition: SetCondition::IfPresent,
    };
    assert_eq!(n.run(xx("k", "1")), KvResponse::Value(None));
    assert_eq!(n.get("k"), None);
    assert_eq!(n.run(nx("k", "1")), KvResponse::Ok);
    assert_eq!(n.run(nx("k", "2")), KvResponse::Value(None));
    assert_eq!(n.get("k"), Some(b"1".to_vec()));
    assert_eq!(n.run(xx("k", "3")), KvResponse::Ok);
    assert_eq!(n.get("k"), Some(b"3".to_vec()));
    // A retried conditional write that did not happen is answered the same, from the session.
    assert_eq!(n.apply(4, 1, nx("k", "9")), KvResponse::Value(None));
    n.run(KvCommand::Del {
        keys: vec![b"k".to_vec()],
    });
    assert_eq!(n.apply(4, 1, nx("k", "9")), KvResponse::Value(None));
    assert_eq!(n.get("k"), None);
    let snap = snapshot_of(&n.store);
    let back = restored(KvConfig::default(), &snap).unwrap();
    assert_eq!(
        back.sessions, n.store.sessions,
        "a saved nil survives a snapshot"
    );
}

#[test]
fn flushall_removes_every_key_and_keeps_sessions_and_peers() {
    let mut n = node();
    n.apply(1, 1, KvCommand::set("a", "1"));
    n.run(KvCommand::SetPeer {
        id: 4,
        addr: Some("127.0.0.1:7004".into()),
    });
    assert_eq!(n.run(KvCommand::FlushAll), KvResponse::Ok);
    assert!(n.store.is_empty());
    assert_eq!(n.store.bytes_used(), 0);
    assert_eq!(n.store.sessions(), 1);
    assert_eq!(
        n.store.peers().get(&4).map(String::as_str),
        Some("127.0.0.1:7004")
    );
    assert_eq!(n.apply(1, 1, KvCommand::set("a", "1")), KvResponse::Ok);
    assert!(n.store.is_empty(), "a retry is answered, not applied");
}

#[test]
fn peer_addresses_are_set_forgotten_and_snapshotted() {
    let mut n = node();
    for (id, addr) in [(5, "h5:1"), (4, "h4:1"), (6, "h6:1")] {
        n.run(KvCommand::SetPeer {
            id,
            addr: Some(addr.into()),
        });
    }
    n.run(KvCommand::SetPeer { id: 6, addr: None });
    let snap = snapshot_of(&n.store);
    let back = restored(KvConfig::default(), &snap).unwrap();
    assert_eq!(back.peers(), n.store.peers());
    assert_eq!(back.peers().keys().copied().collect::<Vec<_>>(), [4, 5]);
}

#[test]
fn seq_zero_applies_every_time_and_keeps_no_session() {
    let mut n = node();
    for i in 1..=3 {
        assert_eq!(n.apply(4, 0, KvCommand::incr("c")), KvResponse::Integer(i));
    }
    assert_eq!(n.store.sessions(), 0);
    // Seq 0 does not disturb a session the same client id holds.
    assert_eq!(n.apply(4, 1, KvCommand::incr("c")), KvResponse::Integer(4));
    assert_eq!(n.apply(4, 0, KvCommand::incr("c")), KvResponse::Integer(5));
    assert_eq!(n.apply(4, 1, KvCommand::incr("c")), KvResponse::Integer(4));
}

#[test]
fn unknown_client_past_its_first_write_is_expired() {
    let mut n = node();
    assert_eq!(
        n.apply(9, 2, KvCommand::incr("c")),
        KvResponse::Error(KvError::SessionExpired)
    );
    assert_eq!(n.get("c"), None);
    assert_eq!(n.store.sessions(), 0);
}

#[test]
fn evicts_the_least_recently_used_session_by_log_index() {
    let config = KvConfig {
        max_sessions: 3,
        ..KvConfig::default()
    };
    let mut n = Node::new(config);
    for client in 1..=3 {
        n.apply(client, 1, KvCommand::incr("c"));
    }
    // Client 1 retries: now client 2 is the least recently used.
    assert_eq!(n.apply(1, 1, KvCommand::incr("c")), KvResponse::Integer(1));
    n.apply(4, 1, KvCommand::incr("c"));
    assert_eq!(n.store.sessions(), 3);
    let expired = KvResponse::Error(KvError::SessionExpired);
    assert_eq!(n.apply(2, 2, KvCommand::incr("c")), expired);
    assert_eq!(n.apply(1, 2, KvCommand::incr("c")), KvResponse::Integer(5));
    assert_eq!(n.apply(3, 2, KvCommand::incr("c")), KvResponse::Integer(6));
    // A new write also counts as use: 4 is now the oldest.
    n.apply(5, 1, KvCommand::incr("c"));
    assert_eq!(n.apply(4, 2, KvCommand::incr("c")), expired);
    assert_eq!(n.get("c"), Some(b"7".to_vec()));
}

#[test]
fn zero_session_cap_counts_as_one() {
    let mut n = Node::new(KvConfig {
        max_sessions: 0,
        ..KvConfig::default()
    });
    assert_eq!(n.apply(1, 1, KvCommand::incr("c")), KvResponse::Integer(1));
    assert_eq!(n.apply(1, 1, KvCommand::incr("c")), KvResponse::Integer(1));
    assert_eq!(n.apply(1, 2, KvCommand::incr("c")), KvResponse::Integer(2));
    assert_eq!(n.store.sessions(), 1);
}

/// A random log of requests from `clients` clients, with retries, stale and seq-0 writes,
/// and now and then garbage.
fn random_log(rng: &mut SimRng, len: usize, clients: u64) -> Vec<Vec<u8>> {
    let key_pool = ["a", "b", "c", "counter", "long-key", ""];
    let value_pool = ["", "1", "-7", "x", "007", "9223372036854775807", "hello"];
    let mut next_seq: HashMap<u64, u64> = HashMap::new();
    let mut log = Vec::with_capacity(len);
    for _ in 0..len {
        let key = pick(rng, &key_pool).as_bytes().to_vec();
        let val = pick(rng, &value_pool).as_bytes().to_vec();
        let command = match rng.below(12) {
            0 => KvCommand::Set { key, value: val },
            1 => KvCommand::Del {
                keys: vec![key, pick(rng, &key_pool).as_bytes().to_vec()],
            },
            2 | 3 => KvCommand::IncrBy {
                key,
                delta: *pick(rng, &[1, -1, 5, i64::MAX, i64::MIN]),
            },
            4 => KvCommand::Append { key, value: val },
            5 => KvCommand::MSet {
                pairs: vec![
                    (key, val),
                    (pick(rng, &key_pool).as_bytes().to_vec(), b"2".to_vec()),
                ],
            },
            6 => KvCommand::Read(KvQuery::MGet {
                keys: vec![key, pick(rng, &key_pool).as_bytes().to_vec()],
            }),
            7 => KvCommand::Read(KvQuery::Exists { keys: vec![key] }),
            9 | 10 => KvCommand::SetIf {
                key,
                value: val,
                condition: *pick(rng, &[SetCondition::IfAbsent, SetCondition::IfPresent]),
            },
            11 if rng.below(4) == 0 => KvCommand::FlushAll,
            _ => KvCommand::Read(KvQuery::DbSize),
        };
        let client = rng.below(clients) + 1;
        let next = next_seq.entry(client).or_insert(1);
        let seq = match rng.below(10) {
            0 => 0,
            1 => next.saturating_sub(1), // a retry of the last write
            2 => next.saturating_sub(2), // stale (or 0)
            3 => *next + 1,              // a gap (or, first, an unknown client)
            _ => *next,
        };
        if seq >= *next {
            *next = seq + 1;
        }
        let mut bytes = KvRequest::new(ClientId(client), seq, command).encode();
        if rng.below(50) == 0 {
            bytes.truncate(rng.below(bytes.len() as u64) as usize);
        }
        log.push(bytes);
    }
    log
}

#[test]
fn replicas_applying_the_same_log_end_byte_identical() {
    let config = KvConfig {
        max_key_len: 6,
        max_value_len: 24,
        max_sessions: 5,
        ..KvConfig::default()
    };
    for seed in 0..20 {
        let mut rng = SimRng::new(seed);
        let log = random_log(&mut rng, 2_000, 12);
        let mut a = Node::new(config);
        let mut b = Node::new(config);
        // A third replica restores a mid-way snapshot of `a` and catches up from there.
        let mut c = Node::new(config);
        let half = log.len() / 2;
        for (i, entry) in log.iter().enumerate() {
            let response = a.apply_bytes(entry);
            assert_eq!(b.apply_bytes(entry), response, "seed {seed} entry {i}");
            if i > half {
                assert_eq!(c.apply_bytes(entry), response, "seed {seed} entry {i}");
            } else if i == half {
                c.store = restored(config, &snapshot_of(&a.store)).unwrap();
                c.index = a.index;
            }
        }
        assert!(a.store.sessions() <= 5);
        let snap = snapshot_of(&a.store);
        assert_eq!(snap, snapshot_of(&b.store), "seed {seed}");
        assert_eq!(snap, snapshot_of(&c.store), "seed {seed}");
    }
}

// ---------------------------------------------------------------------------------------------
// A simple model, checked against the store on random logs

/// The store's semantics written the obvious way: no eviction, integers checked by
/// round-tripping through `i64`'s own formatting.
#[derive(Default)]
struct Model {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    sessions: HashMap<u64, (u64, KvResponse)>,
    max_key_len: usize,
    max_value_len: usize,
}

impl Model {
    fn int(value: &[u8]) -> Option<i64> {
        let s = std::str::from_utf8(value).ok()?;
        let n: i64 = s.parse().ok()?;
        (n.to_string() == s).then_some(n)
    }

    fn read(&self, query: &KvQuery) -> KvResponse {
        match query {
            KvQuery::Get { key } => KvResponse::Value(self.data.get(key).cloned()),
            KvQuery::MGet { keys } => {
                KvResponse::Values(keys.iter().map(|k| self.data.get(k).cloned()).collect())
            }
            KvQuery::Exists { keys } => KvResponse::Integer(
                keys.iter().filter(|k| self.data.contains_key(*k)).count() as i64,
            ),
            KvQuery::DbSize => KvResponse::Integer(self.data.len() as i64),
        }
    }

    fn run(&mut self, command: &KvCommand) -> KvResponse {
        let too_big = |m: &Self, k: &[u8], v: usize| {
            if k.len() > m.max_key_len {
                Some(KvResponse::Error(KvError::KeyTooLarge))
            } else if v > m.max_value_len {
                Some(KvResponse::Error(KvError::ValueTooLarge))
            } else {
                None
            }
        };
        match command {
            KvCommand::Set { key, value } => too_big(self, key, value.len()).unwrap_or_else(|| {
                self.data.insert(key.clone(), value.clone());
                KvResponse::Ok
            }),
            KvCommand::Del { keys } => KvResponse::Integer(
                keys.iter()
                    .filter(|k| self.data.remove(*k).is_some())
                    .count() as i64,
            ),
            KvCommand::IncrBy { key, delta } => {
                if let Some(e) = too_big(self, key, 0) {
                    return e;
                }
                let old = match self.data.get(key) {
                    None => 0,
                    Some(v) => match Self::int(v) {
                        Some(n) => n,
                        None => return ERR_INT,
                    },
                };
                let Some(new) = old.checked_add(*delta) else {
                    return KvResponse::Error(KvError::Overflow);
                };
                let text = new.to_string().into_bytes();
                if let Some(e) = too_big(self, key, text.len()) {
                    return e;
                }
                self.data.insert(key.clone(), text);
                KvResponse::Integer(new)
            }
            KvCommand::Append { key, value } => {
                let mut new = self.data.get(key).cloned().unwrap_or_default();
                new.extend_from_slice(value);
                if let Some(e) = too_big(self, key, new.len()) {
                    return e;
                }
                let len = new.len() as i64;
                self.data.insert(key.clone(), new);
                KvResponse::Integer(len)
            }
            KvCommand::MSet { pairs } => {
                if let Some(e) = pairs.iter().find_map(|(k, v)| too_big(self, k, v.len())) {
                    return e;
                }
                for (k, v) in pairs {
                    self.data.insert(k.clone(), v.clone());
                }
                KvResponse::Ok
            }
            KvCommand::SetIf {
                key,
                value,
                condition,
            } => {
                if let Some(e) = too_big(self, key, value.len()) {
                    return e;
                }
                let present = self.data.contains_key(key);
                if present == (*condition == SetCondition::IfPresent) {
                    self.data.insert(key.clone(), value.clone());
                    KvResponse::Ok
                } else {
                    KvResponse::Value(None)
                }
            }
            KvCommand::FlushAll => {
                self.data.clear();
                KvResponse::Ok
            }
            KvCommand::SetPeer { .. } => KvResponse::Ok,
            KvCommand::Read(q) => self.read(q),
        }
    }

    fn apply(&mut self, bytes: &[u8]) -> KvResponse {
        let Ok(request) = decode_request(bytes) else {
            return KvResponse::Error(KvError::Malformed);
        };
        let (client, seq) = (request.client.0, request.seq);
        if request.command.is_read() || seq == 0 {
            return self.run(&request.command);
        }
        match self.sessions.get(&client).cloned() {
            Some((last, response)) if seq == last => response,
            Some((last, _)) if seq < last => KvResponse::Error(KvError::StaleSequence),
            None if seq != 1 => KvResponse::Error(KvError::SessionExpired),
            _ => {
                let response = self.run(&request.command);
                self.sessions.insert(client, (seq, response.clone()));
                response
            }
        }
    }
}

#[test]
fn store_matches_the_model_on_random_logs() {
    let config = KvConfig {
        max_key_len: 6,
        max_value_len: 24,
        max_sessions: 1_000,
        ..KvConfig::default()
    };
    for seed in 100..150 {
        let mut rng = SimRng::new(seed);
        let log = random_log(&mut rng, 1_500, 6);
        let mut node = Node::new(config);
        let mut model = Model {
            max_key_len: 6,
            max_value_len: 24,
            ..Model::default()
        };
        for (i, entry) in log.iter().enumerate() {
            assert_eq!(
                node.apply_bytes(entry),
                model.apply(entry),
                "seed {seed} entry {i}"
            );
        }
        let data: BTreeMap<_, _> = node.store.data.clone().into_iter().collect();
        assert_eq!(data, model.data, "seed {seed}");
        let bytes: usize = model.data.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(node.store.bytes_used(), bytes, "seed {seed}");
        assert_eq!(node.store.sessions(), model.sessions.len(), "seed {seed}");
        // And the state survives a snapshot exactly.
        let snap = snapshot_of(&node.store);
        let back = restored(config, &snap).unwrap();
        assert_eq!(back.data, node.store.data);
        assert_eq!(back.sessions, node.store.sessions);
        assert_eq!(back.lru, node.store.lru);
        assert_eq!(back.bytes, node.store.bytes);
        assert_eq!(snapshot_of(&back), snap);
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed commands

#[test]
fn malformed_command_bytes_answer_an_error_and_change_nothing() {
    let mut n = node();
    n.apply(1, 1, KvCommand::set("k", "v"));
    let before = snapshot_of(&n.store);
    let malformed = KvResponse::Error(KvError::Malformed);
    assert_eq!(n.apply_bytes(&[]), malformed);
    assert_eq!(n.apply_bytes(&[0xff; 64]), malformed);
    let requests = [
        KvCommand::set("key", "value"),
        del(&["a", "b"]),
        incr_by("n", -3),
        append("k", "tail"),
        KvCommand::MSet {
            pairs: vec![(b"a".to_vec(), b"b".to_vec())],
        },
        KvCommand::Read(KvQuery::get("k")),
        KvCommand::Read(KvQuery::DbSize),
    ];
    for command in requests {
        let bytes = KvRequest::new(ClientId(u64::MAX), 1 << 40, command.clone()).encode();
        assert_eq!(
            decode_request(&bytes),
            Ok(KvRequest::new(ClientId(u64::MAX), 1 << 40, command))
        );
        for cut in 0..bytes.len() {
            assert_eq!(n.apply_bytes(&bytes[..cut]), malformed, "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(n.apply_bytes(&long), malformed, "trailing byte");
    }
    // A length prefix claiming far more than the input holds.
    let mut huge = KvRequest::new(ClientId(1), 1, del(&[])).encode();
    huge.pop();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(n.apply_bytes(&huge), malformed);
    let mut rng = SimRng::new(7);
    for _ in 0..20_000 {
        let len = rng.below(40) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if let Ok(request) = decode_request(&bytes) {
            // Whatever decodes must also re-encode to the same bytes (the format is canonical
            // up to varint encodings, which postcard reads strictly).
            assert_eq!(request.encode(), bytes);
        }
    }
    assert_eq!(snapshot_of(&n.store), before);
}

#[test]
fn responses_round_trip_through_postcard() {
    for response in [
        KvResponse::Ok,
        KvResponse::Value(None),
        value("v"),
        KvResponse::Values(vec![None, Some(vec![1, 2, 3]), Some(vec![])]),
        KvResponse::Integer(i64::MIN),
        KvResponse::Error(KvError::SessionExpired),
    ] {
        let bytes = postcard::to_allocvec(&response).unwrap();
        assert_eq!(
            postcard::from_bytes::<KvResponse>(&bytes).unwrap(),
            response
        );
    }
    for code in 0..=u8::MAX {
        if let Some(e) = KvError::from_code(code) {
            assert_eq!(e.code(), code);
            assert!(e.to_string().starts_with("ERR "));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// A store with a bit of everything.
fn sample_store() -> KvStore {
    let mut n = node();
    n.apply(1, 1, KvCommand::set("alpha", "1"));
    n.apply(2, 1, KvCommand::incr("counter"));
    n.run(KvCommand::set("s", "text"));
    n.apply(3, 4, KvCommand::incr("s")); // SessionExpired: no session
    n.apply(3, 1, KvCommand::incr("s")); // NotAnInteger, saved
    n.run(KvCommand::set(vec![0_u8, 255], vec![7_u8; 300]));
    n.store
}

#[test]
fn snapshot_round_trips_state_and_sessions() {
    let store = sample_store();
    let snap = snapshot_of(&store);
    let mut back = restored(KvConfig::default(), &snap).unwrap();
    assert_eq!(back.data, store.data);
    assert_eq!(back.sessions, store.sessions);
    assert_eq!(back.bytes_used(), store.bytes_used());
    assert_eq!(back.sessions(), 3);
    // Sessions came along: retries are still answered, not applied.
    let retry = KvRequest::new(ClientId(2), 1, KvCommand::incr("counter")).encode();
    assert_eq!(back.apply(Index(100), &retry), KvResponse::Integer(1));
    let retry = KvRequest::new(ClientId(3), 1, KvCommand::incr("s")).encode();
    assert_eq!(back.apply(Index(101), &retry), ERR_INT);
    assert_eq!(back.get(b"counter"), Some(&b"1"[..]));
    // An empty store too.
    let empty = restored(KvConfig::default(), &snapshot_of(&KvStore::default())).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.sessions(), 0);
}

#[test]
fn restore_replaces_the_previous_state() {
    let snap = snapshot_of(&sample_store());
    let mut n = node();
    n.apply(50, 1, KvCommand::set("old", "x"));
    n.store.restore(&mut &snap[..]).unwrap();
    assert_eq!(n.get("old"), None);
    assert_eq!(n.store.sessions(), 3);
    assert_eq!(snapshot_of(&n.store), snap);
}

#[test]
fn restore_into_a_smaller_session_cap_evicts_the_oldest() {
    let snap = snapshot_of(&sample_store());
    let config = KvConfig {
        max_sessions: 1,
        ..KvConfig::default()
    };
    let mut back = restored(config, &snap).unwrap();
    assert_eq!(back.sessions(), 1);
    // Client 3 wrote last; clients 1 and 2 are gone.
    let retry = KvRequest::new(ClientId(3), 1, KvCommand::incr("s")).encode();
    assert_eq!(back.apply(Index(100), &retry), ERR_INT);
    let later = KvRequest::new(ClientId(1), 2, KvCommand::incr("s")).encode();
    assert_eq!(
        back.apply(Index(101), &later),
        KvResponse::Error(KvError::SessionExpired)
    );
}

/// A writer that keeps a checksum and the largest single write, not the bytes.
#[derive(Default)]
struct Sink {
    len: usize,
    crc: u32,
    largest_write: usize,
    writes: usize,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Accept at most 1000 bytes a call: the snapshot must cope with short writes.
        let n = buf.len().min(1000);
        self.len += n;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.largest_write = self.largest_write.max(buf.len());
        self.writes += 1;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hands out a few bytes at a time.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.step = self.step % 7 + 1;
        let n = self.step.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn large_state_streams_in_bounded_writes_and_reads_back_in_trickles() {
    let mut n = node();
    let mut rng = SimRng::new(42);
    let mut expected_bytes = 0;
    for i in 0..30_000_u32 {
        let key = format!("key:{i:08}").into_bytes();
        let len = rng.below(400) as usize;
        let value: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        expected_bytes += key.len() + value.len();
        n.run(KvCommand::Set { key, value });
    }
    // One value bigger than the write buffer, which goes straight through.
    n.run(KvCommand::set("big", vec![9_u8; 200_000]));
    expected_bytes += 3 + 200_000;
    for client in 1..=500 {
        n.apply(client, 1, KvCommand::incr("counter"));
    }
    expected_bytes += "counter".len() + 3;
    assert_eq!(n.store.bytes_used(), expected_bytes);

    let mut sink = Sink::default();
    n.store.snapshot(&mut sink).unwrap();
    assert!(
        sink.len > expected_bytes,
        "{} <= {expected_bytes}",
        sink.len
    );
    assert!(
        sink.largest_write <= 200_000,
        "largest write {}: the snapshot is streamed, not built whole",
        sink.largest_write
    );
    assert!(sink.writes > 10);

    let snap = snapshot_of(&n.store);
    assert_eq!(snap.len(), sink.len);
    assert_eq!(crc32c::crc32c(&snap), sink.crc);
    let mut back = KvStore::default();
    back.restore(&mut Trickle {
        bytes: &snap,
        step: 0,
    })
    .unwrap();
    assert_eq!(back.len(), n.store.len());
    assert_eq!(back.bytes_used(), expected_bytes);
    assert_eq!(back.sessions(), 500);
    assert_eq!(back.data, n.store.data);
}

fn assert_invalid(bytes: &[u8], what: &str) {
    let mut store = sample_store();
    let err = store.restore(&mut &bytes[..]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
    assert!(
        store.is_empty(),
        "{what}: a failed restore leaves the store empty"
    );
    assert_eq!(store.sessions(), 0);
}

#[test]
fn restore_rejects_every_truncation() {
    let snap = snapshot_of(&sample_store());
    for cut in 0..snap.len() {
        assert_invalid(&snap[..cut], &format!("cut at {cut}"));
    }
}

#[test]
fn restore_rejects_every_bit_flip_and_trailing_bytes() {
    let snap = snapshot_of(&sample_store());
    for i in 0..snap.len() {
        for bit in [0x01, 0x80] {
            let mut bad = snap.clone();
            bad[i] ^= bit;
            let mut store = KvStore::default();
            let err = store.restore(&mut &bad[..]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "byte {i} bit {bit}");
        }
    }
    let mut long = snap;
    long.push(0);
    assert_invalid(&long, "trailing byte");
    assert_invalid(b"", "empty");
    assert_invalid(b"RAFTKVS\n\x03\0\0\0", "unknown version");
}

/// Rebuilds a snapshot from `body` (everything between the version and the end marker) with a
/// correct checksum, to reach the structural checks behind it.
fn with_valid_crc(body: &[u8]) -> Vec<u8> {
    with_valid_crc_version(1, body)
}

fn with_valid_crc_version(version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = b"RAFTKVS\n".to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"RAFTKVE\n");
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn session_record(client: u64, seq: u64, tag: u8, payload: i64) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&client.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&10_u64.to_le_bytes());
    v.push(tag);
    v.extend_from_slice(&payload.to_le_bytes());
    v
}

fn entry_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(key.len() as u64).to_le_bytes());
    v.extend_from_slice(key);
    v.extend_from_slice(&(value.len() as u64).to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn body(sessions: &[Vec<u8>], entries: &[Vec<u8>]) -> Vec<u8> {
    let mut v = (sessions.len() as u64).to_le_bytes().to_vec();
    v.extend(sessions.concat());
    v.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    v.extend(entries.concat());
    v
}

/// A version 2 session: `client`, `floor`, a last-used index of 10, and `(seq, tag, payload)`
/// responses.
fn session_record_v2(client: u64, floor: u64, responses: &[(u64, u8, i64)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&client.to_le_bytes());
    v.extend_from_slice(&floor.to_le_bytes());
    v.extend_from_slice(&10_u64.to_le_bytes());
    v.extend_from_slice(&(responses.len() as u64).to_le_bytes());
    for &(seq, tag, payload) in responses {
        v.extend_from_slice(&seq.to_le_bytes());
        v.push(tag);
        v.extend_from_slice(&payload.to_le_bytes());
    }
    v
}

#[test]
fn restore_rejects_structurally_bad_version_2_sessions() {
    // Version 2 adds a peer count (0 here) between the sessions and the keys.
    let v2 = |sessions: &[Vec<u8>]| {
        let mut b = (sessions.len() as u64).to_le_bytes().to_vec();
        b.extend(sessions.concat());
        b.extend_from_slice(&0_u64.to_le_bytes());
        b.extend_from_slice(&0_u64.to_le_bytes());
        with_valid_crc_version(2, &b)
    };
    let ok = v2(&[session_record_v2(1, 2, &[(2, 0, 0), (5, 1, 7)])]);
    let store = restored(KvConfig::default(), &ok).unwrap();
    assert_eq!(store.sessions(), 1);
    let cases = [
        ("floor 0", session_record_v2(1, 0, &[(1, 0, 0)])),
        ("no responses", session_record_v2(1, 1, &[])),
        (
            "response below floor",
            session_record_v2(1, 3, &[(2, 0, 0)]),
        ),
        (
            "responses out of order",
            session_record_v2(1, 1, &[(3, 0, 0), (2, 0, 0)]),
        ),
        (
            "duplicate response",
            session_record_v2(1, 1, &[(2, 0, 0), (2, 0, 0)]),
        ),
        ("unknown tag", session_record_v2(1, 1, &[(2, 9, 0)])),
    ];
    for (what, session) in cases {
        assert_invalid(&v2(&[session]), what);
    }
}

#[test]
fn restore_rejects_structurally_bad_snapshots_with_valid_checksums() {
    let ok = with_valid_crc(&body(
        &[session_record(1, 1, 0, 0), session_record(2, 3, 2, 3)],
        &[entry_record(b"a", b"1"), entry_record(b"b", b"")],
    ));
    let store = restored(KvConfig::default(), &ok).unwrap();
    assert_eq!(store.len(), 2);
    assert_eq!(store.sessions(), 2);

    type Case = (&'static str, Vec<Vec<u8>>, Vec<Vec<u8>>);
    let cases: [Case; 7] = [
        (
            "unsorted sessions",
            vec![session_record(2, 1, 0, 0), session_record(1, 1, 0, 0)],
            vec![],
        ),
        (
            "duplicate session",
            vec![session_record(1, 1, 0, 0), session_record(1, 1, 0, 0)],
            vec![],
        ),
        ("seq 0", vec![session_record(1, 0, 0, 0)], vec![]),
        ("unknown tag", vec![session_record(1, 1, 9, 0)], vec![]),
        ("Ok with payload", vec![session_record(1, 1, 0, 1)], vec![]),
        (
            "unknown error code",
            vec![session_record(1, 1, 2, 200)],
            vec![],
        ),
        (
            "unsorted keys",
            vec![],
            vec![entry_record(b"b", b""), entry_record(b"a", b"")],
        ),
    ];
    for (what, sessions, entries) in cases {
        assert_invalid(&with_valid_crc(&body(&sessions, &entries)), what);
    }
    assert_invalid(
        &with_valid_crc(&body(
            &[],
            &[entry_record(b"a", b""), entry_record(b"a", b"")],
        )),
        "duplicate key",
    );
    // Counts that claim more than there is.
    let mut short = body(&[], &[entry_record(b"a", b"")]);
    short[8..16].copy_from_slice(&2_u64.to_le_bytes());
    assert_invalid(&with_valid_crc(&short), "key count too high");
    let mut short = body(&[session_record(1, 1, 0, 0)], &[]);
    short[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_invalid(&with_valid_crc(&short), "session count too high");
}

#[test]
fn restore_does_not_trust_huge_lengths() {
    // A key length of 2^62 followed by a few bytes: fails at the end of the input having
    // allocated one chunk, not 4 EiB.
    let mut snap = b"RAFTKVS\n".to_vec();
    snap.extend_from_slice(&1_u32.to_le_bytes());
    snap.extend_from_slice(&0_u64.to_le_bytes());
    snap.extend_from_slice(&1_u64.to_le_bytes());
    snap.extend_from_slice(&(1_u64 << 62).to_le_bytes());
    snap.extend_from_slice(b"some bytes");
    assert_invalid(&snap, "huge key length");
    snap.truncate(snap.len() - 18);
    snap.extend_from_slice(&u64::MAX.to_le_bytes());
    assert_invalid(&snap, "key length past usize");
}

#[test]
fn restore_passes_io_errors_through() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"))
        }
    }
    let err = KvStore::default().restore(&mut Failing).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn restore_survives_random_garbage() {
    let snap = snapshot_of(&sample_store());
    let mut rng = SimRng::new(3);
    for _ in 0..2_000 {
        let mut bad = snap.clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(bad.len() as u64) as usize;
            bad[i] = rng.next_u64() as u8;
        }
        if bad != snap {
            let mut store = KvStore::default();
            assert!(store.restore(&mut &bad[..]).is_err());
        }
        let len = rng.below(200) as usize;
        let junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        assert!(KvStore::default().restore(&mut &junk[..]).is_err());
    }
}

#[test]
fn a_read_that_would_answer_too_much_is_refused_before_copying() {
    let mut n = Node::new(KvConfig {
        max_response_bytes: 1000,
        ..KvConfig::default()
    });
    n.run(KvCommand::set("big", vec![b'x'; 400]));
    let keys = |k: usize| KvQuery::MGet {
        keys: vec![b"big".to_vec(); k],
    };
    assert!(matches!(n.store.query(&keys(2)), KvResponse::Values(v) if v.len() == 2));
    assert_eq!(
        n.store.query(&keys(3)),
        KvResponse::Error(KvError::ResponseTooLarge)
    );
    assert_eq!(
        n.store.query(&keys(1_000_000)),
        KvResponse::Error(KvError::ResponseTooLarge)
    );
}
