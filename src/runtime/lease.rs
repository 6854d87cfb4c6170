//! The `lease` thread: one thread heartbeats every long-running attempt so Conductor does not
//! time it out (`IN_PROGRESS` + `extendLease: true`, which restarts the response-timeout
//! clock).
//!
//! Workers register an attempt with `Leases::start` when its `responseTimeoutSeconds`
//! warrants it and remove it with `Leases::stop` before reporting the result. The first
//! beat is due one interval (80 % of the response timeout) after the start, then every
//! interval; a timeout whose interval would be under one second gets no heartbeat. A failed
//! beat is retried twice at short delays without blocking the other leases (it is simply
//! rescheduled), then the lease waits for its next regular beat.
//!
//! The registry is a table shared with the workers plus a wake channel. Most attempts end
//! long before their first beat, so registering and removing one must not wake the lease
//! thread: a start sends a wake only when its first beat is due before the time the thread is
//! already sleeping until, and a stop never does (a thread that wakes for a lease that has
//! gone just finds nothing due). The loop waits on the wake channel, the next due beat
//! (`at(..)`, or `never()` when nothing is registered) and the halt signal. It ends when
//! every worker has dropped its `Leases` handle (normal drain) or on halt (abandoned
//! attempts).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, at, never, select};
use parking_lot::Mutex;

use super::counters::Counters;
use crate::conductor::ConductorApi;
use crate::task::CancelToken;
use crate::util::backoff::Backoff;
use crate::util::error_chain;

/// Share of the response timeout after which a heartbeat is sent.
pub const LEASE_THRESHOLD: f64 = 0.8;
/// Leases whose interval would be shorter than this are not kept.
pub const MIN_LEASE_INTERVAL: Duration = Duration::from_secs(1);
/// Retries of a failed heartbeat before waiting for the next regular one.
const BEAT_RETRIES: u32 = 2;

/// The heartbeat interval for a response timeout, or `None` when no lease is kept.
pub(crate) fn lease_interval(response_timeout: Option<Duration>) -> Option<Duration> {
    let interval = response_timeout?.mul_f64(LEASE_THRESHOLD);
    (interval >= MIN_LEASE_INTERVAL).then_some(interval)
}

/// Delays of a failed beat's retries: from 1/16 of the interval (at most 1 s), × 1.5 each
/// time, so [`BEAT_RETRIES`] of them land within the remaining 20 % of the response timeout.
fn retry_backoff(interval: Duration) -> Backoff {
    Backoff::new((interval / 16).min(Duration::from_secs(1)), interval).growth(3, 2)
}

/// Delay before retry `failures` (1-based) of a failed beat.
fn retry_delay(interval: Duration, failures: u32) -> Duration {
    retry_backoff(interval).delay(failures.saturating_sub(1))
}

struct Lease {
    workflow_instance_id: String,
    /// The counters of the task the attempt belongs to (its lease extensions).
    counters: Arc<Counters>,
    interval: Duration,
    due: Instant,
    failures: u32,
}

#[derive(Default)]
struct Table {
    leases: HashMap<String, Lease>,
    /// When the lease thread will wake on its own; `None` while it waits without a timer.
    wakes_at: Option<Instant>,
}

/// A worker's handle on the lease registry.
///
/// # Threads and cloning
/// One clone per worker; the table mutex is held only for an insert, a removal or the lease
/// thread's scan. When the last clone is dropped the lease thread ends.
#[derive(Clone)]
pub(crate) struct Leases {
    table: Arc<Mutex<Table>>,
    wake: Sender<()>,
}

impl Leases {
    /// Starts heartbeating `task_id` every `interval`, counting its extensions in `counters`.
    pub(crate) fn start(
        &self,
        task_id: &str,
        workflow_instance_id: &str,
        interval: Duration,
        counters: &Arc<Counters>,
    ) {
        let due = Instant::now() + interval;
        let mut table = self.table.lock();
        table.leases.insert(
            task_id.to_owned(),
            Lease {
                workflow_instance_id: workflow_instance_id.to_owned(),
                counters: Arc::clone(counters),
                interval,
                due,
                failures: 0,
            },
        );
        if table.wakes_at.is_none_or(|wakes_at| due < wakes_at) {
            table.wakes_at = Some(due);
            // A full channel already holds a wake-up; that one will do.
            let _ = self.wake.try_send(());
        }
    }

    /// Stops heartbeating `task_id` (called before its final result is sent).
    pub(crate) fn stop(&self, task_id: &str) {
        self.table.lock().leases.remove(task_id);
    }
}

/// The lease thread's state.
pub(crate) struct LeaseKeeper {
    api: Arc<dyn ConductorApi>,
    worker_id: String,
    table: Arc<Mutex<Table>>,
    woken: Receiver<()>,
    halt: CancelToken,
}

