//! `perago config <target>... [--json]`: the resolved configuration, secrets redacted, with
//! each target task's worker settings (domain, poll interval, poll timeout, batch size), and
//! where each value came from.
//!
//! Several targets show the configuration of the set `start` would serve (see
//! `cli::target_set`) and the worker settings of every task in turn (text: one
//! `worker.task` block per task; JSON: `workers`, one object per task, in place of `worker`).
//!
//! The text form ends with a `sources:` block, one `  <VAR>: <source>` line per variable
//! (`default`, `<path> line N`, `environment`, `flag --execution-mode`); the JSON form adds
//! a trailing `sources` object with the same strings.

use serde_json::{Map, Value};

use super::target_set::{distinct, set_name};
use super::{CliError, CommandResult, Globals, Outcome, config_sources, load_config, resolve_task};
use crate::config::ConfigOverrides;
use crate::registry::Targets;

pub(crate) fn run(
    globals: &Globals,
    targets: &Targets,
    names: &[String],
    json: bool,
) -> CommandResult {
    distinct(names)?;
    let overrides = ConfigOverrides::default();
    // Configuration errors surface before anything about the task is looked at.
    let config = load_config(globals, &set_name(names), &overrides)?;
    let workers = names
        .iter()
        .map(|name| resolve_task(targets, name).map(|task| config.worker(task.name())))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = std::env::current_dir().map_err(|source| CliError::CurrentDir { source })?;
    let sources = config_sources(globals, &cwd, &overrides);
    if json {
        let mut value = config.to_json();
        if let Some(object) = value.as_object_mut() {
            match workers.as_slice() {
                [worker] => {
                    object.insert("worker".to_owned(), worker.to_json());
                }
                _ => {
                    let all = workers.iter().map(|worker| worker.to_json()).collect();
                    object.insert("workers".to_owned(), Value::Array(all));
                }
            }
            let by_var: Map<String, Value> = sources
                .iter()
                .map(|(var, source)| (var.to_owned(), Value::String(source.to_string())))
                .collect();
            object.insert("sources".to_owned(), Value::Object(by_var));
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
        println!("sources:");
        for (var, source) in sources.iter() {
            println!("  {var}: {source}");
        }
    }
    Ok(Outcome::Success)
}
