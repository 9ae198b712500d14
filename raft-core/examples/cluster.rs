//! A 3-node cluster in one thread, driven by hand: elect a leader, replicate commands, lose the
//! leader, elect another, and check that every node applied the same commands in the same order.
//!
//! Run: `cargo run --release -p raft-core --example cluster`

use std::collections::VecDeque;
use std::convert::Infallible;

use raft_core::{
    Apply, Config, Entry, EntryKind, Input, Membership, Message, Node, NodeId, Outputs, Payload,
    Restored, Role,
};

/// A small deterministic RNG (SplitMix64). Any `rand_core::Rng` works, e.g. `rand::rngs::StdRng`.
struct SplitMix(u64);

impl rand_core::TryRng for SplitMix {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.try_next_u64().map(|v| (v >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}

/// One member: the core plus what an adapter keeps around it.
struct Member {
    node: Node<SplitMix>,
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
        .map(|&i| Member {
            node: Node::restore(
                Config::new(i),
                SplitMix(i.get()),
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

    let mut proposed = 0;
    for tick in 0..400u32 {
        // 1. Time passes for every running node.
        for m in members.iter_mut().filter(|m| m.up) {
            step(m, Input::Tick);
        }
        // 2. Deliver messages until the network is quiet.
        while let Some(msg) = network.pop_front() {
            let to = (msg.to.get() - 1) as usize;
            if members[to].up {
                step(&mut members[to], Input::Message(msg));
            }
            drain(&mut members, &mut network);
        }
        drain(&mut members, &mut network);

        // 3. The application: propose commands to the leader, and stop it once at tick 150.
        let leader = members
            .iter()
            .position(|m| m.up && m.node.role() == Role::Leader);
        if let Some(l) = leader {
            if tick % 10 == 0 && proposed < 20 {
                let cmd = format!("set x {proposed}");
                let m = &mut members[l];
                match m.node.propose(Payload::new(cmd.as_bytes()), &mut m.out) {
                    Ok(entry) => {
                        println!(
                            "tick {tick:3}: node {} proposed {cmd:?} as entry {entry}",
                            l + 1
                        );
                        proposed += 1;
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
        drain(&mut members, &mut network);
    }

    println!();
    for m in &members {
        let s = m.node.status();
        println!(
            "node {}: {:?} term {} commit {} applied {} log {} entries, {} commands applied",
            s.id,
            s.role,
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
    println!("state machines agree: {agree} ({longest} commands committed of {proposed} proposed)");
    assert!(agree, "state machine safety violated");
}

/// Steps one input; in this example every error is just reported.
fn step(m: &mut Member, input: Input) {
    if let Err(e) = m.node.step(input, &mut m.out) {
        println!("node {}: {e}", m.node.id());
    }
}

/// Does what each node's outputs ask: persist, acknowledge, apply, send.
fn drain(members: &mut [Member], network: &mut VecDeque<Message>) {
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
                step(m, Input::Persisted(id));
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
                step(m, Input::Applied(index));
            }
            for ev in m.out.drain_events() {
                println!("node {}: {ev:?}", m.node.id());
            }
            network.extend(m.out.drain_sends());
            m.out.drain_reads().for_each(drop);
            if m.out.is_empty() {
                break;
            }
        }
    }
}