impl LeaseKeeper {
    /// The registry: the handle workers clone, and the lease thread's state, which heartbeats
    /// through `api` as `worker_id` until halted.
    pub(crate) fn new(
        api: Arc<dyn ConductorApi>,
        worker_id: String,
        halt: CancelToken,
    ) -> (Leases, LeaseKeeper) {
        let table = Arc::new(Mutex::new(Table::default()));
        let (wake, woken) = crossbeam_channel::bounded(1);
        let leases = Leases {
            table: Arc::clone(&table),
            wake,
        };
        let keeper = LeaseKeeper {
            api,
            worker_id,
            table,
            woken,
            halt,
        };
        (leases, keeper)
    }

    /// The lease thread's main loop.
    pub(crate) fn run(self) {
        loop {
            let next_due = {
                let mut table = self.table.lock();
                let next_due = table.leases.values().map(|lease| lease.due).min();
                table.wakes_at = next_due;
                next_due
            };
            let timer = next_due.map_or_else(never, at);
            select! {
                recv(self.woken) -> message => {
                    if message.is_err() {
                        return;
                    }
                }
                recv(self.halt.receiver()) -> _ => return,
                recv(timer) -> _ => self.beat_due(),
            }
        }
    }

    fn beat_due(&self) {
        let now = Instant::now();
        let due: Vec<(String, String)> = self
            .table
            .lock()
            .leases
            .iter()
            .filter(|(_, lease)| lease.due <= now)
            .map(|(task_id, lease)| (task_id.clone(), lease.workflow_instance_id.clone()))
            .collect();
        for (task_id, workflow_instance_id) in due {
            // The HTTP call runs without the table lock, so workers never wait on it.
            let outcome = self
                .api
                .extend_lease(&task_id, &workflow_instance_id, &self.worker_id);
            let mut table = self.table.lock();
            // Stopped meanwhile: the attempt finished; nothing to reschedule.
            let Some(lease) = table.leases.get_mut(&task_id) else {
                continue;
            };
            match outcome {
                Ok(()) => {
                    Counters::inc(&lease.counters.lease_extensions);
                    lease.failures = 0;
                    lease.due = Instant::now() + lease.interval;
                    log::debug!(task_id = task_id.as_str(); "lease extended");
                }
                Err(error) => {
                    lease.failures += 1;
                    let retry = error.is_retryable() && lease.failures <= BEAT_RETRIES;
                    let delay = if retry {
                        retry_delay(lease.interval, lease.failures)
                    } else {
                        lease.failures = 0;
                        lease.interval
                    };
                    lease.due = Instant::now() + delay;
                    log::warn!(
                        task_id = task_id.as_str(),
                        workflow_instance_id = workflow_instance_id.as_str(),
                        error = error_chain(&error).as_str(),
                        retry_in_ms = delay.as_millis() as u64;
                        "lease extension failed"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::FakeConductor;

    #[test]
    fn interval_is_eighty_percent_and_never_under_a_second() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        let table = [
            (None, None),
            (secs(1), None),
            (
                Some(Duration::from_millis(1250)),
                Some(Duration::from_secs(1)),
            ),
            (secs(2), Some(Duration::from_millis(1600))),
            (secs(600), secs(480)),
        ];
        for (timeout, expected) in table {
            assert_eq!(lease_interval(timeout), expected, "{timeout:?}");
        }
    }

    #[test]
    fn short_attempts_do_not_wake_the_lease_thread() {
        let api: Arc<dyn ConductorApi> = Arc::new(FakeConductor::default());
        let (leases, keeper) = LeaseKeeper::new(api, "w".into(), crate::task::CancelToken::never());
        let (table, woken) = (keeper.table, keeper.woken);
        let counters = Arc::new(Counters::default());
        let interval = Duration::from_secs(8);
        leases.start("t1", "wf", interval, &counters);
        assert!(woken.try_recv().is_ok(), "the first lease arms the timer");
        // The thread would now sleep until t1's first beat; later leases are due later.
        for i in 0..100 {
            let task = format!("t{}", i + 2);
            leases.start(&task, "wf", interval, &counters);
            leases.stop(&task);
        }
        assert!(woken.try_recv().is_err(), "no wake-up for leases due later");
        leases.start("urgent", "wf", Duration::from_secs(1), &counters);
        assert!(
            woken.try_recv().is_ok(),
            "an earlier first beat re-arms the timer"
        );
        leases.stop("t1");
        leases.stop("urgent");
        assert!(table.lock().leases.is_empty());
        drop(leases);
        assert!(
            woken.recv().is_err(),
            "dropping the last handle ends the thread"
        );
    }

    #[test]
    fn retries_fit_in_the_remaining_fifth() {
        for secs in [2, 10, 60, 600, 3600] {
            let interval = lease_interval(Some(Duration::from_secs(secs))).unwrap();
            let total: Duration = (1..=BEAT_RETRIES).map(|n| retry_delay(interval, n)).sum();
            let remaining = Duration::from_secs(secs) - interval;
            assert!(total < remaining, "{secs}s: {total:?} >= {remaining:?}");
        }
    }
}
