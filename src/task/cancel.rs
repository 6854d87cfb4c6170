//! Cooperative cancellation: one [`CancelSource`] fires, every cloned [`CancelToken`] sees it.
//!
//! A token is a crossbeam receiver on a channel that never carries a message; firing the
//! source drops the only sender, which disconnects every receiver at once. That makes
//! cancellation usable inside `crossbeam_channel::select!` next to work channels and timers,
//! so no code ever polls a flag in a sleep loop.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;

/// The reason a wait ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// The firing side of a cancellation pair.
///
/// # Threads and cloning
/// Clones share one underlying signal; firing any clone cancels every token. Firing is
/// idempotent.
#[derive(Clone)]
pub struct CancelSource {
    sender: Arc<Mutex<Option<Sender<()>>>>,
    token: CancelToken,
}

impl CancelSource {
    /// Creates a new, not yet fired, source.
    pub fn new() -> CancelSource {
        let (sender, receiver) = crossbeam_channel::bounded(0);
        CancelSource {
            sender: Arc::new(Mutex::new(Some(sender))),
            token: CancelToken { receiver },
        }
    }

    /// Fires the signal: every token observes cancellation from now on.
    pub fn cancel(&self) {
        self.sender.lock().take();
    }

    /// A token observing this source.
    pub fn token(&self) -> CancelToken {
        self.token.clone()
    }

    /// Whether the signal has fired.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

impl Default for CancelSource {
    fn default() -> Self {
        CancelSource::new()
    }
}

impl fmt::Debug for CancelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelSource")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The observing side of a cancellation pair, handed to task bodies and runtime phases.
///
/// # Threads and cloning
/// Cheap to clone and `Send + Sync`; all clones observe the same source.
#[derive(Clone)]
pub struct CancelToken {
    receiver: Receiver<()>,
}

impl CancelToken {
    /// A token that is never cancelled (its source is kept alive forever).
    pub fn never() -> CancelToken {
        CancelToken {
            receiver: crossbeam_channel::never(),
        }
    }

    /// Whether cancellation has been requested.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.receiver.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// Sleeps for `duration` unless cancelled first.
    pub fn sleep(&self, duration: Duration) -> Result<(), Cancelled> {
        match self.receiver.recv_timeout(duration) {
            Err(RecvTimeoutError::Timeout) => Ok(()),
            // The channel carries no messages, so anything else is disconnection.
            _ => Err(Cancelled),
        }
    }

    /// Sleeps until `deadline` unless cancelled first.
    pub fn sleep_until(&self, deadline: Instant) -> Result<(), Cancelled> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }

    /// Blocks until cancelled.
    pub fn wait(&self) {
        let _ = self.receiver.recv();
    }

    /// Blocks until cancelled or `timeout` passes; returns whether it was cancelled.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.sleep(timeout).is_err()
    }

    /// Returns `Err(Cancelled)` if cancellation has been requested.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// The receiver to use in `crossbeam_channel::select!`: it becomes ready (disconnected)
    /// when cancellation is requested.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.receiver
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_cancellation() {
        let source = CancelSource::new();
        let tokens: Vec<_> = (0..3).map(|_| source.token()).collect();
        assert!(tokens.iter().all(|t| !t.is_cancelled()));
        source.clone().cancel();
        assert!(tokens.iter().all(CancelToken::is_cancelled));
        source.cancel();
        assert!(source.is_cancelled());
    }

    #[test]
    fn sleep_wakes_on_cancel_from_another_thread() {
        let source = CancelSource::new();
        let token = source.token();
        let sleeper = std::thread::Builder::new()
            .name("test-sleeper".into())
            .spawn(move || token.sleep(Duration::from_secs(600)))
            .unwrap();
        source.cancel();
        assert_eq!(sleeper.join().unwrap(), Err(Cancelled));
    }

    #[test]
    fn sleep_without_cancel_completes() {
        let source = CancelSource::new();
        assert_eq!(source.token().sleep(Duration::from_millis(1)), Ok(()));
        assert!(!CancelToken::never().wait_timeout(Duration::from_millis(1)));
    }
}
