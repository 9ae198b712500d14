//! A random run: the fault phase (partitions, crashes and restarts, leader crashes, proposals,
//! reads, transfers, snapshots and membership changes drawn from the seed at every tick), then
//! the healed phase, in which a proposal must commit within a bound; and the entry points that
//! run one seed ([`run_seed`], [`run_options`], and their traced forms).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::adapter::{SimResult, Simulation};
use super::network::{NetworkFaults, PartitionKind};
use super::options::{SimFailure, SimOptions, Summary};
use super::rng::SimRng;
use super::trace;
use crate::input::Input;
use crate::membership::Change;
use crate::status::Role;
use crate::types::{Index, LogId, NodeId, Term};

impl Simulation {
    /// Runs the fault phase, then the healed phase.
    ///
    /// # Errors
    /// The first property violated, or no progress after healing.
    pub fn run(&mut self) -> Result<Summary, SimFailure> {
        for _ in 0..self.opts.fault_ticks {
            self.fault_tick()?;
        }
        self.heal()?;
        let healed_at = self.now;
        let committed_at_heal = self.checker.committed_len();
        let mut marker: Option<(usize, LogId)> = None;
        while self.now < healed_at + self.opts.heal_ticks {
            self.tick()?;
            self.maybe_snapshot()?;
            // Keep a proposal in flight at whoever leads until one commits.
            let leader = self.leader();
            if let Some(l) = leader {
                let stale = marker.is_none_or(|(who, id)| {
                    who != l
                        || self.nodes[l]
                            .node
                            .as_ref()
                            .is_none_or(|n| n.term() != id.term)
                });
                if stale {
                    if let Some(id) = self.propose(l)? {
                        marker = Some((l, id));
                    }
                }
            }
            self.settle()?;
            if let Some((_, id)) = marker {
                if self.checker.committed_len() >= id.index.0
                    && self.checker.committed_len() > committed_at_heal
                    && self.committed_term(id.index) == Some(id.term)
                {
                    self.summary.heal_ticks = self.now - healed_at;
                    return Ok(self.finish());
                }
            }
        }
        Err(self.fail(format!(
            "liveness: no proposal committed within {} ticks of healing",
            self.opts.heal_ticks
        )))
    }

    fn finish(&mut self) -> Summary {
        self.summary.ticks = self.now;
        for n in &self.nodes {
            if let Some(node) = &n.node {
                self.summary.reads_by_lease += node.stats().reads_by_lease;
            }
        }
        self.summary.committed = self.checker.committed_len();
        self.summary.leader_terms = self.checker.leader_terms();
        self.summary.messages = (self.net.sent, self.net.lost, self.net.duplicated);
        self.summary.clone()
    }

    /// The term of the committed entry at `index`. (Not read from any node's log: a node the
    /// leader no longer replicates to, removed from the configuration, keeps a stale suffix.)
    fn committed_term(&self, index: Index) -> Option<Term> {
        self.checker.committed_entry(index.0).map(|(t, _)| t)
    }

    fn fault_tick(&mut self) -> SimResult {
        // Partitions come and go.
        if self.rng.chance(self.opts.partition_per_million) {
            let kind = match self.rng.below(5) {
                0 | 1 => PartitionKind::Healed,
                2 => PartitionKind::Split,
                3 => PartitionKind::Isolated,
                _ => PartitionKind::OneWay,
            };
            let leader = self.leader();
            self.net.partition(kind, leader, &mut self.rng);
            let n = self.nodes.len();
            let net = &self.net;
            let cuts = self.trace.is_some().then(|| trace::cuts(net, n));
            self.log(|| format!("partition {kind:?}: {}", cuts.unwrap_or_default()));
        }
        // Crashes and restarts.
        if self.rng.chance(self.opts.leader_crash_per_million) {
            if let Some(l) = self.leader() {
                self.crash(l)?;
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_some() {
                if self.rng.chance(self.opts.crash_per_million) {
                    self.crash(i)?;
                }
            } else if self.rng.chance(self.opts.restart_per_million) {
                self.start(i);
            }
        }
        self.maybe_pause();
        self.tick()?;
        // The application.
        self.maybe_snapshot()?;
        if self.rng.chance(self.opts.propose_per_million) {
            let i = self.rng.below(self.nodes.len() as u64) as usize;
            self.propose(i)?;
        }
        if self.rng.chance(self.opts.read_per_million) {
            let i = self.rng.below(self.nodes.len() as u64) as usize;
            self.read(i)?;
        }
        if self.rng.chance(self.opts.leader_reads_per_million) {
            // Every node that believes it leads, the deposed ones that do not know it yet too.
            for i in 0..self.nodes.len() {
                if self.nodes[i]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.role() == Role::Leader)
                {
                    self.read(i)?;
                }
            }
        }
        if self.rng.chance(self.opts.transfer_per_million) {
            if let Some(l) = self.leader().filter(|&l| !self.paused(l)) {
                let target = self.nodes[self.rng.below(self.nodes.len() as u64) as usize].id;
                self.step(l, Input::TransferLeader(target))?;
            }
        }
        if self.rng.chance(self.opts.change_per_million) {
            self.random_membership_change()?;
        }
        self.settle()
    }

