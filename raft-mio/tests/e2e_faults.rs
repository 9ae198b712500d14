//! `raft-kv` processes under process faults: the leader killed (SIGKILL) while a workload runs,
//! restarts that catch up from the log and from a snapshot, a learner that joins and is
//! promoted, and SIGTERM (exit 0, nothing acknowledged lost).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;
use support::{Cluster, Retrying, WAIT};

/// What the workers had acknowledged: key to value, and each counter's increments.
#[derive(Default)]
struct Acked {
    keys: BTreeMap<String, String>,
    counters: BTreeMap<String, i64>,
}

/// Runs `workers` threads against every node until `stop`: each SETs unique keys and
/// increments its own counter with RAFT.ONCE stamps (so that retries are exactly once).
fn workload(
    c: &Cluster,
    workers: usize,
    stop: &Arc<AtomicBool>,
    acked: &Arc<Mutex<Acked>>,
) -> Vec<thread::JoinHandle<u64>> {
    (0..workers)
        .map(|w| {
            let mut client = Retrying::new(c, w);
            let stop = Arc::clone(stop);
            let acked = Arc::clone(acked);
            thread::spawn(move || {
                let id = 1000 + w as u64;
                let counter = format!("counter-{w}");
                let mut seq: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let deadline = Instant::now() + WAIT;
                    let (key, value) = (format!("w{w}-{seq}"), format!("v{seq}"));
                    let set: Option<String> =
                        client.run(redis::cmd("SET").arg(&key).arg(&value), deadline);
                    assert_eq!(
                        set.as_deref(),
                        Some("OK"),
                        "SET {key} was never acknowledged"
                    );
                    let once = redis::cmd("RAFT.ONCE")
                        .arg(id)
                        .arg(seq)
                        .arg(seq)
                        .arg("INCR")
                        .arg(&counter)
                        .clone();
                    let n: Option<i64> = client.run(&once, deadline);
                    let n = n.expect("INCR was never acknowledged");
                    assert_eq!(n, i64::try_from(seq).unwrap(), "{counter} is exact");
                    let mut a = acked.lock().unwrap();
                    a.keys.insert(key, value);
                    a.counters.insert(counter.clone(), n);
                }
                client.retries
            })
        })
        .collect()
}

/// Every acknowledged write, read back (linearizably) through node `id`.
fn check_acked(c: &Cluster, id: u64, acked: &Acked) {
    let mut con = c.con(id);
    for (key, value) in &acked.keys {
        let got: Option<String> = con.get(key).unwrap();
        assert_eq!(got.as_deref(), Some(value.as_str()), "{key} at node {id}");
    }
    for (counter, n) in &acked.counters {
        let got: i64 = con.get(counter).unwrap();
        assert_eq!(got, *n, "{counter} at node {id}");
    }
}

