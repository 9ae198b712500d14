//! Process pauses (a stop-the-world collector, a descheduled VM, a `SIGSTOP`): the node takes no
//! input while it is paused, and the world goes on. Messages to it wait in its socket, its disk
//! completes writes it learns of only on waking, and client reads sent to it queue; on waking it
//! handles those reads first, before its timer fires or any message arrives. A leader that wakes
//! after the others elected a new one and committed still believes it leads, and nothing it held
//! before the pause may confirm those reads.
//!
//! With lease reads the adapter's clock contract (`Config::lease_reads`) applies: a monotonic
//! clock runs on through a pause, so a node waking steps the ticks its clock counted meanwhile
//! before the reads that waited. Its lease has run out by then, and nothing it held before the
//! pause may serve them.

use alloc::format;

use super::adapter::{SimResult, Simulation};
use crate::input::{Input, ReadId};

impl Simulation {
    /// Whether node `i` is paused.
    pub(super) fn paused(&self, i: usize) -> bool {
        self.nodes[i].paused_until > self.now
    }

    /// [`SimOptions::pause_per_million`](super::SimOptions::pause_per_million): pauses the
    /// leader (or a random node when none leads) for one to three election timeouts (drawn on
    /// only when the fault is on).
    pub(super) fn maybe_pause(&mut self) {
        if self.healed || !self.rng.chance(self.opts.pause_per_million) {
            return;
        }
        let i = match self.leader() {
            Some(l) => l,
            None => self.rng.below(self.nodes.len() as u64) as usize,
        };
        if self.nodes[i].node.is_none() || self.paused(i) {
            return;
        }
        let timeout = u64::from(self.opts.config(self.nodes[i].id).election_ticks_max);
        let ticks = self.rng.between(timeout, 3 * timeout);
        self.nodes[i].paused_until = self.now + ticks;
        self.log(|| format!("n{} pauses for {ticks} ticks", i + 1));
    }

    /// Wakes the nodes whose pause is over (all of them once `all`): each handles the reads
    /// queued while it slept (with lease reads, after the ticks its clock counted meanwhile).
    pub(super) fn wake(&mut self, all: bool) -> SimResult {
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            if n.paused_until == 0 || (!all && n.paused_until > self.now) {
                continue;
            }
            n.paused_until = 0;
            let reads = core::mem::take(&mut n.queued_reads);
            let missed = core::mem::take(&mut n.missed_ticks);
            self.log(|| format!("n{} wakes, {} reads queued", i + 1, reads.len()));
            if self.opts.lease_reads {
                self.log(|| format!("n{} steps the {missed} ticks it missed", i + 1));
                for _ in 0..missed {
                    self.step(i, Input::Tick)?;
                }
            }
            for id in reads {
                self.step(i, Input::Read(ReadId(id)))?;
            }
        }
        Ok(())
    }
}
