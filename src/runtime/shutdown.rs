//! [`Shutdown`]: the one value that says the runtime is stopping, created by the builder and
//! passed to every thread.
//!
//! It escalates in ordered steps, each observable as a channel that disconnects (so every
//! wait can `select!` on it):
//!
//! 1. **Drain** — the first request of any kind. The poller stops at once and the GC timer
//!    stops; workers finish the attempts they hold and report them.
//! 2. **Force** — the force deadline (`PERAGO_SHUTDOWN_FORCE_KILL_AFTER` after the first
//!    request), a second signal, or [`RuntimeHandle::force`](super::RuntimeHandle::force).
//!    Every in-flight attempt's [`CancelSource`] fires; perago's phases and
//!    `TaskContext` sleeps end the attempt as `FAILED`.
//! 3. **Halt** — the runtime stops waiting: every worker has exited, or the grace period after
//!    the force has passed and the remaining attempts are abandoned. The lease thread and
//!    pending update retries give up.
//!
//! Reasons are an [`Ord`] enum and the most severe one seen is kept.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::task::{CancelSource, CancelToken};

/// Why the runtime is stopping, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShutdownReason {
    /// The embedding program asked ([`RuntimeHandle::shutdown`](super::RuntimeHandle::shutdown)).
    Requested,
    /// SIGINT or SIGTERM.
    Signal,
    /// A runtime thread panicked (a bug in perago, not a task body).
    RuntimeFailure,
    /// The force deadline passed with attempts still running.
    ForceDeadline,
    /// A second signal, or an explicit force request.
    Escalated,
}

impl ShutdownReason {
    /// Whether this reason cancels in-flight attempts immediately.
    pub fn forces(self) -> bool {
        matches!(
            self,
            ShutdownReason::ForceDeadline | ShutdownReason::Escalated
        )
    }

    /// A short snake_case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Requested => "requested",
            ShutdownReason::Signal => "signal",
            ShutdownReason::RuntimeFailure => "runtime_failure",
            ShutdownReason::ForceDeadline => "force_deadline",
            ShutdownReason::Escalated => "escalated",
        }
    }
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Default)]
struct State {
    /// The most severe reason so far.
    reason: Option<ShutdownReason>,
    /// When the first request arrived; the force deadline counts from here.
    requested_at: Option<Instant>,
    /// Whether a signal has been seen (a second one escalates).
    signalled: bool,
    /// Whether attempts have been cancelled.
    forced: bool,
    /// Whether a runtime thread failed (kept apart from `reason`, which a later, more
    /// severe reason overrides).
    failed: bool,
    /// The cancellation of every attempt currently running, by registration id.
    attempts: HashMap<u64, CancelSource>,
    next_attempt: u64,
}

struct Inner {
    state: Mutex<State>,
    drain: CancelSource,
    force: CancelSource,
    halt: CancelSource,
    force_after: Option<Duration>,
}

/// The runtime's shutdown state, shared by every thread.
///
/// # Threads and cloning
/// Clones share one state. Requests may come from any thread (signal thread, handle, a
/// panicking runtime thread); the internal mutex is held only to update the state and fire
/// sources, never across a wait.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("reason", &self.reason())
            .field("forced", &self.is_forced())
            .field("halted", &self.is_halted())
            .finish()
    }
}

