//! Core step throughput: a leader and its followers in memory (see `benches::ours`), 3 and 5
//! nodes, 16 B / 256 B / 4 KiB commands, 1 or 64 proposals between rounds. One iteration is one
//! batch of proposals; the throughput criterion prints is committed entries per second (applied
//! on the leader). Before each benchmark it prints allocation calls per committed entry.
//!
//! `cargo bench -p benches --bench step`

use std::time::Duration;

use benches::ours::OurCluster;
use benches::{CountingAlloc, Workload, run};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Whether this is `cargo bench` (criterion gets `--bench`) rather than a `cargo test` smoke run.
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Runs `entries` entries through fresh clusters and returns the time spent in the runs only.
/// The core keeps its whole log in memory (there is no compaction in this driver), so long runs
/// are split into chunks of about 64 MiB of payload, each on a new cluster elected off the clock.
fn timed(w: &Workload, entries: u64) -> Duration {
    let chunk = ((64u64 << 20) / (w.payload as u64 + 64)).clamp(1_000, 200_000);
    let mut total = Duration::ZERO;
    let mut left = entries;
    while left > 0 {
        let n = left.min(chunk);
        let mut cluster = OurCluster::elected(w.nodes, 7);
        total += run(&mut cluster, w, n).elapsed;
        left -= n;
    }
    total
}

fn step_throughput(c: &mut Criterion) {
    let alloc_entries = if bench_mode() { 50_000 } else { 500 };
    let mut group = c.benchmark_group("step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for nodes in [3, 5] {
        for payload in [16, 256, 4096] {
            for batch in [1, 64] {
                let w = Workload::batched(nodes, payload, batch);
                let mut cluster = OurCluster::elected(nodes, 7);
                let stats = run(&mut cluster, &w, alloc_entries);
                println!(
                    "step {}: {:.2} allocs/entry ({} entries)",
                    w.label(),
                    stats.allocs_per_entry(),
                    stats.entries
                );
                drop(cluster);
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_function(BenchmarkId::from_parameter(w.label()), |b| {
                    b.iter_custom(|iters| timed(&w, iters * batch as u64));
                });
            }
        }
    }
    group.finish();
}

criterion_group!(suite, step_throughput);
criterion_main!(suite);
