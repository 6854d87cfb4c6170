//! The process-level entry of process mode: what `perago start --execution-mode process`
//! runs once its checks (configuration, `-j`, the TaskDef) have passed.
//!
//! In order: resolve the current executable, install the supervisor's JSONL log, take the
//! workspace lock, sweep the root (TTL 0), watch SIGINT/SIGTERM, start the children, run the
//! [main loop](crate::supervisor::imp), then a final sweep and the lock's release. The supervisor never
//! executes tasks and never talks to Conductor.
//!
//! The supervisor logs under its own worker id, which is the worker id **prefix** itself
//! (`<log_root>/<target>/worker_id=<prefix>/…`), next to its children's
//! `worker_id=<prefix>0001…` directories: it is the one process of the set without a slot,
//! and the prefix names the set.
//!
//! **Several targets** (SPEC §17): each child serves exactly one target of the set, so a
//! target's children are its slot budget and a slow or crashing target never holds up
//! another. `-j N` starts N children per target, `target=N` N children for that target.
//! Slots are numbered across the whole set in command-line order (`a=2 b=1` → `<prefix>0001`
//! and `<prefix>0002` serve `a`, `<prefix>0003` serves `b`), so every worker id is unique;
//! the prefix is the set's (derived from the set's name unless `PERAGO_WORKER_ID_PREFIX` is
//! set). The supervisor logs under the set's name, each child under its own target
//! (`<log_root>/<target>/worker_id=<prefix><slot>/…`), as a single-target child does.

use std::io;
use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use crate::admin::supervisor::SupervisorAdmin;
use crate::admin::{AdminError, AdminServer};
use crate::config::RuntimeConfig;
use crate::execution::WorkspaceStore;
use crate::execution::staging::release_staging_branch;
use crate::logging::{LogRole, LogSettings, LoggingError, init_logging_with_stderr};
use crate::metrics::Metrics;
use crate::supervisor::backoff::{HEALTHY_RUN, RESTART_DELAYS};
use crate::supervisor::child::{ChildLauncher, CurrentExeError, child_worker_id};
use crate::supervisor::imp::{
    LogPruning, SpawnError, Supervisor, SupervisorExit, SupervisorSettings,
};
use crate::supervisor::signals;
use crate::util::redact_url;
use crate::workspace::{WorkspaceError, acquire_supervisor_lock, sweep_releasing};

