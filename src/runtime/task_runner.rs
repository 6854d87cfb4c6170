//! One hosted task's unit: its `poller` thread, its `worker-*` threads, its slots and its
//! counters (SPEC §17).
//!
//! A runtime hosts one or more tasks. Each gets a [`TaskPlan`] (the task and its thread
//! budget) and, once started, its own job channel and slot permits, so a task whose attempts
//! are slow only ever fills its own slots: the other tasks' pollers keep polling for their own
//! free slots. What the tasks share is the runtime's: the Conductor client, the workspace
//! root and live owners, the lease thread, the shutdown token and the worker id.
//!
//! Thread names say which task they serve once there is more than one: `poller-<task>` and
//! `worker-<task>-<n>`; a runtime with one task keeps the plain `poller` and `worker-<n>`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::counters::{Counters, CountersSnapshot};
use super::error::RuntimeError;
use super::fence::ConductorFence;
use super::handle::Threads;
use super::health::{Health, InFlight};
use super::lease::Leases;
use super::poller::Poller;
use super::shutdown::{PanicGuard, Shutdown};
use super::task_log::Shipper;
use super::worker::{Shared, Worker};
use crate::conductor::ConductorApi;
use crate::execution::WorkspaceStore;
use crate::metrics::Metrics;
use crate::task::Task;
use crate::util::backoff::{Backoff, RetryPolicy};
use crate::workspace::LiveOwners;

/// A task to host and how many attempts of it may run at once.
#[derive(Debug, Clone)]
pub(crate) struct TaskPlan {
    pub(crate) task: Task,
    /// `None`: the builder's default thread count.
    pub(crate) threads: Option<usize>,
}

/// How one task's poller polls (the builder's settings; one copy per task so they can differ
/// per task).
#[derive(Debug, Clone)]
pub(crate) struct PollSettings {
    /// Long-poll wait sent to the server.
    pub(crate) wait: Duration,
    /// The task domain polled (`None`: the default queue).
    pub(crate) domain: Option<String>,
    /// The most tasks asked for in one poll (`None`: every free slot).
    pub(crate) batch_size: Option<std::num::NonZeroUsize>,
    pub(crate) empty_backoff: Backoff,
    pub(crate) error_backoff: Backoff,
}

/// What every hosted task shares, handed to [`start_task`].
pub(crate) struct RuntimeParts<'a> {
    pub(crate) api: &'a Arc<dyn ConductorApi>,
    pub(crate) store: &'a Option<Arc<dyn WorkspaceStore>>,
    pub(crate) owners: &'a LiveOwners,
    pub(crate) workspace_root: &'a PathBuf,
    pub(crate) failure_reason_max_length: usize,
    pub(crate) worker_id: &'a str,
    pub(crate) shutdown: &'a Shutdown,
    pub(crate) update_retry: RetryPolicy,
    pub(crate) leases: &'a Leases,
    /// Every worker holds a clone until it ends (see `Running::workers_alive`).
    pub(crate) alive: &'a Sender<()>,
    /// Ships `ctx.log()` lines to Conductor's task log (one thread for every task).
    pub(crate) task_log: &'a Arc<Shipper>,
    /// `PERAGO_WORKER_STACK_SIZE`: the stack of worker threads, which run task bodies
    /// (`None`: the platform default).
    pub(crate) worker_stack_size: Option<u64>,
    /// Whether thread names carry the task name (more than one task hosted).
    pub(crate) qualified_names: bool,
    /// The process's registry; each task records through its own labelled view.
    pub(crate) metrics: &'a Metrics,
    /// Probe state: each task's poller registers its liveness stamp in it.
    pub(crate) health: &'a Arc<Health>,
    /// The attempts running now, of every task (`/status`).
    pub(crate) in_flight: &'a Arc<InFlight>,
    /// The builder's liveness bound of one poll (`None`: the task's poll wait plus
    /// [`POLL_LIVENESS_SLACK`](super::builder::defaults::POLL_LIVENESS_SLACK)).
    pub(crate) poll_liveness_bound: Option<Duration>,
}

/// A started task: its name and live counters.
#[derive(Debug, Clone)]
pub(crate) struct TaskRunner {
    pub(crate) name: String,
    pub(crate) threads: usize,
    /// The task domain its poller polls.
    pub(crate) domain: Option<String>,
    pub(crate) counters: Arc<Counters>,
}

