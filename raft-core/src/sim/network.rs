//! A seeded, sans-IO network: messages are dropped, duplicated, delayed (and so reordered), and
//! partitions cut links one way or both.

use alloc::vec;
use alloc::vec::Vec;

use super::rng::SimRng;
use crate::message::Message;

/// How the network misbehaves.
#[derive(Clone, Debug)]
pub struct NetworkFaults {
    /// Chance a message is lost, per million.
    pub drop_per_million: u32,
    /// Chance a message is delivered twice, per million.
    pub duplicate_per_million: u32,
    /// Most ticks a message spends in flight (each message draws its own delay, which reorders).
    pub max_delay: u64,
}

impl NetworkFaults {
    /// A perfect network: nothing lost, duplicated or delayed beyond the current tick.
    #[must_use]
    pub fn none() -> Self {
        Self {
            drop_per_million: 0,
            duplicate_per_million: 0,
            max_delay: 0,
        }
    }
}

/// A message in flight.
#[derive(Clone, Debug)]
struct Flight {
    deliver_at: u64,
    msg: Message,
}

/// The kinds of partition the simulator makes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PartitionKind {
    /// Every link works.
    Healed,
    /// Two groups that cannot talk to each other.
    Split,
    /// One node (the leader, when there is one) cut off from all others.
    Isolated,
    /// Random links cut in one direction only.
    OneWay,
}

/// The network between `n` nodes, numbered `0..n`.
#[derive(Clone, Debug)]
pub struct Network {
    n: usize,
    /// `blocked[from * n + to]`: messages on this link are lost.
    blocked: Vec<bool>,
    flights: Vec<Flight>,
    /// The faults in force.
    pub faults: NetworkFaults,
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages lost to drops and partitions.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
}

impl Network {
    /// A fully connected network.
    #[must_use]
    pub fn new(n: usize, faults: NetworkFaults) -> Self {
        Self {
            n,
            blocked: vec![false; n * n],
            flights: Vec::new(),
            faults,
            sent: 0,
            lost: 0,
            duplicated: 0,
        }
    }

    fn link(&self, from: usize, to: usize) -> usize {
        from * self.n + to
    }

    /// Whether messages from `from` to `to` are lost.
    #[must_use]
    pub fn is_blocked(&self, from: usize, to: usize) -> bool {
        self.blocked
            .get(self.link(from, to))
            .copied()
            .unwrap_or(true)
    }

    fn set(&mut self, from: usize, to: usize, blocked: bool) {
        let l = self.link(from, to);
        if let Some(b) = self.blocked.get_mut(l) {
            *b = blocked;
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.iter_mut().for_each(|b| *b = false);
    }

    /// Cuts the network into `group` and the rest, both ways.
    pub fn split(&mut self, group: &[usize]) {
        self.heal();
        for a in 0..self.n {
            for b in 0..self.n {
                if group.contains(&a) != group.contains(&b) {
                    self.set(a, b, true);
                }
            }
        }
    }

    /// Makes a partition of `kind`; `leader` is isolated by `Isolated` if known.
    pub fn partition(&mut self, kind: PartitionKind, leader: Option<usize>, rng: &mut SimRng) {
        match kind {
            PartitionKind::Healed => self.heal(),
            PartitionKind::Split => {
                // A minority of 1..=n/2 nodes against the majority.
                let size = rng.between(1, (self.n / 2).max(1) as u64) as usize;
                let mut group = Vec::new();
                while group.len() < size {
                    let c = rng.below(self.n as u64) as usize;
                    if !group.contains(&c) {
                        group.push(c);
                    }
                }
                self.split(&group);
            }
            PartitionKind::Isolated => {
                let who = leader.unwrap_or_else(|| rng.below(self.n as u64) as usize);
                self.split(&[who]);
            }
            PartitionKind::OneWay => {
                self.heal();
                let cuts = rng.between(1, self.n as u64);
                for _ in 0..cuts {
                    let a = rng.below(self.n as u64) as usize;
                    let b = rng.below(self.n as u64) as usize;
                    if a != b {
                        self.set(a, b, true);
                    }
                }
            }
        }
    }

    /// Hands a message to the network at tick `now`, from node index `from` to `to`.
    pub fn send(&mut self, msg: Message, from: usize, to: usize, now: u64, rng: &mut SimRng) {
        self.sent += 1;
        if self.is_blocked(from, to) || rng.chance(self.faults.drop_per_million) {
            self.lost += 1;
            return;
        }
        if rng.chance(self.faults.duplicate_per_million) {
            self.duplicated += 1;
            let deliver_at = now + rng.between(0, self.faults.max_delay);
            self.flights.push(Flight {
                deliver_at,
                msg: msg.clone(),
            });
        }
        let deliver_at = now + rng.between(0, self.faults.max_delay);
        self.flights.push(Flight { deliver_at, msg });
    }

    /// Takes one message due at `now`, chosen at random among those due, unless its link is cut
    /// (then it is lost and another is tried).
    pub fn take_due(
        &mut self,
        now: u64,
        rng: &mut SimRng,
        index_of: impl Fn(&Message) -> (usize, usize),
    ) -> Option<Message> {
        loop {
            let due = self.flights.iter().filter(|f| f.deliver_at <= now).count();
            if due == 0 {
                return None;
            }
            let mut pick = rng.below(due as u64) as usize;
            let pos = self.flights.iter().position(|f| {
                if f.deliver_at <= now {
                    if pick == 0 {
                        return true;
                    }
                    pick -= 1;
                }
                false
            })?;
            let flight = self.flights.swap_remove(pos);
            let (from, to) = index_of(&flight.msg);
            if self.is_blocked(from, to) {
                self.lost += 1;
                continue;
            }
            return Some(flight.msg);
        }
    }

    /// Puts back a message taken for a node that cannot take it yet, due at tick `at`.
    pub fn defer(&mut self, msg: Message, at: u64) {
        self.flights.push(Flight {
            deliver_at: at,
            msg,
        });
    }

    /// Messages in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }
}
