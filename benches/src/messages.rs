//! Messages per committed entry: small scenarios on a stable cluster, each driven the same way
//! on our core and on raft-rs, counting every message sent until the cluster goes quiet.
//!
//! A scenario starts on a freshly elected cluster (the election is not counted) and never ticks
//! while it is measured, so no heartbeat, election or CheckQuorum timer can fire: every message
//! counted is caused by the proposals. Rounds are those of [`Cluster::round`]: every message in
//! flight is delivered, in the order it was sent unless a scenario reorders it, then every node
//! handles its outputs. The measurement ends when no message is in flight and no node has
//! anything left to do; every proposal must by then be committed and applied on the leader.
//!
//! A commit index the followers have not heard of when the cluster goes quiet is not an error
//! (our core sends at most one commit-only message per follower between ticks, and raft-rs with
//! `skip_bcast_commit` none), so each scenario then reports how many live followers are behind
//! the leader's commit index, ticks every node once (too few ticks for a heartbeat or an
//! election on either side: both send heartbeats every 2 ticks) and counts what that tick sends
//! separately, then goes on ticking until every follower has caught up (a heartbeat carries the
//! commit index on both sides) and reports how many ticks that took.
//!
//! - [`burst_shuffled`]: `n` proposals, each leaving on its own (one append per follower), the
//!   appends to each follower delivered in a seeded random order.
//! - [`slow_leader_disk`]: `n` proposals in one go, the leader's own log writes becoming durable
//!   one entry at a time, the cluster going quiet between two of them.

use crate::rng::SplitMix;
use crate::workload::{Cluster, Traffic};

/// A message in flight, as the scenarios see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct InFlight {
    /// The addressee's id (1-based on both sides).
    pub to: u64,
    /// The index of the first entry an append carries (`None`: any other message).
    pub first_entry: Option<u64>,
}

/// What the scenarios need from a cluster beyond [`Cluster`]: finer control of the leader and of
/// the network between rounds.
pub trait Stepped: Cluster {
    /// Proposes one command on the leader and lets the leader handle its outputs at once (as in a
    /// round), so what it sends for this proposal is in flight on its own, not merged with the
    /// next proposal's. Returns the proposed entries the leader applied meanwhile.
    fn propose_alone(&mut self, data: &[u8]) -> u64;

    /// The messages in flight (those the next round delivers), in delivery order.
    fn in_flight(&self) -> Vec<InFlight>;

    /// Reorders the messages in flight: the `i`-th delivered is the one now at `order[i]`.
    fn reorder(&mut self, order: &[usize]);

    /// The leader's disk turns slow: from now on its log writes are queued (each proposal in a
    /// write of its own) and become durable only by [`complete_leader_write`].
    ///
    /// [`complete_leader_write`]: Self::complete_leader_write
    fn hold_leader_writes(&mut self);

    /// The oldest queued entry on the leader's disk becomes durable and the leader is told so
    /// (what it then sends goes out in the next round). Returns false if none was queued.
    fn complete_leader_write(&mut self) -> bool;

    /// Node `i` (0-based) stops: messages to it are counted as sent, then dropped.
    fn stop(&mut self, i: usize);

    /// No message in flight and nothing left for any node to do.
    fn is_quiet(&self) -> bool;

    /// Each running node's commit index, by node (`None` for a stopped node).
    fn commits(&self) -> Vec<Option<u64>>;

    /// One tick of logical time on every running node.
    fn tick_all(&mut self);

    /// Messages sent so far, by kind.
    fn sent(&self) -> Traffic;

    /// Followers whose match index, as the leader records it, is past the leader's own last
    /// index (a follower cannot hold entries the leader never had: this is a bug wherever it
    /// shows up, and a dangerous one, since the leader counts those followers towards commits).
    fn matched_past_log(&self) -> u64;
}

/// What one scenario run sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Proposed entries committed and applied on the leader.
    pub entries: u64,
    /// Everything sent from the first proposal until the cluster went quiet.
    pub quiet: Traffic,
    /// Running followers whose commit index was behind the leader's when the cluster went quiet.
    pub behind: u64,
    /// What one more tick on every node sent (until quiet again).
    pub tick: Traffic,
    /// Running followers still behind the leader's commit index after that tick.
    pub behind_after_tick: u64,
    /// Ticks (one on every node, the cluster going quiet after each) until no running follower
    /// was behind: 0 if none was at quiet, `None` if some still were after [`MAX_TICKS`].
    pub catch_up_ticks: Option<u64>,
    /// [`Stepped::matched_past_log`] at the end.
    pub matched_past_log: u64,
}

/// The most ticks [`Count::catch_up_ticks`] waits for.
pub const MAX_TICKS: u64 = 20;

