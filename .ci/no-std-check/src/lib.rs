//! Proof that `raft-core` builds without `std`: this crate is `no_std`, defines the panic handler
//! itself, and drives a node through a step.
#![no_std]

extern crate alloc;

use core::convert::Infallible;
use raft_core::{Config, Input, Membership, Node, NodeId, Outputs, Restored};

struct Counter(u64);

impl rand_core_shim::TryRng for Counter {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.0 += 1;
        Ok(self.0 as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 += 1;
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Builds a single-node cluster and ticks it until it leads.
pub fn run() -> bool {
    let Some(id) = NodeId::new(1) else { return false };
    let Ok(membership) = Membership::new(&[id]) else { return false };
    let Ok(mut node) = Node::restore(Config::new(id), Counter(0), Restored::initial(membership))
    else {
        return false;
    };
    let mut out = Outputs::new();
    for _ in 0..100 {
        let _ = node.step(Input::Tick, &mut out);
        let last = out.drain_writes().next_back().map(|w| w.id);
        if let Some(w) = last {
            let _ = node.step(Input::Persisted(w), &mut out);
        }
        out.clear();
    }
    node.role() == raft_core::Role::Leader
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
