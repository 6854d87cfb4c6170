//! The `lease` thread: one thread heartbeats every long-running attempt so Conductor does not
//! time it out (`IN_PROGRESS` + `extendLease: true`, which restarts the response-timeout
//! clock).
//!
//! Workers register an attempt with `LeaseMsg::Start` when its `responseTimeoutSeconds`
//! warrants it and remove it with `LeaseMsg::Stop` before reporting the result. The first
//! beat is due one interval (80 % of the response timeout) after the start, then every
//! interval; a timeout whose interval would be under one second gets no heartbeat. A failed
//! beat is retried twice at short delays without blocking the other leases (it is simply
//! rescheduled), then the lease waits for its next regular beat.
//!
//! The loop waits on the registry channel, the next due beat (`at(..)`, or `never()` when
//! nothing is registered) and the halt signal. It ends when every worker has dropped its
//! sender (normal drain) or on halt (abandoned attempts).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, at, never, select};

use super::counters::Counters;
use crate::conductor::{ConductorApi, error_chain};
use crate::task::CancelToken;

/// Share of the response timeout after which a heartbeat is sent.
pub const LEASE_THRESHOLD: f64 = 0.8;
/// Leases whose interval would be shorter than this are not kept.
pub const MIN_LEASE_INTERVAL: Duration = Duration::from_secs(1);
/// Retries of a failed heartbeat before waiting for the next regular one.
const BEAT_RETRIES: u32 = 2;

/// A message from a worker to the lease thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseMsg {
    /// Start heartbeating an attempt.
    Start {
        task_id: String,
        workflow_instance_id: String,
        interval: Duration,
    },
    /// Stop heartbeating it (sent before the final result).
    Stop { task_id: String },
}

/// The heartbeat interval for a response timeout, or `None` when no lease is kept.
pub(crate) fn lease_interval(response_timeout: Option<Duration>) -> Option<Duration> {
    let interval = response_timeout?.mul_f64(LEASE_THRESHOLD);
    (interval >= MIN_LEASE_INTERVAL).then_some(interval)
}

/// Delay before retry `failures` (1-based) of a failed beat: short enough to land within the
/// remaining 20 % of the response timeout.
fn retry_delay(interval: Duration, failures: u32) -> Duration {
    let base = (interval / 16).min(Duration::from_secs(1));
    base.mul_f64(1.5_f64.powi(failures.saturating_sub(1) as i32))
}

struct Lease {
    workflow_instance_id: String,
    interval: Duration,
    due: Instant,
    failures: u32,
}

/// The lease thread's state.
pub(crate) struct LeaseKeeper {
    pub(crate) api: Arc<dyn ConductorApi>,
    pub(crate) worker_id: String,
    pub(crate) counters: Arc<Counters>,
    pub(crate) messages: Receiver<LeaseMsg>,
    pub(crate) halt: CancelToken,
}

impl LeaseKeeper {
    /// The lease thread's main loop.
    pub(crate) fn run(self) {
        let mut leases: HashMap<String, Lease> = HashMap::new();
        loop {
            let next_due = leases.values().map(|lease| lease.due).min();
            let timer = next_due.map_or_else(never, at);
            select! {
                recv(self.messages) -> message => match message {
                    Ok(LeaseMsg::Start { task_id, workflow_instance_id, interval }) => {
                        let due = Instant::now() + interval;
                        leases.insert(task_id, Lease { workflow_instance_id, interval, due, failures: 0 });
                    }
                    Ok(LeaseMsg::Stop { task_id }) => {
                        leases.remove(&task_id);
                    }
                    Err(_) => return,
                },
                recv(self.halt.receiver()) -> _ => return,
                recv(timer) -> _ => self.beat_due(&mut leases),
            }
        }
    }

    fn beat_due(&self, leases: &mut HashMap<String, Lease>) {
        let now = Instant::now();
        let due: Vec<String> = leases
            .iter()
            .filter(|(_, lease)| lease.due <= now)
            .map(|(task_id, _)| task_id.clone())
            .collect();
        for task_id in due {
            let Some(lease) = leases.get_mut(&task_id) else {
                continue;
            };
            match self
                .api
                .extend_lease(&task_id, &lease.workflow_instance_id, &self.worker_id)
            {
                Ok(()) => {
                    Counters::inc(&self.counters.lease_extensions);
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
                        workflow_instance_id = lease.workflow_instance_id.as_str(),
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
    fn retries_fit_in_the_remaining_fifth() {
        for secs in [2, 10, 60, 600, 3600] {
            let interval = lease_interval(Some(Duration::from_secs(secs))).unwrap();
            let total: Duration = (1..=BEAT_RETRIES).map(|n| retry_delay(interval, n)).sum();
            let remaining = Duration::from_secs(secs) - interval;
            assert!(total < remaining, "{secs}s: {total:?} >= {remaining:?}");
        }
    }
}
