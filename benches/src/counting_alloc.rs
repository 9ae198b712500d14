//! A global allocator that counts what it does, then hands every call to [`System`].
//!
//! Install it in a binary with
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: benches::CountingAlloc = benches::CountingAlloc;
//! ```
//!
//! and read the counters with [`AllocCounts::now`]. The counters are process-wide relaxed atomics:
//! exact for the single-threaded drivers here, and cheap next to the allocation itself.

// `GlobalAlloc` is an unsafe trait: implementing it is the one use of `unsafe` in the workspace
// outside dependencies. Each method only forwards to `System` with the caller's own arguments, so
// it upholds exactly the contract `System` does. The crate sets `unsafe_code = "deny"` (not the
// workspace's `forbid`) so that this module alone may allow it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static DEALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// The counting allocator. Zero-sized; see the module docs for installing it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        DEALLOCS.fetch_add(1, Relaxed);
        // SAFETY: as above; `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A reading of the counters, or the difference between two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocCounts {
    /// Calls to `alloc` and `alloc_zeroed`.
    pub allocs: u64,
    /// Calls to `realloc` (a growing `Vec`, say).
    pub reallocs: u64,
    /// Calls to `dealloc`.
    pub deallocs: u64,
    /// Bytes requested (for `realloc`, only the growth).
    pub bytes: u64,
}

impl AllocCounts {
    /// The counters now (all zero if [`CountingAlloc`] is not the global allocator).
    #[must_use]
    pub fn now() -> Self {
        Self {
            allocs: ALLOCS.load(Relaxed),
            reallocs: REALLOCS.load(Relaxed),
            deallocs: DEALLOCS.load(Relaxed),
            bytes: BYTES.load(Relaxed),
        }
    }

    /// What happened since `earlier`.
    #[must_use]
    pub fn since(earlier: Self) -> Self {
        let now = Self::now();
        Self {
            allocs: now.allocs.wrapping_sub(earlier.allocs),
            reallocs: now.reallocs.wrapping_sub(earlier.reallocs),
            deallocs: now.deallocs.wrapping_sub(earlier.deallocs),
            bytes: now.bytes.wrapping_sub(earlier.bytes),
        }
    }

    /// Allocation calls that may hit the allocator's slow path: `alloc` plus `realloc`.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.allocs + self.reallocs
    }

    /// [`calls`](Self::calls) per `n` (0 for `n == 0`).
    #[must_use]
    pub fn per(&self, n: u64) -> f64 {
        if n == 0 {
            0.0
        } else {
            self.calls() as f64 / n as f64
        }
    }
}

/// Whether [`CountingAlloc`] is the global allocator of this process.
#[must_use]
pub fn installed() -> bool {
    let before = AllocCounts::now();
    let b = std::hint::black_box(Box::new(0u64));
    drop(b);
    AllocCounts::since(before).allocs > 0
}
