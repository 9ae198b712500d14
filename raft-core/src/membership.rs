//! Cluster membership: who votes, who only learns, and the quorum arithmetic over them.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::types::{Index, NodeId};

/// The most nodes a configuration may name, counting voters, learners and (during a joint
/// change) the outgoing voters together.
pub const MAX_MEMBERS: usize = 16;

/// A sorted set of node ids, without duplicates, of at most [`MAX_MEMBERS`] ids.
pub type Members = heapless::Vec<NodeId, MAX_MEMBERS>;

/// Why a membership could not be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum MembershipError {
    /// The configuration names no voter.
    NoVoters,
    /// More than [`MAX_MEMBERS`] distinct nodes.
    TooManyMembers,
    /// A node is listed both as a voter and as a learner.
    VoterIsLearner(NodeId),
    /// On the wire: a list of ids is not strictly increasing (a duplicate, or out of order).
    NotSorted,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVoters => f.write_str("membership has no voters"),
            Self::TooManyMembers => write!(f, "membership names more than {MAX_MEMBERS} nodes"),
            Self::VoterIsLearner(id) => write!(f, "node {id} is both a voter and a learner"),
            Self::NotSorted => f.write_str("membership ids are not strictly increasing"),
        }
    }
}

impl core::error::Error for MembershipError {}

/// A cluster configuration: the voters, the learners, and during a joint change (Raft thesis
/// §4.3) the outgoing voters whose majority is also needed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "MembershipWire", into = "MembershipWire")]
pub struct Membership {
    voters: Members,
    outgoing: Members,
    learners: Members,
}

/// The unchecked shape of a membership on the wire; decoding validates it.
#[derive(Clone, Serialize, Deserialize)]
struct MembershipWire {
    voters: Members,
    outgoing: Members,
    learners: Members,
}

impl TryFrom<MembershipWire> for Membership {
    type Error = MembershipError;
    /// Decoding is strict: what a correct node encodes is sorted and without duplicates, so
    /// anything else is malformed input, refused rather than silently repaired.
    fn try_from(w: MembershipWire) -> Result<Self, MembershipError> {
        for list in [&w.voters, &w.outgoing, &w.learners] {
            if list.windows(2).any(|p| p.first() >= p.get(1)) {
                return Err(MembershipError::NotSorted);
            }
        }
        Self::build(&w.voters, &w.outgoing, &w.learners)
    }
}

impl From<Membership> for MembershipWire {
    fn from(m: Membership) -> Self {
        Self {
            voters: m.voters,
            outgoing: m.outgoing,
            learners: m.learners,
        }
    }
}

fn sorted_set(ids: &[NodeId]) -> Result<Members, MembershipError> {
    let mut set = Members::new();
    for &id in ids {
        if let Err(pos) = set.binary_search(&id) {
            set.insert(pos, id)
                .map_err(|_| MembershipError::TooManyMembers)?;
        }
    }
    Ok(set)
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Membership {
    /// Only valid memberships: 1 to 7 voters and up to 3 learners among ids 1 to 10.
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut ids: heapless::Vec<NodeId, 10> = (1..=10).filter_map(NodeId::new).collect();
        let voters = u.int_in_range(1..=7usize)?;
        let learners = u.int_in_range(0..=3usize)?;
        let mut pick = |n: usize| -> arbitrary::Result<Members> {
            let mut set = Members::new();
            for _ in 0..n {
                if ids.is_empty() {
                    break;
                }
                let i = u.choose_index(ids.len())?;
                let _ = set.push(ids.swap_remove(i));
            }
            Ok(set)
        };
        let v = pick(voters)?;
        let l = pick(learners)?;
        Self::build(&v, &[], &l).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

impl Membership {
    /// A configuration of `voters` only.
    ///
    /// # Errors
    /// [`MembershipError`] if there is no voter or too many.
    pub fn new(voters: &[NodeId]) -> Result<Self, MembershipError> {
        Self::build(voters, &[], &[])
    }

    /// A configuration of `voters` and `learners`.
    ///
    /// # Errors
    /// [`MembershipError`] if there is no voter, too many nodes, or a node in both roles.
    pub fn with_learners(voters: &[NodeId], learners: &[NodeId]) -> Result<Self, MembershipError> {
        Self::build(voters, &[], learners)
    }

    pub(crate) fn build(
        voters: &[NodeId],
        outgoing: &[NodeId],
        learners: &[NodeId],
    ) -> Result<Self, MembershipError> {
        let voters = sorted_set(voters)?;
        let outgoing = sorted_set(outgoing)?;
        let learners = sorted_set(learners)?;
        if voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        if let Some(&id) = learners
            .iter()
            .find(|id| voters.contains(id) || outgoing.contains(id))
        {
            return Err(MembershipError::VoterIsLearner(id));
        }
        let m = Self {
            voters,
            outgoing,
            learners,
        };
        if m.member_count() > MAX_MEMBERS {
            return Err(MembershipError::TooManyMembers);
        }
        Ok(m)
    }

    /// The voters (of the incoming configuration, during a joint change).
    #[must_use]
    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }

    /// The outgoing voters during a joint change; empty otherwise.
    #[must_use]
    pub fn outgoing_voters(&self) -> &[NodeId] {
        &self.outgoing
    }

    /// The learners: they receive the log but neither vote nor count towards a commit.
    #[must_use]
    pub fn learners(&self) -> &[NodeId] {
        &self.learners
    }

    /// Whether a joint change is under way.
    #[must_use]
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes, in either configuration of a joint change.
    #[must_use]
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok() || self.outgoing.binary_search(&id).is_ok()
    }

    /// Whether `id` is a voter or a learner.
    #[must_use]
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.binary_search(&id).is_ok()
    }

    /// Every member once, voters first: the nodes a leader replicates to (plus itself).
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let outgoing_only = self
            .outgoing
            .iter()
            .filter(|id| self.voters.binary_search(id).is_err());
        self.voters
            .iter()
            .chain(outgoing_only)
            .chain(self.learners.iter())
            .copied()
    }

    fn member_count(&self) -> usize {
        self.members().count()
    }

    /// The highest index that a quorum has reached, given each voter's index.
    ///
    /// `index_of` is asked once per voter. During a joint change the result is the lower of the
    /// two configurations' answers: both majorities must have it (Raft thesis §4.3).
    pub(crate) fn committed_index(&self, mut index_of: impl FnMut(NodeId) -> Index) -> Index {
        let incoming = majority_index(&self.voters, &mut index_of);
        if self.outgoing.is_empty() {
            incoming
        } else {
            incoming.min(majority_index(&self.outgoing, &mut index_of))
        }
    }

    /// Whether the voters for which `yes` holds form a quorum (in both configurations of a
    /// joint change).
    pub(crate) fn has_quorum(&self, mut yes: impl FnMut(NodeId) -> bool) -> bool {
        majority_of(&self.voters, &mut yes)
            && (self.outgoing.is_empty() || majority_of(&self.outgoing, &mut yes))
    }

    /// The outcome of an election given each voter's answer (`Some(true)` granted,
    /// `Some(false)` refused, `None` not yet heard).
    pub(crate) fn vote_result(&self, mut answer: impl FnMut(NodeId) -> Option<bool>) -> VoteResult {
        let a = vote_result_of(&self.voters, &mut answer);
        if self.outgoing.is_empty() {
            return a;
        }
        let b = vote_result_of(&self.outgoing, &mut answer);
        match (a, b) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

/// The outcome of counting votes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum VoteResult {
    Won,
    Lost,
    Pending,
}

