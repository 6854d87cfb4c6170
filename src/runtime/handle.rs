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
use super::shutdown::{Shutdown, ShutdownReason};
use super::signals::SignalWatcher;
use super::task_runner::TaskRunner;
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
            [self.lease.take(), self.gc.take(), self.task_log.take()]
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
        let mut total = self.counters.snapshot();
        total += self.tasks.iter().map(TaskRunner::snapshot).sum();
        total
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
        self.tasks
            .iter()
            .map(|runner| TaskCounters {
                task: runner.name.clone(),
                threads: runner.threads,
                counters: runner.snapshot(),
            })
            .collect()
    }

    /// The worker id sent on polls and updates.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
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
        let exit = self.exit(abandoned);
        log::info!(
            reason = exit.reason.map_or("none", ShutdownReason::as_str),
            forced = exit.forced,
            abandoned_attempts = exit.abandoned_attempts,
            completed = exit.counters.completed,
            failed = exit.counters.failed;
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
