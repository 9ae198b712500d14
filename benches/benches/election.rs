//! Election time, in ticks (the figure that matters, printed) and in CPU time (criterion).
//!
//! The network is perfect and instant: all messages of a tick are delivered before the next, so
//! the tick count is the time until the first election timeout fires plus any split vote. Two
//! figures per cluster size, over many seeds:
//! - first election: fresh nodes, ticks until one is leader;
//! - failover: a leader that has been heartbeating crashes; ticks until another is leader.
//!
//! `cargo bench -p benches --bench election`

use std::time::Duration;

use benches::CountingAlloc;
use benches::ours::OurCluster;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const MAX_TICKS: u32 = 10_000;

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Ticks (each followed by delivering everything) until some node is leader.
fn ticks_to_leader(cluster: &mut OurCluster) -> u32 {
    for t in 1..=MAX_TICKS {
        cluster.tick();
        cluster.settle();
        if cluster.leader().is_some() {
            return t;
        }
    }
    panic!("no leader after {MAX_TICKS} ticks");
}

fn first_election(nodes: usize, seed: u64) -> u32 {
    ticks_to_leader(&mut OurCluster::new(nodes, seed))
}

fn failover(nodes: usize, seed: u64) -> u32 {
    let mut cluster = OurCluster::new(nodes, seed);
    ticks_to_leader(&mut cluster);
    // Let the leader assert itself for a while, then crash it mid-term.
    for _ in 0..25 {
        cluster.tick();
        cluster.settle();
    }
    let leader = cluster.leader().expect("a leader");
    cluster.crash(leader);
    ticks_to_leader(&mut cluster)
}

fn summary(mut ticks: Vec<u32>) -> String {
    ticks.sort_unstable();
    let n = ticks.len();
    let mean = ticks.iter().map(|&t| f64::from(t)).sum::<f64>() / n as f64;
    format!(
        "median {} mean {mean:.1} p99 {} max {} ticks over {n} seeds",
        ticks[n / 2],
        ticks[(n * 99 / 100).min(n - 1)],
        ticks[n - 1]
    )
}

fn election(c: &mut Criterion) {
    let seeds = if bench_mode() { 2_000 } else { 50 };
    for nodes in [3, 5] {
        let first = (0..seeds).map(|s| first_election(nodes, s)).collect();
        println!("election {nodes} nodes, first: {}", summary(first));
        let over = (0..seeds).map(|s| failover(nodes, s)).collect();
        println!("election {nodes} nodes, failover: {}", summary(over));
    }

    let mut group = c.benchmark_group("election");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for nodes in [3, 5] {
        let mut seed = 0;
        group.bench_function(BenchmarkId::new("first", nodes), |b| {
            b.iter(|| {
                seed += 1;
                first_election(nodes, seed)
            });
        });
    }
    group.finish();
}

criterion_group!(suite, election);
criterion_main!(suite);
