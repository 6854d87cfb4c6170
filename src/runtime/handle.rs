//! [`RuntimeHandle`]: a running runtime, and [`RuntimeExit`], how it ended.
//!
//! [`RuntimeHandle::join`] is the runtime's main loop on the caller's thread: it waits for a
//! shutdown request, then for the workers to drain, enforcing the force deadline and the
//! grace period after it, then stops the background threads, does the final workspace sweep
//! and releases the workspace lock.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, at, never, select};

use super::counters::{Counters, CountersSnapshot};
use super::gc_timer::sweep_workspaces;
use super::health::{Dependency, Health, InFlight};
use super::shutdown::{Shutdown, ShutdownReason};
use super::signals::SignalWatcher;
use super::task_runner::TaskRunner;
use crate::metrics::Metrics;
use crate::workspace::{LiveOwners, SupervisorLock};

/// How a runtime ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeExit {
    /// The most severe shutdown reason.
    pub reason: Option<ShutdownReason>,
    /// Whether in-flight attempts were cancelled (deadline, second signal, [`RuntimeHandle::force`]).
    pub forced: bool,
    /// Whether a runtime thread panicked.
    pub runtime_failure: bool,
    /// Tasks still unreported when the runtime stopped waiting (their bodies ignored the
    /// cancellation); their workspaces are left for the next startup sweep.
    pub abandoned_attempts: u64,
    /// The counters at the end, all hosted tasks together.
    pub counters: CountersSnapshot,
    /// The counters at the end of each hosted task, in the order the tasks were added.
    pub tasks: Vec<TaskCounters>,
    /// From the shutdown request to the end of the drain (`None` if it never started).
    pub drain: Option<Duration>,
}

/// One hosted task's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCounters {
    /// The task (Conductor task type) name.
    pub task: String,
    /// Its worker threads (attempts of it run at once).
    pub threads: usize,
    /// Its counters (`gc_sweeps` and the task-log counters are always 0 here: the GC and
    /// task-log threads belong to the runtime, and count in its total).
    pub counters: CountersSnapshot,
}

impl RuntimeExit {
    /// A clean drain: nothing abandoned and no runtime thread failed.
    pub fn is_clean(&self) -> bool {
        self.abandoned_attempts == 0 && !self.runtime_failure
    }
}

/// The probes' verdict: empty lists mean live and ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// Why `/livez` fails (a wedged poll loop, a dead runtime thread).
    pub not_live: Vec<String>,
    /// Why `/readyz` fails (paused, draining, a dependency unreachable for 30 s).
    pub not_ready: Vec<String>,
}

impl Probe {
    /// Whether the process is live.
    pub fn is_live(&self) -> bool {
        self.not_live.is_empty()
    }

    /// Whether the process should get work.
    pub fn is_ready(&self) -> bool {
        self.not_live.is_empty() && self.not_ready.is_empty()
    }
}

/// One attempt in flight, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightStatus {
    /// The task (Conductor task type) it is an attempt of.
    pub task_type: String,
    /// Conductor `taskId`.
    pub task_id: String,
    /// Conductor `workflowInstanceId`.
    pub workflow_instance_id: String,
    /// Current phase (`input`, `download`, `body`, …, `report`).
    pub phase: &'static str,
    /// Time since it started on its worker.
    pub age: Duration,
}

/// A runtime's state at one moment (`GET /status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeStatus {
    /// The worker id.
    pub worker_id: String,
    /// Each hosted task: its name, worker threads and counters, in the order added.
    pub tasks: Vec<TaskCounters>,
    /// Whether polling is paused.
    pub paused: bool,
    /// Whether shutdown has started.
    pub draining: bool,
    /// `/livez`.
    pub live: bool,
    /// `/readyz`.
    pub ready: bool,
    /// The counters, all hosted tasks together.
    pub counters: CountersSnapshot,
    /// Attempts running now, oldest first.
    pub in_flight: Vec<InFlightStatus>,
}