    /// Asks the leader for a random membership change, within 1 to 5 voters.
    fn random_membership_change(&mut self) -> SimResult {
        let Some(l) = self.leader().filter(|&l| !self.paused(l)) else {
            return Ok(());
        };
        let Some(current) = self.nodes[l].node.as_ref().map(|n| n.membership().clone()) else {
            return Ok(());
        };
        let leader_id = self.nodes[l].id;
        let voters: Vec<NodeId> = current.voters().to_vec();
        let learners: Vec<NodeId> = current.learners().to_vec();
        let outsiders: Vec<NodeId> = self
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|&id| !current.contains(id))
            .collect();
        fn pick(rng: &mut SimRng, from: &[NodeId]) -> Option<NodeId> {
            (!from.is_empty()).then(|| from[rng.below(from.len() as u64) as usize])
        }
        let mut changes = Vec::new();
        let what = match self.rng.below(10) {
            0 => {
                changes.extend(pick(&mut self.rng, &outsiders).map(Change::AddLearner));
                "add a learner"
            }
            1 => {
                changes.extend(pick(&mut self.rng, &learners).map(Change::AddVoter));
                "promote a learner"
            }
            2 => {
                changes.extend(pick(&mut self.rng, &outsiders).map(Change::AddVoter));
                "add a voter"
            }
            3 => {
                changes.extend(pick(&mut self.rng, &voters).map(Change::Remove));
                "remove a voter"
            }
            4 => {
                changes.push(Change::Remove(leader_id));
                "remove the leader"
            }
            5 => {
                changes.extend(pick(&mut self.rng, &voters).map(Change::Remove));
                changes.extend(pick(&mut self.rng, &outsiders).map(Change::AddVoter));
                "replace a voter"
            }
            6 => {
                let mut candidates: Vec<NodeId> = learners.clone();
                candidates.extend(&outsiders);
                for id in candidates
                    .into_iter()
                    .take(5usize.saturating_sub(voters.len()))
                {
                    changes.push(Change::AddVoter(id));
                }
                "grow to 5 voters"
            }
            7 => {
                let mut remove = voters.clone();
                while remove.len() > voters.len().saturating_sub(3) && !remove.is_empty() {
                    let k = self.rng.below(remove.len() as u64) as usize;
                    remove.swap_remove(k);
                }
                changes.extend(remove.into_iter().map(Change::Remove));
                "shrink to 3 voters"
            }
            8 => {
                changes.extend(pick(&mut self.rng, &voters).map(Change::AddLearner));
                "demote a voter"
            }
            _ => {
                changes.extend(pick(&mut self.rng, &learners).map(Change::Remove));
                "remove a learner"
            }
        };
        let Ok(target) = current.with_changes(&changes) else {
            return Ok(());
        };
        if changes.is_empty() || target.voters().len() > 5 {
            return Ok(());
        }
        self.change_membership(l, &target, what).map(drop)
    }

    /// Heals everything: links, message loss, crashed nodes.
    fn heal(&mut self) -> SimResult {
        self.net.heal();
        self.net.faults = NetworkFaults::none();
        self.healed = true;
        self.log(|| String::from("heal: network restored, crashed nodes restart"));
        self.wake(true)?;
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() {
                self.start(i);
            }
        }
        Ok(())
    }

    /// The application on a random node snapshots its state machine at an applied index.
    fn maybe_snapshot(&mut self) -> SimResult {
        if !self.rng.chance(self.opts.snapshot_per_million) {
            return Ok(());
        }
        let i = self.rng.below(self.nodes.len() as u64) as usize;
        let Some(node) = self.nodes[i].node.as_ref().filter(|_| !self.paused(i)) else {
            return Ok(());
        };
        let from = node.snapshot().last.index.0;
        let applied = node.applied_index().0;
        if applied <= from {
            return Ok(());
        }
        let index = Index(self.rng.between(from + 1, applied));
        self.snapshot_at(i, index)
    }
}

/// Runs one seed with a random fault mix on `nodes` nodes.
///
/// # Errors
/// The first property violated.
pub fn run_seed(seed: u64, nodes: usize) -> Result<Summary, SimFailure> {
    run_options(SimOptions::random(seed, nodes))
}

/// Runs one seed with its trace recorded; returns the trace and the outcome.
pub fn trace_seed(seed: u64, nodes: usize) -> (String, Result<Summary, SimFailure>) {
    trace_options(SimOptions::random(seed, nodes))
}

/// Runs a simulation with these options.
///
/// # Errors
/// The first property violated.
pub fn run_options(opts: SimOptions) -> Result<Summary, SimFailure> {
    Simulation::new(opts)?.run()
}

/// Runs a simulation with these options and its trace recorded; returns the trace and the
/// outcome.
pub fn trace_options(mut opts: SimOptions) -> (String, Result<Summary, SimFailure>) {
    opts.trace = true;
    match Simulation::new(opts) {
        Ok(mut sim) => {
            let result = sim.run();
            (String::from(sim.trace()), result)
        }
        Err(e) => (String::new(), Err(e)),
    }
}
