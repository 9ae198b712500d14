//! Leader election (Raft §5.2, §5.4.1) with pre-vote (thesis §9.6): the votes a (pre-)candidate
//! collects, the RequestVote receiver rules, and the randomized election timeout (the only use of
//! the RNG). The role changes an election causes are the node's
//! ([`Node::campaign`](crate::Node)), driven by what [`Votes::tally`] says.

use rand_core::Rng;

use crate::membership::{MAX_MEMBERS, VoteResult};
use crate::message::{Message, MessageBody};
use crate::output::Outputs;
use crate::shared::Shared;
use crate::types::{LogId, NodeId, Term};

/// The votes of one (pre-)election, this node's own aside.
#[derive(Debug, Default)]
pub(crate) struct Votes {
    /// The latest answer received from each voter.
    received: heapless::Vec<(NodeId, bool), MAX_MEMBERS>,
    /// A candidate's write recording its vote for itself: its own vote counts once that is
    /// durable. `None` in a pre-vote, which records nothing and counts itself at once.
    self_vote_write: Option<u64>,
    /// A pre-vote's question: the term proposed and the log offered.
    asked: Option<(Term, LogId)>,
}

impl Votes {
    /// A pre-vote round asking for `proposed` with `last_log`: this node's own pre-vote counts
    /// at once.
    pub(crate) fn pre_vote(proposed: Term, last_log: LogId) -> Self {
        Self {
            asked: Some((proposed, last_log)),
            ..Self::default()
        }
    }

    /// An election: this node's vote counts once write `self_vote_write` is durable.
    pub(crate) fn election(self_vote_write: u64) -> Self {
        Self {
            self_vote_write: Some(self_vote_write),
            ..Self::default()
        }
    }

    /// The next pre-vote round, after an election timeout, asking for `proposed` with
    /// `last_log`. If this round asked the same question, its grants still hold (a grant answers
    /// the question, not the request: responses carry no round), so they carry over, and the
    /// new round only needs the rest; a voter's newer answer replaces its old one. Without this,
    /// when answers take longer than a timeout, grants arrive for a round already abandoned and
    /// every round starts from nothing.
    pub(crate) fn next_pre_vote(self, proposed: Term, last_log: LogId) -> Self {
        let mut next = Self::pre_vote(proposed, last_log);
        if self.asked == next.asked {
            for &(voter, granted) in &self.received {
                if granted {
                    // Cannot overflow: at most as many as this round held.
                    let _ = next.received.push((voter, true));
                }
            }
        }
        next
    }

    /// Records a voter's answer; a later answer from the same voter replaces an earlier one.
    pub(crate) fn record(&mut self, from: NodeId, granted: bool) {
        match self.received.iter_mut().find(|(v, _)| *v == from) {
            Some(answer) => answer.1 = granted,
            // Cannot overflow: only voters are recorded, at most MAX_MEMBERS.
            None => {
                let _ = self.received.push((from, granted));
            }
        }
    }

    /// The result of the round so far, by the configuration in force.
    ///
    /// An election is won only once the candidate's term and vote are durable, even when the
    /// other voters' grants alone make a majority: a leader whose term is not on its disk could
    /// crash, restart in the term before, campaign for the same term again and win it a second
    /// time (its voters granted that candidate already), leading one term twice with two
    /// different logs.
    pub(crate) fn tally(&self, s: &Shared) -> VoteResult {
        let durable = self
            .self_vote_write
            .is_none_or(|w| s.durability.is_acked(w));
        // Planted bug: the candidate's own vote counts before the write recording it is durable.
        #[cfg(raft_planted)]
        let durable =
            durable || crate::planted::active(crate::planted::Bug::CandidateSelfVoteEarly);
        let own = durable.then_some(true);
        let id = s.id;
        let result = s.membership.vote_result(|m| {
            if m == id {
                own
            } else {
                self.received.iter().find(|(v, _)| *v == m).map(|&(_, g)| g)
            }
        });
        match result {
            VoteResult::Won if !durable => VoteResult::Pending,
            other => other,
        }
    }
}

/// Asks every other voter for its (pre-)vote in `term`.
pub(crate) fn request_votes(
    s: &Shared,
    term: Term,
    pre_vote: bool,
    transfer: bool,
    out: &mut Outputs,
) {
    // Only the durable log is offered: voters judge what survives a crash of this node.
    let body = MessageBody::VoteRequest {
        last_log: s.log.durable_last(),
        pre_vote,
        leader_transfer: transfer,
    };
    for to in s.membership.members() {
        if to != s.id && s.membership.is_voter(to) {
            out.sends.push(Message {
                from: s.id,
                to,
                term,
                body: body.clone(),
            });
        }
    }
}

