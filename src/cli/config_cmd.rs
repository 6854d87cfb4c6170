//! `perago config <target> [--json]`: the resolved configuration, secrets redacted, with the
//! target task's worker settings (domain, poll interval, poll timeout, batch size).

use super::{CliError, CommandResult, Outcome, load_config, resolve_task};
use crate::config::ConfigOverrides;
use crate::registry::Targets;

pub(crate) fn run(targets: &Targets, target: &str, json: bool) -> CommandResult {
    // Configuration errors surface before anything about the task is looked at.
    let config = load_config(target, &ConfigOverrides::default())?;
    let task = resolve_task(targets, target)?;
    let worker = config.worker(task.name());
    if json {
        let mut value = config.to_json();
        if let Some(object) = value.as_object_mut() {
            object.insert("worker".to_owned(), worker.to_json());
        }
        let text = serde_json::to_string_pretty(&value).map_err(|source| CliError::Encode {
            what: "config",
            source,
        })?;
        println!("{text}");
    } else {
        print!("{}", config.render_text_with(&worker.text_lines()));
    }
    Ok(Outcome::Success)
}
