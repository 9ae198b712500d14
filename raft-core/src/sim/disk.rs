//! A simulated disk: writes complete after a delay, in order; a crash keeps what was acknowledged
//! and an arbitrary prefix of what was not (possibly tearing the last write).

use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;

use super::rng::{SimRng, hash_bytes, mix};
use crate::output::{Write, WriteId};
use crate::restore::SnapshotMeta;
use crate::types::{Entry, HardState};
use crate::write_contract::{DurableShape, WriteViolation};

/// A fingerprint of an entry and every entry before it.
pub(crate) fn chain(prev: u64, e: &Entry) -> u64 {
    let kind = match e.kind {
        crate::EntryKind::Normal => 1,
        crate::EntryKind::Noop => 2,
        crate::EntryKind::Config => 3,
    };
    mix(mix(mix(prev, e.id.term.0), kind), hash_bytes(&e.data))
}

/// A snapshot's bytes in the simulator: the state machine's fingerprint, padded to a length that
/// makes the transfer take several chunks.
#[must_use]
pub fn snapshot_blob(prefix: u64, len: usize) -> Vec<u8> {
    let mut blob = Vec::from(prefix.to_le_bytes());
    blob.resize(len.max(8), 0xA5);
    blob
}

/// The state machine fingerprint a snapshot blob holds.
#[must_use]
pub fn blob_prefix(blob: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = blob.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// What one node has on disk.
///
/// Every write, and every snapshot the application takes, goes through a [`DurableShape`] (the
/// write contract) first: a write it refuses is an error (`BadWrite`) and changes nothing. The
/// public fields are for reading; change them only through writes, or the disk and its shape
/// disagree.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    /// The durable term and vote.
    pub hard_state: HardState,
    /// The durable snapshot, if any, and its bytes.
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// A snapshot being received: its bytes so far.
    incoming: Vec<u8>,
    /// The durable log after the snapshot (entry `i` has index `first + i + 1`).
    pub entries: Vec<Entry>,
    /// `chains[i]`: the fingerprint of the log up to and including `entries[i]`.
    pub chains: Vec<u64>,
    /// Writes issued and not yet durable, with the tick they complete at.
    pending: VecDeque<(u64, Write)>,
    /// The tick the last queued write completes at (writes complete in order).
    last_completion: u64,
    /// Writes made durable.
    pub writes: u64,
    /// Every (index, prefix fingerprint) that has been durable at some instant.
    ever_durable: BTreeSet<(u64, u64)>,
    /// The shape of what is durable here: the write contract every write is checked against.
    shape: DurableShape,
    /// A snapshot the application took that the contract refused, reported by the next
    /// completion or crash ([`Self::take_snapshot`] cannot return it).
    refused: Option<BadWrite>,
}

/// A write (or a snapshot taken) broke the contract of [`Write`] (a core bug): what the
/// contract says, as a sentence and typed.
#[derive(Clone, Debug)]
pub struct BadWrite(pub alloc::string::String, pub WriteViolation);

impl From<WriteViolation> for BadWrite {
    fn from(v: WriteViolation) -> Self {
        Self(alloc::format!("{v}"), v)
    }
}

impl SimDisk {
    /// Queues a write issued at `now` to complete `delay` ticks later (but after every earlier
    /// one).
    pub fn submit(&mut self, w: Write, now: u64, delay: u64) {
        let at = (now + delay).max(self.last_completion);
        self.last_completion = at;
        self.pending.push_back((at, w));
    }