/// Node `id`'s own key count (INFO keyspace is local: no forwarding).
fn local_keys(c: &Cluster, id: u64) -> Option<u64> {
    let mut con = c.try_con(id).ok()?;
    let text: String = redis::cmd("INFO").arg("keyspace").query(&mut con).ok()?;
    let line = text.lines().find(|l| l.starts_with("db0:keys="))?;
    line.trim_start_matches("db0:keys=")
        .split(',')
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_leader_killed_during_a_workload_and_the_workload_goes_on() {
    let mut c = Cluster::start(3, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let workers = workload(&c, 4, &stop, &acked);
    thread::sleep(Duration::from_millis(500));
    let before = acked.lock().unwrap().keys.len();
    let leader = c.wait_leader();
    let killed = Instant::now();
    c.kill(leader);
    let new = c.wait_for("a new leader", || c.leader().filter(|&l| l != leader));
    println!(
        "node {leader} killed; node {new} leads after {:?}",
        killed.elapsed()
    );
    thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let retries: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let acked = acked.lock().unwrap();
    let after = acked.keys.len();
    println!("{before} writes acknowledged before the kill, {after} in all, {retries} retries");
    assert!(after > before + 20, "the workload went on after the kill");
    for id in c.running() {
        check_acked(&c, id, &acked);
    }
    // The killed node comes back and catches up.
    c.spawn(leader);
    c.wait_serving(leader);
    c.wait_converged();
    check_acked(&c, leader, &acked);
}

#[test]
fn restarted_nodes_catch_up_from_the_log_and_from_a_snapshot() {
    let mut c = Cluster::start(3, &["--snapshot-entries", "100"]);
    let leader = c.wait_leader();
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let mut con = c.con(leader);
    for i in 0..10 {
        let _: () = con.set(format!("a{i}"), i).unwrap();
    }
    c.wait_converged();
    // Down for a few writes: it catches up from the leader's log.
    c.kill(follower);
    for i in 0..20 {
        let _: () = con.set(format!("b{i}"), i).unwrap();
    }
    c.spawn(follower);
    c.wait_serving(follower);
    c.wait_converged();
    assert_eq!(local_keys(&c, follower), Some(30));
    assert!(
        !c.log(follower)
            .contains("installed a snapshot from the leader")
    );
    // Down for more writes than the leader keeps: it catches up from a snapshot.
    c.kill(follower);
    for i in 0..1500 {
        let _: () = con.set(format!("c{i}"), i).unwrap();
    }
    let snap = c.raft_info(leader).unwrap()["snapshot_index"]
        .parse::<u64>()
        .unwrap();
    assert!(
        snap > 1000,
        "the leader compacted its log (snapshot at {snap})"
    );
    c.spawn(follower);
    c.wait_serving(follower);
    c.wait_converged();
    assert!(
        c.log(follower)
            .contains("installed a snapshot from the leader"),
        "{}",
        c.log(follower)
    );
    c.wait_for("the follower to hold every key", || {
        (local_keys(&c, follower) == Some(1530)).then_some(())
    });
}

#[test]
fn a_node_joins_as_a_learner_and_is_promoted() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let mut con = c.con(leader);
    for i in 0..50 {
        let _: () = con.set(format!("k{i}"), i).unwrap();
    }
    c.add_joiner(4);
    c.spawn(4);
    c.wait_serving(4);
    // At a follower: forwarded to the leader.
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let mut fcon = c.con(follower);
    let addr = c.node(4).peer.to_string();
    let _: () = redis::cmd("RAFT.ADDLEARNER")
        .arg(4)
        .arg(&addr)
        .query(&mut fcon)
        .unwrap();
    c.wait_for("the learner to catch up", || {
        (local_keys(&c, 4) == Some(50)).then_some(())
    });
    let info = c.raft_info(leader).unwrap();
    assert_eq!(info["learners"], "4");
    let _: () = redis::cmd("RAFT.PROMOTE").arg(4).query(&mut fcon).unwrap();
    // +OK means done: the joint configuration left, the new one committed.
    let info = c.raft_info(leader).unwrap();
    assert_eq!(
        (info["voters"].as_str(), info["joint"].as_str()),
        ("1,2,3,4", "0")
    );
    // Four voters: with one of the founders down, writes need node 4.
    let down = (1..=3).find(|&i| i != leader).unwrap();
    c.kill(down);
    for i in 50..60 {
        let _: () = con.set(format!("k{i}"), i).unwrap();
    }
    c.wait_for("node 4 to apply them", || {
        (local_keys(&c, 4) == Some(60)).then_some(())
    });
    let members: Vec<String> = redis::cmd("RAFT.MEMBERS").query(&mut con).unwrap();
    assert!(
        members.iter().any(|m| m.starts_with("4 voter")),
        "{members:?}"
    );
    // Removing the node that is down: +OK means the configuration without it is committed, so
    // an operator may delete its data at once (the chaos runs' finding 3).
    let _: () = redis::cmd("RAFT.REMOVE").arg(down).query(&mut con).unwrap();
    let info = c.raft_info(leader).unwrap();
    let rest: Vec<String> = (1..=4)
        .filter(|&i| i != down)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        (info["voters"].as_str(), info["joint"].as_str()),
        (rest.join(",").as_str(), "0")
    );
}

#[test]
fn sigterm_exits_zero_and_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let workers = workload(&c, 3, &stop, &acked);
    thread::sleep(Duration::from_millis(300));
    let leader = c.wait_leader();
    let status = c.terminate(leader);
    assert!(status.success(), "the leader exited with {status}");
    assert!(
        c.log(leader).contains("shut down cleanly"),
        "{}",
        c.log(leader)
    );
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    c.spawn(leader);
    c.wait_serving(leader);
    c.wait_leader();
    let acked = acked.lock().unwrap();
    // Every node terminated, then all restarted: everything acknowledged is still there.
    for id in 1..=3 {
        let status = c.terminate(id);
        assert!(status.success(), "node {id} exited with {status}");
    }
    for id in 1..=3 {
        c.spawn(id);
    }
    for id in 1..=3 {
        c.wait_serving(id);
    }
    c.wait_leader();
    c.wait_converged();
    for id in 1..=3 {
        check_acked(&c, id, &acked);
        assert_eq!(
            local_keys(&c, id),
            Some(acked.keys.len() as u64 + acked.counters.len() as u64)
        );
    }
}

#[test]
fn a_node_whose_fsync_fails_exits_and_the_cluster_carries_on() {
    // Needs strace to inject the error (`.ci/run` installs it).
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        println!("skipped: strace is not installed");
        return;
    }
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_leader();
    let victim = (1..=3).find(|&i| i != leader).unwrap();
    let pid = c.node(victim).pid().unwrap();
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-p", &pid.to_string()])
        .args(["-e", "trace=fdatasync,fsync"])
        .args([
            "-e",
            "inject=fdatasync:error=EIO",
            "-e",
            "inject=fsync:error=EIO",
        ])
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    let mut con = c.con(leader);
    for i in 0..20 {
        let _: () = con.set(format!("k{i}"), i).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = c.local.exited(victim) {
            break status;
        }
        assert!(Instant::now() < deadline, "the node did not exit");
        thread::sleep(Duration::from_millis(20));
    };
    let _ = strace.kill();
    let _ = strace.wait();
    assert_eq!(status.code(), Some(1), "it exits non-zero");
    let log = c.log(victim);
    assert!(
        log.contains("fsync") && log.contains("Input/output error"),
        "{log}"
    );
    // The others carry on, and the node comes back on its data.
    for i in 20..40 {
        let _: () = con.set(format!("k{i}"), i).unwrap();
    }
    c.spawn(victim);
    c.wait_serving(victim);
    c.wait_converged();
    c.wait_for("the node to hold every key", || {
        (local_keys(&c, victim) == Some(40)).then_some(())
    });
}
