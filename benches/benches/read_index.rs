//! Linearizable reads by ReadIndex on an idle 3- or 5-node cluster: the leader gets 1, 16 or 64
//! reads stepped between two drains of its outputs (concurrent reads), and the cluster runs until
//! every read is ready and every heartbeat answered. Reads stepped before the heartbeats leave
//! share one round. Also prints heartbeats sent and messages delivered per read.
//!
//! `cargo bench -p benches --bench read_index`

use std::time::{Duration, Instant};

use benches::CountingAlloc;
use benches::ours::OurCluster;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// `batches` times: `per_batch` reads on the leader, then run until the cluster is quiet.
fn reads(cluster: &mut OurCluster, batches: u64, per_batch: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..batches {
        let before = cluster.reads_ready();
        for _ in 0..per_batch {
            cluster.read();
        }
        cluster.settle();
        assert_eq!(
            cluster.reads_ready(),
            before + per_batch,
            "every read is ready"
        );
    }
    start.elapsed()
}

fn read_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_index");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for nodes in [3, 5] {
        for per_batch in [1u64, 16, 64] {
            let label = format!("{nodes} nodes {per_batch} per round");
            let mut probe = OurCluster::elected(nodes, 3);
            let t0 = probe.traffic();
            reads(&mut probe, 100, per_batch);
            let t = probe.traffic();
            let msgs = (t.other - t0.other) + (t.appends - t0.appends);
            let count = (100 * per_batch) as f64;
            println!(
                "read_index {label}: {:.2} heartbeats sent per read, {:.2} messages delivered \
                 per read",
                (t.heartbeats - t0.heartbeats) as f64 / count,
                msgs as f64 / count
            );
            group.throughput(Throughput::Elements(per_batch));
            group.bench_function(BenchmarkId::from_parameter(&label), |b| {
                let mut cluster = OurCluster::elected(nodes, 3);
                b.iter_custom(|iters| reads(&mut cluster, iters, per_batch));
            });
        }
    }
    group.finish();
}

criterion_group!(suite, read_index);
criterion_main!(suite);