/// Rounds until the cluster is quiet; returns the proposed entries the leader applied.
///
/// # Panics
/// If it never goes quiet (a bug in a driver).
pub fn run_until_quiet<C: Stepped>(c: &mut C) -> u64 {
    let mut applied = 0;
    let mut rounds = 0;
    while !c.is_quiet() {
        applied += c.round();
        rounds += 1;
        assert!(rounds < 10_000, "the cluster never goes quiet");
    }
    applied
}

/// Running followers (every node but the leader, node 1) behind the leader's commit index.
fn behind<C: Stepped>(c: &C) -> u64 {
    let commits = c.commits();
    let leader = commits[0].expect("the leader runs");
    commits[1..]
        .iter()
        .flatten()
        .filter(|&&c| c < leader)
        .count() as u64
}

/// Ends a run: checks that all `n` proposals were applied on the leader, then ticks once.
fn finish<C: Stepped>(c: &mut C, start: Traffic, applied: u64, n: u64) -> Count {
    assert_eq!(applied, n, "every proposal applied on the leader by quiet");
    let quiet = c.sent().since(&start);
    let lagging = behind(c);
    let mut ticks = 0;
    let mut tick = Traffic::default();
    let mut behind_after_tick = 0;
    let mut catch_up_ticks = (lagging == 0).then_some(0);
    while ticks < MAX_TICKS && (ticks == 0 || catch_up_ticks.is_none()) {
        c.tick_all();
        let late = run_until_quiet(c);
        assert_eq!(late, 0, "nothing left to apply on the leader");
        ticks += 1;
        let now = behind(c);
        if ticks == 1 {
            tick = c.sent().since(&start).since(&quiet);
            behind_after_tick = now;
        }
        if now == 0 && catch_up_ticks.is_none() {
            catch_up_ticks = Some(ticks);
        }
    }
    Count {
        entries: applied,
        quiet,
        behind: lagging,
        tick,
        behind_after_tick,
        catch_up_ticks,
        matched_past_log: c.matched_past_log(),
    }
}

/// The order, for [`Stepped::reorder`], that delivers the messages now in flight with the appends
/// to each follower shuffled (Fisher–Yates from a SplitMix64 seeded with `seed`, followers in id
/// order). The appends to a follower are first sorted by the index of their first entry, so two
/// clusters with the same appends in flight get the same order whatever order they sent them in.
/// Other messages go first, as sent.
#[must_use]
pub fn shuffled_order(flights: &[InFlight], seed: u64) -> Vec<usize> {
    let mut rng = SplitMix::new(seed);
    let mut order: Vec<usize> = (0..flights.len())
        .filter(|&i| flights[i].first_entry.is_none())
        .collect();
    let mut followers: Vec<u64> = flights
        .iter()
        .filter(|f| f.first_entry.is_some())
        .map(|f| f.to)
        .collect();
    followers.sort_unstable();
    followers.dedup();
    for to in followers {
        let mut group: Vec<usize> = (0..flights.len())
            .filter(|&i| flights[i].to == to && flights[i].first_entry.is_some())
            .collect();
        group.sort_by_key(|&i| flights[i].first_entry);
        for i in (1..group.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            group.swap(i, j);
        }
        order.extend(group);
    }
    order
}

/// Puts `items` in `order` (the `i`-th becomes the one now at `order[i]`): how both clusters
/// reorder their messages in flight.
///
/// # Panics
/// If `order` is not a permutation of `0..items.len()`.
pub fn permute<T>(items: &mut Vec<T>, order: &[usize]) {
    let mut old: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order.iter().map(|&i| old[i].take().expect("a permutation")));
    assert!(old.iter().all(Option::is_none), "a permutation");
}

/// Scenario 1, "burst, shuffled": `n` proposals on the leader, each leaving on its own (one
/// append per follower, the leader's write made durable at once), then the appends to each
/// follower delivered in [`shuffled_order`]; everything after that in the order it is sent.
/// Returns the run's count and the delivery order of the first round (to check that both sides
/// got the same one).
///
/// # Panics
/// If the proposals are not all applied on the leader by the time the cluster goes quiet.
pub fn burst_shuffled<C: Stepped>(
    c: &mut C,
    n: u64,
    payload: &[u8],
    seed: u64,
) -> (Count, Vec<InFlight>) {
    let start = c.sent();
    let mut applied = 0;
    for _ in 0..n {
        applied += c.propose_alone(payload);
    }
    let flights = c.in_flight();
    let order = shuffled_order(&flights, seed);
    c.reorder(&order);
    let delivered = order.iter().map(|&i| flights[i]).collect();
    applied += run_until_quiet(c);
    (finish(c, start, applied, n), delivered)
}

