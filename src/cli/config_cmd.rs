//! `perago config <target>... [--json]`: the resolved configuration, secrets redacted, with
//! each target task's worker settings (domain, poll interval, poll timeout, batch size).
//!
//! Several targets show the configuration of the set `start` would serve (see
//! `cli::target_set`) and the worker settings of every task in turn (text: one
//! `worker.task` block per task; JSON: `workers`, one object per task, in place of `worker`).

use super::target_set::{distinct, set_name};
use super::{CliError, CommandResult, Outcome, load_config, resolve_task};
use crate::config::ConfigOverrides;
use crate::registry::Targets;

pub(crate) fn run(targets: &Targets, names: &[String], json: bool) -> CommandResult {
    distinct(names)?;
    // Configuration errors surface before anything about the task is looked at.
    let config = load_config(&set_name(names), &ConfigOverrides::default())?;
    let workers = names
        .iter()
        .map(|name| resolve_task(targets, name).map(|task| config.worker(task.name())))
        .collect::<Result<Vec<_>, _>>()?;
    if json {
        let mut value = config.to_json();
        if let Some(object) = value.as_object_mut() {
            match workers.as_slice() {
                [worker] => {
                    object.insert("worker".to_owned(), worker.to_json());
                }
                _ => {
                    let all = workers.iter().map(|worker| worker.to_json()).collect();
                    object.insert("workers".to_owned(), serde_json::Value::Array(all));
                }
            }
        }
        let text = serde_json::to_string_pretty(&value).map_err(|source| CliError::Encode {
            what: "config",
            source,
        })?;
        println!("{text}");
    } else {
        let lines: Vec<(String, String)> = workers
            .iter()
            .flat_map(|worker| worker.text_lines())
            .collect();
        print!("{}", config.render_text_with(&lines));
    }
    Ok(Outcome::Success)
}
