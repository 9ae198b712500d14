//! Proposals stepped one after another between drains leave as one AppendEntries per follower,
//! and one write.

use raft_core::sim::SimRng;
use raft_core::{
    Config, Input, Membership, MessageBody, Node, NodeId, Outputs, Payload, Refusal, Restored,
    Role, StepError,
};

// With the planted bugs compiled in, the bug `RAFT_PLANTED_BUG` names (raft-core/PLANTED-BUGS.md).
#[cfg(raft_planted)]
#[path = "common/planted.rs"]
mod planted;

fn cluster() -> Vec<(Node<SimRng>, Outputs)> {
    #[cfg(raft_planted)]
    planted::from_env();
    let ids: Vec<NodeId> = (1..=3).filter_map(NodeId::new).collect();
    let membership = Membership::new(&ids).unwrap();
    ids.iter()
        .map(|&id| {
            let node = Node::restore(
                Config::new(id),
                SimRng::new(id.get()),
                Restored::initial(membership.clone()),
            )
            .unwrap();
            (node, Outputs::new())
        })
        .collect()
}

/// Delivers everything until quiet: writes acknowledged at once, messages delivered at once.
fn settle(nodes: &mut [(Node<SimRng>, Outputs)]) {
    loop {
        let mut inbox = Vec::new();
        for (node, out) in nodes.iter_mut() {
            inbox.extend(out.drain_sends());
            let durable = out.drain_writes().map(|w| w.id).next_back();
            if let Some(w) = durable {
                node.step(Input::Persisted(w), out).unwrap();
            }
            let applied = out.drain_apply().map(|a| a.index()).next_back();
            if let Some(i) = applied {
                node.step(Input::Applied(i), out).unwrap();
            }
            out.drain_events().for_each(drop);
            out.drain_reads().for_each(drop);
        }
        if inbox.is_empty() && nodes.iter().all(|(_, o)| o.is_empty()) {
            return;
        }
        for m in inbox {
            let (node, out) = &mut nodes[(m.to.get() - 1) as usize];
            node.step(Input::Message(m), out).unwrap();
        }
    }
}

/// Ticks until a leader is elected; returns its position.
fn elect(nodes: &mut [(Node<SimRng>, Outputs)]) -> usize {
    loop {
        for (node, out) in nodes.iter_mut() {
            node.step(Input::Tick, out).unwrap();
        }
        settle(nodes);
        if let Some(l) = nodes.iter().position(|(n, _)| n.role() == Role::Leader) {
            return l;
        }
    }
}

#[test]
fn proposals_between_drains_are_batched_into_one_message_per_follower_and_one_write() {
    let mut nodes = cluster();
    let leader = elect(&mut nodes);
    // One committed proposal puts both followers in the pipelining state.
    let (node, out) = &mut nodes[leader];
    node.propose(Payload::new(b"warm-up"), out).unwrap();
    settle(&mut nodes);

    let (node, out) = &mut nodes[leader];
    for i in 0..10u8 {
        node.propose(Payload::new(&[i]), out).unwrap();
    }
    let appends: Vec<usize> = out
        .sends()
        .iter()
        .map(|m| match &m.body {
            MessageBody::AppendEntries { entries, .. } => entries.len(),
            other => panic!("unexpected message {other:?}"),
        })
        .collect();
    assert_eq!(
        appends,
        vec![10, 10],
        "one message of 10 entries per follower"
    );
    assert_eq!(out.writes().len(), 1, "one write for all ten entries");
    assert_eq!(out.writes()[0].entries.len(), 10);

    settle(&mut nodes);
    let commits: Vec<u64> = nodes.iter().map(|(n, _)| n.commit_index().0).collect();
    assert!(
        commits.iter().all(|&c| c == commits[0] && c >= 12),
        "{commits:?}"
    );
}

#[test]
fn propose_batch_appends_consecutive_entries_in_one_write_and_is_all_or_none() {
    let mut nodes = cluster();
    let leader = elect(&mut nodes);
    let (node, out) = &mut nodes[leader];
    let before = node.last_log();
    let batch: Vec<Payload> = (0..64u8).map(|i| Payload::new(&[i; 16])).collect();
    let last = node.propose_batch(&batch, out).unwrap().expect("non-empty");
    assert_eq!(last.index.0, before.index.0 + 64);
    assert_eq!(last.term, node.term());
    assert_eq!(out.writes().len(), 1);
    assert_eq!(out.writes()[0].entries.len(), 64);
    assert!(out.sends().iter().all(|m| matches!(
        &m.body,
        MessageBody::AppendEntries { entries, .. } if entries.len() == 64
    )));
    assert_eq!(node.propose_batch(&[], out).unwrap(), None);

    // One command too large: nothing is appended.
    let mut too_large = batch.clone();
    too_large.push(Payload::from(vec![
        0;
        (node.config().max_entry_bytes + 1)
            as usize
    ]));
    let end = node.last_log();
    assert!(node.propose_batch(&too_large, out).is_err());
    assert_eq!(node.last_log(), end);

    settle(&mut nodes);
    let commits: Vec<u64> = nodes.iter().map(|(n, _)| n.commit_index().0).collect();
    assert!(commits.iter().all(|&c| c == last.index.0), "{commits:?}");
}

#[test]
fn the_propose_batch_input_does_what_propose_batch_does() {
    let batch: Vec<Payload> = (0..8u8).map(|i| Payload::new(&[i; 16])).collect();
    let mut by_call = cluster();
    let mut by_input = cluster();
    let leader = elect(&mut by_call);
    assert_eq!(elect(&mut by_input), leader, "same seeds, same leader");
    let (node, out) = &mut by_call[leader];
    node.propose_batch(&batch, out).unwrap();
    let (node, out) = &mut by_input[leader];
    node.step(Input::ProposeBatch(batch.clone()), out).unwrap();
    assert_eq!(by_call[leader].1.writes(), by_input[leader].1.writes());
    assert_eq!(by_call[leader].1.sends(), by_input[leader].1.sends());

    // A follower refuses it as it refuses a proposal, naming the leader.
    let follower = (leader + 1) % by_input.len();
    let (node, out) = &mut by_input[follower];
    let refused = node.step(Input::ProposeBatch(batch), out).unwrap_err();
    assert!(
        matches!(
            refused,
            StepError::Refused(Refusal::NotLeader { leader: Some(_) })
        ),
        "{refused:?}"
    );
}
