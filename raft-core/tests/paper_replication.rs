//! The Raft paper's rules for log replication and safety (Ongaro and Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", Figure 2, §5.3 and §5.4), one test per rule: the
//! AppendEntries receiver's rules, the leader's backtracking and retries, the election
//! restriction, commitment by counting, and applying only what is committed and durable.
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use common::paper::{THREE, replicating_leader};
use common::{
    Harness, accepted, append, append_response, config, heartbeat, heartbeat_response, id, msg,
    restored, vote_request,
};
use raft_core::{
    AppendOutcome, Index, Input, LogId, MessageBody, Misuse, Payload, Reject, StepError, Term,
};

// ---- §5.3 log replication --------------------------------------------------------------------

/// Raft §5.3, Figure 2 AppendEntries receiver rule 2: reply false if the log does not contain an
/// entry at prevLogIndex whose term matches prevLogTerm. The reply carries a hint for the leader.
#[test]
fn follower_rejects_append_when_prev_log_does_not_match() {
    let mut h = Harness::restored(2, restored(THREE, 2, None, &[1, 1, 2, 2, 2], 0));
    let before = h.node.last_log();

    // An entry at the index, of another term.
    let out = h.recv(append(1, 2, 2, LogId::new(1, 4), &[2], 0));
    assert_eq!(
        out.append_responses(),
        [(
            1,
            2,
            AppendOutcome::Conflict {
                rejected: Index(4),
                hint: LogId::new(1, 2),
            }
        )]
    );
    assert_eq!(h.node.last_log(), before, "nothing appended");

    // No entry at the index at all.
    let out = h.recv(append(1, 2, 2, LogId::new(2, 9), &[2], 0));
    assert_eq!(
        out.append_responses(),
        [(
            1,
            2,
            AppendOutcome::Conflict {
                rejected: Index(9),
                hint: LogId::new(2, 5),
            }
        )]
    );
    assert_eq!(h.node.last_log(), before);
    assert!(out.writes.is_empty());
}

/// Raft §5.3, Figure 2 AppendEntries receiver rule 3: if an existing entry conflicts with a new
/// one (same index, different terms), delete the existing entry and all that follow it.
#[test]
fn follower_deletes_conflicting_entry_and_all_that_follow() {
    let mut h = Harness::restored(2, restored(THREE, 2, None, &[1, 1, 2, 2, 2], 0));
    let out = h.recv(append(1, 2, 3, LogId::new(1, 2), &[3], 0));
    assert_eq!(h.node.last_log(), LogId::new(3, 3));
    assert_eq!(h.node.status().log_len, 3);
    let truncations: Vec<Index> = out.writes.iter().filter_map(|w| w.truncate_from).collect();
    assert_eq!(truncations, [Index(3)]);
    assert_eq!(out.written(), [LogId::new(3, 3)]);
    let out = h.persist();
    assert_eq!(
        out.append_responses(),
        [(
            1,
            3,
            AppendOutcome::Accepted {
                match_index: Index(3)
            }
        )]
    );
}

/// Raft §5.3, Figure 2 AppendEntries receiver rule 4: append any new entries not already in the
/// log (entries already present are not written again).
#[test]
fn follower_appends_new_entries_not_already_in_log() {
    let mut h = Harness::restored(2, restored(THREE, 1, None, &[1, 1], 0));
    let out = h.recv(append(1, 2, 1, LogId::new(1, 1), &[1, 1, 1], 0));
    assert_eq!(out.written(), [LogId::new(1, 3), LogId::new(1, 4)]);
    assert!(out.writes.iter().all(|w| w.truncate_from.is_none()));
    assert_eq!(h.node.last_log(), LogId::new(1, 4));
    let out = h.persist();
    assert_eq!(
        out.append_responses(),
        [(
            1,
            1,
            AppendOutcome::Accepted {
                match_index: Index(4)
            }
        )]
    );
}