/// The runtime's threads, kept so they can be joined.
#[derive(Default)]
pub(crate) struct Threads {
    /// Every hosted task's workers.
    pub(crate) workers: Vec<JoinHandle<()>>,
    /// One poller per hosted task.
    pub(crate) pollers: Vec<JoinHandle<()>>,
    pub(crate) lease: Option<JoinHandle<()>>,
    pub(crate) gc: Option<JoinHandle<()>>,
    pub(crate) task_log: Option<JoinHandle<()>>,
    /// OTLP export; ends (after a final export) on halt.
    pub(crate) exporter: Option<JoinHandle<()>>,
    pub(crate) signals: Option<SignalWatcher>,
}

impl Threads {
    /// Stops and joins everything but the workers: the signal thread is closed, the others
    /// end on the drain and halt signals the caller has fired.
    pub(crate) fn join_background(&mut self) {
        if let Some(signals) = self.signals.take() {
            signals.stop();
        }
        let pollers = std::mem::take(&mut self.pollers);
        for thread in pollers.into_iter().chain(
            [
                self.lease.take(),
                self.gc.take(),
                self.task_log.take(),
                self.exporter.take(),
            ]
            .into_iter()
            .flatten(),
        ) {
            let _ = thread.join();
        }
    }
}

/// What `join` needs and the handle does not expose.
pub(crate) struct Running {
    pub(crate) threads: Threads,
    /// Disconnects when every worker thread has ended.
    pub(crate) workers_alive: Receiver<()>,
    pub(crate) lock: Option<SupervisorLock>,
    pub(crate) owners: LiveOwners,
    /// For the final sweep's staging-branch deletions.
    pub(crate) store: Option<Arc<dyn crate::execution::WorkspaceStore>>,
    pub(crate) workspace_root: PathBuf,
    /// Whether this runtime owns the workspace root (final TTL-0 sweep).
    pub(crate) owns_root: bool,
    pub(crate) force_grace: Duration,
}

/// A running runtime.
///
/// # Threads
/// `shutdown`, `force` and `counters` may be called from any thread while another thread is
/// blocked in `join` (share the handle by reference, e.g. with `std::thread::scope`).
///
/// Dropping the handle without calling [`join`](Self::join) requests a shutdown and lets the
/// threads drain in the background; the force deadline and the final sweep are then not
/// enforced, since `join` is what enforces them.
pub struct RuntimeHandle {
    pub(crate) shutdown: Shutdown,
    /// What belongs to no task (GC sweeps).
    pub(crate) counters: Arc<Counters>,
    /// The hosted tasks, in the order they were added.
    pub(crate) tasks: Vec<TaskRunner>,
    pub(crate) metrics: Metrics,
    pub(crate) health: Arc<Health>,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) worker_id: String,
    pub(crate) running: Option<Running>,
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("worker_id", &self.worker_id)
            .field(
                "tasks",
                &self.tasks.iter().map(|task| &task.name).collect::<Vec<_>>(),
            )
            .field("shutdown", &self.shutdown)
            .field("counters", &self.counters())
            .finish()
    }
}

impl RuntimeHandle {
    /// Stops polling now and lets in-flight attempts finish. Idempotent.
    pub fn shutdown(&self) {
        self.shutdown.request(ShutdownReason::Requested);
    }

    /// Cancels every in-flight attempt now (as the force deadline would); also starts the
    /// drain if it had not started.
    pub fn force(&self) {
        self.shutdown.request(ShutdownReason::Escalated);
    }

    /// The live counters, all hosted tasks together.
    pub fn counters(&self) -> CountersSnapshot {
        total_counters(&self.counters, &self.tasks)
    }

    /// The live counters of the hosted task `task` (its Conductor task type name), `None`
    /// if the runtime does not host it.
    pub fn task_counters(&self, task: &str) -> Option<CountersSnapshot> {
        self.tasks
            .iter()
            .find(|runner| runner.name == task)
            .map(TaskRunner::snapshot)
    }

    /// The live counters of every hosted task, in the order the tasks were added.
    pub fn tasks(&self) -> Vec<TaskCounters> {
        task_counters(&self.tasks)
    }

