//! Leader election (Raft §5.2, §5.4.1) with pre-vote (thesis §9.6).

use rand_core::Rng;

use crate::error::{Refusal, StepError};
use crate::membership::VoteResult;
use crate::message::MessageBody;
use crate::node::Node;
use crate::output::Outputs;
use crate::status::Role;
use crate::types::{LogId, NodeId, Term};

impl<R: Rng> Node<R> {
    /// Starts an election: a pre-vote round first if configured, unless `transfer` (a leader
    /// handed over leadership, so the election must not wait or be ignored).
    pub(crate) fn campaign(&mut self, transfer: bool, out: &mut Outputs) -> Result<(), StepError> {
        if !self.may_campaign() {
            return Err(Refusal::NotVoter.into());
        }
        if self.role == Role::Leader {
            return Ok(());
        }
        self.stats.elections += 1;
        if self.config.pre_vote && !transfer {
            self.become_pre_candidate(out)
        } else {
            self.become_candidate(transfer, out)
        }
    }

    fn become_pre_candidate(&mut self, out: &mut Outputs) -> Result<(), StepError> {
        let proposed = self.term.next().ok_or(Refusal::Exhausted)?;
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.request_votes(proposed, true, false, out);
        self.tally(out);
        Ok(())
    }

    fn become_candidate(&mut self, transfer: bool, out: &mut Outputs) -> Result<(), StepError> {
        let term = self.term.next().ok_or(Refusal::Exhausted)?;
        self.role = Role::Candidate;
        self.term = term;
        self.vote = Some(self.id);
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.persist_hard_state(out);
        // The vote for itself counts only once it is durable.
        self.self_vote_write = self.durability.latest();
        self.request_votes(term, false, transfer, out);
        self.tally(out);
        Ok(())
    }

    fn request_votes(&self, term: Term, pre_vote: bool, transfer: bool, out: &mut Outputs) {
        let body = MessageBody::VoteRequest {
            last_log: self.log.last(),
            pre_vote,
            leader_transfer: transfer,
        };
        for to in self.membership.members() {
            if to != self.id && self.membership.is_voter(to) {
                out.sends.push(crate::Message {
                    from: self.id,
                    to,
                    term,
                    body: body.clone(),
                });
            }
        }
    }

    /// Counts the votes of the current (pre-)election and acts on the result.
    pub(crate) fn tally(&mut self, out: &mut Outputs) {
        let own = match self.role {
            Role::PreCandidate => Some(true),
            Role::Candidate => self
                .durability
                .is_acked(self.self_vote_write)
                .then_some(true),
            _ => return,
        };
        let id = self.id;
        let votes = &self.votes;
        let result = self.membership.vote_result(|m| {
            if m == id {
                own
            } else {
                votes.iter().find(|(v, _)| *v == m).map(|&(_, g)| g)
            }
        });
        match (result, self.role) {
            (VoteResult::Won, Role::PreCandidate) => {
                // A refusal (term exhausted) leaves the node a pre-candidate that times out.
                let _ = self.become_candidate(false, out);
            }
            (VoteResult::Won, _) => self.become_leader(out),
            (VoteResult::Lost, _) => self.become_follower(self.term, None, out),
            (VoteResult::Pending, _) => {}
        }
    }

    /// RequestVote receiver rules (Raft Figure 2, §5.2, §5.4.1). The term has been reconciled:
    /// `term` is this node's term, or for a pre-vote the (possibly higher) proposed term.
    pub(crate) fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        last_log: LogId,
        pre_vote: bool,
        out: &mut Outputs,
    ) {
        // One vote per term: grant only to the candidate already voted for, or if this node has
        // neither voted nor heard of a leader in the term. A pre-vote for a later term promises
        // nothing and may always be granted.
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        let granted = can_vote && self.log.candidate_is_up_to_date(last_log);
        if granted && !pre_vote {
            self.vote = Some(from);
            self.persist_hard_state(out);
            self.election_elapsed = 0;
        }
        let reply_term = if pre_vote && granted { term } else { self.term };
        let body = MessageBody::VoteResponse { granted, pre_vote };
        self.respond(from, reply_term, body, out);
    }

    pub(crate) fn handle_vote_response(
        &mut self,
        from: NodeId,
        term: Term,
        granted: bool,
        pre_vote: bool,
        out: &mut Outputs,
    ) {
        let current = match (self.role, pre_vote) {
            (Role::PreCandidate, true) => {
                // Grants carry the proposed term, refusals this node's own.
                if granted {
                    self.term.next() == Some(term)
                } else {
                    term == self.term
                }
            }
            (Role::Candidate, false) => term == self.term,
            _ => false,
        };
        if !current || !self.membership.is_voter(from) {
            return;
        }
        // The first answer counts; a duplicate changes nothing.
        if !self.votes.iter().any(|(v, _)| *v == from) {
            // Cannot overflow: only voters are recorded, at most MAX_MEMBERS.
            let _ = self.votes.push((from, granted));
        }
        self.tally(out);
    }
}
