//! The process-level entry points: what `perago start --execution-mode thread` runs, and
//! what a process-mode child runs ([`run_worker_process`]).
//!
//! Both install the per-worker JSONL log file (SPEC §11), start the runtime with signal
//! handling, log `thread runner started`, and block until the runtime has drained. Embedded
//! runtimes do not come through here: their host owns logging and signals.
//!
//! A thread-mode `start` of several targets is one process, one log file (under the target
//! set's name, see `cli::target_set`) and one runtime hosting every target's task with its own
//! threads; its `thread runner started` record then also lists `tasks` as
//! `<task>=<threads>,…`.

use std::sync::Arc;

use super::{CommandResult, Outcome};
use crate::admin::{AdminError, AdminServer};
use crate::config::{AdminConfig, RuntimeConfig};
use crate::execution::WorkspaceStore;
use crate::logging::{LogRole, LogSettings, LoggingError, init_logging_with_stderr};
use crate::runtime::builder::worker_id;
use crate::runtime::{RuntimeBuilder, RuntimeError, RuntimeExit, ShutdownReason};
use crate::task::Task;
use crate::util::redact_url;

/// One task a serving process hosts.
#[derive(Debug, Clone)]
pub struct ServedTask {
    /// The task.
    pub task: Task,
    /// Its worker threads.
    pub threads: usize,
}

/// What one serving process runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The CLI target, or the target set's name (names the log directory).
    pub target: String,
    /// The tasks served, in command-line order.
    pub tasks: Vec<ServedTask>,
    /// The loaded configuration.
    pub config: RuntimeConfig,
    /// Whether this process owns the workspace root (false for a supervised child).
    pub lock_workspace_root: bool,
    /// The admin listener to run (a child gets an ephemeral loopback one from its
    /// supervisor; `None` here means `PERAGO_ADMIN_ADDR`, if set).
    pub admin: Option<AdminConfig>,
    /// Where a child writes its admin listener's bound address for the supervisor.
    pub admin_addr_file: Option<std::path::PathBuf>,
}

/// Why a serving process could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The log file could not be set up.
    #[error(transparent)]
    Logging(#[from] LoggingError),
    /// The runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The admin listener could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// The lakeFS [`WorkspaceStore`] for `config`, when lakeFS is configured and its endpoint is
/// usable (`start` has already refused workspace tasks without lakeFS config).
pub fn workspace_store(config: &RuntimeConfig) -> Option<Arc<dyn WorkspaceStore>> {
    match crate::lakefs::LakefsStore::from_runtime_config(config) {
        Ok(store) => store.map(|store| Arc::new(store) as Arc<dyn WorkspaceStore>),
        Err(error) => {
            log::error!(error = error.to_string().as_str(); "invalid lakeFS endpoint");
            None
        }
    }
}

/// Installs file logging, runs the runtime until SIGINT/SIGTERM and waits for the drain.
pub fn serve(options: ServeOptions) -> Result<RuntimeExit, ServeError> {
    let config = options.config;
    let worker_id = worker_id(&config);
    let observability = config.observability().clone();
    let logging = init_logging_with_stderr(
        &LogSettings {
            log_root: config.log_root().to_path_buf(),
            max_size: config.log_file_max_size(),
            retention: config.log_retention(),
            target: options.target.clone(),
            worker_id: worker_id.clone(),
            role: LogRole::ThreadRunner,
            level: observability.log_level,
        },
        Some(observability.log_format),
    )?;
    let store = workspace_store(&config);
    let conductor_url = config
        .conductor()
        .map(|c| redact_url(c.server_url()))
        .unwrap_or_default();
    let lakefs_endpoint = config.lakefs().map(|l| redact_url(l.endpoint_url()));
    let mode = if options.lock_workspace_root {
        "thread"
    } else {
        "process-child"
    };
    let threads: usize = options.tasks.iter().map(|served| served.threads).sum();
    let tasks = options
        .tasks
        .iter()
        .map(|served| format!("{}={}", served.task.name(), served.threads))
        .collect::<Vec<_>>()
        .join(",");
    let mut builder = options
        .tasks
        .into_iter()
        .fold(RuntimeBuilder::new(config), |builder, served| {
            builder.task_with_threads(served.task, served.threads)
        })
        .lock_workspace_root(options.lock_workspace_root)
        .signals(true)
        .log_dir(logging.log_dir());
    if let Some(store) = store {
        builder = builder.workspace_store(store);
    }
    let handle = builder.start()?;
    // A supervised child never binds the supervisor's PERAGO_ADMIN_ADDR.
    let admin_config = if options.lock_workspace_root {
        options.admin.or(observability.admin)
    } else {
        options.admin
    };
    let admin = match &admin_config {
        Some(admin_config) => match AdminServer::start(admin_config, Arc::new(handle.view())) {
            Ok(server) => Some(server),
            Err(error) => {
                handle.shutdown();
                let _ = handle.join();
                return Err(error.into());
            }
        },
        None => None,
    };
    let admin_addr = admin.as_ref().map(|a| a.addr().to_string());
    if let (Some(file), Some(addr)) = (&options.admin_addr_file, &admin_addr)
        && let Err(error) = std::fs::write(file, addr)
    {
        log::warn!(
            path:% = file.display(), error:% = error;
            "failed to tell the supervisor the admin address"
        );
    }
    log::info!(
        worker_id = handle.worker_id(),
        target = options.target.as_str(),
        threads = threads as u64,
        tasks = tasks.as_str(),
        log_file:% = logging.log_file().display(),
        version = env!("CARGO_PKG_VERSION"),
        mode,
        conductor_url = conductor_url.as_str(),
        lakefs_endpoint = lakefs_endpoint.as_deref().unwrap_or("not configured"),
        admin_addr = admin_addr.as_deref().unwrap_or("off"),
        metrics_export = if observability.metrics.is_some() { "otlp" } else { "off" };
        "{}",
        LogRole::ThreadRunner.startup_message()
    );
    let exit = handle.join();
    if let Some(admin) = admin {
        admin.stop();
    }
    let c = exit.counters;
    log::info!(
        completed = c.completed,
        failed = c.failed,
        lost = c.updates_lost,
        abandoned = exit.abandoned_attempts,
        drain_ms = exit.drain.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        exit_reason = exit.reason.map_or("none", ShutdownReason::as_str),
        clean = exit.is_clean();
        "thread runner stopped"
    );
    logging.flush();
    Ok(exit)
}

/// The body of a process-mode child: one worker thread, no workspace lock (the supervisor
/// holds it and runs GC), signals on. The CLI prints and maps the result exactly as it does
/// for thread mode's `start`.
///
/// With `admin_file`, the child runs a loopback admin listener on an ephemeral port and
/// writes its address there for the supervisor; without, it runs none (whatever
/// `PERAGO_ADMIN_ADDR` says: that address is the supervisor's).
pub(crate) fn run_worker_process(
    target: &str,
    task: Task,
    config: RuntimeConfig,
    admin_file: Option<std::path::PathBuf>,
) -> CommandResult {
    let options = ServeOptions {
        target: target.to_owned(),
        tasks: vec![ServedTask { task, threads: 1 }],
        config,
        lock_workspace_root: false,
        admin: admin_file.as_ref().map(|_| AdminConfig {
            addr: std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
            token: None,
        }),
        admin_addr_file: admin_file,
    };
    Ok(Outcome::Runtime(serve(options)?))
}
