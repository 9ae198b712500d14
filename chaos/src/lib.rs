//! Checking histories of the replicated key-value store: what clients asked, when, and what
//! they were answered, against what a single sequential store could have answered.
//!
//! - [`history`]: the format. A history is JSON lines, one operation each:
//!   `{"client":1,"op":"set","key":"k","arg":"v1","call":100,"ret":180}`, with `op` one of `get`,
//!   `set`, `append`, `incr`, `del`, an `arg` (the value, or the delta), a `result` (the value
//!   read, the new number or length), and `call`/`ret` in monotonic nanoseconds; `ret` is `null`
//!   when the outcome is unknown (the operation may have taken effect at any point after its
//!   call, or never). [`history::HistoryWriter`] writes one, [`history::History::from_reader`]
//!   reads one, naming the line of any error.
//! - [`linearizability`]: the checker. Each key is checked on its own (every operation touches
//!   one key, and linearizability is compositional) by the Wing–Gong–Lowe search: try the
//!   operations that could take effect next on a model of the key (`Option<String>`), backtrack
//!   when an operation's return comes before it could be placed, and remember every
//!   configuration (operations placed, value) already explored so as not to explore it again.
//!   Each key's search has a time, step and memory budget; one that runs out says
//!   [`Verdict::Unknown`](linearizability::Verdict::Unknown), never `Ok`.
//! - [`generate`]: random linearizable histories, to test the checker and measure it.
//!
//! The `lincheck` binary checks a file: `lincheck FILE [--timeout SECS]`, exit code 0 when it is
//! linearizable, 1 when it is not, 2 when undecided, 3 for a bad file; `lincheck --generate N
//! --clients C --keys K` times the check of a random history.
//!
//! ```
//! use chaos::history::History;
//! use chaos::linearizability::{CheckOptions, Verdict, check};
//!
//! // Client 2's read overlaps the write, so it may see the old value (absent) or the new one;
//! // client 3 reads after the write returned, and must see it.
//! let history = History::parse(
//!     r#"{"client":1,"op":"set","key":"k","arg":"v1","call":100,"ret":180}
//! {"client":2,"op":"get","key":"k","result":null,"call":150,"ret":200}
//! {"client":3,"op":"get","key":"k","result":"v1","call":190,"ret":250}"#,
//! )?;
//! assert_eq!(check(&history, &CheckOptions::default()).verdict, Verdict::Ok);
//!
//! // A read that starts after the write returned and still sees nothing is a stale read.
//! let stale = History::parse(
//!     r#"{"client":1,"op":"set","key":"k","arg":"v1","call":100,"ret":180}
//! {"client":3,"op":"get","key":"k","result":null,"call":190,"ret":250}"#,
//! )?;
//! let report = check(&stale, &CheckOptions::default());
//! let Verdict::Violation { key, ops, .. } = &report.verdict else {
//!     panic!("{}", report.verdict)
//! };
//! assert_eq!(key, "k");
//! assert_eq!(ops[0].client, 3);
//! # Ok::<(), chaos::history::HistoryError>(())
//! ```
#![deny(missing_docs)]

pub mod generate;
pub mod history;
pub mod linearizability;
pub mod runner;