/// Raft §5.3, Figure 2 AppendEntries receiver rule 5: if leaderCommit > commitIndex, set
/// commitIndex = min(leaderCommit, index of last new entry).
#[test]
fn follower_sets_commit_to_min_of_leader_commit_and_last_new_entry() {
    // The leader's commit is past the entries sent: capped at the last new one.
    let mut h = Harness::new(2, THREE);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1], 5));
    assert_eq!(h.node.commit_index(), Index(2));

    // The leader's commit is below the entries sent.
    let mut h = Harness::new(2, THREE);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1, 1], 1));
    assert_eq!(h.node.commit_index(), Index(1));

    // The follower holds entries past the message's last one; those are not known to match the
    // leader's log, so they are not committed.
    let mut h = Harness::restored(2, restored(THREE, 1, None, &[1, 1, 1, 1], 0));
    h.recv(append(1, 2, 1, LogId::new(1, 1), &[], 3));
    assert_eq!(h.node.commit_index(), Index(1));
    h.recv(append(1, 2, 1, LogId::new(1, 2), &[1], 4));
    assert_eq!(h.node.commit_index(), Index(3));

    // It never goes back.
    h.recv(append(1, 2, 1, LogId::new(1, 3), &[], 1));
    assert_eq!(h.node.commit_index(), Index(3));
}

/// Raft §5.3: a delayed or duplicated AppendEntries must not truncate entries a later one
/// appended (the "if an existing entry conflicts" condition of rule 3 is essential).
#[test]
fn stale_append_does_not_truncate_entries_appended_by_later_one() {
    let mut h = Harness::new(2, THREE);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1, 1], 0));
    h.persist();
    let mut out = h.recv(append(1, 2, 1, LogId::ZERO, &[1], 0));
    out.merge(h.persist());
    assert_eq!(h.node.last_log(), LogId::new(1, 3));
    assert!(out.writes.is_empty(), "nothing to write: {:?}", out.writes);
    assert_eq!(
        out.append_responses(),
        [(
            1,
            1,
            AppendOutcome::Accepted {
                match_index: Index(1)
            }
        )],
        "acknowledges only what the message covered"
    );
}

/// Raft §5.3, Figure 2 "Rules for Servers, leaders": if AppendEntries fails because of log
/// inconsistency, decrement nextIndex and retry.
#[test]
fn leader_backs_up_next_index_on_rejection() {
    let mut h = Harness::restored(1, restored(THREE, 2, None, &[1, 1, 2], 0));
    let out = h.elect();
    assert_eq!(h.node.term(), Term(3));
    let first: Vec<_> = out.appends().into_iter().filter(|a| a.0 == 2).collect();
    assert_eq!(
        first,
        [(2, LogId::new(2, 3), vec![LogId::new(3, 4)], 0)],
        "the first probe is after the leader's last entry"
    );
    let conflict = AppendOutcome::Conflict {
        rejected: Index(3),
        hint: LogId::new(1, 2),
    };
    let out = h.recv(append_response(2, 1, 3, conflict));
    assert_eq!(
        out.appends(),
        [(
            2,
            LogId::new(1, 2),
            vec![LogId::new(2, 3), LogId::new(3, 4)],
            0
        )]
    );
}

/// Raft §5.3 (the optimization at the end of the section): with the follower's hint, the leader
/// skips every conflicting entry of a term in one round trip instead of one entry per round trip.
#[test]
fn leader_fast_backtracking_skips_whole_term_using_conflict_hint() {
    let mut leader = Harness::restored(1, restored(THREE, 4, None, &[1, 1, 1, 4, 4, 4, 4], 0));
    let mut follower = Harness::restored(
        2,
        restored(THREE, 3, None, &[1, 1, 1, 2, 2, 3, 3, 3, 3, 3], 0),
    );
    let mut to_follower = leader.elect();
    leader.persist();
    assert_eq!(leader.node.term(), Term(5));

    let mut conflicts = 0;
    for _ in 0..10 {
        let reply = follower.deliver(&to_follower);
        conflicts += reply
            .append_responses()
            .iter()
            .filter(|r| matches!(r.2, AppendOutcome::Conflict { .. }))
            .count();
        if reply.sends.is_empty() {
            break;
        }
        to_follower = leader.deliver(&reply);
    }
    assert_eq!(conflicts, 1, "one round trip skips the whole of term 4");
    assert_eq!(follower.node.last_log(), LogId::new(5, 8));
    assert_eq!(leader.node.commit_index(), Index(8));
    assert_eq!(follower.node.commit_index(), Index(8));
}

