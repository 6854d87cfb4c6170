//! [`Runtime::builder`] → [`RuntimeBuilder`] → [`RuntimeHandle`]: configuring and starting a
//! thread runtime hosting one or more tasks.
//!
//! Start is transactional: the workspace lock, the startup sweep and every thread are set up
//! in order, and if any step fails the threads already started are stopped and joined (and
//! the lock released) before the error is returned.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::counters::Counters;
use super::error::RuntimeError;
use super::gc_timer::{GcTimer, LogPruning, sweep_workspaces};
use super::handle::{Running, RuntimeHandle, Threads};
use super::health::{Health, InFlight};
use super::lease::LeaseKeeper;
use super::observed::ObservedConductor;
use super::shutdown::{PanicGuard, Shutdown, ShutdownReason};
use super::signals;
use super::task_log::{LogSender, Shipper};
use super::task_runner::{PollSettings, RuntimeParts, TaskPlan, spawn, start_task};
use crate::conductor::{ClientOptions, ConductorApi, ConductorClient};
use crate::config::RuntimeConfig;
use crate::execution::WorkspaceStore;
use crate::metrics::Metrics;
use crate::metrics::otlp::Exporter;
use crate::task::Task;
use crate::util::backoff::{Backoff, RetryPolicy};
use crate::workspace::{LiveOwners, LockOwner, acquire_workspace_lock};

/// Defaults of the tuning knobs; see the [`RuntimeBuilder`] methods.
pub mod defaults {
    use super::*;

    /// First delay of the empty-poll backoff.
    pub const EMPTY_POLL_FIRST_DELAY: Duration = Duration::from_millis(2);
    /// Backoff after failed polls.
    pub const POLL_ERROR_BACKOFF: Backoff =
        Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    /// Tries of a result update (6 tries over about 15 s).
    pub const UPDATE_ATTEMPTS: u32 = 6;
    /// Backoff between result update tries.
    pub const UPDATE_BACKOFF: Backoff =
        Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
    /// How long cancelled attempts get to end before they are abandoned.
    pub const FORCE_GRACE: Duration = Duration::from_secs(5);
    /// How long past the long-poll wait a poll may run before `/livez` calls the poll loop
    /// wedged: comfortably above the client's own poll deadline (wait + 5 s slack, 5 s
    /// connect), so only a poll that escaped its timeout trips it.
    pub const POLL_LIVENESS_SLACK: Duration = Duration::from_secs(20);
}

/// The entry point of the thread runtime: see [`Runtime::builder`].
#[derive(Debug)]
pub enum Runtime {}

impl Runtime {
    /// Starts configuring a runtime serving `task` with `config`; add more tasks with
    /// [`RuntimeBuilder::task`] (see [`RuntimeBuilder::new`] for a builder without a first
    /// task).
    ///
    /// ```no_run
    /// # fn demo(config: perago::RuntimeConfig, task: perago::Task) -> Result<(), perago::RuntimeError> {
    /// use perago::Runtime;
    ///
    /// let handle = Runtime::builder(config, task).threads(4).start()?;
    /// // ... later, e.g. when the host program stops:
    /// handle.shutdown();
    /// let exit = handle.join();
    /// assert!(exit.is_clean());
    /// # Ok(()) }
    /// ```
    pub fn builder(config: RuntimeConfig, task: Task) -> RuntimeBuilder {
        RuntimeBuilder::new(config).task(task)
    }
}

