//! `perago start <target> [-j N] [--execution-mode thread|process]`: run workers until
//! SIGINT/SIGTERM.
//!
//! Checks, in order: the configuration (Conductor required; lakeFS for workspace tasks),
//! `N ≥ 1`, then that the TaskDef is registered in Conductor. Process mode then hands over to
//! the supervisor (see `cli::child`). Thread mode runs the thread runtime with N worker
//! threads in this process; the exit code is 0
//! after a clean drain and [`ATTEMPTS_ABANDONED`](super::exit_code::ATTEMPTS_ABANDONED) or
//! [`RUNTIME_FAILURE`](super::exit_code::RUNTIME_FAILURE) otherwise.

use super::serve::{ServeOptions, serve};
use super::{CliError, CommandResult, Outcome, load_config, resolve_task};
use crate::conductor::ConductorClient;
use crate::config::{ConfigError, ConfigOverrides, ExecutionMode, WorkerSettings};
use crate::registry::Targets;

pub(crate) fn run(
    targets: &Targets,
    target: &str,
    jobs: Option<usize>,
    execution_mode: Option<ExecutionMode>,
) -> CommandResult {
    let config = load_config(target, &ConfigOverrides { execution_mode })?;
    let conductor = config.require_conductor()?;
    let task = resolve_task(targets, target)?;
    if task.is_workspace_task() {
        config.require_lakefs()?;
    }
    let jobs = effective_jobs(jobs, &config.worker(task.name()));
    // The reference's rules for metrics-enabled tasks; the admin listener's /metrics counts
    // as a destination too.
    let observability = config.observability();
    if let Some(spec) = task.metrics() {
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
    if jobs < 1 {
        return Err(CliError::NoWorkers);
    }
    let client = ConductorClient::new(conductor);
    match client.get_task_def(task.name()) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(CliError::TaskDefNotRegistered {
                task: task.name().to_owned(),
            });
        }
        Err(source) => {
            return Err(CliError::TaskDefCheck {
                task: task.name().to_owned(),
                source: Box::new(source),
            });
        }
    }
    // Process mode: the supervisor (src/supervisor, glue in cli/child.rs) takes over here.
    if config.execution_mode() == ExecutionMode::Process {
        return super::child::run_supervisor_cli(target, jobs, config);
    }
    let exit = serve(ServeOptions {
        target: target.to_owned(),
        task,
        config,
        threads: jobs,
        lock_workspace_root: true,
        admin: None,
        admin_addr_file: None,
    })?;
    Ok(Outcome::Runtime(exit))
}

/// `-j` when given, else the task's `thread_count` worker setting, else 1.
fn effective_jobs(jobs: Option<usize>, worker: &WorkerSettings) -> usize {
    jobs.or_else(|| worker.thread_count().map(std::num::NonZeroUsize::get))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeConfig;
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
