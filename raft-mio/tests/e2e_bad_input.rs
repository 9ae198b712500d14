//! Bad input on both ports of real `raft-kv` processes: each gets a RESP error or a closed
//! connection, and the node keeps serving everyone else.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use raft_core::NodeId;
use raft_mio::frame::{self, FrameDecoder, Hello, PeerFrame};
use redis::Commands;
use support::Cluster;

/// Sends `bytes` on a new connection and reads until the server closes it (or 5 s pass).
fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The cluster still commits a write and serves it back, through node `id`.
fn still_serves(c: &Cluster, id: u64, key: &str) {
    let mut con = c.con(id);
    let _: () = con.set(key, "ok").unwrap();
    let got: String = con.get(key).unwrap();
    assert_eq!(got, "ok");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn garbage_on_the_client_port_gets_an_error_or_a_closed_connection() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let addr = c.node(leader).client;
    // Bytes that are not RESP framing: a protocol error, then the connection is closed.
    let out = exchange(addr, b"*abc\r\n$3\r\nGET\r\n");
    assert_eq!(out, b"-ERR Protocol error: invalid multibulk length\r\n");
    let out = exchange(addr, b"*1\r\n:1\r\n");
    assert_eq!(out, b"-ERR Protocol error: expected '$', got ':'\r\n");
    // A bulk length of 2^40: refused from the header, nothing buffered.
    let out = exchange(addr, b"*2\r\n$3\r\nSET\r\n$1099511627776\r\n");
    assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    // Binary junk as an inline command: an unknown command, and the connection goes on.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\x00\x01\xfe\xff\r\nPING\r\n").unwrap();
    let mut buf = vec![0; 256];
    let mut got = Vec::new();
    while !got.ends_with(b"+PONG\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"-ERR unknown command"), "{got:?}");
    drop(s);
    // A half-sent command, then a disconnect: nothing happens.
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$5\r\nva")
            .unwrap();
    }
    still_serves(&c, leader, "after-garbage");
    let mut con = c.con(leader);
    let half: Option<String> = con.get("half").unwrap();
    assert_eq!(half, None, "a half-sent SET is not applied");
}

#[test]
fn ten_thousand_connections_opened_and_dropped() {
    let c = Cluster::start(3, &[]);
    let id = 1;
    let addr = c.node(id).client;
    let started = Instant::now();
    for i in 0..10_000 {
        let mut s = TcpStream::connect(addr).unwrap();
        if i % 100 == 0 {
            // Some send half a command before they go.
            let _ = s.write_all(b"*2\r\n$3\r\nGET");
        }
    }
    println!(
        "10,000 connections opened and dropped in {:?}",
        started.elapsed()
    );
    still_serves(&c, id, "after-10k");
    let mut con = c.con(id);
    c.wait_for("the dropped connections to be closed", || {
        let text: String = redis::cmd("INFO").arg("clients").query(&mut con).ok()?;
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))?
            .trim()
            .parse()
            .ok()?;
        (n <= 2).then_some(())
    });
}

#[test]
fn a_client_that_never_reads_does_not_hold_up_others_or_grow_memory() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let mut con = c.con(leader);
    let big = "x".repeat(64 << 10);
    let _: () = con.set("big", &big).unwrap();
    let pid = c.node(leader).pid().unwrap();
    let before = rss_kib(pid);
    // 20,000 GETs of a 64 KiB value (1.25 GiB of replies), never read.
    let mut greedy = TcpStream::connect(c.node(leader).client).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(20_000);
    // The server stops reading once the replies back up, so this write may block: fine.
    let writer = thread::spawn(move || {
        let _ = greedy.write_all(&request);
        thread::sleep(Duration::from_secs(3));
        drop(greedy);
    });
    thread::sleep(Duration::from_millis(500));
    // Everyone else is served at once.
    for i in 0..20 {
        let t = Instant::now();
        let _: () = con.set(format!("other-{i}"), i).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a write took {:?}",
            t.elapsed()
        );
    }
    let during = rss_kib(pid);
    println!("leader RSS {before} KiB before, {during} KiB with a client that does not read");
    assert!(
        during < before + 100 * 1024,
        "memory grew by {} KiB",
        during - before
    );
    writer.join().unwrap();
    still_serves(&c, leader, "after-greedy");
}

fn hello(cluster: &str, from: u64, to: u64, addr: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    frame::encode(
        &PeerFrame::Hello(Hello {
            cluster: cluster.into(),
            from: NodeId::new(from).unwrap(),
            to: NodeId::new(to).unwrap(),
            addr: addr.into(),
        }),
        &mut buf,
    );
    buf
}

fn peer_counter(c: &Cluster, id: u64, name: &str) -> u64 {
    c.raft_info(id).unwrap()[name].parse().unwrap()
}

