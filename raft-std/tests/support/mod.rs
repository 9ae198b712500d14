//! Helpers shared by the storage tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use raft_core::sim::SimDisk;
use raft_core::{
    Entry, EntryKind, HardState, Index, LogId, Membership, NodeId, Payload, SnapshotMeta,
    SnapshotPart, Term, Write, WriteId,
};
use raft_std::storage::Recovered;
use raft_std::storage::file::Identity;

pub fn node(n: u64) -> NodeId {
    NodeId::new(n).unwrap()
}

pub fn membership() -> Membership {
    Membership::new(&[node(1), node(2), node(3)]).unwrap()
}

pub fn identity() -> Identity {
    Identity {
        cluster_id: 7,
        node_id: node(1),
    }
}

/// Only the core mints write ids; its `arbitrary` feature lets tests make them.
pub fn write_id(n: u64) -> WriteId {
    let bytes = n.to_le_bytes();
    WriteId::arbitrary(&mut Unstructured::new(&bytes)).unwrap()
}

pub fn entry(term: u64, index: u64, len: usize) -> Entry {
    let data: Vec<u8> = (0..len).map(|i| (index as usize + i) as u8).collect();
    Entry {
        id: LogId::new(term, index),
        kind: EntryKind::Normal,
        data: Payload::from(data),
    }
}

/// A write builder.
#[derive(Clone, Debug)]
pub struct W(pub Write);

pub fn w(id: u64) -> W {
    W(Write {
        id: write_id(id),
        hard_state: None,
        truncate_from: None,
        snapshot: None,
        entries: Default::default(),
    })
}

impl W {
    pub fn hs(mut self, term: u64, vote: Option<u64>) -> Self {
        self.0.hard_state = Some(HardState {
            term: Term(term),
            vote: vote.map(node),
        });
        self
    }
    pub fn truncate(mut self, from: u64) -> Self {
        self.0.truncate_from = Some(Index(from));
        self
    }
    pub fn entries(mut self, term: u64, from: u64, to: u64, len: usize) -> Self {
        for i in from..=to {
            self.0.entries.push(entry(term, i, len));
        }
        self
    }
    pub fn chunk(mut self, meta: &SnapshotMeta, offset: u64, data: &[u8], done: bool) -> Self {
        self.0.snapshot = Some(Box::new(SnapshotPart {
            meta: meta.clone(),
            offset,
            data: Payload::new(data),
            done,
        }));
        self
    }
}

pub fn meta(term: u64, index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last: LogId::new(term, index),
        membership: membership(),
    }
}

/// What the reference disk holds, in the shape recovery returns.
pub fn expected(disk: &SimDisk) -> Recovered {
    Recovered {
        hard_state: disk.hard_state,
        snapshot: disk
            .snapshot
            .as_ref()
            .map_or_else(|| meta(0, 0), |(m, _)| m.clone()),
        entries: disk.entries.clone(),
    }
}

/// Applies `write` to the reference disk at once.
pub fn apply(disk: &mut SimDisk, write: &Write) {
    disk.submit(write.clone(), 0, 0);
    disk.complete(usize::MAX).unwrap();
}

/// The record frames of a segment: (offset, framed length).
pub fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        let framed = (8 + len + 7) & !7;
        out.push((at, framed));
        at += framed;
    }
    out
}

/// The `.wal` files in `dir`, oldest first.
pub fn segments(names: Vec<String>, dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = names.into_iter().filter(|n| n.ends_with(".wal")).collect();
    v.sort();
    v.into_iter().map(|n| dir.join(n)).collect()
}