/// Raft §5.3 with the persistence contract: a follower acknowledges entries only once they are
/// durable on its disk; what vouches for nothing durable is not held back behind that write
/// (a follower whose disk is slow still answers heartbeats, so CheckQuorum keeps its leader:
/// simulator seed 209533 of the membership scenario).
#[test]
fn append_ack_withheld_until_follower_write_is_acknowledged() {
    let mut h = Harness::new(2, THREE);
    let out = h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1], 0));
    assert_eq!(out.written(), [LogId::new(1, 1), LogId::new(1, 2)]);
    assert!(
        out.append_responses().is_empty(),
        "acknowledged before durable"
    );
    // What vouches for nothing on the disk goes out at once: a heartbeat's answer, and a
    // conflict (an append after an entry the follower lacks).
    let out = h.recv(heartbeat(1, 2, 1, 1, 7));
    assert_eq!(
        out.sends.iter().map(|m| &m.body).collect::<Vec<_>>(),
        [&MessageBody::HeartbeatResponse {
            read_round: 7,
            writes_pending: true
        }]
    );
    let out = h.recv(append(1, 2, 1, LogId::new(1, 5), &[1], 0));
    assert_eq!(
        out.append_responses(),
        [(
            1,
            1,
            AppendOutcome::Conflict {
                rejected: Index(5),
                hint: LogId::new(1, 2)
            }
        )]
    );
    let out = h.persist();
    assert_eq!(
        out.append_responses(),
        [(
            1,
            1,
            AppendOutcome::Accepted {
                match_index: Index(2)
            }
        )]
    );
}

/// Raft §5.3, Figure 2 "Rules for Servers, leaders": if the last log index is at least a
/// follower's nextIndex, send it AppendEntries with the entries from nextIndex.
#[test]
fn leader_replicates_new_entries_to_followers() {
    let mut h = Harness::leader(1, THREE);
    let out = h.step(Input::Propose(Payload::new(b"x")));
    assert_eq!(out.written(), [LogId::new(1, 2)]);
    let to_2: Vec<_> = out.appends().into_iter().filter(|a| a.0 == 2).collect();
    assert_eq!(to_2, [(2, LogId::new(1, 1), vec![LogId::new(1, 2)], 1)]);
}

/// Raft Figure 2 "Rules for Servers, leaders": upon election, send initial AppendEntries to each
/// server, and repeat heartbeats during idle periods to prevent election timeouts.
#[test]
fn leader_sends_heartbeats_during_idle_periods() {
    let mut h = Harness::leader(1, THREE);
    let every = h.node.config().heartbeat_ticks;
    for _ in 0..5 {
        let out = h.tick(every - 1);
        assert!(out.sends.is_empty(), "{:?}", out.sends);
        let out = h.tick(1);
        let mut to: Vec<u64> = out
            .sends
            .iter()
            .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
            .map(|m| m.to.get())
            .collect();
        to.sort_unstable();
        assert_eq!(to, [2, 3]);
        // Keep CheckQuorum satisfied.
        h.recv(heartbeat_response(2, 1, 1, 0));
    }
}

/// Raft §5.3: if a follower does not answer (its messages were lost), the leader retries
/// AppendEntries until the follower eventually stores every entry.
#[test]
fn leader_retries_append_entries_when_follower_makes_no_progress() {
    let mut h = Harness::leader(1, THREE); // 3 never answered the first AppendEntries
    let lost = h.step(Input::Propose(Payload::new(b"x")));
    assert_eq!(
        lost.appends(),
        [(2, LogId::new(1, 1), vec![LogId::new(1, 2)], 1)]
    );
    let retries = |out: &common::Out, to: u64| -> Vec<Vec<LogId>> {
        out.appends()
            .into_iter()
            .filter(|a| a.0 == to && !a.2.is_empty())
            .map(|a| a.2)
            .collect()
    };
    // Heartbeat answers show no progress: the leader sends the entries again.
    let out = h.recv(heartbeat_response(3, 1, 1, 0));
    assert_eq!(retries(&out, 3), [vec![LogId::new(1, 1), LogId::new(1, 2)]]);
    // 2 was pipelining: the leader asks first, with an empty append after the entry in flight,
    // and resends once 2's refusal says the entry is missing.
    let mut out = h.recv(heartbeat_response(2, 1, 1, 0));
    out.merge(h.recv(heartbeat_response(2, 1, 1, 0)));
    let to_2: Vec<(LogId, Vec<LogId>)> = out
        .appends()
        .into_iter()
        .filter(|a| a.0 == 2)
        .map(|a| (a.1, a.2))
        .collect();
    assert_eq!(to_2, [(LogId::new(1, 2), vec![])]);
    let refused = AppendOutcome::Conflict {
        rejected: Index(2),
        hint: LogId::new(1, 1),
    };
    let out = h.recv(append_response(2, 1, 1, refused));
    assert_eq!(retries(&out, 2), [vec![LogId::new(1, 2)]]);
}