impl Shutdown {
    /// A running (not yet stopping) state; `force_after` is the drain deadline.
    pub fn new(force_after: Option<Duration>) -> Shutdown {
        Shutdown {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                drain: CancelSource::new(),
                force: CancelSource::new(),
                halt: CancelSource::new(),
                force_after,
            }),
        }
    }

    /// Records a request. The first one starts the drain; a forcing reason (or a second
    /// signal) cancels every in-flight attempt.
    pub fn request(&self, reason: ShutdownReason) {
        let mut state = self.inner.state.lock();
        let reason = if reason == ShutdownReason::Signal && state.signalled {
            ShutdownReason::Escalated
        } else {
            reason
        };
        if reason == ShutdownReason::Signal {
            state.signalled = true;
        }
        if reason == ShutdownReason::RuntimeFailure {
            state.failed = true;
        }
        let first = state.reason.is_none();
        if state.reason < Some(reason) {
            state.reason = Some(reason);
        }
        if first {
            state.requested_at = Some(Instant::now());
            self.inner.drain.cancel();
            log::info!(reason = reason.as_str(); "shutdown requested; draining in-flight attempts");
        }
        if reason.forces() && !state.forced {
            state.forced = true;
            self.inner.force.cancel();
            let in_flight = state.attempts.len();
            for source in state.attempts.values() {
                source.cancel();
            }
            log::warn!(
                reason = reason.as_str(), in_flight;
                "shutdown forced; cancelling in-flight attempts"
            );
        }
    }

    /// Ends the shutdown: background threads and update retries stop waiting.
    pub fn halt(&self) {
        self.inner.halt.cancel();
    }

    /// The most severe reason requested so far.
    pub fn reason(&self) -> Option<ShutdownReason> {
        self.inner.state.lock().reason
    }

    /// Whether a runtime thread failed at some point.
    pub fn had_runtime_failure(&self) -> bool {
        self.inner.state.lock().failed
    }

    /// Whether any shutdown has been requested (polling has stopped).
    pub fn is_requested(&self) -> bool {
        self.inner.drain.is_cancelled()
    }

    /// Whether in-flight attempts have been cancelled.
    pub fn is_forced(&self) -> bool {
        self.inner.force.is_cancelled()
    }

    /// Whether the runtime stopped waiting for attempts.
    pub fn is_halted(&self) -> bool {
        self.inner.halt.is_cancelled()
    }

    /// Fires on the first request.
    pub fn drain_token(&self) -> CancelToken {
        self.inner.drain.token()
    }

    /// Fires when attempts are cancelled.
    pub fn force_token(&self) -> CancelToken {
        self.inner.force.token()
    }

    /// Fires when the runtime stops waiting.
    pub fn halt_token(&self) -> CancelToken {
        self.inner.halt.token()
    }

    /// When attempts will be cancelled if still running: the first request plus the
    /// configured drain deadline. `None` before any request or without a deadline.
    pub fn force_deadline(&self) -> Option<Instant> {
        let requested_at = self.inner.state.lock().requested_at?;
        self.inner
            .force_after
            .map(|after| requested_at.checked_add(after).unwrap_or(requested_at))
    }

    /// Registers one attempt about to run and returns its cancellation; it is already fired
    /// if the shutdown has been forced. Dropping the guard unregisters it.
    pub fn register_attempt(&self) -> AttemptCancel {
        let source = CancelSource::new();
        let mut state = self.inner.state.lock();
        if state.forced {
            source.cancel();
        }
        let id = state.next_attempt;
        state.next_attempt += 1;
        state.attempts.insert(id, source.clone());
        AttemptCancel {
            shutdown: self.clone(),
            id,
            source,
        }
    }

    /// Number of registered (running) attempts.
    #[cfg(test)]
    pub fn attempts_running(&self) -> usize {
        self.inner.state.lock().attempts.len()
    }
}

/// The cancellation of one running attempt; unregisters itself when dropped.
#[must_use = "the attempt is cancelled through this guard only while it is held"]
pub struct AttemptCancel {
    shutdown: Shutdown,
    id: u64,
    source: CancelSource,
}

impl AttemptCancel {
    /// The token to hand to the attempt.
    pub fn token(&self) -> CancelToken {
        self.source.token()
    }
}

impl Drop for AttemptCancel {
    fn drop(&mut self) {
        self.shutdown.inner.state.lock().attempts.remove(&self.id);
    }
}

