//! [`Completion`]: how a request's outcome reaches whoever made it, without a thread blocked
//! waiting for it.

use std::fmt;
use std::sync::mpsc::{self, Receiver};

use super::error::{RequestError, Uncertainty};
use crate::error::NodeStopped;

type Callback<T> = Box<dyn FnOnce(Result<T, RequestError>) + Send>;

/// Called exactly once with a request's outcome.
///
/// The node calls it on its own thread, as soon as the outcome is known (the entry applied, the
/// read served, the request refused, its deadline passed), or on the caller's thread when the
/// node is not running. Keep it short and never block in it: the node handles nothing else
/// meanwhile. An event loop typically pushes the result into a queue and wakes itself (with a
/// `mio::Waker`, an eventfd, a condition variable).
///
/// ```
/// use std::sync::mpsc;
/// use raft_std::client::Completion;
///
/// let (tx, rx) = mpsc::channel();
/// let done: Completion<u64> = Completion::new(move |result| {
///     let _ = tx.send(result.map(|n| n * 2));
/// });
/// done.complete(Ok(21));
/// assert_eq!(rx.recv().unwrap().unwrap(), 42);
/// ```
///
/// A completion dropped without being called (which the runtime never does) calls itself with
/// [`Uncertainty::NodeStopped`]: whoever waits always hears something, and never a false "not
/// applied".
pub struct Completion<T> {
    callback: Option<Callback<T>>,
}

impl<T> Completion<T> {
    /// A completion that calls `f` with the outcome.
    pub fn new(f: impl FnOnce(Result<T, RequestError>) + Send + 'static) -> Self {
        Self {
            callback: Some(Box::new(f)),
        }
    }

    /// Delivers the outcome.
    pub fn complete(mut self, result: Result<T, RequestError>) {
        if let Some(f) = self.callback.take() {
            f(result);
        }
    }
}

impl<T: Send + 'static> Completion<T> {
    /// A completion that sends the outcome into a channel, and the receiving end: the blocking
    /// calls of [`RaftNode`](crate::runtime::RaftNode) wait on it.
    #[must_use]
    pub fn channel() -> (Self, Receiver<Result<T, RequestError>>) {
        let (tx, rx) = mpsc::channel();
        let done = Self::new(move |result| {
            // The receiver may have given up waiting: nobody to tell.
            let _ = tx.send(result);
        });
        (done, rx)
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(f) = self.callback.take() {
            f(Err(RequestError::Uncertain(Uncertainty::NodeStopped(
                NodeStopped { cause: None },
            ))));
        }
    }
}

impl<T> fmt::Debug for Completion<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("pending", &self.callback.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_completion_reports_an_unknown_outcome() {
        let (done, rx) = Completion::<u8>::channel();
        drop(done);
        let result = rx.recv().expect("the drop reports");
        assert!(matches!(
            result,
            Err(RequestError::Uncertain(Uncertainty::NodeStopped(_)))
        ));
        assert!(rx.recv().is_err(), "exactly once");
    }

    #[test]
    fn a_completion_is_called_once() {
        let (done, rx) = Completion::channel();
        done.complete(Ok(7_u8));
        assert_eq!(rx.recv().ok().and_then(Result::ok), Some(7));
        assert!(rx.recv().is_err(), "the drop after complete adds nothing");
    }
}
