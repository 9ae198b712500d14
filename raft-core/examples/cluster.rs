//! A 3-node cluster in one thread, driven by hand: elect a leader, replicate commands, lose the
//! leader, elect another, and check that every node applied the same commands in the same order.
//!
//! Run: `cargo run --release -p raft-core --example cluster`
//!
//! Each node's RNG seed decides its election timeouts. The seeds below give the three nodes
//! different first timeouts, so the first election is the normal case: one node times out first,
//! wins a pre-vote and then the vote, and leads. (Seeds 1, 2 and 3 happen to draw the same first
//! timeout: all three nodes campaign in the same tick, each votes for itself and the vote splits;
//! they draw new timeouts and the next round elects a leader. Randomized timeouts make that rare,
//! not impossible.)

use std::collections::VecDeque;

use raft_core::{
    Apply, Config, Entry, EntryKind, Event, Input, Membership, Message, Node, NodeId, Outputs,
    Payload, Restored, Role, SplitMix64,
};

/// The RNG seed of nodes 1, 2 and 3: their first election timeouts differ (see the module docs).
const SEEDS: [u64; 3] = [4, 5, 6];

/// One member: the core plus what an adapter keeps around it.
struct Member {
    node: Node<SplitMix64>,
    out: Outputs,
    /// The "disk": every write is made durable at once here.
    log: Vec<Entry>,
    /// The "state machine": the commands applied, in order.
    applied: Vec<String>,
    up: bool,
}

fn id(n: u64) -> NodeId {
    NodeId::new(n).expect("non-zero")
}

fn main() {
    let ids = [id(1), id(2), id(3)];
    let membership = Membership::new(&ids).expect("valid membership");
    let mut members: Vec<Member> = ids
        .iter()
        .zip(SEEDS)
        .map(|(&i, seed)| Member {
            node: Node::restore(
                Config::new(i),
                SplitMix64::new(seed),
                Restored::initial(membership.clone()),
            )
            .expect("consistent initial state"),
            out: Outputs::new(),
            log: Vec::new(),
            applied: Vec::new(),
            up: true,
        })
        .collect();
    let mut network: VecDeque<Message> = VecDeque::new();

    let mut proposed = Vec::new();
    for tick in 0..400u32 {
        // 1. Time passes for every running node.
        for m in members.iter_mut().filter(|m| m.up) {
            step(m, Input::Tick, tick);
        }
        // 2. Deliver messages until the network is quiet.
        while let Some(msg) = network.pop_front() {
            let to = (msg.to.get() - 1) as usize;
            if members[to].up {
                step(&mut members[to], Input::Message(msg), tick);
            }
            drain(&mut members, &mut network, tick);
        }
        drain(&mut members, &mut network, tick);

        // 3. The application: propose commands to the leader, and stop it once at tick 150.
        let leader = members
            .iter()
            .position(|m| m.up && m.node.role() == Role::Leader);
        if let Some(l) = leader {
            if tick % 10 == 0 && proposed.len() < 20 {
                let cmd = format!("set x {}", proposed.len());
                let m = &mut members[l];
                match m.node.propose(Payload::new(cmd.as_bytes()), &mut m.out) {
                    Ok(entry) => {
                        println!(
                            "tick {tick:3}: node {} proposed {cmd:?}: log index {}, term {}",
                            l + 1,
                            entry.index,
                            entry.term
                        );
                        proposed.push(cmd);
                    }
                    Err(e) => println!("tick {tick:3}: proposal refused: {e}"),
                }
            }
            if tick == 150 {
                println!("tick {tick:3}: node {} (the leader) goes down", l + 1);
                members[l].up = false;
            }
        }
        if tick == 300 {
            if let Some(m) = members.iter_mut().find(|m| !m.up) {
                println!("tick {tick:3}: node {} comes back", m.node.id());
                m.up = true;
            }
        }
        drain(&mut members, &mut network, tick);
    }

    println!();
    for m in &members {
        let s = m.node.status();
        println!(
            "node {}: {} in term {}, commit index {}, applied {}, {} log entries, {} commands applied",
            s.id,
            role_name(s.role),
            s.term,
            s.commit,
            s.applied,
            m.log.len(),
            m.applied.len()
        );
    }
    let longest = members.iter().map(|m| m.applied.len()).max().unwrap_or(0);
    let reference = members
        .iter()
        .find(|m| m.applied.len() == longest)
        .map(|m| m.applied.clone())
        .unwrap_or_default();
    let agree = members.iter().all(|m| reference.starts_with(&m.applied));
    println!(
        "state machines agree: {agree} ({longest} commands committed of {} proposed)",
        proposed.len()
    );
    for cmd in proposed.iter().filter(|c| !reference.contains(c)) {
        println!(
            "not committed: {cmd:?}: its leader went down before a majority stored it, so it \
             is lost (a client would time out and retry at the new leader)"
        );
    }
    assert!(agree, "state machine safety violated");
}

/// Steps one input; in this example every error is just reported.
fn step(m: &mut Member, input: Input, tick: u32) {
    if let Err(e) = m.node.step(input, &mut m.out) {
        println!("tick {tick:3}: node {}: {e}", m.node.id());
    }
}

/// Does what each node's outputs ask: persist, acknowledge, apply, send.
fn drain(members: &mut [Member], network: &mut VecDeque<Message>, tick: u32) {
    for m in members.iter_mut().filter(|m| m.up) {
        loop {
            // Persist every write (here: in memory), then acknowledge the last one.
            let mut last = None;
            for w in m.out.drain_writes() {
                if let Some(from) = w.truncate_from {
                    m.log.retain(|e| e.id.index < from);
                }
                m.log.extend(w.entries);
                last = Some(w.id);
            }
            if let Some(id) = last {
                step(m, Input::Persisted(id), tick);
            }
            // Apply committed entries.
            let mut applied = None;
            for a in m.out.drain_apply() {
                if let Apply::Entry(e) = &a {
                    if e.kind == EntryKind::Normal {
                        m.applied
                            .push(String::from_utf8_lossy(&e.data).into_owned());
                    }
                }
                applied = Some(a.index());
            }
            if let Some(index) = applied {
                step(m, Input::Applied(index), tick);
            }
            for ev in m.out.drain_events() {
                println!("tick {tick:3}: node {} {}", m.node.id(), describe(&ev));
            }
            network.extend(m.out.drain_sends());
            m.out.drain_reads().for_each(drop);
            if m.out.is_empty() {
                break;
            }
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// An event as a line for people.
fn describe(ev: &Event) -> String {
    match ev {
        Event::StateChanged {
            role: Role::PreCandidate,
            term,
            ..
        } => format!("timed out in term {term}: asks for pre-votes (its term stays)"),
        Event::StateChanged {
            role: Role::Candidate,
            term,
            ..
        } => format!("won the pre-vote: campaigns in term {term}, votes for itself"),
        Event::StateChanged {
            role: Role::Leader,
            term,
            ..
        } => format!("won the vote: leader of term {term}"),
        Event::StateChanged {
            role: Role::Follower,
            term,
            leader: Some(leader),
        } => format!("is a follower in term {term}, of leader node {leader}"),
        Event::StateChanged {
            role: Role::Follower,
            term,
            leader: None,
        } => format!("is a follower in term {term}, no leader known yet"),
        Event::SnapshotSuggested {
            applied,
            log_entries,
        } => format!("suggests a snapshot at index {applied} ({log_entries} entries in memory)"),
        other => format!("{other:?}"),
    }
}
