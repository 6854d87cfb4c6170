//! `perago check <target>...`: validate configuration, then each task declaration.
//!
//! Several targets are checked as the set `start` would serve (see `cli::target_set`): one
//! `ok: <task name>` line per target, then the set's configuration once.

use super::target_set::{distinct, set_name};
use super::{CommandResult, Outcome, load_config, resolve_task};
use crate::config::ConfigOverrides;
use crate::registry::Targets;

pub(crate) fn run(targets: &Targets, names: &[String]) -> CommandResult {
    distinct(names)?;
    // Configuration errors surface before anything about the task is looked at.
    let config = load_config(&set_name(names), &ConfigOverrides::default())?;
    let tasks = names
        .iter()
        .map(|name| resolve_task(targets, name))
        .collect::<Result<Vec<_>, _>>()?;
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