fn majority_index(voters: &[NodeId], index_of: &mut impl FnMut(NodeId) -> Index) -> Index {
    let mut indexes = heapless::Vec::<Index, MAX_MEMBERS>::new();
    for &id in voters {
        // Cannot overflow: `voters` holds at most MAX_MEMBERS ids.
        let _ = indexes.push(index_of(id));
    }
    if indexes.is_empty() {
        return Index::ZERO;
    }
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    // The quorum-th highest index: a majority has at least it.
    indexes
        .get(indexes.len() / 2)
        .copied()
        .unwrap_or(Index::ZERO)
}

fn majority_of(voters: &[NodeId], yes: &mut impl FnMut(NodeId) -> bool) -> bool {
    let count = voters.iter().filter(|&&id| yes(id)).count();
    count > voters.len() / 2
}

fn vote_result_of(
    voters: &[NodeId],
    answer: &mut impl FnMut(NodeId) -> Option<bool>,
) -> VoteResult {
    let (mut granted, mut refused) = (0, 0);
    for &id in voters {
        match answer(id) {
            Some(true) => granted += 1,
            Some(false) => refused += 1,
            None => {}
        }
    }
    let quorum = voters.len() / 2 + 1;
    if granted >= quorum {
        VoteResult::Won
    } else if refused > voters.len() - quorum {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> alloc::vec::Vec<NodeId> {
        v.iter().map(|&i| NodeId::new(i).unwrap()).collect()
    }

    #[test]
    fn committed_index_is_the_majority_median() {
        let m = Membership::new(&ids(&[1, 2, 3, 4, 5])).unwrap();
        let idx = [0, 9, 3, 7, 5, 1];
        let c = m.committed_index(|id| Index(idx[id.get() as usize]));
        // Sorted descending: 9 7 5 3 1; three of five have at least 5.
        assert_eq!(c, Index(5));
    }

    #[test]
    fn joint_commit_needs_both_majorities() {
        let m = Membership::build(&ids(&[1, 2, 3]), &ids(&[3, 4, 5]), &[]).unwrap();
        let idx = [0, 10, 10, 2, 1, 1];
        assert_eq!(
            m.committed_index(|id| Index(idx[id.get() as usize])),
            Index(1)
        );
        assert!(!m.has_quorum(|id| id.get() <= 3));
        assert!(m.has_quorum(|id| id.get() >= 2 && id.get() <= 4));
    }

    #[test]
    fn vote_result_wins_loses_and_waits() {
        let m = Membership::new(&ids(&[1, 2, 3])).unwrap();
        assert_eq!(
            m.vote_result(|id| (id.get() <= 2).then_some(true)),
            VoteResult::Won
        );
        assert_eq!(
            m.vote_result(|id| (id.get() >= 2).then_some(false)),
            VoteResult::Lost
        );
        assert_eq!(
            m.vote_result(|id| (id.get() == 1).then_some(true)),
            VoteResult::Pending
        );
    }

    #[test]
    fn invalid_memberships_are_refused() {
        assert_eq!(Membership::new(&[]), Err(MembershipError::NoVoters));
        assert_eq!(
            Membership::with_learners(&ids(&[1, 2]), &ids(&[2])),
            Err(MembershipError::VoterIsLearner(NodeId::new(2).unwrap()))
        );
        let many: alloc::vec::Vec<u64> = (1..=17).collect();
        assert_eq!(
            Membership::new(&ids(&many)),
            Err(MembershipError::TooManyMembers)
        );
        // Duplicates collapse.
        assert_eq!(
            Membership::new(&ids(&[2, 1, 2])).unwrap().voters(),
            &ids(&[1, 2])[..]
        );
    }
}
