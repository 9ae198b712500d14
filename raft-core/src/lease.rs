//! Lease reads (`Config::lease_reads`, Raft thesis §6.4.1): a leader whose heartbeats a quorum
//! answered recently answers reads at once, without a heartbeat round of their own.
//!
//! The lease rests on the followers' side of §4.2.3: a follower that received a heartbeat
//! ignores vote requests until `election_ticks_min` of its ticks have passed (`Node::in_lease`),
//! so no other leader can be elected before then. The leader counts from the tick it *sent* the
//! round (every receipt is later) and gives up one tick for tick boundaries and
//! `lease_drift_ticks` for clock rates: the lease lasts `Config::lease_ticks`. A transfer's
//! TimeoutNow election passes the followers' refusal, so a leadership in which a transfer was
//! started holds no lease again.

use alloc::collections::VecDeque;

/// A leader's lease: its own tick count, and when its recent heartbeat rounds were sent.
#[derive(Debug)]
pub(crate) struct Lease {
    /// How many ticks a lease lasts from the tick its round was sent.
    ticks: u32,
    /// Ticks counted in this leadership.
    now: u64,
    /// For each tick of the last `ticks` in which rounds were sent: the tick and the first round
    /// sent in it, oldest first. A round's send tick is that of the last entry at or below it.
    sent: VecDeque<(u64, u64)>,
    /// A leadership transfer was started: no lease for the rest of this leadership.
    transferred: bool,
}

impl Lease {
    /// No lease yet; a lease lasts `ticks` ticks from the round it rests on.
    pub(crate) fn new(ticks: u32) -> Self {
        Self {
            ticks,
            now: 0,
            sent: VecDeque::new(),
            transferred: false,
        }
    }

    /// One tick passed; rounds sent too long ago to back a lease are forgotten.
    pub(crate) fn tick(&mut self) {
        self.now += 1;
        while let Some(&(at, _)) = self.sent.front() {
            if self.now - at < u64::from(self.ticks) {
                break;
            }
            self.sent.pop_front();
        }
    }

    /// Heartbeat round `round` is being sent now.
    pub(crate) fn round_sent(&mut self, round: u64) {
        if self.sent.back().is_none_or(|&(at, _)| at != self.now) {
            self.sent.push_back((self.now, round));
        }
    }

    /// A leadership transfer started: the lease is given up for good.
    pub(crate) fn give_up(&mut self) {
        self.transferred = true;
        self.sent.clear();
    }

    /// Whether the lease holds now: a quorum answered a round sent within the last `ticks`
    /// ticks. `quorum_answered(r)`: a quorum of the configuration in force answered round `r`
    /// or a later one. The oldest round still within the lease is the one to ask about: any
    /// later one a quorum answered was sent later still.
    pub(crate) fn holds(&self, quorum_answered: impl Fn(u64) -> bool) -> bool {
        if self.transferred {
            return false;
        }
        self.sent
            .front()
            .is_some_and(|&(_, first_round)| quorum_answered(first_round))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lasts_its_ticks_from_the_round_sent() {
        let mut l = Lease::new(3);
        assert!(!l.holds(|_| true), "no round sent, no lease");
        l.round_sent(5);
        l.round_sent(6);
        assert!(l.holds(|r| r <= 5));
        assert!(!l.holds(|r| r < 5), "the quorum answered only older rounds");
        l.tick();
        l.tick();
        assert!(l.holds(|r| r <= 5), "two ticks after the round");
        l.tick();
        assert!(!l.holds(|_| true), "three ticks after: expired");
        l.round_sent(7);
        assert!(l.holds(|r| r <= 7));
        l.give_up();
        assert!(!l.holds(|_| true), "a transfer ends the lease");
        l.round_sent(8);
        assert!(!l.holds(|_| true));
    }
}
