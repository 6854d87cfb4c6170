//! [`Health`]: what the probes read — liveness of the poll loop, reachability of Conductor
//! and lakeFS, pause state — and [`InFlight`], the attempts running now (for `/status`).
//!
//! - **Liveness**: each hosted task's poller stamps the start of each poll in its
//!   [`PollWatch`] and clears it when the poll returns; the lease thread does the same around each heartbeat and the GC timer around
//!   each sweep. One of them still running past its bound (a poll: the long-poll wait plus a
//!   margin above the HTTP deadline; a heartbeat: [`LEASE_BOUND`]; a sweep: [`GC_BOUND`])
//!   means that loop is wedged: `/livez` turns red. A runtime thread that died (panicked) is
//!   red too. Loops that are merely idle (a poller waiting for a free slot, a timer waiting
//!   for its next tick) are live.
//! - **Readiness**: not paused, not draining, and neither Conductor nor (for workspace
//!   tasks) lakeFS failing continuously for [`UNREACHABLE_AFTER`].
//! - **Pause**: every poller stops polling while paused (attempts in flight carry on) and
//!   resumes on [`Health::resume`]; waking is one channel per poller, so a paused poller
//!   still `select!`s on the drain signal.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

/// How long a dependency must fail without a success before readiness fails.
pub const UNREACHABLE_AFTER: Duration = Duration::from_secs(30);

/// How long one lease heartbeat may run (its HTTP deadline is 15 s plus connect).
pub const LEASE_BOUND: Duration = Duration::from_secs(60);

/// How long one GC sweep of the workspace root may run.
pub const GC_BOUND: Duration = Duration::from_secs(600);

/// A timer loop whose iterations liveness bounds (each poller has its own [`PollWatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// One heartbeat of the `lease` thread.
    Lease,
    /// One sweep of the `gc` thread.
    Gc,
}

impl Activity {
    const ALL: [Activity; 2] = [Activity::Lease, Activity::Gc];

    fn index(self) -> usize {
        self as usize
    }

    fn bound(self) -> Duration {
        match self {
            Activity::Lease => LEASE_BOUND,
            Activity::Gc => GC_BOUND,
        }
    }

    /// What `/livez` calls the loop, and one iteration of it.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Activity::Lease => ("lease thread", "a heartbeat"),
            Activity::Gc => ("gc timer", "a sweep"),
        }
    }
}

/// A loop found running one iteration past its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wedged {
    /// The loop (`poll loop`, `poll loop of <task>` with several tasks, `lease thread`,
    /// `gc timer`).
    pub what: String,
    /// Its iteration (`a poll`, `a heartbeat`, `a sweep`).
    pub iteration: &'static str,
    /// How far past the bound it is.
    pub over: Duration,
    /// The bound.
    pub bound: Duration,
}

/// A dependency whose reachability readiness tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The Conductor server.
    Conductor,
    /// The lakeFS server.
    Lakefs,
}

/// Since when calls to one dependency have failed without a success: a stamp as in
/// [`Health::stamp`], 0 while it is fine. Every request records here, so the success path
/// is one atomic load.
#[derive(Debug, Default)]
struct Reach {
    failing_since: AtomicU64,
}