/// What one supervisor runs.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// The CLI target, or the target set's name (names the supervisor's log directory).
    pub target: String,
    /// Each target the children serve, with its number of child processes (`-j`, or
    /// `target=N`), in command-line order.
    pub children: Vec<(String, NonZeroUsize)>,
    /// The Conductor task type of each entry of `children`, in the same order (labels the
    /// supervisor's `worker_restart_total`).
    pub task_types: Vec<String>,
    /// The loaded configuration (the children load the same one from the same sources).
    pub config: RuntimeConfig,
    /// `--env-file`, passed on to the children (absolute).
    pub env_file: Option<std::path::PathBuf>,
}

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The executable to re-run as children is unknown.
    #[error(transparent)]
    CurrentExe(#[from] CurrentExeError),
    /// No target to start children for.
    #[error("process mode needs at least one target to serve")]
    NoChildren,
    /// The supervisor's log file could not be set up.
    #[error(transparent)]
    Logging(#[from] LoggingError),
    /// The workspace root is locked by another live supervisor, or the lock failed.
    #[error(transparent)]
    Lock(#[from] WorkspaceError),
    /// The SIGINT/SIGTERM handlers could not be installed.
    #[error("failed to install the supervisor's signal handlers")]
    Signals {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A child could not be started; those already started were stopped again.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The directory children announce their admin listeners in could not be created.
    #[error("failed to create the admin directory {}", path.display())]
    AdminDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The admin listener could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// Runs process mode until SIGINT/SIGTERM and every child has exited. See the
/// [module docs](self); call it on the thread that should own the children (the main
/// thread, in the CLI).
pub fn run_supervisor(options: SupervisorOptions) -> Result<SupervisorExit, SupervisorError> {
    let SupervisorOptions {
        target,
        children,
        task_types,
        config,
        env_file,
    } = options;
    let exe = ChildLauncher::for_current_exe(&target)?.exe().to_path_buf();
    // Children start in the same working directory, but an absolute path is robust.
    let env_file = env_file.map(|path| {
        std::env::current_dir()
            .map(|cwd| cwd.join(&path))
            .unwrap_or(path)
    });
    let prefix = config.worker_id_prefix().to_owned();
    let observability = config.observability().clone();
    // One launcher per slot, in slot order: the target each slot's child serves.
    let mut slots: Vec<(String, ChildLauncher)> = children
        .iter()
        .flat_map(|(target, count)| std::iter::repeat_n(target, count.get()))
        .enumerate()
        .map(|(index, child_target)| {
            (
                child_worker_id(&prefix, index + 1),
                ChildLauncher::new(exe.clone(), child_target, std::process::id())
                    .with_env_file(env_file.clone()),
            )
        })
        .collect();
    let total = slots.len();
    if total == 0 {
        return Err(SupervisorError::NoChildren);
    }
    // The task type of each slot, for `worker_restart_total`.
    let slot_tasks: Vec<String> = children
        .iter()
        .enumerate()
        .flat_map(|(index, (target, count))| {
            let task = task_types.get(index).unwrap_or(target).clone();
            std::iter::repeat_n(task, count.get())
        })
        .collect();
    let metrics = Metrics::new(None);
    let logging = init_logging_with_stderr(
        &LogSettings {
            log_root: config.log_root().to_path_buf(),
            max_size: config.log_file_max_size(),
            retention: config.log_retention(),
            target: target.clone(),
            worker_id: prefix.clone(),
            role: LogRole::Supervisor,
            level: observability.log_level,
        },
        Some(observability.log_format),
    )?;
    let root = config.workspace_root().to_path_buf();
    let lock = acquire_supervisor_lock(&root)?;
    let store = crate::cli::serve::workspace_store(&config);
    sweep_all(&root, store.as_deref(), "startup");

    let (requests_tx, requests_rx) = crossbeam_channel::unbounded();
    let signals = signals::watch(requests_tx.clone())
        .map_err(|source| SupervisorError::Signals { source })?;
    // Process-mode admin: children announce loopback listeners in a directory of ours.
    let admin = match &observability.admin {
        Some(admin_config) => {
            let dir = root.join(format!(".perago-admin-{}", std::process::id()));
            if let Err(source) = std::fs::create_dir_all(&dir) {
                signals.stop();
                drop(lock);
                return Err(SupervisorError::AdminDir { path: dir, source });
            }
            for (_, launcher) in &mut slots {
                *launcher = launcher.clone().with_admin_dir(&dir);
            }
            let backend = Arc::new(SupervisorAdmin::new(
                dir.clone(),
                requests_tx.clone(),
                metrics.clone(),
            ));
            match AdminServer::start(admin_config, backend) {
                Ok(server) => Some((server, dir)),
                Err(error) => {
                    signals.stop();
                    let _ = std::fs::remove_dir_all(&dir);
                    drop(lock);
                    return Err(error.into());
                }
            }
        }
        None => None,
    };
    drop(requests_tx);

    let per_target = children
        .iter()
        .map(|(target, count)| format!("{target}={count}"))
        .collect::<Vec<_>>()
        .join(",");
    let conductor_url = config
        .conductor()
        .map(|c| redact_url(c.server_url()))
        .unwrap_or_default();
    let lakefs_endpoint = config.lakefs().map(|l| redact_url(l.endpoint_url()));
    let admin_addr = admin.as_ref().map(|(a, _)| a.addr().to_string());
    log::info!(
        children = total,
        targets = per_target.as_str(),
        log_file:% = logging.log_file().display(),
        workspace_root:% = root.display(),
        exe:% = exe.display(),
        version = env!("CARGO_PKG_VERSION"),
        target = target.as_str(),
        mode = "process",
        worker_id_prefix = prefix.as_str(),
        conductor_url = conductor_url.as_str(),
        lakefs_endpoint = lakefs_endpoint.as_deref().unwrap_or("not configured"),
        admin_addr = admin_addr.as_deref().unwrap_or("off");
        "{}",
        LogRole::Supervisor.startup_message()
    );
    let settings = SupervisorSettings {
        workspace_root: root.clone(),
        worker_id_prefix: prefix,
        children: total,
        gc_ttl: config.workspace_gc_ttl(),
        gc_interval: config.workspace_gc_interval(),
        force_kill_after: config.shutdown_force_kill_after(),
        logs: Some(LogPruning {
            log_root: config.log_root().to_path_buf(),
            target,
            slot_targets: slots
                .iter()
                .map(|(_, launcher)| launcher.target().to_owned())
                .collect(),
            retention: config.log_retention(),
        }),
        restart_delays: RESTART_DELAYS,
        healthy_run: HEALTHY_RUN,
        store: store.clone(),
    };
    let first = slots[0].1.clone();
    let mut supervisor = Supervisor::new(
        settings,
        Box::new(move |id| {
            // The supervisor only asks for its slots' ids, so the fallback is never used.
            let launcher = slots
                .iter()
                .find(|(slot_id, _)| slot_id == id)
                .map_or(&first, |(_, launcher)| launcher);
            launcher.command(id)
        }),
    );
    supervisor.on_restart(Box::new(move |slot| {
        if let Some(task) = slot_tasks.get(slot) {
            metrics.worker_restarted(task);
        }
    }));
    let stop_admin = |admin: Option<(AdminServer, std::path::PathBuf)>| {
        if let Some((server, dir)) = admin {
            server.stop();
            let _ = std::fs::remove_dir_all(dir);
        }
    };
    if let Err(error) = supervisor.start_all() {
        signals.stop();
        stop_admin(admin);
        sweep_all(&root, store.as_deref(), "shutdown");
        drop(lock);
        logging.flush();
        return Err(error.into());
    }
    let started_run = std::time::Instant::now();
    let exit = supervisor.run(requests_rx);
    signals.stop();
    stop_admin(admin);
    // Every child is gone: nothing under the root is live any more.
    sweep_all(&root, store.as_deref(), "shutdown");
    drop(lock);
    log::info!(
        clean = exit.is_clean(),
        killed = exit.killed.len(),
        unclean_exits = exit.unclean_exits.len(),
        restarts = exit.restarts,
        ran_ms = u64::try_from(started_run.elapsed().as_millis()).unwrap_or(u64::MAX);
        "process supervisor stopped"
    );
    logging.flush();
    Ok(exit)
}

/// A TTL-0 sweep with no live owner: only valid while the supervisor has no child running.
fn sweep_all(root: &std::path::Path, store: Option<&dyn WorkspaceStore>, kind: &str) {
    sweep_releasing(
        root,
        Duration::ZERO,
        SystemTime::now(),
        &|_| false,
        &|staging| release_staging_branch(store, staging),
    )
    .log(kind);
}
