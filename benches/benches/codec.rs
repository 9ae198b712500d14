//! Message encoding and decoding with postcard: AppendEntries with 1 or 64 entries of 16 B,
//! 256 B or 4 KiB, and the small messages of the steady state (AppendResponse, Heartbeat).
//! Throughput is in encoded bytes. Decoding is measured both ways: derived (a copy per payload)
//! and with `Message::deserialize_with_one_copy` (payloads as ranges of one copy of the input, as
//! raft-mio decodes). Prints each message's encoded size and the allocation calls one decode
//! makes, each way.
//!
//! `cargo bench -p benches --bench codec`

use std::hint::black_box;
use std::time::Duration;

use benches::{AllocCounts, CountingAlloc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raft_core::{
    AppendOutcome, Entry, EntryKind, Index, LogId, Message, MessageBody, NodeId, Payload, Term,
};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn id(n: u64) -> NodeId {
    NodeId::new(n).expect("non-zero")
}

fn message(body: MessageBody) -> Message {
    Message {
        from: id(1),
        to: id(2),
        term: Term(7),
        body,
    }
}

fn append(entries: u64, payload: usize) -> Message {
    let first = 1_000_000;
    let data = Payload::new(&vec![0x5A; payload]);
    let entries = (0..entries)
        .map(|i| Entry {
            id: LogId::new(7, first + i),
            kind: EntryKind::Normal,
            data: data.clone(),
        })
        .collect();
    message(MessageBody::AppendEntries {
        prev: LogId::new(7, first - 1),
        entries,
        commit: Index(first - 5),
    })
}

fn cases() -> Vec<(String, Message)> {
    let mut cases = Vec::new();
    for n in [1, 64] {
        for payload in [16, 256, 4096] {
            let size = if payload >= 1024 {
                format!("{} KiB", payload / 1024)
            } else {
                format!("{payload} B")
            };
            cases.push((format!("append {n} x {size}"), append(n, payload)));
        }
    }
    cases.push((
        "append response".to_owned(),
        message(MessageBody::AppendResponse {
            outcome: AppendOutcome::Accepted {
                match_index: Index(1_000_063),
            },
        }),
    ));
    cases.push((
        "heartbeat".to_owned(),
        message(MessageBody::Heartbeat {
            commit: Index(1_000_000),
            read_round: 12,
        }),
    ));
    cases
}

/// A decode whose payloads are ranges of one copy of `bytes`, as raft-mio decodes frames.
fn decode_one_copy(bytes: &[u8]) -> Message {
    let mut de = postcard::Deserializer::from_bytes(bytes);
    Message::deserialize_with_one_copy(&mut de, bytes).expect("decodes")
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    for (label, msg) in cases() {
        let bytes = postcard::to_allocvec(&msg).expect("encodes");
        let before = AllocCounts::now();
        let decoded: Message = postcard::from_bytes(&bytes).expect("decodes");
        let allocs = AllocCounts::since(before).calls();
        assert_eq!(decoded, msg, "round trip");
        let before = AllocCounts::now();
        let decoded = decode_one_copy(&bytes);
        let one_copy_allocs = AllocCounts::since(before).calls();
        assert_eq!(decoded, msg, "round trip, one copy");
        println!(
            "codec {label}: {} bytes encoded, allocation calls per decode: {allocs} derived, \
             {one_copy_allocs} one copy",
            bytes.len()
        );

        group.throughput(Throughput::Bytes(bytes.len() as u64));
        let mut buf = vec![0u8; bytes.len() + 64];
        group.bench_function(BenchmarkId::new("encode", &label), |b| {
            b.iter(|| {
                postcard::to_slice(black_box(&msg), &mut buf)
                    .expect("fits")
                    .len()
            });
        });
        group.bench_function(BenchmarkId::new("decode", &label), |b| {
            b.iter(|| postcard::from_bytes::<Message>(black_box(&bytes)).expect("decodes"));
        });
        group.bench_function(BenchmarkId::new("decode one copy", &label), |b| {
            b.iter(|| decode_one_copy(black_box(&bytes)));
        });
    }
    group.finish();
}

criterion_group!(suite, codec);
criterion_main!(suite);
