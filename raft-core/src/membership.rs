//! Cluster membership: who votes, who only learns, and the quorum arithmetic over them.

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::types::{Index, NodeId};

/// The most nodes a configuration may name, counting voters, learners and (during a joint
/// change) the outgoing voters together.
pub const MAX_MEMBERS: usize = 16;

/// A sorted set of node ids, without duplicates, of at most [`MAX_MEMBERS`] ids.
pub type Members = heapless::Vec<NodeId, MAX_MEMBERS>;

/// Why a membership could not be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
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
    /// The bytes of a configuration entry do not decode.
    Malformed,
    /// A change was asked of a joint configuration, or a joint configuration was given as a
    /// change's target: changes start and end in simple configurations.
    Joint,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVoters => f.write_str("membership has no voters"),
            Self::TooManyMembers => write!(f, "membership names more than {MAX_MEMBERS} nodes"),
            Self::VoterIsLearner(id) => write!(f, "node {id} is both a voter and a learner"),
            Self::NotSorted => f.write_str("membership ids are not strictly increasing"),
            Self::Malformed => f.write_str("configuration entry does not decode"),
            Self::Joint => f.write_str("joint configurations cannot be changed or targeted"),
        }
    }
}

impl core::error::Error for MembershipError {}

/// A cluster configuration: the voters, the learners, and during a joint change (Raft thesis
/// §4.3) the outgoing voters whose majority is also needed.
///
/// During a joint change a node may be both an outgoing voter and a learner: it votes until the
/// joint configuration is left, then stays on as a learner (a demotion).
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
        // A learner may be an outgoing voter (it is being demoted), never an incoming one.
        if let Some(&id) = learners.iter().find(|id| voters.contains(id)) {
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

    /// The learners: they receive the log but neither vote nor count towards a commit. During a
    /// joint change this includes outgoing voters that stay on as learners once it ends.
    #[must_use]
    pub fn learners(&self) -> &[NodeId] {
        &self.learners
    }

    /// Whether `id` is a learner (and not, during a joint change, still an outgoing voter).
    #[must_use]
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.binary_search(&id).is_ok() && !self.is_voter(id)
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
        let learners_only = self
            .learners
            .iter()
            .filter(|id| self.outgoing.binary_search(id).is_err());
        self.voters
            .iter()
            .chain(outgoing_only)
            .chain(learners_only)
            .copied()
    }

    /// This configuration with `changes` applied in order: the target of a membership change
    /// (see [`Input::ChangeMembership`](crate::Input::ChangeMembership)).
    ///
    /// Adding a learner as a voter promotes it; adding a voter as a learner demotes it.
    ///
    /// # Errors
    /// [`MembershipError::Joint`] if this configuration is joint; otherwise what building the
    /// result reports (no voter left, too many members).
    pub fn with_changes(&self, changes: &[Change]) -> Result<Self, MembershipError> {
        if self.is_joint() {
            return Err(MembershipError::Joint);
        }
        let mut voters: Vec<NodeId> = self.voters.iter().copied().collect();
        let mut learners: Vec<NodeId> = self.learners.iter().copied().collect();
        for change in changes {
            match *change {
                Change::AddVoter(id) => {
                    learners.retain(|&l| l != id);
                    voters.push(id);
                }
                Change::AddLearner(id) => {
                    voters.retain(|&v| v != id);
                    learners.push(id);
                }
                Change::Remove(id) => {
                    voters.retain(|&v| v != id);
                    learners.retain(|&l| l != id);
                }
            }
        }
        Self::build(&voters, &[], &learners)
    }

    /// The configuration a leader appends to move from this one to `target` (Raft thesis
    /// §4.3): `target` itself when the voters stay the same (learners come and go without
    /// risk), else the joint configuration that needs majorities of both voter sets.
    pub(crate) fn transition_to(&self, target: &Self) -> Result<Self, MembershipError> {
        if self.is_joint() || target.is_joint() {
            return Err(MembershipError::Joint);
        }
        if self.voters == target.voters {
            return Ok(target.clone());
        }
        // Planted bug: the voters change in one step, without the joint configuration.
        #[cfg(raft_planted)]
        if crate::planted::active(crate::planted::Bug::NoJointPhase) {
            return Ok(target.clone());
        }
        Self::build(&target.voters, &self.voters, &target.learners)
    }

    /// The configuration that ends a joint change: the incoming voters, and the learners
    /// (including demoted outgoing voters).
    pub(crate) fn leave_joint(&self) -> Self {
        Self {
            voters: self.voters.clone(),
            outgoing: Members::new(),
            learners: self.learners.clone(),
        }
    }

    /// The bytes of a configuration entry: a version byte, then the voters, the outgoing voters
    /// and the learners, each as a count byte and little-endian `u64` ids.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let lists = [&self.voters, &self.outgoing, &self.learners];
        let ids: usize = lists.iter().map(|l| l.len()).sum();
        let mut out = Vec::with_capacity(1 + lists.len() + 8 * ids);
        out.push(ENCODING_VERSION);
        for list in lists {
            // Cannot truncate: a list holds at most MAX_MEMBERS (16) ids.
            out.push(list.len() as u8);
            for id in list {
                out.extend_from_slice(&id.get().to_le_bytes());
            }
        }
        out
    }

    /// Decodes the bytes of a configuration entry, strictly: what [`Self::encode`] writes and
    /// nothing else.
    ///
    /// # Errors
    /// [`MembershipError::Malformed`] for bytes that are not an encoding, and the errors of an
    /// invalid configuration.
    pub fn decode(bytes: &[u8]) -> Result<Self, MembershipError> {
        let (&version, mut rest) = bytes.split_first().ok_or(MembershipError::Malformed)?;
        if version != ENCODING_VERSION {
            return Err(MembershipError::Malformed);
        }
        let mut lists = [Members::new(), Members::new(), Members::new()];
        for list in &mut lists {
            let (&count, tail) = rest.split_first().ok_or(MembershipError::Malformed)?;
            rest = tail;
            for _ in 0..count {
                let (raw, tail) = rest
                    .split_first_chunk::<8>()
                    .ok_or(MembershipError::Malformed)?;
                rest = tail;
                let id = NodeId::new(u64::from_le_bytes(*raw)).ok_or(MembershipError::Malformed)?;
                if list.last().is_some_and(|&last| last >= id) {
                    return Err(MembershipError::NotSorted);
                }
                list.push(id).map_err(|_| MembershipError::TooManyMembers)?;
            }
        }
        if !rest.is_empty() {
            return Err(MembershipError::Malformed);
        }
        let [voters, outgoing, learners] = lists;
        Self::build(&voters, &outgoing, &learners)
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

/// The version byte that starts a configuration entry's encoding.
const ENCODING_VERSION: u8 = 1;

/// One step of a membership change; see [`Membership::with_changes`].
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Change {
    /// Make the node a voter (promoting it if it is a learner).
    AddVoter(NodeId),
    /// Make the node a learner (demoting it if it is a voter).
    AddLearner(NodeId),
    /// Remove the node from the configuration.
    Remove(NodeId),
}

/// The outcome of counting votes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum VoteResult {
    Won,
    Lost,
    Pending,
}