/// A follower whose writes are pending says so in its heartbeat answers (they do not wait for
/// its disk, its acknowledgements do): the leader does not take the missing acknowledgements
/// for a loss, and neither asks nor resends.
#[test]
fn a_follower_with_writes_pending_is_not_taken_for_stalled() {
    let mut h = replicating_leader(|_| {});
    h.step(Input::Propose(Payload::new(b"a")));
    h.persist();
    let slow = |round| {
        msg(
            2,
            1,
            1,
            MessageBody::HeartbeatResponse {
                read_round: round,
                writes_pending: true,
            },
        )
    };
    for round in 0..4 {
        let out = h.recv(slow(round));
        assert_eq!(
            out.sent_to(2),
            Vec::<&raft_core::Message>::new(),
            "round {round}"
        );
    }
    // Once its disk has caught up, two answers without progress are a stall again.
    h.recv(heartbeat_response(2, 1, 1, 0));
    let out = h.recv(heartbeat_response(2, 1, 1, 0));
    assert_eq!(out.appends().iter().filter(|a| a.0 == 2).count(), 1);
}

// ---- §5.4 safety -----------------------------------------------------------------------------

/// Raft §5.4.1, Figure 2 RequestVote receiver rule 2: grant a vote only if the candidate's log is
/// at least as up to date; a log whose last entry has an older term is less up to date, however
/// long it is.
#[test]
fn vote_refused_to_candidate_with_older_last_term() {
    let mut h = Harness::restored(1, restored(THREE, 2, None, &[1, 1, 2], 0));
    let mut out = h.recv(vote_request(2, 1, 3, LogId::new(1, 7)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(2, 3, false, false)]);
    assert_eq!(h.node.term(), Term(3), "the term is still adopted");
    assert_eq!(h.node.status().vote, None);

    // A later last term wins even with a shorter log.
    let mut out = h.recv(vote_request(3, 1, 3, LogId::new(3, 1)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(3, 3, true, false)]);
}

/// Raft §5.4.1: if the logs end with the same term, the longer log is more up to date.
#[test]
fn vote_refused_to_candidate_with_shorter_log_at_equal_last_term() {
    let mut h = Harness::restored(1, restored(THREE, 2, None, &[1, 1, 2], 0));
    let mut out = h.recv(vote_request(2, 1, 3, LogId::new(2, 2)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(2, 3, false, false)]);
    assert_eq!(h.node.status().vote, None);

    let mut out = h.recv(vote_request(3, 1, 3, LogId::new(2, 3)));
    out.merge(h.persist());
    assert_eq!(
        out.vote_responses(),
        [(3, 3, true, false)],
        "an equal log is up to date"
    );
}

/// Raft §5.4.2, Figure 8: a leader never commits an entry from an earlier term by counting
/// replicas; only entries of its own term are, and earlier ones are committed with them.
#[test]
fn leader_commits_only_current_term_entries_by_counting() {
    // Index 1 is committed; index 2 was appended in term 2 and never committed.
    let one_entry_per_message = config(1, |c| c.max_msg_entries = 1);
    let state = restored(THREE, 2, None, &[1, 2], 1);
    let mut leader = Harness::restore(one_entry_per_message, state).expect("consistent state");
    let mut follower = Harness::restored(2, restored(THREE, 2, None, &[1], 1));
    let mut to_follower = leader.elect();
    leader.persist();
    assert_eq!(leader.node.term(), Term(3));
    assert_eq!(leader.node.last_log(), LogId::new(3, 3));

    let mut saw_old_entry_on_majority = false;
    for _ in 0..10 {
        let reply = follower.deliver(&to_follower);
        if reply.sends.is_empty() {
            break;
        }
        to_follower = leader.deliver(&reply);
        if follower.node.last_log() == LogId::new(2, 2) {
            // Entry 2 (term 2) is now on two of three nodes.
            saw_old_entry_on_majority = true;
            assert_eq!(
                leader.node.commit_index(),
                Index(1),
                "committed an entry of an earlier term by counting replicas"
            );
        }
    }
    assert!(saw_old_entry_on_majority, "the test did not reach its case");
    assert_eq!(follower.node.last_log(), LogId::new(3, 3));
    assert_eq!(leader.node.commit_index(), Index(3));
}

