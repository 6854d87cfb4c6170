//! `perago extract <target> -o <file.json|->`: write the TaskDef, print only the path; with
//! `-o -`, the TaskDef itself goes to stdout (nothing else is printed there).

use std::path::Path;

use super::{CommandResult, Globals, Outcome, load_config, outcome, resolve_task};
use crate::config::ConfigOverrides;
use crate::registry::Targets;
use crate::taskdef::{render_task_def, write_task_def};

pub(crate) fn run(
    globals: &Globals,
    targets: &Targets,
    target: &str,
    output: &Path,
) -> CommandResult {
    load_config(globals, target, &ConfigOverrides::default())?;
    let task = resolve_task(targets, target)?;
    if output == Path::new("-") {
        let text = render_task_def(&task);
        outcome::write_line(&mut std::io::stdout().lock(), text.trim_end_matches('\n'))?;
        return Ok(Outcome::Success);
    }
    write_task_def(&task, output)?;
    println!("{}", output.display());
    Ok(Outcome::Success)
}