    /// Makes every write due at `now` durable; returns the id of the last one.
    pub fn complete_due(&mut self, now: u64) -> Result<Option<WriteId>, BadWrite> {
        self.report_refused()?;
        let mut last = None;
        while self.pending.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, w)) = self.pending.pop_front() else {
                break;
            };
            self.apply(&w, usize::MAX)?;
            last = Some(w.id);
        }
        Ok(last)
    }

    /// Makes the oldest `max` waiting writes durable, whatever their delay; returns the id of
    /// the last one.
    pub fn complete(&mut self, max: usize) -> Result<Option<WriteId>, BadWrite> {
        self.report_refused()?;
        let mut last = None;
        for _ in 0..max {
            let Some((_, w)) = self.pending.pop_front() else {
                break;
            };
            self.apply(&w, usize::MAX)?;
            last = Some(w.id);
        }
        Ok(last)
    }

    /// Bytes of a snapshot being received (staged, not yet complete).
    #[must_use]
    pub fn incoming_len(&self) -> usize {
        self.incoming.len()
    }

    /// Whether writes are waiting.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The index the durable log starts after (the snapshot's).
    #[must_use]
    pub fn first(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(m, _)| m.last.index.0)
    }

    /// The fingerprint of the log up to `index`, if the disk holds it.
    #[must_use]
    pub fn chain_at(&self, index: u64) -> Option<u64> {
        let first = self.first();
        if index == first {
            return self
                .snapshot
                .as_ref()
                .map_or(Some(0), |(_, b)| blob_prefix(b));
        }
        let i = index.checked_sub(first)?.checked_sub(1)?;
        self.chains.get(usize::try_from(i).ok()?).copied()
    }

    /// The application stored a snapshot: keep it and drop the log it covers. A snapshot the
    /// contract refuses (older than the disk's, or contradicting its log) is not kept, and the
    /// next completion or crash reports it; one at the disk's snapshot index is not newer, and
    /// the disk keeps the one it has (as raft-std's stores do).
    pub fn take_snapshot(&mut self, meta: SnapshotMeta, blob: Vec<u8>) {
        if let Err(v) = self.shape.check_snapshot(meta.last) {
            self.refused.get_or_insert_with(|| BadWrite::from(v));
            return;
        }
        if meta.last.index.0 <= self.first() {
            return;
        }
        if let Err(v) = self.shape.install_snapshot(meta.last) {
            self.refused.get_or_insert_with(|| BadWrite::from(v));
            return;
        }
        self.install(meta, blob);
    }

    /// The snapshot the application took that the contract refused, if any.
    fn report_refused(&mut self) -> Result<(), BadWrite> {
        self.refused.take().map_or(Ok(()), Err)
    }

    /// Makes a snapshot the contract accepted the latest, dropping the log it covers.
    fn install(&mut self, meta: SnapshotMeta, blob: Vec<u8>) {
        let drop = meta.last.index.0.saturating_sub(self.first());
        let drop = usize::try_from(drop)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        self.entries.drain(..drop);
        self.chains.drain(..drop);
        if let Some(prefix) = blob_prefix(&blob) {
            self.ever_durable.insert((meta.last.index.0, prefix));
        }
        self.snapshot = Some((meta, blob));
    }

    /// Makes `w` durable, or only its first `max_entries` entries (a torn write), once the write
    /// contract accepts it; a refused write changes nothing.
    fn apply(&mut self, w: &Write, max_entries: usize) -> Result<(), BadWrite> {
        self.writes += 1;
        let torn;
        let w = if max_entries < w.entries.len() {
            let mut t = w.clone();
            t.entries.truncate(max_entries);
            torn = t;
            &torn
        } else {
            w
        };
        let effect = self.shape.apply(w)?;
        if let Some(hs) = effect.hard_state {
            self.hard_state = hs;
        }
        if let Some(from) = effect.truncate_from {
            let keep = from.0.saturating_sub(1).saturating_sub(self.first());
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            self.entries.truncate(keep);
            self.chains.truncate(keep);
        }
        if let Some(part) = &w.snapshot {
            if part.offset == 0 {
                self.incoming.clear();
            }
            self.incoming.extend_from_slice(&part.data);
            if effect.installs.is_some() {
                // The contract: entries up to the snapshot go; later ones stay unless this
                // write's truncation removed them.
                let blob = core::mem::take(&mut self.incoming);
                self.install(part.meta.clone(), blob);
            }
        }
        for e in &w.entries {
            let prev = match self.chains.last() {
                Some(&c) => c,
                None => self.chain_at(self.first()).unwrap_or(0),
            };
            let prefix = chain(prev, e);
            self.chains.push(prefix);
            self.ever_durable.insert((e.id.index.0, prefix));
            self.entries.push(e.clone());
        }
        Ok(())
    }

    /// Whether the log prefix ending at `index` with fingerprint `prefix` has been durable at
    /// some instant (`prefix` `None`: any prefix ending at `index`).
    #[must_use]
    pub fn was_durable(&self, index: u64, prefix: Option<u64>) -> bool {
        match prefix {
            _ if index == 0 => true,
            Some(p) => self.ever_durable.contains(&(index, p)),
            None => self
                .ever_durable
                .range((index, 0)..=(index, u64::MAX))
                .next()
                .is_some(),
        }
    }

    /// A power cut: no write still pending reaches the disk (the crash that follows finds
    /// none).
    pub fn lose_pending(&mut self) {
        self.pending.clear();
    }

    /// The node crashed: what was acknowledged stays; of the rest, a random prefix reaches the
    /// disk (the last write possibly torn after its hard state), the remainder is lost.
    pub fn crash(&mut self, rng: &mut SimRng) -> Result<(), BadWrite> {
        self.report_refused()?;
        let pending: Vec<Write> = self.pending.drain(..).map(|(_, w)| w).collect();
        let survive = rng.below(pending.len() as u64 + 1) as usize;
        for (i, w) in pending.iter().enumerate() {
            if i < survive {
                self.apply(w, usize::MAX)?;
            } else if i == survive && rng.chance(500_000) {
                let torn = rng.below(w.entries.len() as u64 + 1) as usize;
                self.apply(w, torn)?;
                break;
            } else {
                break;
            }
        }
        self.last_completion = 0;
        // A partly received snapshot is staged in a temporary file: gone with the process.
        self.incoming.clear();
        self.shape.discard_incoming();
        Ok(())
    }
}