/// Raft §5.4.2 with the persistence contract: a leader counts itself towards a majority only for
/// entries durable on its own disk.
#[test]
fn leader_counts_itself_toward_commit_only_after_its_own_write_is_acknowledged() {
    let mut h = Harness::new(1, THREE);
    h.elect();
    let no_op = h.unacked().expect("the no-op write");
    let out = h.recv(accepted(2, 1, 1, 1));
    assert_eq!(
        h.node.commit_index(),
        Index(0),
        "committed with one durable copy of three"
    );
    assert!(out.apply.is_empty());
    let out = h.step(Input::Persisted(no_op));
    assert_eq!(h.node.commit_index(), Index(1));
    assert_eq!(out.applied(), [LogId::new(1, 1)]);
}

/// Raft Figure 2 "Rules for Servers, all servers": if commitIndex > lastApplied, apply entries in
/// log order; with the persistence contract, only entries that are also durable locally.
#[test]
fn entries_are_applied_in_order_only_when_committed_and_durable() {
    let mut h = Harness::new(2, THREE);
    let out = h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1, 1], 2));
    assert_eq!(h.node.commit_index(), Index(2));
    assert!(out.apply.is_empty(), "applied an entry that is not durable");
    let out = h.persist();
    assert_eq!(out.applied(), [LogId::new(1, 1), LogId::new(1, 2)]);
    let out = h.recv(heartbeat(1, 2, 1, 3, 0));
    assert_eq!(out.applied(), [LogId::new(1, 3)]);

    h.step(Input::Applied(Index(3)));
    assert_eq!(h.node.applied_index(), Index(3));
    let (result, _) = h.try_step(Input::Applied(Index(4)));
    assert_eq!(
        result,
        Err(StepError::Misuse(Misuse::AppliedPastEmitted {
            index: Index(4),
            emitted: Index(3)
        }))
    );
}

/// Raft §5.3 with the persistence contract: entries written and then replaced by a new leader
/// before their write was acknowledged are never applied, even when that acknowledgement arrives
/// after the replacement.
#[test]
fn replaced_entries_are_never_applied_even_if_their_write_is_acknowledged_late() {
    let mut h = Harness::new(2, THREE);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1, 1], 0));
    let old_write = h.unacked().expect("the entries' write");
    // The leader of term 2 replaces entries 2 and 3, and says index 2 is committed.
    let out = h.recv(append(3, 2, 2, LogId::new(1, 1), &[2], 2));
    assert_eq!(h.node.commit_index(), Index(2));
    assert!(out.apply.is_empty());

    let out = h.step(Input::Persisted(old_write));
    assert_eq!(
        out.applied(),
        [LogId::new(1, 1)],
        "only entry 1 is both committed and durable"
    );
    assert!(
        !out.sends.iter().any(|m| m.to == id(3)),
        "acknowledged term 2's entry before its write was durable"
    );
    let out = h.persist();
    assert_eq!(out.applied(), [LogId::new(2, 2)]);
    assert_eq!(
        out.append_responses(),
        [(
            3,
            2,
            AppendOutcome::Accepted {
                match_index: Index(2)
            }
        )]
    );
}

/// Raft Figure 2 / §5.3: a commit index past the end of the log cannot come from a correct
/// leader. The node rejects it with a typed error, changes nothing, counts it, and keeps serving
/// (etcd's raft and raft-rs panic here).
#[test]
fn heartbeat_with_commit_past_log_is_rejected_and_node_keeps_serving() {
    let mut h = Harness::restored(2, restored(THREE, 1, None, &[1, 1], 0));
    rejects_commit_5_past_log_of_2(&mut h, |term| heartbeat(1, 2, term, 5, 0));
    assert_eq!(h.node.stats().rejected, 2);
    assert!(matches!(
        h.node.stats().last_rejected,
        Some(Reject::CommitPastLog { .. })
    ));

    let out = h.recv(heartbeat(1, 2, 1, 2, 0));
    assert_eq!(h.node.leader(), Some(id(1)));
    assert_eq!(h.node.commit_index(), Index(2));
    assert_eq!(out.applied(), [LogId::new(1, 1), LogId::new(1, 2)]);
    assert_eq!(out.sends.len(), 1, "the heartbeat is answered");
}