/// Configures a thread runtime hosting one or more tasks; [`start`](Self::start) runs it.
///
/// Every hosted task has its own poller, worker threads (its slot budget) and counters; the
/// tasks share one Conductor client, one workspace root (one lock, one startup sweep, one GC
/// timer), one lease thread, one worker id and one shutdown token. A task whose attempts are
/// slow fills only its own slots, so it never holds up another task's polling.
///
/// ```no_run
/// # fn demo(config: perago::RuntimeConfig, resize: perago::Task, thumbnail: perago::Task)
/// # -> Result<(), perago::RuntimeError> {
/// use perago::RuntimeBuilder;
///
/// let handle = RuntimeBuilder::new(config)
///     .task_with_threads(resize, 4) // four resize attempts at once
///     .task(thumbnail)              // the default thread count, set by `threads`
///     .threads(2)
///     .start()?;
/// let resized = handle.task_counters("images.resize").map(|c| c.completed);
/// # let _ = resized;
/// handle.shutdown();
/// let exit = handle.join();
/// # let _ = exit;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until start() is called"]
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    tasks: Vec<TaskPlan>,
    threads: usize,
    store: Option<Arc<dyn WorkspaceStore>>,
    conductor: Option<Arc<dyn ConductorApi>>,
    lock_workspace_root: bool,
    signals: bool,
    owners: Option<LiveOwners>,
    log_dir: Option<PathBuf>,
    /// Poll settings set on the builder for every task; `None`: each task's own worker
    /// settings (`config.worker(task name)`).
    poll_wait: Option<Duration>,
    poll_interval: Option<Duration>,
    domain: Option<Option<String>>,
    batch_size: Option<Option<std::num::NonZeroUsize>>,
    poll_error_backoff: Backoff,
    update_retry: RetryPolicy,
    force_grace: Duration,
    metrics: Option<Metrics>,
    poll_liveness_bound: Option<Duration>,
    unreachable_after: Duration,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tasks: Vec<(&str, Option<usize>)> = self
            .tasks
            .iter()
            .map(|plan| (plan.task.name(), plan.threads))
            .collect();
        f.debug_struct("RuntimeBuilder")
            .field("tasks", &tasks)
            .field("threads", &self.threads)
            .field("lock_workspace_root", &self.lock_workspace_root)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// A builder with `config` and no task yet: add them with [`task`](Self::task) or
    /// [`task_with_threads`](Self::task_with_threads) (`start` fails without any).
    pub fn new(config: RuntimeConfig) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            tasks: Vec::new(),
            threads: 1,
            store: None,
            conductor: None,
            lock_workspace_root: true,
            signals: false,
            owners: None,
            log_dir: None,
            poll_wait: None,
            poll_interval: None,
            domain: None,
            batch_size: None,
            poll_error_backoff: defaults::POLL_ERROR_BACKOFF,
            update_retry: RetryPolicy {
                attempts: NonZeroU32::new(defaults::UPDATE_ATTEMPTS).unwrap_or(NonZeroU32::MIN),
                backoff: defaults::UPDATE_BACKOFF,
            },
            force_grace: defaults::FORCE_GRACE,
            metrics: None,
            poll_liveness_bound: None,
            unreachable_after: super::health::UNREACHABLE_AFTER,
        }
    }

    /// Hosts `task` too, with the default thread count ([`threads`](Self::threads)). Task
    /// names must differ (`start` fails on a repeated one).
    pub fn task(mut self, task: Task) -> Self {
        self.tasks.push(TaskPlan {
            task,
            threads: None,
        });
        self
    }

    /// Hosts `task` too, with its own thread count (0 fails `start`).
    pub fn task_with_threads(mut self, task: Task, threads: usize) -> Self {
        self.tasks.push(TaskPlan {
            task,
            threads: Some(threads),
        });
        self
    }

    /// Number of worker threads, i.e. attempts run at once, of every task added without its
    /// own count (default 1; 0 fails `start`).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Where workspace tasks download from and publish to (lakeFS). Without one, workspace
    /// attempts fail with `LakeFS config is required for workspace tasks`.
    pub fn workspace_store(mut self, store: Arc<dyn WorkspaceStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The Conductor to talk to. Default: a [`ConductorClient`] for the configured
    /// `CONDUCTOR_SERVER_URL` (and auth), pooled for this many threads.
    pub fn conductor(mut self, api: Arc<dyn ConductorApi>) -> Self {
        self.conductor = Some(api);
        self
    }

    /// Whether this runtime owns the workspace root (default true): it takes the supervisor
    /// lock, sweeps the root at start and after shutdown, and runs the GC timer. A
    /// process-mode child passes false, because its supervisor does all of that.
    pub fn lock_workspace_root(mut self, own: bool) -> Self {
        self.lock_workspace_root = own;
        self
    }

    /// Whether SIGINT/SIGTERM request shutdown (default false: embedding programs and tests
    /// own their signals; `perago start` turns it on).
    pub fn signals(mut self, enabled: bool) -> Self {
        self.signals = enabled;
        self
    }

    /// Shares a live-owner registry with other code in the process (default: a new one).
    /// GC never removes a workspace whose marker's owner token is live in it.
    pub fn live_owners(mut self, owners: LiveOwners) -> Self {
        self.owners = Some(owners);
        self
    }

    /// The worker's log directory, whose rotated files the GC timer prunes by
    /// `log_retention` (set by `perago start`; embedded runtimes leave logs to the host).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// The task domain polled (default: the task's `domain` worker setting, see
    /// [`RuntimeConfig::worker`]); `None` polls the default queue.
    pub fn domain(mut self, domain: Option<String>) -> Self {
        self.domain = Some(domain.filter(|d| !d.is_empty()));
        self
    }

    /// The most tasks asked for in one poll (default: the `batch_size` worker setting, else
    /// every free slot).
    pub fn batch_size(mut self, batch_size: Option<std::num::NonZeroUsize>) -> Self {
        self.batch_size = Some(batch_size);
        self
    }

    /// Long-poll wait sent with each poll (default: the `poll_timeout` worker setting, 100 ms
    /// when unset).
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = Some(wait);
        self
    }

    /// Cap of the empty-poll backoff (default: the `poll_interval` worker setting, 100 ms
    /// when unset): after n empty polls in a row the poller waits `min(2^n ms, interval)`.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }

    /// Backoff after failed polls (default 250 ms doubling to 10 s, jittered).
    pub fn poll_error_backoff(mut self, backoff: Backoff) -> Self {
        self.poll_error_backoff = backoff;
        self
    }

    /// Retries of result updates on retryable errors (default 6 tries, 500 ms doubling to
    /// 8 s).
    pub fn update_retry(mut self, policy: RetryPolicy) -> Self {
        self.update_retry = policy;
        self
    }

    /// How long attempts get after being cancelled before they are abandoned (default 5 s).
    pub fn force_grace(mut self, grace: Duration) -> Self {
        self.force_grace = grace;
        self
    }

    /// The metrics registry to record into (default: a new one for this runtime). Passing
    /// one lets a host read it before the runtime starts or share it with its own listener;
    /// every hosted task records into it, labelled with its name.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How long one poll may run before liveness fails (default: each task's poll wait plus
    /// 20 s).
    pub fn poll_liveness_bound(mut self, bound: Duration) -> Self {
        self.poll_liveness_bound = Some(bound);
        self
    }

    /// How long Conductor (or lakeFS) may fail without a success before `/readyz` fails
    /// (default 30 s, SPEC §15).
    pub fn unreachable_after(mut self, after: Duration) -> Self {
        self.unreachable_after = after;
        self
    }

    /// Starts the runtime: lock and sweep the workspace root (when owned), then the `signal`
    /// (when enabled), `lease`, `gc`, and every hosted task's `worker-*` and `poller`
    /// threads (see the `task_runner` module for their names).
    pub fn start(self) -> Result<RuntimeHandle, RuntimeError> {
        let plans = self.plans()?;
        let polls: Vec<PollSettings> = plans
            .iter()
            .map(|(task, _)| self.poll_settings(task))
            .collect();
        let config = &self.config;
        let api: Arc<dyn ConductorApi> = match self.conductor {
            Some(api) => api,
            None => Arc::new(ConductorClient::with_options(
                config.require_conductor()?,
                ClientOptions {
                    max_idle_connections: plans.iter().map(|(_, n)| n).sum::<usize>()
                        + 8 * plans.len(),
                    ..ClientOptions::default()
                },
            )),
        };
        let observability = config.observability();
        let metrics = self
            .metrics
            .clone()
            .unwrap_or_else(|| Metrics::new(observability.instance_id.clone()));
        let health = Arc::new(Health::with_unreachable_after(self.unreachable_after));
        let in_flight = Arc::new(InFlight::default());
        let api: Arc<dyn ConductorApi> = Arc::new(ObservedConductor::new(
            api,
            metrics.clone(),
            Arc::clone(&health),
        ));
        let worker_id = worker_id(config);
        let workspace_root = config.workspace_root().to_path_buf();
        let owners = self.owners.unwrap_or_default();
        let lock = if self.lock_workspace_root {
            let lock = acquire_workspace_lock(&workspace_root, LockOwner::ThreadRunner)?;
            sweep_workspaces(
                &workspace_root,
                Duration::ZERO,
                &owners,
                self.store.as_deref(),
                "startup",
            );
            Some(lock)
        } else {
            None
        };

        let shutdown = Shutdown::new(config.shutdown_force_kill_after());
        let counters = Arc::new(Counters::default());
        let (alive_tx, alive_rx) = crossbeam_channel::bounded::<()>(0);

        let mut startup = Startup {
            shutdown: shutdown.clone(),
            threads: Threads::default(),
        };
        // Signals first: a SIGTERM that arrives while the threads start must drain them, not
        // kill the process with the default action.
        if self.signals {
            let watcher =
                signals::watch(&shutdown).map_err(|source| RuntimeError::Signals { source })?;
            startup.threads.signals = Some(watcher);
        }
        let (leases, keeper) =
            LeaseKeeper::new(Arc::clone(&api), worker_id.clone(), shutdown.halt_token());
        startup.threads.lease = Some(spawn("lease", {
            let panic = PanicGuard::new(&shutdown, "lease");
            move || {
                let _panic = panic;
                keeper.run();
            }
        })?);
        if self.lock_workspace_root {
            let timer = GcTimer {
                workspace_root: workspace_root.clone(),
                ttl: config.workspace_gc_ttl(),
                interval: config.workspace_gc_interval(),
                owners: owners.clone(),
                store: self.store.clone(),
                logs: self.log_dir.map(|dir| LogPruning {
                    dir,
                    retention: config.log_retention(),
                }),
                counters: Arc::clone(&counters),
                drain: shutdown.drain_token(),
                health: Arc::clone(&health),
            };
            let panic = PanicGuard::new(&shutdown, "gc");
            startup.threads.gc = Some(spawn("gc", move || {
                let _panic = panic;
                timer.run();
            })?);
        }
        let (shipper, log_lines) = Shipper::new(config, Arc::clone(&counters));
        let sender = LogSender {
            api: Arc::clone(&api),
            lines: log_lines,
            halt: shutdown.halt_token(),
            counters: Arc::clone(&counters),
        };
        startup.threads.task_log = Some(spawn("task-log", {
            let panic = PanicGuard::new(&shutdown, "task-log");
            move || {
                let _panic = panic;
                sender.run();
            }
        })?);
        let parts = RuntimeParts {
            api: &api,
            store: &self.store,
            owners: &owners,
            workspace_root: &workspace_root,
            failure_reason_max_length: config.failure_reason_max_length().get(),
            worker_id: &worker_id,
            shutdown: &shutdown,
            update_retry: self.update_retry,
            leases: &leases,
            alive: &alive_tx,
            task_log: &shipper,
            worker_stack_size: config.worker_stack_size(),
            qualified_names: plans.len() > 1,
            metrics: &metrics,
            health: &health,
            in_flight: &in_flight,
            poll_liveness_bound: self.poll_liveness_bound,
        };
        let mut tasks = Vec::with_capacity(plans.len());
        for ((task, threads), poll) in plans.into_iter().zip(polls) {
            tasks.push(start_task(
                task,
                threads,
                poll,
                &parts,
                &mut startup.threads,
            )?);
        }
        // Only workers may hold these: their disconnection is how the lease thread and
        // `join` learn that the workers are gone.
        drop((leases, alive_tx, shipper));
        if let Some(otlp) = &observability.metrics {
            let exporter = Exporter::new(otlp.clone(), metrics.clone());
            let thread =
                exporter
                    .spawn(shutdown.halt_token())
                    .map_err(|source| RuntimeError::Spawn {
                        thread: "metrics-export".to_owned(),
                        source,
                    })?;
            startup.threads.exporter = Some(thread);
        }

        for runner in &tasks {
            log::info!(
                worker_id = worker_id.as_str(),
                task = runner.name.as_str(),
                threads = runner.threads as u64,
                domain = runner.domain.as_deref().unwrap_or(""),
                workspace_root:% = workspace_root.display();
                "runtime started"
            );
        }
        Ok(RuntimeHandle {
            shutdown,
            counters,
            tasks,
            metrics,
            health,
            in_flight,
            worker_id,
            running: Some(Running {
                threads: startup.disarm(),
                workers_alive: alive_rx,
                lock,
                owners,
                store: self.store,
                workspace_root,
                owns_root: self.lock_workspace_root,
                force_grace: self.force_grace,
            }),
        })
    }

    /// How `task`'s poller polls: the builder's settings where set, else the task's own
    /// worker settings (keyed by its name).
    fn poll_settings(&self, task: &Task) -> PollSettings {
        let worker = self.config.worker(task.name());
        let interval = self.poll_interval.unwrap_or_else(|| worker.poll_interval());
        PollSettings {
            wait: self.poll_wait.unwrap_or_else(|| worker.poll_timeout()),
            domain: self
                .domain
                .clone()
                .unwrap_or_else(|| worker.domain().map(str::to_owned)),
            batch_size: self.batch_size.unwrap_or_else(|| worker.batch_size()),
            empty_backoff: Backoff::new(defaults::EMPTY_POLL_FIRST_DELAY.min(interval), interval),
            error_backoff: self.poll_error_backoff,
        }
    }

    /// The tasks with their thread counts, checked: at least one, distinct names, no zero
    /// thread count.
    fn plans(&self) -> Result<Vec<(Task, usize)>, RuntimeError> {
        if self.tasks.is_empty() {
            return Err(RuntimeError::NoTasks);
        }
        let mut plans: Vec<(Task, usize)> = Vec::with_capacity(self.tasks.len());
        for plan in &self.tasks {
            let threads = plan.threads.unwrap_or(self.threads);
            if threads == 0 {
                return Err(RuntimeError::NoThreads);
            }
            if plans
                .iter()
                .any(|(task, _)| task.name() == plan.task.name())
            {
                return Err(RuntimeError::DuplicateTask {
                    task: plan.task.name().to_owned(),
                });
            }
            plans.push((plan.task.clone(), threads));
        }
        Ok(plans)
    }
}