    /// The worker id sent on polls and updates.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The process's metrics registry (the one `/metrics` and OTLP export read).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A cloneable view of this runtime for another thread (the admin listener).
    pub fn view(&self) -> RuntimeView {
        RuntimeView {
            shutdown: self.shutdown.clone(),
            counters: Arc::clone(&self.counters),
            tasks: self.tasks.clone(),
            metrics: self.metrics.clone(),
            health: Arc::clone(&self.health),
            in_flight: Arc::clone(&self.in_flight),
            worker_id: self.worker_id.clone(),
        }
    }

    /// Stops polling until [`resume`](Self::resume); attempts in flight carry on. Returns
    /// whether this call paused it.
    pub fn pause(&self) -> bool {
        self.view().pause()
    }

    /// Resumes polling after [`pause`](Self::pause). Returns whether it was paused.
    pub fn resume(&self) -> bool {
        self.view().resume()
    }

    /// The probes' view of this runtime now.
    pub fn probe(&self) -> Probe {
        self.view().probe()
    }

    /// What `/status` reports: identity, state, counters and every attempt in flight.
    pub fn status(&self) -> RuntimeStatus {
        self.view().status()
    }

    /// The most severe shutdown reason so far, `None` while running.
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        self.shutdown.reason()
    }

    /// Runs until shutdown is requested (by [`shutdown`](Self::shutdown), a signal when
    /// enabled, or a failing runtime thread), then drains and stops.
    ///
    /// With a force deadline configured, attempts still running that long after the request
    /// are cancelled; those still running a grace period later are abandoned (their threads
    /// are detached) and reported in [`RuntimeExit::abandoned_attempts`].
    pub fn join(mut self) -> RuntimeExit {
        let Some(mut running) = self.running.take() else {
            return self.exit(0);
        };
        self.shutdown.drain_token().wait();
        let drain_started = Instant::now();

        let mut forced_at = self.shutdown.is_forced().then(Instant::now);
        let abandoned = loop {
            let timer = match forced_at {
                Some(forced) => at(forced + running.force_grace),
                None => self.shutdown.force_deadline().map_or_else(never, at),
            };
            let forced_rx = match forced_at {
                Some(_) => never(),
                None => self.shutdown.force_token().receiver().clone(),
            };
            select! {
                recv(running.workers_alive) -> message => {
                    if message.is_err() {
                        break 0;
                    }
                }
                recv(forced_rx) -> _ => forced_at = Some(Instant::now()),
                recv(timer) -> _ => {
                    if forced_at.is_some() {
                        break self.counters().in_flight;
                    }
                    self.shutdown.request(ShutdownReason::ForceDeadline);
                }
            }
        };

        self.shutdown.halt();
        running.threads.join_background();
        if abandoned == 0 {
            for worker in running.threads.workers.drain(..) {
                let _ = worker.join();
            }
        } else {
            log::error!(
                abandoned_attempts = abandoned;
                "abandoning attempts that ignored cancellation"
            );
            // Detached: their bodies ignore cancellation and cannot be stopped from here.
            running.threads.workers.clear();
        }
        if running.owns_root {
            sweep_workspaces(
                &running.workspace_root,
                Duration::ZERO,
                &running.owners,
                running.store.as_deref(),
                "shutdown",
            );
        }
        drop(running.lock.take());
        let mut exit = self.exit(abandoned);
        exit.drain = Some(drain_started.elapsed());
        log::info!(
            reason = exit.reason.map_or("none", ShutdownReason::as_str),
            forced = exit.forced,
            abandoned_attempts = exit.abandoned_attempts,
            completed = exit.counters.completed,
            failed = exit.counters.failed,
            lost = exit.counters.updates_lost;
            "runtime stopped"
        );
        exit
    }

    fn exit(&self, abandoned: u64) -> RuntimeExit {
        RuntimeExit {
            reason: self.shutdown.reason(),
            forced: self.shutdown.is_forced(),
            runtime_failure: self.shutdown.had_runtime_failure(),
            abandoned_attempts: abandoned,
            counters: self.counters(),
            tasks: self.tasks(),
            drain: None,
        }
    }
}