/// `h`, holding two entries, rejects the message `commit_5(term)` (committing index 5) in its
/// own term and in a newer one, with a typed error and no change at all.
fn rejects_commit_5_past_log_of_2(h: &mut Harness, commit_5: impl Fn(u64) -> raft_core::Message) {
    let before = h.node.status();
    for term in [1, 4] {
        let (result, out) = h.try_recv(commit_5(term));
        assert_eq!(
            result,
            Err(StepError::Rejected(Reject::CommitPastLog {
                commit: Index(5),
                last: Index(2)
            }))
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(h.node.status(), before);
    }
}

/// A commit notice (the leader's commit index, capped at the follower's acknowledged match index)
/// is checked as a heartbeat's commit is: past the end of the log it is rejected with a typed
/// error and changes nothing. Within the log it is adopted without an answer. From a newer term
/// it makes the node follow its sender in that term; it also resets the election timer, as any
/// message from the leader does.
#[test]
fn commit_notice_is_checked_against_the_log_and_needs_no_answer() {
    // The node's log holds two entries of term 1.
    let notice = |term: u64, commit: u64| {
        let body = MessageBody::Commit {
            commit: LogId::new(u64::from(commit > 0), commit),
        };
        msg(1, 2, term, body)
    };
    // An election timeout of exactly `election_ticks_min` ticks.
    let config = config(2, |c| c.election_ticks_max = c.election_ticks_min + 1);
    let ticks = config.election_ticks_min;
    let state = restored(THREE, 1, None, &[1, 1], 0);
    let mut h = Harness::restore(config, state).expect("consistent state");
    rejects_commit_5_past_log_of_2(&mut h, |term| notice(term, 5));

    let out = h.recv(notice(1, 1));
    assert_eq!(h.node.leader(), Some(id(1)));
    assert_eq!(h.node.commit_index(), Index(1));
    assert_eq!(out.applied(), [LogId::new(1, 1)]);
    assert!(out.sends.is_empty(), "no answer: {:?}", out.sends);
    // A lower commit index than the node's own changes nothing.
    let out = h.recv(notice(1, 0));
    assert_eq!(h.node.commit_index(), Index(1));
    assert!(out.is_empty(), "{out:?}");

    // Just short of an election timeout, a notice (even one with nothing new) keeps the node
    // from campaigning.
    for _ in 0..ticks - 1 {
        h.step(Input::Tick);
    }
    h.recv(notice(1, 1));
    for _ in 0..ticks - 1 {
        let out = h.step(Input::Tick);
        assert!(out.sends.is_empty(), "campaigned: {:?}", out.sends);
    }

    // A notice naming an entry the log does not hold (another term at that index) is rejected:
    // no correct leader names one, and adopting it would commit entries that may differ. Past
    // the commit index, and at it (entry 1.1 is committed here).
    let before = h.node.status();
    for commit in [LogId::new(2, 2), LogId::new(2, 1)] {
        let (result, out) = h.try_recv(msg(1, 2, 1, MessageBody::Commit { commit }));
        assert_eq!(
            result,
            Err(StepError::Rejected(Reject::CommitNotInLog { commit }))
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(h.node.status(), before);
    }

    // From a newer term: the node follows the sender in it, and commits.
    let out = h.recv(notice(3, 2));
    assert_eq!((h.node.term(), h.node.leader()), (Term(3), Some(id(1))));
    assert_eq!(h.node.commit_index(), Index(2));
    assert_eq!(out.applied(), [LogId::new(1, 2)]);
    assert!(out.sends.is_empty(), "{:?}", out.sends);
}

/// A leader that is a quorum by itself (the only voter, with a learner that never answers)
/// commits each entry as its own write becomes durable: the count on `Persisted` is skipped only
/// when a peer's acknowledgement is also needed and none is past the commit index.
#[test]
fn a_lone_voter_with_a_learner_commits_on_its_own_write() {
    let members = raft_core::Membership::with_learners(&[id(1)], &[id(2)]).expect("valid");
    let state = raft_core::Restored::initial(members);
    let mut h = Harness::restore(config(1, |_| {}), state).expect("valid initial state");
    h.elect();
    h.persist();
    assert_eq!(h.node.commit_index(), Index(1), "the no-op");
    for index in 2..=3 {
        h.step(Input::Propose(Payload::new(b"x")));
        assert_eq!(h.node.commit_index(), Index(index - 1), "not durable yet");
        let out = h.persist();
        assert_eq!(h.node.commit_index(), Index(index));
        assert_eq!(out.applied(), [LogId::new(1, index)]);
    }
}
