//! Process mode's two CLI ends: `start` handing over to the supervisor, and the hidden
//! [`CHILD_SUBCOMMAND`](crate::supervisor::CHILD_SUBCOMMAND) entry each supervised child runs.
//!
//! The child entry arms the parent-death signal before anything else, loads the same
//! configuration the supervisor loaded (same working directory and environment, plus
//! `PERAGO_WORKER_ID`), and runs the thread runtime with one worker thread. It neither
//! locks nor sweeps the workspace root: its supervisor does both. With several targets each
//! child serves one of them (see `cli::supervise`), so the child entry takes one target.

use std::num::NonZeroUsize;

use super::serve::run_worker_process;
use super::supervise::{SupervisorOptions, run_supervisor};
use super::{CliError, CommandResult, Globals, Outcome, load_config};
use crate::config::{ConfigOverrides, RuntimeConfig};
use crate::registry::Targets;
use crate::supervisor::die_with_parent;

/// `perago start` in process mode, after its checks: supervises each target's count of
/// children (`set` is the target set's name).
pub(crate) fn run_supervisor_cli(
    globals: &Globals,
    set: &str,
    counts: &[(String, usize)],
    task_types: Vec<String>,
    config: RuntimeConfig,
) -> CommandResult {
    let children = counts
        .iter()
        .map(|(target, jobs)| {
            NonZeroUsize::new(*jobs)
                .map(|count| (target.clone(), count))
                .ok_or(CliError::NoWorkers)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = SupervisorOptions {
        target: set.to_owned(),
        children,
        task_types,
        config,
        env_file: globals.env_file.clone(),
    };
    Ok(Outcome::Supervisor(run_supervisor(options)?))
}

/// The hidden child entry: `<exe> __perago-child --supervisor-pid <pid> <target>`.
pub(crate) fn run_child(
    globals: &Globals,
    targets: &Targets,
    target: &str,
    supervisor_pid: u32,
    admin_file: Option<std::path::PathBuf>,
) -> CommandResult {
    die_with_parent(supervisor_pid)?;
    let config = load_config(globals, target, &ConfigOverrides::default())?;
    if config.worker_id().is_none() {
        return Err(CliError::ChildWorkerIdMissing);
    }
    // The supervisor already printed the declaration's warnings once.
    let task = targets.resolve(target)?;
    run_worker_process(target, task, config, admin_file)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use crate::supervisor::child::ChildLauncher;

    #[test]
    fn the_launcher_command_line_parses_as_the_hidden_subcommand() {
        let launcher = ChildLauncher::new("/bin/worker", "examples.echo", 77);
        let args = std::iter::once("worker".to_owned()).chain(launcher.args());
        match Cli::try_parse_from(args) {
            Ok(Cli {
                env_file: None,
                command:
                    Command::Child {
                        target,
                        supervisor_pid,
                        ..
                    },
            }) => {
                assert_eq!(target, "examples.echo");
                assert_eq!(supervisor_pid, 77);
            }
            other => panic!("unexpected parse: {other:?}"),
        }
    }

    #[test]
    fn the_hidden_subcommand_is_not_in_help() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        assert!(
            !help.contains(crate::supervisor::CHILD_SUBCOMMAND),
            "{help}"
        );
        assert!(help.contains("start"));
    }
}