impl Reach {
    fn record(&self, ok: bool, stamp: impl FnOnce() -> u64) {
        if ok {
            if self.failing_since.load(Ordering::Relaxed) != 0 {
                self.failing_since.store(0, Ordering::Relaxed);
            }
        } else if self.failing_since.load(Ordering::Relaxed) == 0 {
            // Only the first failure of a run sets it; a racing success may clear it again.
            let _ = self.failing_since.compare_exchange(
                0,
                stamp(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn unreachable_for(&self, now_stamp: u64) -> Option<Duration> {
        match self.failing_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_nanos(now_stamp.saturating_sub(since))),
        }
    }
}

/// One poller's liveness stamp and pause wake-up, registered with [`Health::watch_poller`].
#[derive(Debug)]
pub struct PollWatch {
    task: String,
    bound: Duration,
    /// Nanoseconds after `Health::base` at which the current poll started, 0 when none runs.
    started: AtomicU64,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
}

impl PollWatch {
    /// Fires (one message) after [`Health::resume`].
    pub(crate) fn wake(&self) -> &Receiver<()> {
        &self.wake_rx
    }
}

/// The probes' shared state, one per runtime (every hosted task's poller registers in it).
///
/// # Threads
/// Atomics and short locks; written by the pollers, workers, timers and store calls, read by
/// the admin listener.
#[derive(Debug)]
pub struct Health {
    base: Instant,
    /// Per [`Activity`]: nanoseconds after `base` at which the current iteration started,
    /// 0 when none is running.
    started: [AtomicU64; 2],
    polls: Mutex<Vec<Arc<PollWatch>>>,
    conductor: Reach,
    lakefs: Reach,
    paused: AtomicBool,
    /// How long a dependency may fail before readiness does ([`UNREACHABLE_AFTER`]).
    unreachable_after: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// State with no poller yet.
    pub fn new() -> Health {
        Health {
            base: Instant::now(),
            started: Default::default(),
            polls: Mutex::new(Vec::new()),
            conductor: Reach::default(),
            lakefs: Reach::default(),
            paused: AtomicBool::new(false),
            unreachable_after: UNREACHABLE_AFTER,
        }
    }

    /// State whose readiness fails after a dependency failed for `after` (instead of
    /// [`UNREACHABLE_AFTER`]).
    pub fn with_unreachable_after(after: Duration) -> Health {
        Health {
            unreachable_after: after,
            ..Health::new()
        }
    }

    /// How long a dependency may fail before readiness does.
    pub fn unreachable_after(&self) -> Duration {
        self.unreachable_after
    }

    /// Registers the poller of `task`, whose polls must return within `bound`.
    pub fn watch_poller(&self, task: &str, bound: Duration) -> Arc<PollWatch> {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let watch = Arc::new(PollWatch {
            task: task.to_owned(),
            bound,
            started: AtomicU64::new(0),
            wake_tx,
            wake_rx,
        });
        self.polls.lock().push(Arc::clone(&watch));
        watch
    }

    fn stamp(&self, at: Instant) -> u64 {
        // +1 so that an iteration starting exactly at `base` is not "not running".
        u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// An iteration of `activity` starts.
    pub fn begin(&self, activity: Activity) {
        self.started[activity.index()].store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    /// The iteration of `activity` ended.
    pub fn end(&self, activity: Activity) {
        self.started[activity.index()].store(0, Ordering::Relaxed);
    }

    /// `poller` is about to poll.
    pub fn poll_started(&self, poller: &PollWatch) {
        poller
            .started
            .store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    /// `poller`'s poll returned.
    pub fn poll_finished(&self, poller: &PollWatch) {
        poller.started.store(0, Ordering::Relaxed);
    }

    fn over_bound(&self, started: u64, bound: Duration, now: Instant) -> Option<Duration> {
        if started == 0 {
            return None;
        }
        let running = Duration::from_nanos(self.stamp(now).saturating_sub(started));
        running.checked_sub(bound).filter(|over| !over.is_zero())
    }

    /// Every loop running one iteration past its bound.
    pub fn wedged(&self, now: Instant) -> Vec<Wedged> {
        let polls = self.polls.lock();
        let several = polls.len() > 1;
        let mut wedged: Vec<Wedged> = polls
            .iter()
            .filter_map(|poll| {
                let over =
                    self.over_bound(poll.started.load(Ordering::Relaxed), poll.bound, now)?;
                Some(Wedged {
                    what: if several {
                        format!("poll loop of {}", poll.task)
                    } else {
                        "poll loop".to_owned()
                    },
                    iteration: "a poll",
                    over,
                    bound: poll.bound,
                })
            })
            .collect();
        drop(polls);
        wedged.extend(Activity::ALL.into_iter().filter_map(|activity| {
            let started = self.started[activity.index()].load(Ordering::Relaxed);
            let over = self.over_bound(started, activity.bound(), now)?;
            let (what, iteration) = activity.names();
            Some(Wedged {
                what: what.to_owned(),
                iteration,
                over,
                bound: activity.bound(),
            })
        }));
        wedged
    }

    /// Records whether a call to `dependency` reached it.
    pub fn record(&self, dependency: Dependency, reached: bool) {
        let stamp = || self.stamp(Instant::now());
        match dependency {
            Dependency::Conductor => self.conductor.record(reached, stamp),
            Dependency::Lakefs => self.lakefs.record(reached, stamp),
        }
    }

    /// How long `dependency` has been failing without a success (`None`: it is fine).
    pub fn unreachable_for(&self, dependency: Dependency, now: Instant) -> Option<Duration> {
        let now = self.stamp(now);
        match dependency {
            Dependency::Conductor => self.conductor.unreachable_for(now),
            Dependency::Lakefs => self.lakefs.unreachable_for(now),
        }
    }

    /// Stops polling until [`resume`](Self::resume). Returns whether it was running.
    pub fn pause(&self) -> bool {
        !self.paused.swap(true, Ordering::SeqCst)
    }

    /// Resumes polling and wakes every paused poller. Returns whether it was paused.
    pub fn resume(&self) -> bool {
        let was = self.paused.swap(false, Ordering::SeqCst);
        for poll in self.polls.lock().iter() {
            // A full channel already holds a wake-up: nothing more to do.
            let _ = poll.wake_tx.try_send(());
        }
        was
    }

    /// Whether polling is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
}

/// One attempt running now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightAttempt {
    /// The task (Conductor task type) it is an attempt of.
    pub task_type: String,
    /// Conductor `taskId`.
    pub task_id: String,
    /// Conductor `workflowInstanceId`.
    pub workflow_instance_id: String,
    /// The phase it is in (`input`, `download`, `body`, …, `report`).
    pub phase: &'static str,
    /// When it started on its worker.
    pub started: Instant,
}

/// The attempts running now, by registration id.
#[derive(Debug, Default)]
pub struct InFlight {
    attempts: Mutex<HashMap<u64, InFlightAttempt>>,
    next: AtomicU64,
}

impl InFlight {
    /// Registers an attempt starting now; it is removed when the guard drops.
    pub fn start(
        &self,
        task_type: &str,
        task_id: &str,
        workflow_instance_id: &str,
    ) -> InFlightGuard<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.attempts.lock().insert(
            id,
            InFlightAttempt {
                task_type: task_type.to_owned(),
                task_id: task_id.to_owned(),
                workflow_instance_id: workflow_instance_id.to_owned(),
                phase: "input",
                started: Instant::now(),
            },
        );
        InFlightGuard { table: self, id }
    }

    /// The attempts running now, oldest first.
    pub fn list(&self) -> Vec<InFlightAttempt> {
        let mut list: Vec<InFlightAttempt> = self.attempts.lock().values().cloned().collect();
        list.sort_by_key(|a| a.started);
        list
    }
}

/// Keeps an attempt listed in [`InFlight`] while held.
#[derive(Debug)]
pub struct InFlightGuard<'a> {
    table: &'a InFlight,
    id: u64,
}

impl InFlightGuard<'_> {
    /// Moves the attempt to `phase`.
    pub fn set_phase(&self, phase: &'static str) {
        if let Some(attempt) = self.table.attempts.lock().get_mut(&self.id) {
            attempt.phase = phase;
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.table.attempts.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_past_its_bound_is_wedged_and_a_returned_one_is_not() {
        let health = Health::new();
        let poller = health.watch_poller("echo", Duration::from_secs(5));
        let now = Instant::now();
        assert_eq!(health.wedged(now), []);
        health.poll_started(&poller);
        assert_eq!(health.wedged(Instant::now()), []);
        let wedged = health.wedged(now + Duration::from_secs(6));
        assert_eq!(wedged.len(), 1);
        assert_eq!(
            (wedged[0].what.as_str(), wedged[0].bound),
            ("poll loop", Duration::from_secs(5))
        );
        health.begin(Activity::Gc);
        assert_eq!(
            health.wedged(now + Duration::from_secs(6)).len(),
            1,
            "a sweep has 10 min"
        );
        health.end(Activity::Gc);
        health.poll_finished(&poller);
        assert_eq!(health.wedged(now + Duration::from_secs(6)), []);
    }

    #[test]
    fn with_several_pollers_the_wedged_one_is_named() {
        let health = Health::new();
        let _fast = health.watch_poller("echo", Duration::from_secs(5));
        let slow = health.watch_poller("features.build", Duration::from_secs(5));
        let now = Instant::now();
        health.poll_started(&slow);
        let wedged = health.wedged(now + Duration::from_secs(6));
        assert_eq!(
            wedged.iter().map(|w| w.what.as_str()).collect::<Vec<_>>(),
            ["poll loop of features.build"]
        );
    }

    #[test]
    fn reachability_counts_from_the_first_failure_until_a_success() {
        let health = Health::new();
        health.record(Dependency::Conductor, false);
        let later = Instant::now() + Duration::from_secs(31);
        assert!(health.unreachable_for(Dependency::Conductor, later) >= Some(UNREACHABLE_AFTER));
        health.record(Dependency::Conductor, true);
        assert_eq!(health.unreachable_for(Dependency::Conductor, later), None);
        assert_eq!(health.unreachable_for(Dependency::Lakefs, later), None);
    }

    #[test]
    fn pause_and_resume_report_changes_and_wake_every_poller() {
        let health = Health::new();
        let first = health.watch_poller("a", Duration::from_secs(1));
        let second = health.watch_poller("b", Duration::from_secs(1));
        assert!(health.pause());
        assert!(!health.pause());
        assert!(health.resume());
        assert!(first.wake().try_recv().is_ok());
        assert!(second.wake().try_recv().is_ok());
        assert!(!health.resume());
    }
}
