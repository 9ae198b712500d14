//! Sends a 64 MiB snapshot to a follower that fell behind, and reports the process's peak memory
//! before and after: the snapshot's bytes pass through in chunks and are never held whole.
//!
//! The leader's "snapshot file" is generated on the fly from the offset (as reading a file would
//! be), and the follower's adapter hashes each chunk it is asked to store (as writing a file
//! would), so any growth in peak memory is the transfer's own.
//!
//! `cargo run --release -p raft-core --features sim --example snapshot_transfer [MiB]`

use std::collections::VecDeque;
use std::time::Instant;

use raft_core::sim::SimRng;
use raft_core::{
    Config, Input, Membership, Message, Node, NodeId, Outputs, Payload, Restored, Role,
    SnapshotChunk,
};

const CHUNK: u32 = 1 << 20;

/// The byte at `offset` of the (virtual) snapshot file.
fn snapshot_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9E37_79B9) >> 13) as u8
}

/// Peak resident memory of this process so far, in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Member {
    node: Node<SimRng>,
    out: Outputs,
    /// Follower side: bytes of the snapshot stored so far and their running checksum.
    stored: u64,
    checksum: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let size = mib << 20;
    let ids: Vec<NodeId> = (1..=3).filter_map(NodeId::new).collect();
    let membership = Membership::new(&ids)?;
    let mut members: Vec<Member> = ids
        .iter()
        .map(|&id| {
            let mut config = Config::new(id);
            config.snapshot_chunk_bytes = CHUNK;
            config.snapshot_trailing_entries = 0;
            let node = Node::restore(
                config,
                SimRng::new(id.get()),
                Restored::initial(membership.clone()),
            )?;
            Ok(Member {
                node,
                out: Outputs::new(),
                stored: 0,
                checksum: 0,
            })
        })
        .collect::<Result<_, raft_core::RestoreError>>()?;
    let mut net: VecDeque<Message> = VecDeque::new();

    // Node 1 leads; node 3 is cut off while 1,000 entries commit and node 1 compacts them.
    let leader = &mut members[0];
    leader.node.step(Input::Campaign, &mut leader.out)?;
    let mut node3_up = false;
    run(&mut members, &mut net, node3_up, size)?;
    assert_eq!(members[0].node.role(), Role::Leader);
    for i in 0..1000u32 {
        let m = &mut members[0];
        m.node.propose(Payload::new(&i.to_le_bytes()), &mut m.out)?;
        run(&mut members, &mut net, node3_up, size)?;
    }
    let applied = members[0].node.applied_index();
    let meta = members[0]
        .node
        .snapshot_meta(applied)
        .ok_or("no snapshot meta")?;
    let leader = &mut members[0];
    leader
        .node
        .step(Input::SnapshotTaken(Box::new(meta)), &mut leader.out)?;

    let before = peak_rss_kib();
    let start = Instant::now();
    node3_up = true;
    let mut ticks = 0;
    while members[2].node.applied_index() < applied && ticks < 10_000 {
        for m in members.iter_mut() {
            m.node.step(Input::Tick, &mut m.out)?;
        }
        run(&mut members, &mut net, node3_up, size)?;
        ticks += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let after = peak_rss_kib();
    let f = &members[2];
    assert_eq!(f.node.applied_index(), applied, "node 3 caught up");
    assert_eq!(f.stored, size, "node 3 stored the whole snapshot");
    let mut expected = 0u64;
    for o in 0..size {
        expected = expected
            .wrapping_mul(31)
            .wrapping_add(u64::from(snapshot_byte(o)));
    }
    assert_eq!(f.checksum, expected, "node 3 stored the right bytes");
    println!(
        "snapshot transfer: {mib} MiB in {} chunks of {} KiB in {secs:.2}s; peak RSS {} KiB \
         before, {} KiB after: the transfer added {} KiB ({:.1}% of the snapshot)",
        size.div_ceil(u64::from(CHUNK)),
        CHUNK >> 10,
        before,
        after,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1024.0 * 100.0 / size as f64
    );
    Ok(())
}

/// Runs the adapters until nothing is left to do: writes are durable at once, messages are
/// delivered at once (except to and from node 3 while it is cut off), chunk requests are
/// answered from the virtual file, and snapshot parts are hashed into node 3's sink.
fn run(
    members: &mut [Member],
    net: &mut VecDeque<Message>,
    node3_up: bool,
    size: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        for m in members.iter_mut() {
            let writes: Vec<_> = m.out.drain_writes().collect();
            let mut last = None;
            for w in writes {
                if let Some(part) = &w.snapshot {
                    if part.offset == 0 {
                        m.stored = 0;
                        m.checksum = 0;
                    }
                    for &b in part.data.as_bytes() {
                        m.checksum = m.checksum.wrapping_mul(31).wrapping_add(u64::from(b));
                    }
                    m.stored += part.data.len() as u64;
                }
                last = Some(w.id);
            }
            if let Some(id) = last {
                m.node.step(Input::Persisted(id), &mut m.out)?;
            }
            let requests: Vec<_> = m.out.drain_chunk_requests().collect();
            for r in requests {
                let end = (r.offset + u64::from(r.max_len)).min(size);
                let data: Vec<u8> = (r.offset..end).map(snapshot_byte).collect();
                let chunk = SnapshotChunk {
                    to: r.to,
                    snapshot: r.snapshot,
                    offset: r.offset,
                    data: Payload::from(data),
                    done: end == size,
                };
                m.node.step(Input::SnapshotChunk(chunk), &mut m.out)?;
            }
            let applied = m.out.drain_apply().map(|a| a.index()).next_back();
            if let Some(index) = applied {
                m.node.step(Input::Applied(index), &mut m.out)?;
            }
            m.out.drain_events().for_each(drop);
            m.out.drain_reads().for_each(drop);
            net.extend(m.out.drain_sends());
        }
        if net.is_empty() && members.iter().all(|m| m.out.is_empty()) {
            return Ok(());
        }
        while let Some(msg) = net.pop_front() {
            let cut = !node3_up && (msg.to.get() == 3 || msg.from.get() == 3);
            if cut {
                continue;
            }
            let m = &mut members[(msg.to.get() - 1) as usize];
            m.node.step(Input::Message(msg), &mut m.out)?;
        }
    }
}