/// The worker id: `PERAGO_WORKER_ID` when set, else `<default prefix from target>-pid-<pid>`
/// (see [`RuntimeConfig::process_worker_id`]).
pub fn worker_id(config: &RuntimeConfig) -> String {
    config.process_worker_id()
}

/// Stops and joins the threads started so far unless startup completes.
struct Startup {
    shutdown: Shutdown,
    threads: Threads,
}

impl Startup {
    fn disarm(mut self) -> Threads {
        std::mem::take(&mut self.threads)
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        let threads = &mut self.threads;
        let started = threads.workers.len()
            + threads.pollers.len()
            + [
                threads.lease.is_some(),
                threads.gc.is_some(),
                threads.task_log.is_some(),
                threads.exporter.is_some(),
            ]
            .into_iter()
            .filter(|started| *started)
            .count();
        if started == 0 && threads.signals.is_none() {
            return;
        }
        // Drain stops the poller and GC; the job sender is dropped with the poller (or with
        // the builder's locals), which ends the workers; halt ends the lease thread.
        self.shutdown.request(ShutdownReason::RuntimeFailure);
        self.shutdown.halt();
        threads.join_background();
        for worker in threads.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(env: &[(&str, &str)]) -> RuntimeConfig {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RuntimeConfig::from_env_map("app.workers.echo", &env, &Default::default()).unwrap()
    }

    #[test]
    fn worker_id_is_the_configured_one_else_target_and_pid() {
        let by_hand = format!("appworkersecho-pid-{}", std::process::id());
        assert_eq!(worker_id(&config(&[])), by_hand);
        assert_eq!(
            worker_id(&config(&[("PERAGO_WORKER_ID_PREFIX", "prodA")])),
            by_hand,
            "the prefix names supervised slots, not a worker started by hand"
        );
        assert_eq!(
            worker_id(&config(&[("PERAGO_WORKER_ID", "w-explicit")])),
            "w-explicit"
        );
    }
}
