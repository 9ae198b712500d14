//! With the planted bugs compiled in (`RUSTFLAGS="--cfg raft_planted"`, raft-core/PLANTED-BUGS.md):
//! the bug named by `RAFT_PLANTED_BUG` is put in force for the whole test process, so that
//! `RAFT_PLANTED_BUG=<name> cargo test -p raft-core --features sim --test paper_elections` (or
//! another `paper_*` file) shows which tests catch it. Every way the tests build a node calls
//! [`from_env`] first.

use std::sync::Once;

use raft_core::planted::{self, Bug};

pub(crate) fn from_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(name) = std::env::var("RAFT_PLANTED_BUG") {
            let bug = Bug::from_name(&name)
                .unwrap_or_else(|| panic!("RAFT_PLANTED_BUG: no planted bug named {name:?}"));
            planted::set(Some(bug));
        }
    });
}
