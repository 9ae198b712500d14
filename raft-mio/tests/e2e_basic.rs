//! `raft-kv` processes on loopback, driven with the `redis` crate: writes and reads through
//! every node (followers serve reads, or forward them), pipelines, Redis's error replies, INFO.

mod support;

use redis::{Commands, RedisError};
use support::Cluster;

fn error_text(e: &RedisError) -> String {
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
        .trim()
        .to_owned()
}

/// Writes at every node, each read back at every node at once: every read is linearizable,
/// whether the followers serve reads themselves or forward them to the leader.
fn read_back_everywhere(c: &Cluster) {
    for id in 1..=3 {
        let mut con = c.con(id);
        let key = format!("key-{id}");
        let _: () = con.set(&key, format!("value-{id}")).unwrap();
        // Read back at every node, each read linearizable: it sees the write just acknowledged.
        for other in 1..=3 {
            let mut o = c.con(other);
            let got: String = o.get(&key).unwrap();
            assert_eq!(
                got,
                format!("value-{id}"),
                "written at {id}, read at {other}"
            );
        }
    }
}

#[test]
fn followers_forwarding_reads_answer_them_linearizably() {
    let c = Cluster::start(3, &["--follower-reads", "off"]);
    c.wait_leader();
    for id in 1..=3 {
        let info = c.raft_info(id).expect("INFO raft");
        assert_eq!(info.get("follower_reads").map(String::as_str), Some("0"));
    }
    read_back_everywhere(&c);
}

#[test]
fn set_and_get_through_every_node_with_followers_serving_reads() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let info = c.raft_info(leader).expect("INFO raft");
    assert_eq!(
        info.get("follower_reads").map(String::as_str),
        Some("1"),
        "on by default"
    );
    read_back_everywhere(&c);
    let mut con = c.con(if leader == 1 { 2 } else { 1 });
    let n: i64 = con.incr("counter", 5).unwrap();
    assert_eq!(n, 5);
    let n: i64 = con.decr("counter", 2).unwrap();
    assert_eq!(n, 3);
    let len: i64 = con.append("s", "abc").unwrap();
    assert_eq!(len, 3);
    let removed: i64 = con.del(&["s", "nope"]).unwrap();
    assert_eq!(removed, 1);
    let exists: i64 = con.exists(&["key-1", "key-2", "nope"]).unwrap();
    assert_eq!(exists, 2);
    let _: () = redis::cmd("MSET")
        .arg(&["a", "1", "b", "2"])
        .query(&mut con)
        .unwrap();
    let got: Vec<Option<String>> = con.mget(&["a", "b", "nope"]).unwrap();
    assert_eq!(got, [Some("1".into()), Some("2".into()), None]);
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 6);
    // NX and XX.
    let set: Option<String> = redis::cmd("SET")
        .arg(&["a", "9", "NX"])
        .query(&mut con)
        .unwrap();
    assert_eq!(set, None);
    let set: Option<String> = redis::cmd("SET")
        .arg(&["a", "9", "XX"])
        .query(&mut con)
        .unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);
}

#[test]
fn a_pipelined_batch_is_answered_in_order() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    for id in [leader, if leader == 1 { 2 } else { 1 }] {
        let mut con = c.con(id);
        let mut pipe = redis::pipe();
        for i in 0..200 {
            pipe.set(format!("p{id}-{i}"), i).ignore();
            pipe.incr(format!("c{id}"), 1);
            pipe.get(format!("p{id}-{i}"));
        }
        let replies: Vec<i64> = pipe.query(&mut con).unwrap();
        let expected: Vec<i64> = (0..200).flat_map(|i| [i + 1, i]).collect();
        assert_eq!(replies, expected, "at node {id}");
    }
}

