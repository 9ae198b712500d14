//! The scripted API: a cluster without random faults that a test drives step by step
//! (propose, read, change the membership, partition, crash, restart, snapshot), with every check
//! still applied after every step.

use alloc::format;
use alloc::string::String;

use super::adapter::Simulation;
use super::disk::SimDisk;
use super::network::NetworkFaults;
use super::options::{SimFailure, SimOptions, Summary};
use super::rng::SimRng;
use crate::error::StepError;
use crate::input::Input;
use crate::membership::Membership;
use crate::node::Node;
use crate::types::{LogId, NodeId};

/// Scenario tests: a cluster without random faults, driven step by step by a test, with every
/// check still applied after every step.
impl Simulation {
    /// A cluster of `nodes` with no random faults (options from [`SimOptions::random`] with
    /// every fault rate at zero, pre-vote and CheckQuorum on); adjust `opts` in `tweak`.
    ///
    /// # Errors
    /// If the cluster size is invalid.
    pub fn scripted(
        nodes: usize,
        seed: u64,
        tweak: impl FnOnce(&mut SimOptions),
    ) -> Result<Self, SimFailure> {
        let mut opts = SimOptions::random(seed, nodes).without_targeted_faults();
        opts.net = NetworkFaults::none();
        opts.partition_per_million = 0;
        opts.crash_per_million = 0;
        opts.restart_per_million = 0;
        opts.leader_crash_per_million = 0;
        opts.propose_per_million = 0;
        opts.read_per_million = 0;
        opts.transfer_per_million = 0;
        opts.snapshot_per_million = 0;
        opts.defer_writes_per_million = 0;
        opts.max_disk_delay = 1;
        opts.pre_vote = true;
        opts.check_quorum = true;
        tweak(&mut opts);
        let net = opts.net.clone();
        let mut sim = Self::new(opts)?;
        sim.net.faults = net;
        Ok(sim)
    }

    /// Runs `ticks` ticks.
    ///
    /// # Errors
    /// The first property violated.
    pub fn run_ticks(&mut self, ticks: u64) -> Result<(), SimFailure> {
        for _ in 0..ticks {
            self.tick()?;
            self.settle()?;
        }
        Ok(())
    }

    /// Runs until `done` holds, for at most `max_ticks`; returns the ticks it took.
    ///
    /// # Errors
    /// The first property violated, or `done` still false after `max_ticks`.
    pub fn run_until(
        &mut self,
        max_ticks: u64,
        what: &str,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<u64, SimFailure> {
        for t in 0..max_ticks {
            if done(self) {
                return Ok(t);
            }
            self.tick()?;
            self.settle()?;
        }
        if done(self) {
            return Ok(max_ticks);
        }
        Err(self.fail(format!("{what}: not reached within {max_ticks} ticks")))
    }

    /// The current leader (of the highest term), if any runs.
    #[must_use]
    pub fn leader_index(&self) -> Option<usize> {
        self.leader()
    }

    /// Node `i`, unless it is down.
    #[must_use]
    pub fn node(&self, i: usize) -> Option<&Node<SimRng>> {
        self.nodes.get(i).and_then(|n| n.node.as_ref())
    }

    /// Node `i`'s disk.
    #[must_use]
    pub fn disk(&self, i: usize) -> Option<&SimDisk> {
        self.nodes.get(i).map(|n| &n.disk)
    }

    /// The statistics so far.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let mut s = self.summary.clone();
        s.ticks = self.now;
        s.committed = self.checker.committed_len();
        s.leader_terms = self.checker.leader_terms();
        s.messages = (self.net.sent, self.net.lost, self.net.duplicated);
        s
    }

    /// Asks node `i` to change the membership to `target`; returns what the node answered.
    ///
    /// # Errors
    /// The first property violated.
    pub fn change_membership_at(
        &mut self,
        i: usize,
        target: &Membership,
    ) -> Result<Result<LogId, StepError>, SimFailure> {
        self.change_membership(i, target, "scripted")
    }

    /// Proposes one command at the leader; returns its entry id, if there was a leader that
    /// accepted it.
    ///
    /// # Errors
    /// The first property violated.
    pub fn propose_at_leader(&mut self) -> Result<Option<LogId>, SimFailure> {
        match self.leader() {
            Some(l) => self.propose(l),
            None => Ok(None),
        }
    }

    /// Asks node `i` for a linearizable read (ReadIndex); returns the read's number, which the
    /// trace's `read #n` lines name. Its result is checked like every read's (it must reflect
    /// every entry committed before it was issued) and counted in [`Summary::reads`].
    ///
    /// # Errors
    /// The first property violated.
    pub fn read_at(&mut self, i: usize) -> Result<u64, SimFailure> {
        if i >= self.nodes.len() {
            return Err(self.fail(format!("read at node {i}, which does not exist")));
        }
        self.read(i)?;
        Ok(self.next_read)
    }

    /// Asks node `i` to hand its leadership to `target` (refused unless `i` leads).
    ///
    /// # Errors
    /// The first property violated.
    pub fn transfer_leader_at(&mut self, i: usize, target: NodeId) -> Result<(), SimFailure> {
        if i >= self.nodes.len() {
            return Ok(());
        }
        self.step(i, Input::TransferLeader(target))
    }

    /// Writes a line of the caller's into the trace (`t<tick> # <text>`), to mark the steps of
    /// a scenario. Nothing else changes.
    pub fn note(&mut self, text: &str) {
        self.log(|| format!("# {text}"));
    }

    /// Cuts node `i` off from every other node, both ways.
    pub fn isolate(&mut self, i: usize) {
        self.net.split(&[i]);
        self.log(|| format!("isolate n{}", i + 1));
    }

    /// Restores every link.
    pub fn heal_network(&mut self) {
        self.net.heal();
        self.log(|| String::from("heal network"));
    }

    /// Sets the network's faults.
    pub fn set_network_faults(&mut self, faults: NetworkFaults) {
        self.net.faults = faults;
    }

    /// Crashes node `i`: writes not yet durable are lost or torn.
    ///
    /// # Errors
    /// A write that broke its contract.
    pub fn crash_node(&mut self, i: usize) -> Result<(), SimFailure> {
        self.crash(i)
    }

    /// Restarts node `i` from its disk.
    pub fn restart_node(&mut self, i: usize) {
        if self.nodes.get(i).is_some_and(|n| n.node.is_none()) {
            self.start(i);
        }
    }

    /// The application on node `i` snapshots its state machine at its applied index.
    ///
    /// # Errors
    /// The first property violated.
    pub fn snapshot_node(&mut self, i: usize) -> Result<(), SimFailure> {
        let Some(applied) = self.node(i).map(Node::applied_index) else {
            return Ok(());
        };
        if self
            .node(i)
            .is_some_and(|n| n.snapshot().last.index >= applied)
        {
            return Ok(());
        }
        self.snapshot_at(i, applied)?;
        self.settle()
    }
}
