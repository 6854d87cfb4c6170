//! Live counters of one runtime, readable at any time through
//! [`RuntimeHandle::counters`](super::RuntimeHandle::counters) (the total) and
//! [`RuntimeHandle::task_counters`](super::RuntimeHandle::task_counters) (one hosted task).
//!
//! Each hosted task has its own [`Counters`] (polls, attempts, lease extensions, updates);
//! the runtime has one more for what belongs to no task (GC sweeps). The total is their sum.

use std::sync::atomic::{AtomicU64, Ordering};

/// The runtime's counters: relaxed atomics, each updated by the one thread that owns the
/// event (poller, a worker, the lease or GC thread).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) polled: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) lease_extensions: AtomicU64,
    pub(crate) updates_lost: AtomicU64,
    pub(crate) poll_errors: AtomicU64,
    pub(crate) update_retries: AtomicU64,
    pub(crate) gc_sweeps: AtomicU64,
    pub(crate) in_progress: AtomicU64,
    pub(crate) task_logs_sent: AtomicU64,
    pub(crate) task_logs_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CountersSnapshot {
            polled: get(&self.polled),
            completed: get(&self.completed),
            failed: get(&self.failed),
            in_flight: get(&self.in_flight),
            lease_extensions: get(&self.lease_extensions),
            updates_lost: get(&self.updates_lost),
            poll_errors: get(&self.poll_errors),
            update_retries: get(&self.update_retries),
            gc_sweeps: get(&self.gc_sweeps),
            in_progress: get(&self.in_progress),
            task_logs_sent: get(&self.task_logs_sent),
            task_logs_dropped: get(&self.task_logs_dropped),
        }
    }
}

/// A copy of the counters at one moment. Fields are read one by one, so a snapshot taken
/// while work is moving may be off by the few events that happened during the read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Tasks taken from Conductor (polls and tasks handed back by update-v2).
    pub polled: u64,
    /// Attempts that finished `COMPLETED`.
    pub completed: u64,
    /// Attempts that finished `FAILED` or `FAILED_WITH_TERMINAL_ERROR`.
    pub failed: u64,
    /// Tasks taken but not yet reported (running or waiting for a worker).
    pub in_flight: u64,
    /// Successful lease extensions (heartbeats).
    pub lease_extensions: u64,
    /// Results that could not be reported after all retries.
    pub updates_lost: u64,
    /// Polls that failed (the poller backed off and carried on).
    pub poll_errors: u64,
    /// Result updates that were retried after a retryable error.
    pub update_retries: u64,
    /// Workspace GC timer sweeps completed.
    pub gc_sweeps: u64,
    /// Attempts that reported `IN_PROGRESS` ("check back later"); not counted as finished.
    pub in_progress: u64,
    /// `ctx.log()` lines sent to Conductor's task log.
    pub task_logs_sent: u64,
    /// `ctx.log()` lines not sent (queue full, request failed, or still queued at halt).
    pub task_logs_dropped: u64,
}

impl std::ops::AddAssign for CountersSnapshot {
    fn add_assign(&mut self, other: CountersSnapshot) {
        // Destructured so that a new counter cannot be left out of the total.
        let CountersSnapshot {
            polled,
            completed,
            failed,
            in_flight,
            lease_extensions,
            updates_lost,
            poll_errors,
            update_retries,
            gc_sweeps,
            in_progress,
            task_logs_sent,
            task_logs_dropped,
        } = other;
        self.polled += polled;
        self.completed += completed;
        self.failed += failed;
        self.in_flight += in_flight;
        self.lease_extensions += lease_extensions;
        self.updates_lost += updates_lost;
        self.poll_errors += poll_errors;
        self.update_retries += update_retries;
        self.gc_sweeps += gc_sweeps;
        self.in_progress += in_progress;
        self.task_logs_sent += task_logs_sent;
        self.task_logs_dropped += task_logs_dropped;
    }
}

impl std::iter::Sum for CountersSnapshot {
    fn sum<I: Iterator<Item = CountersSnapshot>>(iter: I) -> CountersSnapshot {
        iter.fold(CountersSnapshot::default(), |mut total, one| {
            total += one;
            total
        })
    }
}

impl CountersSnapshot {
    /// Attempts that finished, whatever their status.
    pub fn finished(&self) -> u64 {
        self.completed + self.failed
    }
}