#[test]
fn unknown_commands_and_wrong_arity_get_redis_errors() {
    let c = Cluster::start(3, &[]);
    let mut con = c.con(1);
    let e = redis::cmd("NOSUCH")
        .arg("a")
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(
        error_text(&e),
        "ERR unknown command 'NOSUCH', with args beginning with: 'a'"
    );
    let e = redis::cmd("GET").query::<()>(&mut con).unwrap_err();
    assert_eq!(
        error_text(&e),
        "ERR wrong number of arguments for 'get' command"
    );
    let e = redis::cmd("SET")
        .arg("k")
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(
        error_text(&e),
        "ERR wrong number of arguments for 'set' command"
    );
    let _: () = con.set("text", "abc").unwrap();
    let e = con.incr::<_, _, i64>("text", 1).unwrap_err();
    assert_eq!(
        error_text(&e),
        "ERR value is not an integer or out of range"
    );
    let e = redis::cmd("SELECT")
        .arg(3)
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(error_text(&e), "ERR DB index is out of range");
    let e = redis::cmd("CONFIG")
        .arg("NOPE")
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(
        error_text(&e),
        "ERR unknown subcommand 'NOPE'. Try CONFIG HELP."
    );
    // The connection still serves.
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn info_reports_the_raft_state_of_every_node() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let mut con = c.con(leader);
    let _: () = con.set("k", "v").unwrap();
    c.wait_converged();
    for id in 1..=3 {
        let info = c.raft_info(id).unwrap();
        assert_eq!(info["leader_id"], leader.to_string());
        assert_eq!(info["voters"], "1,2,3");
        assert_eq!(
            info["role"],
            if id == leader { "leader" } else { "follower" }
        );
        assert!(info["commit_index"].parse::<u64>().unwrap() >= 2);
        assert!(info.contains_key("snapshot_index"));
    }
    let info = c.raft_info(leader).unwrap();
    let peer = info
        .iter()
        .find(|(k, _)| k.starts_with("peer_"))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        peer.contains("connected=1") && peer.contains("state=replicate"),
        "{peer}"
    );
    let mut con = c.con(1);
    let all: String = redis::cmd("INFO").query(&mut con).unwrap();
    for section in ["# Server", "# Clients", "# Raft", "# Keyspace"] {
        assert!(all.contains(section), "{section} missing");
    }
    let members: Vec<String> = redis::cmd("RAFT.MEMBERS").query(&mut con).unwrap();
    assert_eq!(members.len(), 3);
    assert!(
        members
            .iter()
            .any(|m| m.starts_with(&format!("{leader} leader")))
    );
}

#[test]
fn an_idle_healthy_cluster_holds_no_election() {
    // Election timeouts of 1-2 s: the other tests of this binary run at the same time, and on a
    // loaded 2-core machine a node starved for 100 ms would otherwise look like a failure.
    let c = Cluster::start(
        3,
        &["--election-min-ms", "1000", "--election-max-ms", "2000"],
    );
    let leader = c.wait_leader();
    c.wait_converged();
    let terms = |c: &Cluster| -> Vec<String> {
        (1..=3)
            .map(|id| c.raft_info(id).unwrap()["term"].clone())
            .collect()
    };
    let before = terms(&c);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(terms(&c), before, "no new term in 3 s of idleness");
    assert_eq!(c.leader(), Some(leader));
}

#[test]
fn hello_3_switches_the_connection_to_resp3() {
    use std::io::{Read, Write};
    let c = Cluster::start(3, &[]);
    let mut s = std::net::TcpStream::connect(c.node(1).client).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let read_until = |s: &mut std::net::TcpStream, end: &[u8]| {
        let mut got = Vec::new();
        let mut buf = [0_u8; 4096];
        while !got.ends_with(end) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        got
    };
    s.write_all(b"GET missing\r\n").unwrap();
    assert_eq!(
        read_until(&mut s, b"\r\n"),
        b"$-1\r\n",
        "RESP2 nil by default"
    );
    s.write_all(b"HELLO 3 SETNAME me\r\n").unwrap();
    let hello = read_until(&mut s, b":1\r\n");
    assert!(hello.starts_with(b"%8\r\n"), "a RESP3 map: {hello:?}");
    s.write_all(b"GET missing\r\nCLIENT GETNAME\r\nCONFIG GET save\r\n")
        .unwrap();
    let got = read_until(&mut s, b"$4\r\nsave\r\n$0\r\n\r\n");
    assert_eq!(got, b"_\r\n$2\r\nme\r\n%1\r\n$4\r\nsave\r\n$0\r\n\r\n");
}
