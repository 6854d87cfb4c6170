//! `perago start <target>[=N]... [-j N] [--execution-mode thread|process]`: run workers until
//! SIGINT/SIGTERM.
//!
//! Checks, in order: the configuration (Conductor required; lakeFS if any target is a
//! workspace task), every worker count between 1 and [`MAX_JOBS`] in all, then the online
//! checks of [`preflight`](super::preflight), target by target: Conductor reachable with the
//! right URL shape and accepted auth, each TaskDef registered without breaking drift
//! (harmless drift is a warning), and lakeFS reachable with accepted credentials when any
//! target is a workspace task. Any failure is `error: …`, exit 1, nothing polled. Nothing is
//! served unless every target passes. Several targets are served as one set (see
//! `cli::target_set`).
//!
//! Process mode then hands over to the supervisor (see `cli::child`). Thread mode runs one
//! thread runtime hosting every target, each with its own worker threads, in this process;
//! the exit code is 0 after a clean drain,
//! [`FORCED_DRAIN`](super::exit_code::FORCED_DRAIN) when the drain deadline cancelled
//! in-flight attempts, and [`ATTEMPTS_ABANDONED`](super::exit_code::ATTEMPTS_ABANDONED) or
//! [`RUNTIME_FAILURE`](super::exit_code::RUNTIME_FAILURE) otherwise.

use super::preflight::preflight;
use super::serve::{ServeOptions, ServedTask, serve};
use super::target_set::{TargetSpec, set_name, worker_counts};
use super::{CliError, CommandResult, Globals, Outcome, load_config, resolve_task};
use crate::config::{ConfigError, ConfigOverrides, ExecutionMode, RuntimeConfig, WorkerSettings};
use crate::registry::Targets;
use crate::task::Task;

/// The most workers one `start` runs: beyond it a machine runs out of threads (or
/// processes) long before the work benefits, and spawning fails half-way.
pub(crate) const MAX_JOBS: usize = 4096;

pub(crate) fn run(
    globals: &Globals,
    targets: &Targets,
    specs: &[TargetSpec],
    jobs: Option<usize>,
    execution_mode: Option<ExecutionMode>,
) -> CommandResult {
    let names: Vec<&str> = specs.iter().map(|spec| spec.target.as_str()).collect();
    let set = set_name(&names);
    let config = load_config(globals, &set, &ConfigOverrides { execution_mode })?;
    config.require_conductor()?;
    let tasks = names
        .iter()
        .map(|name| resolve_task(targets, name))
        .collect::<Result<Vec<_>, _>>()?;
    if tasks.iter().any(Task::is_workspace_task) {
        config.require_lakefs()?;
    }
    check_metrics_config(&config, &tasks)?;
    let defaults: Vec<usize> = tasks
        .iter()
        .map(|task| effective_jobs(jobs, &config.worker(task.name())))
        .collect();
    let counts = worker_counts(specs, &defaults)?;
    let total: usize = counts.iter().map(|(_, count)| count).sum();
    if total > MAX_JOBS {
        return Err(CliError::TooManyWorkers {
            jobs: total,
            max: MAX_JOBS,
        });
    }
    let checked: Vec<(&str, &Task)> = names.iter().copied().zip(&tasks).collect();
    preflight(&config, &checked)?;
    // Process mode: the supervisor (src/supervisor, glue in cli/child.rs) takes over here.
    if config.execution_mode() == ExecutionMode::Process {
        let task_types = tasks.iter().map(|task| task.name().to_owned()).collect();
        return super::child::run_supervisor_cli(globals, &set, &counts, task_types, config);
    }
    let exit = serve(ServeOptions {
        target: set,
        tasks: tasks
            .into_iter()
            .zip(counts)
            .map(|(task, (_, threads))| ServedTask { task, threads })
            .collect(),
        config,
        lock_workspace_root: true,
        admin: None,
        admin_addr_file: None,
    })?;
    Ok(Outcome::Runtime(exit))
}

/// The reference's rules for metrics-enabled tasks (the admin listener's /metrics counts as
/// a destination too); offline `check` applies them as well, so it refuses what `start`
/// refuses.
pub(crate) fn check_metrics_config(config: &RuntimeConfig, tasks: &[Task]) -> Result<(), CliError> {
    let observability = config.observability();
    for spec in tasks.iter().filter_map(Task::metrics) {
        if observability.metrics.is_none() && observability.admin.is_none() {
            return Err(ConfigError::MetricsEndpointRequired.into());
        }
        if spec.worker_capacity
            && observability.metrics.is_some()
            && observability.instance_id.is_none()
        {
            return Err(ConfigError::InstanceIdRequired.into());
        }
    }
    Ok(())
}

/// `-j` when given, else the task's `thread_count` worker setting, else 1 (a target's own
/// `target=N` wins over all three).
fn effective_jobs(jobs: Option<usize>, worker: &WorkerSettings) -> usize {
    jobs.or_else(|| worker.thread_count().map(std::num::NonZeroUsize::get))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn jobs_flag_wins_over_thread_count_which_wins_over_one() {
        let worker = |pairs: &[(&str, &str)]| {
            let env: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            RuntimeConfig::from_env_map("t", &env, &Default::default())
                .unwrap()
                .worker("examples.echo")
        };
        let counted = worker(&[("CONDUCTOR_WORKER_EXAMPLES_ECHO_THREAD_COUNT", "4")]);
        assert_eq!(effective_jobs(None, &counted), 4);
        assert_eq!(effective_jobs(Some(2), &counted), 2);
        assert_eq!(
            effective_jobs(Some(0), &counted),
            0,
            "an explicit 0 is still refused"
        );
        assert_eq!(effective_jobs(None, &worker(&[])), 1);
    }
}