/// Held by every runtime thread: if the thread unwinds from a panic (a bug in perago's own
/// code; task body panics are contained by the attempt), the runtime shuts down instead of
/// running on with a thread missing.
pub(crate) struct PanicGuard {
    shutdown: Shutdown,
    thread: String,
}

impl PanicGuard {
    pub(crate) fn new(shutdown: &Shutdown, thread: impl Into<String>) -> PanicGuard {
        PanicGuard {
            shutdown: shutdown.clone(),
            thread: thread.into(),
        }
    }
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log::error!(runtime_thread = self.thread.as_str(); "runtime thread panicked; shutting down");
            self.shutdown.request(ShutdownReason::RuntimeFailure);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_order_by_severity() {
        use ShutdownReason::*;
        let mut reasons = [Escalated, Requested, ForceDeadline, Signal, RuntimeFailure];
        reasons.sort();
        assert_eq!(
            reasons,
            [Requested, Signal, RuntimeFailure, ForceDeadline, Escalated]
        );
        assert!(!RuntimeFailure.forces() && ForceDeadline.forces() && Escalated.forces());
    }

    #[test]
    fn first_request_drains_and_keeps_attempts_running() {
        let shutdown = Shutdown::new(Some(Duration::from_secs(30)));
        assert_eq!(shutdown.force_deadline(), None);
        let attempt = shutdown.register_attempt();
        shutdown.request(ShutdownReason::Requested);
        assert!(shutdown.is_requested() && shutdown.drain_token().is_cancelled());
        assert!(!shutdown.is_forced() && !attempt.token().is_cancelled());
        assert!(shutdown.force_deadline().is_some());
        shutdown.request(ShutdownReason::Requested);
        assert!(
            !shutdown.is_forced(),
            "a repeated API request does not force"
        );
        assert_eq!(shutdown.reason(), Some(ShutdownReason::Requested));
    }

    #[test]
    fn second_signal_escalates_and_cancels_every_attempt() {
        let shutdown = Shutdown::new(None);
        let first = shutdown.register_attempt();
        let second = shutdown.register_attempt();
        assert_eq!(shutdown.attempts_running(), 2);
        shutdown.request(ShutdownReason::Signal);
        assert!(!first.token().is_cancelled());
        shutdown.request(ShutdownReason::Signal);
        assert_eq!(shutdown.reason(), Some(ShutdownReason::Escalated));
        assert!(first.token().is_cancelled() && second.token().is_cancelled());
        assert!(shutdown.force_token().is_cancelled());
        let late = shutdown.register_attempt();
        assert!(
            late.token().is_cancelled(),
            "attempts started after the force are cancelled"
        );
        drop((first, second, late));
        assert_eq!(shutdown.attempts_running(), 0);
    }

    #[test]
    fn the_most_severe_reason_wins() {
        let shutdown = Shutdown::new(None);
        shutdown.request(ShutdownReason::RuntimeFailure);
        shutdown.request(ShutdownReason::Requested);
        assert_eq!(shutdown.reason(), Some(ShutdownReason::RuntimeFailure));
        shutdown.request(ShutdownReason::Escalated);
        assert_eq!(shutdown.reason(), Some(ShutdownReason::Escalated));
        assert!(
            shutdown.had_runtime_failure(),
            "a later force does not hide the failure"
        );
        assert!(!shutdown.is_halted());
        shutdown.halt();
        assert!(shutdown.is_halted() && shutdown.halt_token().is_cancelled());
    }

    #[test]
    fn a_panicking_thread_requests_shutdown() {
        let shutdown = Shutdown::new(None);
        let guard = PanicGuard::new(&shutdown, "test-panicker");
        let joined = std::thread::Builder::new()
            .name("test-panicker".into())
            .spawn(move || {
                let _guard = guard;
                panic!("bug");
            })
            .unwrap()
            .join();
        assert!(joined.is_err());
        assert_eq!(shutdown.reason(), Some(ShutdownReason::RuntimeFailure));
        drop(PanicGuard::new(&Shutdown::new(None), "quiet"));
    }
}