#[test]
fn garbage_on_the_peer_port_closes_that_connection_and_the_cluster_carries_on() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    for id in [leader, follower] {
        let peer = c.node(id).peer;
        // Garbage.
        assert!(exchange(peer, b"GET / HTTP/1.0\r\n\r\n").is_empty());
        // An oversized frame, refused from its header.
        assert!(exchange(peer, &u32::MAX.to_le_bytes()).is_empty());
        // Half a frame, then a disconnect.
        {
            let mut s = TcpStream::connect(peer).unwrap();
            let h = hello("local", 9, id, "127.0.0.1:1");
            s.write_all(&h[..h.len() / 2]).unwrap();
        }
        still_serves(&c, id, &format!("after-peer-garbage-{id}"));
        c.wait_for("the bad connections to be counted", || {
            (peer_counter(&c, id, "peer_bad_input") >= 2).then_some(())
        });
    }
}

#[test]
fn a_peer_from_another_cluster_or_with_a_wrong_id_is_refused() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let peer = c.node(leader).peer;
    let other = (1..=3).find(|&i| i != leader).unwrap();
    let other_addr = c.node(other).peer.to_string();
    let decode = |bytes: &[u8]| match FrameDecoder::new(1 << 20).decode(bytes) {
        Ok(Some((PeerFrame::Refused { reason }, _))) => reason,
        x => panic!("expected a refusal: {x:?}"),
    };
    let reason = decode(&exchange(
        peer,
        &hello("another", other, leader, &other_addr),
    ));
    assert!(reason.contains("cluster 'another'"), "{reason}");
    let reason = decode(&exchange(
        peer,
        &hello("local", 7, leader, "192.0.2.7:7777"),
    ));
    assert!(reason.contains("not a known member"), "{reason}");
    let reason = decode(&exchange(
        peer,
        &hello("local", other, leader, "127.0.0.1:1"),
    ));
    assert!(reason.contains("on record at"), "{reason}");
    // The counters reach INFO when the event loop next publishes them, after the refusals
    // went out.
    c.wait_for("the refusals to be counted", || {
        (peer_counter(&c, leader, "peer_connections_refused") >= 3).then_some(())
    });
    assert!(c.log(leader).contains("refused a peer connection"));
    still_serves(&c, leader, "after-refusals");
    // The cluster never saw a change of leader.
    assert_eq!(c.leader(), Some(leader));
}

#[test]
fn a_long_pipeline_then_a_half_close_gets_every_reply() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    for id in [leader, follower] {
        let mut s = TcpStream::connect(c.node(id).client).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let key = format!("piped-{id}");
        let request = format!("INCR {key}\r\n").repeat(1000);
        s.write_all(request.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let replies = String::from_utf8(out).unwrap();
        assert_eq!(replies.lines().count(), 1000, "at node {id}");
        assert!(
            replies.ends_with(":1000\r\n"),
            "at node {id}: {}",
            &replies[replies.len() - 20..]
        );
        let mut con = c.con(id);
        let n: i64 = con.get(&key).unwrap();
        assert_eq!(n, 1000);
    }
}

#[test]
fn oversized_and_amplified_requests_are_refused_and_the_node_carries_on() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let mut con = c.con(follower);
    // Larger than the log takes: refused at the follower, not forwarded.
    let huge = vec![b'x'; 9 << 20];
    let e = redis::cmd("SET")
        .arg("huge")
        .arg(&huge)
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(e.to_string().contains("maximum entry size"), "{e}");
    // One 4 MiB value asked for 100 times: refused before it is copied.
    let big = vec![b'y'; 4 << 20];
    let _: () = con.set("big", &big).unwrap();
    let e = redis::cmd("MGET")
        .arg(vec!["big"; 100])
        .query::<Vec<Option<Vec<u8>>>>(&mut con)
        .unwrap_err();
    assert!(e.to_string().contains("reply exceeds"), "{e}");
    // Prefixes nested deep, and a pathological CONFIG GET pattern, answer at once.
    let mut deep = redis::cmd("RAFT.STALE");
    for _ in 0..10_000 {
        deep.arg("RAFT.STALE");
    }
    deep.arg("GET").arg("k");
    assert!(deep.query::<()>(&mut con).is_err());
    let started = Instant::now();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(format!("{}x", "*".repeat(200)))
        .query(&mut con)
        .unwrap();
    assert!(got.is_empty());
    assert!(started.elapsed() < Duration::from_secs(1));
    still_serves(&c, follower, "after-oversized");
    // A member's address is not rewritten by a mistaken RAFT.ADDLEARNER.
    let e = redis::cmd("RAFT.ADDLEARNER")
        .arg(leader)
        .arg("127.0.0.1:1")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(e.to_string().contains("already a member"), "{e}");
    still_serves(&c, leader, "after-addlearner");
}
