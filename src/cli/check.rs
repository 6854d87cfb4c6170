//! `perago check <target>`: validate configuration, then the task declaration.

use super::{CommandResult, Outcome, load_config, resolve_task};
use crate::config::ConfigOverrides;
use crate::registry::Targets;

pub(crate) fn run(targets: &Targets, target: &str) -> CommandResult {
    // Configuration errors surface before anything about the task is looked at.
    let config = load_config(target, &ConfigOverrides::default())?;
    let task = resolve_task(targets, target)?;
    let configured = |yes: bool| if yes { "configured" } else { "not configured" };
    println!("ok: {}", task.name());
    println!("workspace_root: {}", config.workspace_root().display());
    println!("log_root: {}", config.log_root().display());
    println!("worker_id_prefix: {}", config.worker_id_prefix());
    println!("conductor: {}", configured(config.conductor().is_some()));
    println!("lakefs: {}", configured(config.lakefs().is_some()));
    Ok(Outcome::Success)
}