fn majority_index(voters: &[NodeId], index_of: &mut impl FnMut(NodeId) -> Index) -> Index {
    let mut all = [Index::ZERO; MAX_MEMBERS];
    let mut n = 0;
    // `voters` holds at most MAX_MEMBERS ids.
    for (slot, &id) in all.iter_mut().zip(voters) {
        *slot = index_of(id);
        n += 1;
    }
    let Some(indexes) = all.get_mut(..n) else {
        return Index::ZERO;
    };
    // Insertion sort, highest first: at most MAX_MEMBERS indexes, and for three voters at most
    // three comparisons, where a general sort's set-up cost more than the sorting (callgrind,
    // batch 1: about 100 instructions per entry).
    for i in 1..indexes.len() {
        let mut j = i;
        while j > 0 && indexes.get(j - 1) < indexes.get(j) {
            indexes.swap(j - 1, j);
            j -= 1;
        }
    }
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

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId::new(i).unwrap()).collect()
    }

    /// The serde form (InstallSnapshot's metadata on the wire) decodes only what a correct node
    /// encodes: sorted lists without duplicates.
    #[test]
    fn serde_decoding_accepts_sorted_lists_and_refuses_others() {
        let m = Membership::with_learners(&ids(&[1, 2, 3]), &ids(&[5, 7])).unwrap();
        let bytes = postcard::to_allocvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<Membership>(&bytes).ok(), Some(m));
        for voters in [[2, 1], [3, 3]] {
            let wire = MembershipWire {
                voters: ids(&voters).into_iter().collect(),
                outgoing: Members::new(),
                learners: Members::new(),
            };
            let bytes = postcard::to_allocvec(&wire).unwrap();
            assert!(
                postcard::from_bytes::<Membership>(&bytes).is_err(),
                "voters {voters:?} decoded"
            );
        }
    }

    /// A configuration names at most MAX_MEMBERS nodes, voters and learners together.
    #[test]
    fn at_most_max_members_nodes() {
        let voters: Vec<u64> = (1..=9).collect();
        let full: Vec<u64> = (10..=16).collect();
        assert_eq!(MAX_MEMBERS, 16);
        assert!(Membership::with_learners(&ids(&voters), &ids(&full)).is_ok());
        let over: Vec<u64> = (10..=17).collect();
        assert_eq!(
            Membership::with_learners(&ids(&voters), &ids(&over)),
            Err(MembershipError::TooManyMembers)
        );
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

    /// An election is lost once too many voters refused for the rest to make a majority:
    /// a lone voter's refusal loses, two of five refusing leave it open, three lose it.
    #[test]
    fn vote_result_is_lost_only_when_no_majority_remains() {
        let one = Membership::new(&ids(&[1])).unwrap();
        assert_eq!(one.vote_result(|_| Some(false)), VoteResult::Lost);
        let five = Membership::new(&ids(&[1, 2, 3, 4, 5])).unwrap();
        assert_eq!(
            five.vote_result(|id| (id.get() <= 2).then_some(false)),
            VoteResult::Pending
        );
        assert_eq!(
            five.vote_result(|id| (id.get() <= 3).then_some(false)),
            VoteResult::Lost
        );
    }

    /// In a joint configuration a candidate needs both majorities (Raft thesis §4.3): either
    /// half refusing loses the election, even while the other half has granted it or not
    /// answered yet.
    #[test]
    fn joint_vote_is_lost_when_either_half_refuses() {
        let m = Membership::build(&ids(&[1, 2, 3]), &ids(&[4, 5, 6]), &[]).unwrap();
        // The incoming half refuses, the outgoing half grants.
        assert_eq!(m.vote_result(|id| Some(id.get() >= 4)), VoteResult::Lost);
        // The outgoing half refuses, the incoming half has not answered.
        assert_eq!(
            m.vote_result(|id| (id.get() >= 4).then_some(false)),
            VoteResult::Lost
        );
        // Both halves grant: won; one half granting alone: pending.
        assert_eq!(m.vote_result(|_| Some(true)), VoteResult::Won);
        assert_eq!(
            m.vote_result(|id| (id.get() <= 3).then_some(true)),
            VoteResult::Pending
        );
    }

    #[test]
    fn encoding_round_trips_and_decoding_is_strict() {
        let m = Membership::build(&ids(&[1, 2, 4]), &ids(&[1, 2, 3]), &ids(&[3, 9])).unwrap();
        let bytes = m.encode();
        assert_eq!(Membership::decode(&bytes), Ok(m));
        for cut in 0..bytes.len() {
            assert!(Membership::decode(&bytes[..cut]).is_err(), "prefix {cut}");
        }
        let mut long = bytes;
        long.push(0);
        assert_eq!(Membership::decode(&long), Err(MembershipError::Malformed));
        let mut unsorted = Membership::new(&ids(&[1, 2])).unwrap().encode();
        unsorted[2..10].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(
            Membership::decode(&unsorted),
            Err(MembershipError::NotSorted)
        );
        let mut zero = Membership::new(&ids(&[1])).unwrap().encode();
        zero[2..10].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(Membership::decode(&zero), Err(MembershipError::Malformed));
        assert_eq!(
            Membership::decode(&[2, 0, 0, 0]),
            Err(MembershipError::Malformed)
        );
    }

    #[test]
    fn changes_promote_demote_add_and_remove() {
        let m = Membership::with_learners(&ids(&[1, 2, 3]), &ids(&[4])).unwrap();
        let t = m
            .with_changes(&[
                Change::AddVoter(NodeId::new(4).unwrap()),
                Change::AddLearner(NodeId::new(3).unwrap()),
                Change::Remove(NodeId::new(1).unwrap()),
                Change::AddVoter(NodeId::new(5).unwrap()),
            ])
            .unwrap();
        assert_eq!(t.voters(), &ids(&[2, 4, 5])[..]);
        assert_eq!(t.learners(), &ids(&[3])[..]);
        assert_eq!(
            m.with_changes(&[
                Change::Remove(NodeId::new(1).unwrap()),
                Change::Remove(NodeId::new(2).unwrap()),
                Change::AddLearner(NodeId::new(3).unwrap()),
            ]),
            Err(MembershipError::NoVoters)
        );
    }

    #[test]
    fn transitions_go_through_a_joint_configuration_when_voters_change() {
        let old = Membership::new(&ids(&[1, 2, 3])).unwrap();
        // Learners only: straight to the target.
        let learners = Membership::with_learners(&ids(&[1, 2, 3]), &ids(&[4])).unwrap();
        assert_eq!(old.transition_to(&learners), Ok(learners.clone()));
        // Voters change (3 is demoted, 4 promoted): joint, 3 still votes in the outgoing set.
        let target = Membership::with_learners(&ids(&[1, 2, 4]), &ids(&[3])).unwrap();
        let joint = learners.transition_to(&target).unwrap();
        assert!(joint.is_joint());
        assert_eq!(joint.voters(), &ids(&[1, 2, 4])[..]);
        assert_eq!(joint.outgoing_voters(), &ids(&[1, 2, 3])[..]);
        assert!(joint.is_voter(NodeId::new(3).unwrap()));
        assert!(!joint.is_learner(NodeId::new(3).unwrap()));
        assert_eq!(joint.members().count(), 4);
        assert_eq!(joint.leave_joint(), target);
        assert_eq!(joint.transition_to(&target), Err(MembershipError::Joint));
        assert_eq!(old.transition_to(&joint), Err(MembershipError::Joint));
        assert_eq!(joint.with_changes(&[]), Err(MembershipError::Joint));
    }

    #[test]
    fn invalid_memberships_are_refused() {
        assert_eq!(Membership::new(&[]), Err(MembershipError::NoVoters));
        assert_eq!(
            Membership::with_learners(&ids(&[1, 2]), &ids(&[2])),
            Err(MembershipError::VoterIsLearner(NodeId::new(2).unwrap()))
        );
        let many: Vec<u64> = (1..=17).collect();
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