impl Drop for RuntimeHandle {
    fn drop(&mut self) {
        if self.running.is_some() {
            self.shutdown.request(ShutdownReason::Requested);
        }
    }
}

/// What another thread may see and do of a running runtime: probes, status, pause, resume
/// and drain (see [`RuntimeHandle::view`]).
///
/// # Threads and cloning
/// Clones share the runtime's state; every method may be called from any thread, also after
/// the runtime stopped (it then reports draining).
#[derive(Clone)]
pub struct RuntimeView {
    shutdown: Shutdown,
    counters: Arc<Counters>,
    tasks: Vec<TaskRunner>,
    metrics: Metrics,
    health: Arc<Health>,
    in_flight: Arc<InFlight>,
    worker_id: String,
}

impl std::fmt::Debug for RuntimeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeView")
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl RuntimeView {
    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Starts the drain, as SIGTERM does (a second request escalates like a second signal).
    pub fn drain(&self) {
        self.shutdown.request(ShutdownReason::Signal);
    }

    /// Stops polling until [`resume`](Self::resume); attempts in flight carry on. Returns
    /// whether this call paused it.
    pub fn pause(&self) -> bool {
        let changed = self.health.pause();
        if changed {
            log::info!("polling paused");
        }
        changed
    }

    /// Resumes polling after [`pause`](Self::pause). Returns whether it was paused.
    pub fn resume(&self) -> bool {
        let changed = self.health.resume();
        if changed {
            log::info!("polling resumed");
        }
        changed
    }

    /// The probes' view of this runtime now.
    pub fn probe(&self) -> Probe {
        let now = Instant::now();
        let mut not_live = Vec::new();
        for wedged in self.health.wedged(now) {
            not_live.push(format!(
                "{} wedged: {} has run {} ms past its {} ms bound",
                wedged.what,
                wedged.iteration,
                wedged.over.as_millis(),
                wedged.bound.as_millis()
            ));
        }
        if self.shutdown.had_runtime_failure() {
            not_live.push("a runtime thread failed".to_owned());
        }
        let mut not_ready = Vec::new();
        if self.health.is_paused() {
            not_ready.push("paused".to_owned());
        }
        if self.shutdown.is_requested() {
            not_ready.push("draining".to_owned());
        }
        for (dependency, name) in [
            (Dependency::Conductor, "Conductor"),
            (Dependency::Lakefs, "lakeFS"),
        ] {
            if let Some(down) = self.health.unreachable_for(dependency, now)
                && down >= self.health.unreachable_after()
            {
                not_ready.push(format!("{name} unreachable for {} s", down.as_secs()));
            }
        }
        Probe {
            not_live,
            not_ready,
        }
    }

    /// What `/status` reports: identity, state, counters and every attempt in flight.
    pub fn status(&self) -> RuntimeStatus {
        let now = Instant::now();
        let probe = self.probe();
        RuntimeStatus {
            worker_id: self.worker_id.clone(),
            tasks: task_counters(&self.tasks),
            paused: self.health.is_paused(),
            draining: self.shutdown.is_requested(),
            live: probe.is_live(),
            ready: probe.is_ready(),
            counters: total_counters(&self.counters, &self.tasks),
            in_flight: self
                .in_flight
                .list()
                .into_iter()
                .map(|attempt| InFlightStatus {
                    task_type: attempt.task_type,
                    task_id: attempt.task_id,
                    workflow_instance_id: attempt.workflow_instance_id,
                    phase: attempt.phase,
                    age: now.saturating_duration_since(attempt.started),
                })
                .collect(),
        }
    }
}

/// The runtime-wide counters plus every task's.
fn total_counters(runtime: &Counters, tasks: &[TaskRunner]) -> CountersSnapshot {
    let mut total = runtime.snapshot();
    total += tasks.iter().map(TaskRunner::snapshot).sum();
    total
}

/// Every task's counters, in the order the tasks were added.
fn task_counters(tasks: &[TaskRunner]) -> Vec<TaskCounters> {
    tasks
        .iter()
        .map(|runner| TaskCounters {
            task: runner.name.clone(),
            threads: runner.threads,
            counters: runner.snapshot(),
        })
        .collect()
}