/// Scenario 2, "slow leader disk": `n` proposals in one go (our core merges them into one
/// append per follower, raft-rs's `batch_append` too), the leader's log writes held back; the
/// cluster runs until quiet; then the leader's entries become durable one at a time, the cluster
/// running until quiet after each. Followers' writes are durable at once.
///
/// With every follower running, a majority holds the entries before the leader's first one is
/// durable, so the leader's disk is not on the commit path; stop a follower first (see
/// [`Stepped::stop`]) to put it there.
///
/// # Panics
/// If the proposals are not all applied on the leader by the time the cluster goes quiet.
pub fn slow_leader_disk<C: Stepped>(c: &mut C, n: u64, payload: &[u8]) -> Count {
    let start = c.sent();
    c.hold_leader_writes();
    for _ in 0..n {
        c.propose(payload);
    }
    let mut applied = run_until_quiet(c);
    while c.complete_leader_write() {
        applied += run_until_quiet(c);
    }
    finish(c, start, applied, n)
}

/// Median, mean and maximum of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The mean.
    pub mean: f64,
    /// The largest value.
    pub max: f64,
}

impl Summary {
    /// Summarizes `values`.
    ///
    /// # Panics
    /// If `values` is empty.
    #[must_use]
    pub fn of(values: &[f64]) -> Self {
        assert!(!values.is_empty(), "an empty sample");
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Self {
            median,
            mean: v.iter().sum::<f64>() / n as f64,
            max: v[n - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ours::OurCluster;

    fn append(to: u64, first: u64) -> InFlight {
        InFlight {
            to,
            first_entry: Some(first),
        }
    }

    #[test]
    fn the_shuffle_depends_on_the_appends_not_on_the_order_they_were_sent_in() {
        let sent: Vec<InFlight> = (2..=5).flat_map(|i| [append(2, i), append(3, i)]).collect();
        let mut other = sent.clone();
        other.reverse();
        let a: Vec<InFlight> = shuffled_order(&sent, 7).iter().map(|&i| sent[i]).collect();
        let b: Vec<InFlight> = shuffled_order(&other, 7)
            .iter()
            .map(|&i| other[i])
            .collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), sent.len());
        assert!(a[..4].iter().all(|f| f.to == 2), "follower 2 first: {a:?}");
    }

    #[test]
    fn summary() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.median, s.mean, s.max), (2.5, 4.0, 10.0));
    }

    #[test]
    fn our_core_commits_every_burst() {
        for seed in 0..20 {
            let mut c = OurCluster::elected(3, seed);
            let (count, delivered) = burst_shuffled(&mut c, 12, &[1; 16], seed);
            assert_eq!(count.entries, 12);
            assert_eq!(delivered.len(), 24, "one append per proposal and follower");
            assert_eq!(count.quiet.heartbeats, 0, "no tick, no heartbeat");
            assert_eq!(count.tick.heartbeats, 0, "one tick, no heartbeat");
            // The second tick's heartbeat at the latest.
            assert!(count.catch_up_ticks.is_some_and(|t| t <= 2), "{count:?}");
            assert_eq!(count.matched_past_log, 0);
            assert_eq!(c.errors(), 0);
        }
    }

    #[test]
    fn our_core_commits_with_a_slow_leader_disk() {
        for stopped in [None, Some(2)] {
            let mut c = OurCluster::elected(3, 1);
            if let Some(i) = stopped {
                c.stop(i);
            }
            let count = slow_leader_disk(&mut c, 12, &[1; 16]);
            assert_eq!(count.entries, 12);
            assert_eq!(count.behind_after_tick, 0);
            assert_eq!(c.errors(), 0);
        }
    }

    // Listed (as ignored, with the command that runs it) rather than compiled out when the
    // feature is off, so a plain `cargo test` says that it skipped it.
    #[test]
    #[cfg_attr(
        not(feature = "raft-rs"),
        ignore = "needs raft-rs: cargo test -p benches --features raft-rs"
    )]
    fn raft_rs_runs_the_same_scenarios() {
        #[cfg(feature = "raft-rs")]
        {
            use crate::raftrs::RaftRsCluster;
            for seed in 0..20 {
                let mut ours = OurCluster::elected(3, seed);
                let mut theirs = RaftRsCluster::elected(3);
                let (_, a) = burst_shuffled(&mut ours, 12, &[1; 16], seed);
                let (count, b) = burst_shuffled(&mut theirs, 12, &[1; 16], seed);
                assert_eq!(a, b, "the same first round on both sides");
                assert_eq!(count.entries, 12);
                assert_eq!(count.quiet.heartbeats + count.tick.heartbeats, 0);
                assert!(count.catch_up_ticks.is_some(), "{count:?}");
                assert_eq!(theirs.errors(), 0);
            }
            for stopped in [None, Some(2)] {
                let mut c = RaftRsCluster::elected(3);
                if let Some(i) = stopped {
                    c.stop(i);
                }
                let count = slow_leader_disk(&mut c, 12, &[1; 16]);
                assert_eq!(count.entries, 12);
                assert_eq!(c.errors(), 0);
                assert_eq!(c.node(0).raft.raft_log.persisted, 13, "every entry durable");
            }
        }
    }
}
