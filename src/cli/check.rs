//! `perago check <target>... [--online]`: validate configuration, then each task
//! declaration, and everything `start` would check except the network; with `--online`, the
//! network too.
//!
//! Several targets are checked as the set `start` would serve (see `cli::target_set`): one
//! `ok: <task name>` line per target, then the set's configuration once.
//!
//! `check` and `extract` need neither server (SPEC §2), so offline `check` does not fail for
//! a missing server; what `start` would refuse for it is reported as a warning on stderr
//! (`warning: LakeFS config is required for workspace tasks; perago start will refuse
//! <target>`), so `check` and `start` agree. `--online` needs Conductor, treats a missing
//! lakeFS config of a workspace task as the error `start` reports, and runs the checks of
//! [`preflight`](super::preflight) that `start` runs.

use super::preflight::preflight;
use super::start::check_metrics_config;
use super::target_set::{distinct, set_name};
use super::{CommandResult, Globals, Outcome, load_config, resolve_task};
use crate::config::ConfigOverrides;
use crate::registry::Targets;
use crate::task::Task;

pub(crate) fn run(
    globals: &Globals,
    targets: &Targets,
    names: &[String],
    online: bool,
) -> CommandResult {
    distinct(names)?;
    let set = set_name(names);
    // Configuration errors surface before anything about the task is looked at.
    let config = load_config(globals, &set, &ConfigOverrides::default())?;
    let tasks = names
        .iter()
        .map(|name| resolve_task(targets, name))
        .collect::<Result<Vec<_>, _>>()?;
    check_metrics_config(&config, &tasks)?;
    let any_workspace = tasks.iter().any(Task::is_workspace_task);
    if online {
        let checked: Vec<(&str, &Task)> = names.iter().map(String::as_str).zip(&tasks).collect();
        preflight(&config, &checked)?;
    } else {
        let refusals = [
            config.require_conductor().err(),
            any_workspace
                .then(|| config.require_lakefs().err())
                .flatten(),
        ];
        for refusal in refusals.into_iter().flatten() {
            eprintln!("warning: {refusal}; perago start will refuse {set}");
        }
    }
    let configured = |yes: bool| if yes { "configured" } else { "not configured" };
    for task in &tasks {
        println!("ok: {}", task.name());
    }
    println!("workspace_root: {}", config.workspace_root().display());
    println!("log_root: {}", config.log_root().display());
    println!("worker_id_prefix: {}", config.worker_id_prefix());
    println!("conductor: {}", configured(config.conductor().is_some()));
    println!("lakefs: {}", configured(config.lakefs().is_some()));
    Ok(Outcome::Success)
}