impl TaskRunner {
    /// The task's counters now.
    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }
}

/// The thread names of one task.
fn thread_name(parts: &RuntimeParts<'_>, task: &str, role: &str, index: Option<usize>) -> String {
    match (parts.qualified_names, index) {
        (false, None) => role.to_owned(),
        (false, Some(n)) => format!("{role}-{n}"),
        (true, None) => format!("{role}-{task}"),
        (true, Some(n)) => format!("{role}-{task}-{n}"),
    }
}

/// Starts `threads` workers and the poller of `task`, pushing their handles into `started`
/// as they start (so a failure part-way leaves them for the caller's startup guard to stop).
pub(crate) fn start_task(
    task: Task,
    threads: usize,
    poll: PollSettings,
    parts: &RuntimeParts<'_>,
    started: &mut Threads,
) -> Result<TaskRunner, RuntimeError> {
    if threads == 0 {
        return Err(RuntimeError::NoThreads);
    }
    let name = task.name().to_owned();
    let counters = Arc::new(Counters::default());
    let metrics = parts.metrics.task(&name, task.metrics());
    metrics.set_busy(0);
    let (slots_tx, slots_rx) = crossbeam_channel::bounded(threads);
    let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        task,
        fence: ConductorFence::new(Arc::clone(parts.api)),
        api: Arc::clone(parts.api),
        store: parts.store.clone(),
        owners: parts.owners.clone(),
        workspace_root: parts.workspace_root.clone(),
        failure_reason_max_length: parts.failure_reason_max_length,
        worker_id: parts.worker_id.to_owned(),
        shutdown: parts.shutdown.clone(),
        counters: Arc::clone(&counters),
        update_retry: parts.update_retry,
        task_log: Some(Arc::clone(parts.task_log)),
        metrics: metrics.clone(),
        health: Arc::clone(parts.health),
        in_flight: Arc::clone(parts.in_flight),
        busy: Default::default(),
        update_failures: Default::default(),
    });
    for index in 1..=threads {
        let thread = thread_name(parts, &name, "worker", Some(index));
        let worker = Worker {
            shared: Arc::clone(&shared),
            jobs: jobs_rx.clone(),
            slots: slots_tx.clone(),
            leases: parts.leases.clone(),
            _alive: parts.alive.clone(),
            _panic: PanicGuard::new(parts.shutdown, thread.clone()),
        };
        started.workers.push(spawn_with_stack(
            &thread,
            parts.worker_stack_size,
            move || worker.run(),
        )?);
    }
    // Only this task's workers may hold these: the poller learns from the slots' disconnection
    // that its workers are gone.
    drop((slots_tx, jobs_rx));
    let thread = thread_name(parts, &name, "poller", None);
    let bound = parts
        .poll_liveness_bound
        .unwrap_or(poll.wait + super::builder::defaults::POLL_LIVENESS_SLACK);
    let poller = Poller {
        api: Arc::clone(parts.api),
        task_type: name.clone(),
        domain: poll.domain.clone(),
        worker_id: parts.worker_id.to_owned(),
        slots: slots_rx,
        jobs: jobs_tx,
        counters: Arc::clone(&counters),
        drain: parts.shutdown.drain_token(),
        _panic: PanicGuard::new(parts.shutdown, thread.clone()),
        wait: poll.wait,
        batch_size: poll.batch_size,
        empty_backoff: poll.empty_backoff,
        error_backoff: poll.error_backoff,
        health: Arc::clone(parts.health),
        watch: parts.health.watch_poller(&name, bound),
        metrics,
    };
    started.pollers.push(spawn(&thread, move || poller.run())?);
    Ok(TaskRunner {
        name,
        threads,
        domain: poll.domain,
        counters,
    })
}

/// Spawns a named runtime thread.
pub(crate) fn spawn(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, RuntimeError> {
    spawn_with_stack(name, None, body)
}

/// [`spawn`] with an explicit stack size (`PERAGO_WORKER_STACK_SIZE` for worker threads,
/// which run task bodies); `None` keeps the platform default.
fn spawn_with_stack(
    name: &str,
    stack_size: Option<u64>,
    body: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, RuntimeError> {
    let mut builder = std::thread::Builder::new().name(name.to_owned());
    if let Some(bytes) = stack_size {
        builder = builder.stack_size(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
    builder.spawn(body).map_err(|source| RuntimeError::Spawn {
        thread: name.to_owned(),
        source,
    })
}
