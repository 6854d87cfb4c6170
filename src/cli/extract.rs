//! `perago extract <target> -o <file.json>`: write the TaskDef, print only the path.

use std::path::Path;

use super::{CommandResult, Outcome, load_config, resolve_task};
use crate::config::ConfigOverrides;
use crate::registry::Targets;
use crate::taskdef::write_task_def;

pub(crate) fn run(targets: &Targets, target: &str, output: &Path) -> CommandResult {
    load_config(target, &ConfigOverrides::default())?;
    let task = resolve_task(targets, target)?;
    write_task_def(&task, output)?;
    println!("{}", output.display());
    Ok(Outcome::Success)
}
