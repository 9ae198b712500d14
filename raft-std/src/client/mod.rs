//! The client seam: what a server, the in-process test cluster (`test_util::cluster::Cluster`,
//! behind the feature `test-util`) and a load generator all need to send requests to a cluster,
//! written once.
//!
//! - [`Completion`]: a request finishes by calling back, so an event loop can wake itself; the
//!   blocking calls of [`RaftNode`](crate::runtime::RaftNode) are thin sugar over it.
//! - [`RequestError`]: one error for proposals, reads, transfers and membership changes. Its
//!   [`Outcome`] tells "not applied" from "unknown" from "refused"; [`RequestError::retry`]
//!   says whether and where to go again.
//! - [`Router`]: a sans-IO router that picks the node to try from leader hints and errors.
//! - [`Session`]: exactly-once writes; each carries a [`Stamp`], and a retry reuses it.

mod completion;
mod error;
mod router;
mod session;

pub use completion::Completion;
pub use error::{Outcome, RequestError, Retry, Uncertainty};
pub use router::{Route, Router};
pub use session::{ClientId, Session, Stamp};
