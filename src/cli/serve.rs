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

use log::LevelFilter;

use super::{CommandResult, Outcome};
use crate::config::RuntimeConfig;
use crate::execution::WorkspaceStore;
use crate::logging::{LogRole, LogSettings, LoggingError, init_logging};
use crate::runtime::builder::worker_id;
use crate::runtime::{RuntimeBuilder, RuntimeError, RuntimeExit};
use crate::task::Task;

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
}

/// The lakeFS [`WorkspaceStore`] for `config`, when lakeFS is configured and its endpoint is
/// usable (`start` has already refused workspace tasks without lakeFS config).
pub fn workspace_store(config: &RuntimeConfig) -> Option<Arc<dyn WorkspaceStore>> {
    let lakefs = config.lakefs()?;
    match crate::lakefs::LakefsStore::from_config(lakefs) {
        Ok(store) => Some(Arc::new(store)),
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
    let logging = init_logging(&LogSettings {
        log_root: config.log_root().to_path_buf(),
        max_size: config.log_file_max_size(),
        retention: config.log_retention(),
        target: options.target.clone(),
        worker_id: worker_id.clone(),
        role: LogRole::ThreadRunner,
        level: LevelFilter::Info,
    })?;
    let store = workspace_store(&config);
    let threads: usize = options.tasks.iter().map(|served| served.threads).sum();
    let tasks = (options.tasks.len() > 1).then(|| {
        options
            .tasks
            .iter()
            .map(|served| format!("{}={}", served.task.name(), served.threads))
            .collect::<Vec<_>>()
            .join(",")
    });
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
    match &tasks {
        None => log::info!(
            worker_id = handle.worker_id(),
            target = options.target.as_str(),
            threads = threads as u64,
            log_file:% = logging.log_file().display();
            "{}",
            LogRole::ThreadRunner.startup_message()
        ),
        Some(tasks) => log::info!(
            worker_id = handle.worker_id(),
            target = options.target.as_str(),
            threads = threads as u64,
            tasks = tasks.as_str(),
            log_file:% = logging.log_file().display();
            "{}",
            LogRole::ThreadRunner.startup_message()
        ),
    }
    let exit = handle.join();
    logging.flush();
    Ok(exit)
}

/// The body of a process-mode child: one worker thread, no workspace lock (the supervisor
/// holds it and runs GC), signals on. The CLI prints and maps the result exactly as it does
/// for thread mode's `start`.
pub(crate) fn run_worker_process(target: &str, task: Task, config: RuntimeConfig) -> CommandResult {
    let options = ServeOptions {
        target: target.to_owned(),
        tasks: vec![ServedTask { task, threads: 1 }],
        config,
        lock_workspace_root: false,
    };
    Ok(Outcome::Runtime(serve(options)?))
}
