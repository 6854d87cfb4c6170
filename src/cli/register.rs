//! `perago register <target>... [--dry-run]`: create or update TaskDefs in Conductor from the
//! code (SPEC §16), printing field by field what changed.
//!
//! Every target is resolved first (an unknown one writes nothing), then, in order, one of
//! `<task>: created`, `<task>: up to date`, or `<task>: updated` followed by one
//! `  <field>: <registered> -> <generated>` line per changed field (` (breaking)` after a
//! field whose drift `start` refuses).
//! Registration is `POST /api/metadata/taskdefs` with a one-element array (an upsert on
//! every Conductor). With `--dry-run` nothing is written, the lines say `would create` /
//! `would update`, and the command exits 1 when any TaskDef differs (for CI).

use super::preflight::{Registration, conductor_registration};
use super::target_set::{distinct, set_name};
use super::{CliError, CommandResult, Globals, Outcome, load_config, resolve_task};
use crate::conductor::ConductorClient;
use crate::config::ConfigOverrides;
use crate::registry::Targets;
use crate::taskdef::task_def;

pub(crate) fn run(
    globals: &Globals,
    targets: &Targets,
    names: &[String],
    dry_run: bool,
) -> CommandResult {
    distinct(names)?;
    let config = load_config(globals, &set_name(names), &ConfigOverrides::default())?;
    let conductor = config.require_conductor()?;
    // Every target resolves before anything is written.
    let tasks = names
        .iter()
        .map(|name| resolve_task(targets, name))
        .collect::<Result<Vec<_>, _>>()?;
    let mut differs = false;
    for task in &tasks {
        let (verb, changes) = match conductor_registration(conductor, task)? {
            Registration::Missing => ("create", None),
            Registration::Registered(changes) if changes.is_empty() => {
                println!("{}: up to date", task.name());
                continue;
            }
            Registration::Registered(changes) => ("update", Some(changes)),
        };
        differs = true;
        if !dry_run {
            ConductorClient::new(conductor)
                .register_task_defs(&[task_def(task)])
                .map_err(|source| CliError::Register {
                    task: task.name().to_owned(),
                    source: Box::new(source),
                })?;
        }
        let done = match (dry_run, verb) {
            (true, verb) => format!("would {verb}"),
            (false, "create") => "created".to_owned(),
            (false, _) => "updated".to_owned(),
        };
        println!("{}: {done}", task.name());
        for change in changes.iter().flatten() {
            let note = if change.breaking { " (breaking)" } else { "" };
            println!("  {}{note}", change.describe());
        }
    }
    Ok(if dry_run && differs {
        Outcome::Differs
    } else {
        Outcome::Success
    })
}
