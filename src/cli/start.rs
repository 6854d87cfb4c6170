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
use crate::config::{ConfigOverrides, ExecutionMode};
use crate::registry::Targets;

pub(crate) fn run(
    targets: &Targets,
    target: &str,
    jobs: usize,
    execution_mode: Option<ExecutionMode>,
) -> CommandResult {
    let config = load_config(target, &ConfigOverrides { execution_mode })?;
    let conductor = config.require_conductor()?;
    let task = resolve_task(targets, target)?;
    if task.is_workspace_task() {
        config.require_lakefs()?;
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
    })?;
    Ok(Outcome::Runtime(exit))
}