/// RequestVote receiver rules (Raft Figure 2, §5.2, §5.4.1). The term has been reconciled:
/// `term` is this node's term, or for a pre-vote the (possibly higher) proposed term.
pub(crate) fn handle_vote_request(
    s: &mut Shared,
    from: NodeId,
    term: Term,
    last_log: LogId,
    pre_vote: bool,
    out: &mut Outputs,
) {
    // One vote per term: grant only to the candidate already voted for, or if this node has
    // neither voted nor heard of a leader in the term. A pre-vote for a later term promises
    // nothing and may always be granted.
    let can_vote = s.vote == Some(from)
        || (s.vote.is_none() && s.leader.is_none())
        || (pre_vote && term > s.term);
    // Planted bug: one vote per term is broken: a node that voted for another candidate (not
    // itself: a candidate or leader of the term) votes again for any.
    #[cfg(raft_planted)]
    let can_vote = can_vote
        || (s.vote != Some(s.id) && crate::planted::active(crate::planted::Bug::DoubleVote));
    let granted = can_vote && s.log.candidate_is_up_to_date(last_log);
    // Planted bug: the election restriction (§5.4.1) is skipped, votes and pre-votes alike.
    #[cfg(raft_planted)]
    let granted =
        granted || (can_vote && crate::planted::active(crate::planted::Bug::VoteSkipsLogCheck));
    if granted && !pre_vote {
        s.vote = Some(from);
        s.persist_hard_state(out);
        s.election_elapsed = 0;
    }
    let reply_term = if pre_vote && granted { term } else { s.term };
    let body = MessageBody::VoteResponse { granted, pre_vote };
    // Planted bug: the grant leaves before the write recording the vote is durable.
    #[cfg(raft_planted)]
    if granted && !pre_vote && crate::planted::active(crate::planted::Bug::GrantBeforeDurable) {
        out.sends.push(Message {
            from: s.id,
            to: from,
            term: reply_term,
            body,
        });
        return;
    }
    s.respond(from, reply_term, body, out);
}

/// Draws an election timeout uniformly from `[min, max)`.
///
/// Exactly one `next_u64` is drawn per call, so a test that controls the RNG can predict every
/// timeout. The draw goes through a bijective mixer first, so an RNG whose high bits are weak
/// (one that yields 53-bit values, say) still spreads timeouts over the whole range: identical
/// timeouts on every node would split every vote forever. Multiply-shift then maps it to the
/// range without modulo bias worth measuring (the range is far below 2^32).
pub(crate) fn random_timeout<R: Rng>(rng: &mut R, min: u32, max: u32) -> u32 {
    let span = u64::from(max.saturating_sub(min).max(1));
    let draw = mix(rng.next_u64()) >> 32;
    // (draw * span) >> 32 < span <= u32::MAX, so the cast is lossless.
    let offset = ((draw * span) >> 32) as u32;
    min.saturating_add(offset)
}

/// The SplitMix64 finalizer: a bijection on u64 that spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::convert::Infallible;

    struct Fixed(u64);
    impl rand_core::TryRng for Fixed {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            Ok(self.0 as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            Ok(self.0)
        }
        fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Infallible> {
            Ok(())
        }
    }

    #[test]
    fn timeouts_span_the_whole_range() {
        let mut seen = [false; 10];
        for v in 0..1000u64 {
            let t = random_timeout(&mut Fixed(v), 10, 20);
            assert!((10..20).contains(&t));
            seen[(t - 10) as usize] = true;
        }
        assert!(
            seen.iter().all(|&s| s),
            "every timeout in range is drawn: {seen:?}"
        );
    }

    #[test]
    fn small_draws_still_spread() {
        // An RNG that only ever yields small numbers must not give every node the same timeout.
        let a = random_timeout(&mut Fixed(1), 10, 20);
        let b = (2..50u64).map(|v| random_timeout(&mut Fixed(v), 10, 20));
        assert!(b.into_iter().any(|t| t != a));
    }

    /// A pre-vote grant answers one question (a term and the log offered): the next round
    /// keeps it only if it asks the same one, and starts from nothing if the term or the
    /// offered log changed.
    #[test]
    fn pre_vote_grants_carry_over_only_for_the_same_question() {
        let voter = NodeId::new(3).unwrap();
        let asked = |term: u64, log: LogId| {
            let mut v = Votes::pre_vote(Term(term), log);
            v.record(voter, true);
            v
        };
        let same = asked(2, LogId::new(1, 1)).next_pre_vote(Term(2), LogId::new(1, 1));
        assert_eq!(same.received.as_slice(), [(voter, true)]);
        let longer = asked(2, LogId::new(1, 1)).next_pre_vote(Term(2), LogId::new(1, 2));
        assert!(longer.received.is_empty());
        let later = asked(2, LogId::new(1, 1)).next_pre_vote(Term(3), LogId::new(1, 1));
        assert!(later.received.is_empty());
    }

    /// The inverse of `z ^= z >> shift`.
    fn unshift(y: u64, shift: u32) -> u64 {
        let mut x = y;
        let mut s = shift;
        while s < 64 {
            x ^= y >> s;
            s += shift;
        }
        x
    }

    /// The inverse of multiplying by the odd `c` modulo 2^64 (Newton's iteration).
    fn inverse(c: u64) -> u64 {
        let mut inv = c;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2_u64.wrapping_sub(c.wrapping_mul(inv)));
        }
        inv
    }

    /// The mixer is SplitMix64's finalizer (the output function of the reference generator),
    /// a bijection: it loses no bit of the draw, so distinct draws stay distinct, and undoing
    /// its steps gives the draw back.
    #[test]
    fn the_mixer_is_the_splitmix64_finalizer_a_bijection() {
        let unmix = |mut z: u64| {
            z = unshift(z, 31);
            z = z.wrapping_mul(inverse(0x94D0_49BB_1331_11EB));
            z = unshift(z, 27);
            z = z.wrapping_mul(inverse(0xBF58_476D_1CE4_E5B9));
            unshift(z, 30)
        };
        let mut r = crate::SplitMix64::new(1);
        let draws = (0..64)
            .map(|k| 1_u64 << k)
            .chain((0..1000).map(|_| r.next_u64()));
        for x in draws.chain([0, u64::MAX]) {
            assert_eq!(unmix(mix(x)), x, "{x:#x}");
            let state = x.wrapping_sub(0x9E37_79B9_7F4A_7C15);
            assert_eq!(mix(x), crate::SplitMix64::new(state).next_u64(), "{x:#x}");
        }
    }
}
