//! The `poller` thread: takes tasks from Conductor for exactly as many worker slots as are
//! free and hands them to the workers over the job channel.
//!
//! Slots are permits on a bounded channel: every worker returns one when it is ready for
//! another task, and the poller collects them (blocking only while it holds none). A poll
//! asks for `count = free slots` (capped by the worker's `batch_size` setting) in the
//! worker's task domain, if it has one; each task received uses one slot. After an empty poll the
//! poller waits 2, 4, 8 … ms up to the poll interval; after a failed poll it waits an
//! exponential, capped, jittered delay (the poller never exits on a server error). Every wait
//! is a `select!` with the drain signal, so polling stops the moment shutdown starts; tasks
//! already received are still dispatched. Dropping the job sender on exit is what tells the
//! workers there is no more work.
//!
//! While paused (`POST /pause`) the poller waits for a resume or the drain signal and polls
//! nothing. Each poll is stamped in [`Health`] for liveness. During an outage the first
//! failure is logged, then a summary at most every 30 s, then the recovery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, select};

use super::counters::Counters;
use super::health::{Health, PollWatch};
use super::observed::exception_kind;
use super::shutdown::PanicGuard;
use crate::conductor::{ConductorApi, PolledTask};
use crate::logging::repeat::{Repeat, RepeatLimiter};
use crate::metrics::TaskMetrics;
use crate::task::CancelToken;
use crate::util::backoff::Backoff;
use crate::util::error_chain;

/// The poller's state.
pub(crate) struct Poller {
    pub(crate) api: Arc<dyn ConductorApi>,
    pub(crate) task_type: String,
    /// The task domain polled (`domain=`), if any.
    pub(crate) domain: Option<String>,
    pub(crate) worker_id: String,
    /// Free-slot permits returned by workers.
    pub(crate) slots: Receiver<()>,
    /// Where polled tasks go.
    pub(crate) jobs: Sender<PolledTask>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) drain: CancelToken,
    /// Turns a panic in this loop into a runtime shutdown.
    pub(crate) _panic: PanicGuard,
    /// Long-poll wait sent to the server.
    pub(crate) wait: Duration,
    /// The most tasks asked for in one poll (`None`: every free slot).
    pub(crate) batch_size: Option<std::num::NonZeroUsize>,
    pub(crate) empty_backoff: Backoff,
    pub(crate) error_backoff: Backoff,
    /// Liveness stamps, pause state.
    pub(crate) health: Arc<Health>,
    /// This poller's liveness stamp and pause wake-up.
    pub(crate) watch: Arc<PollWatch>,
    pub(crate) metrics: TaskMetrics,
}

/// How far to take off error delays at random.
const ERROR_JITTER: f64 = 0.25;

impl Poller {
    /// The poller's main loop; returns when shutdown starts or every worker is gone.
    pub(crate) fn run(self) {
        let mut free = 0usize;
        let mut empty_delays = self.empty_backoff.iter();
        let mut error_delays = self.error_backoff.jittered(ERROR_JITTER, fastrand::u64(..));
        let mut failures = RepeatLimiter::default();
        loop {
            if self.health.is_paused() {
                self.metrics.poll_paused();
                select! {
                    recv(self.watch.wake()) -> _ => {},
                    recv(self.drain.receiver()) -> _ => return,
                }
                continue;
            }
            if free == 0 {
                select! {
                    recv(self.slots) -> permit => match permit {
                        Ok(()) => free += 1,
                        Err(_) => return,
                    },
                    recv(self.drain.receiver()) -> _ => return,
                }
            }
            free += self.slots.try_iter().count();
            if self.drain.is_cancelled() {
                return;
            }
            let count = self.batch_size.map_or(free, |cap| free.min(cap.get()));
            self.health.poll_started(&self.watch);
            let started = Instant::now();
            let polled = self.api.poll_batch(
                &self.task_type,
                self.domain.as_deref(),
                &self.worker_id,
                count,
                self.wait,
            );
            self.health.poll_finished(&self.watch);
            self.metrics.poll_done(
                started.elapsed(),
                polled.as_ref().map(Vec::len).map_err(exception_kind),
            );
            if polled.is_ok()
                && let Some(failed) = failures.success()
            {
                log::info!(
                    task_type = self.task_type.as_str(), failed_polls = failed;
                    "polling recovered"
                );
            }
            match polled {
                Ok(tasks) if tasks.is_empty() => {
                    error_delays = self.error_backoff.jittered(ERROR_JITTER, fastrand::u64(..));
                    let delay = empty_delays.next().unwrap_or(self.empty_backoff.max);
                    if !self.pause(delay) {
                        return;
                    }
                }
                Ok(tasks) => {
                    error_delays = self.error_backoff.jittered(ERROR_JITTER, fastrand::u64(..));
                    empty_delays = self.empty_backoff.iter();
                    let count = tasks.len() as u64;
                    Counters::add(&self.counters.polled, count);
                    Counters::add(&self.counters.in_flight, count);
                    free = free.saturating_sub(tasks.len());
                    for task in tasks {
                        // Workers only go away after this sender is dropped, so a send can
                        // fail only if every worker died; the runtime is then stopping.
                        if self.jobs.send(task).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    Counters::inc(&self.counters.poll_errors);
                    let delay = error_delays.next().unwrap_or(self.error_backoff.max);
                    match failures.failure(Instant::now()) {
                        Repeat::First => log::warn!(
                            task_type = self.task_type.as_str(),
                            error = error_chain(&error).as_str(),
                            retry_in_ms = delay.as_millis() as u64;
                            "poll failed"
                        ),
                        Repeat::Summary { suppressed, over } => log::warn!(
                            task_type = self.task_type.as_str(),
                            error = error_chain(&error).as_str(),
                            failures = suppressed,
                            over_s = over.as_secs(),
                            retry_in_ms = delay.as_millis() as u64;
                            "poll still failing"
                        ),
                        Repeat::Quiet => {}
                    }
                    if !self.pause(delay) {
                        return;
                    }
                }
            }
        }
    }

    /// Waits `delay`; `false` if shutdown started meanwhile.
    fn pause(&self, delay: Duration) -> bool {
        if delay.is_zero() {
            return !self.drain.is_cancelled();
        }
        select! {
            recv(self.drain.receiver()) -> _ => false,
            recv(after(delay)) -> _ => true,
        }
    }
}
