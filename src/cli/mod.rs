//! The command-line interface every task binary exposes (SPEC §12).
//!
//! [`main_with`] is the one entry point: `perago` calls it with the example targets and a
//! user's own binary calls it with its own. Commands live one per file; this module parses
//! arguments (clap) and owns the exit policy: errors print one `error: <message>` line on
//! stderr and exit 1, warnings print `warning: <message>`.

mod check;
mod child;
mod config_cmd;
#[cfg(feature = "dev-server")]
pub(crate) mod demo;
#[cfg(feature = "dev-server")]
mod dev_server;
mod extract;
mod run;
mod serve;
mod start;
mod supervise;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, ConfigOverrides, ExecutionMode, RuntimeConfig};
use crate::registry::{TargetError, Targets};
use crate::task::Task;

/// Exit codes of the CLI.
pub mod exit_code {
    /// Success.
    pub const OK: u8 = 0;
    /// A command failed (`error: …` on stderr).
    pub const ERROR: u8 = 1;
    /// `perago run`: the attempt ran but did not complete (its JSON is on stdout).
    pub const ATTEMPT_NOT_COMPLETED: u8 = 2;
    /// `perago start`: the shutdown deadline passed and attempts that ignored their
    /// cancellation token were abandoned.
    pub const ATTEMPTS_ABANDONED: u8 = 3;
    /// `perago start`: a runtime thread failed (a bug in perago); the runtime drained and
    /// stopped.
    pub const RUNTIME_FAILURE: u8 = 4;
    /// `perago start` in process mode: children had to be killed (force deadline or a second
    /// signal) or exited with a failure status during the shutdown.
    pub const CHILDREN_UNCLEAN: u8 = 5;
    /// `perago start` in process mode: the current executable could not be resolved or the
    /// child processes could not be started.
    pub const CHILD_START_FAILED: u8 = 6;
}

#[derive(Debug, Parser)]
#[command(
    name = "perago",
    version,
    about = "Typed runtime for Conductor task workers over lakeFS workspaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a target's task declaration and the runtime configuration.
    Check {
        /// The target to check.
        target: String,
    },
    /// Write a target's Conductor TaskDef as JSON.
    Extract {
        /// The target to extract.
        target: String,
        /// Output path, ending in `.json`.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print the resolved runtime configuration (secrets redacted).
    Config {
        /// The target whose configuration to resolve.
        target: String,
        /// Print one JSON object instead of aligned lines.
        #[arg(long)]
        json: bool,
    },
    /// List the registered targets.
    Targets,
    /// Run one attempt locally, with no Conductor and no lakeFS.
    Run {
        /// The target to run.
        target: String,
        /// The task `inputData` as JSON: a file path, or `-` for stdin.
        #[arg(long)]
        input: String,
        /// Local directory used as the workspace source (workspace tasks).
        #[arg(long)]
        workspace_dir: Option<PathBuf>,
        /// Write the attempt's changes back to the workspace directory.
        #[arg(long)]
        apply: bool,
    },
    #[cfg(feature = "dev-server")]
    /// The one-command main job: dev server, example workers, a batch of workflows.
    Demo {
        /// Echo + metadata workflows to run.
        #[arg(long, default_value_t = 300)]
        workflows: usize,
        /// Worker threads per workspace-free task.
        #[arg(long, default_value_t = 8)]
        threads: usize,
        /// features.build → catalog.read workflows (each publishes a lakeFS commit).
        #[arg(long, default_value_t = 3)]
        publications: usize,
        /// Hide the progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    #[cfg(feature = "dev-server")]
    /// Serve the local Conductor + lakeFS compatible dev server until SIGINT/SIGTERM.
    DevServer {
        /// Listen address (default 127.0.0.1:0, a free port).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Directory where state persists across restarts.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run workers that poll Conductor.
    Start {
        /// The target to serve.
        target: String,
        /// Number of workers (threads in thread mode, child processes in process mode).
        #[arg(short = 'j', long = "jobs", default_value_t = 1)]
        jobs: usize,
        /// Execution mode; overrides PERAGO_EXECUTION_MODE.
        #[arg(long, value_parser = parse_mode)]
        execution_mode: Option<ExecutionMode>,
    },
    /// Internal: one supervised child of `start --execution-mode process`.
    #[command(name = crate::supervisor::CHILD_SUBCOMMAND, hide = true)]
    Child {
        /// The target to serve.
        target: String,
        /// The supervisor's pid, checked against this process's parent.
        #[arg(long = crate::supervisor::SUPERVISOR_PID_ARG)]
        supervisor_pid: u32,
    },
}

fn parse_mode(text: &str) -> Result<ExecutionMode, String> {
    text.parse::<ExecutionMode>().map_err(|err| err.to_string())
}

/// A CLI failure: printed as `error: <message>`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Serve(#[from] serve::ServeError),
    #[error("{0}")]
    Message(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        exit_code::ERROR
    }
}

/// What a command asks the process to exit with.
pub(crate) type CommandResult = Result<u8, CliError>;

/// Runs the CLI with the process arguments and environment.
pub fn main_with(targets: Targets) -> ExitCode {
    run_with_args(targets, std::env::args_os())
}

/// Runs the CLI with explicit arguments (the first is the program name).
pub fn run_with_args(targets: Targets, args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit_code::ERROR
            } else {
                exit_code::OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let outcome = match cli.command {
        Command::Check { target } => check::run(&targets, &target),
        Command::Extract { target, output } => extract::run(&targets, &target, &output),
        Command::Config { target, json } => config_cmd::run(&target, json),
        Command::Targets => {
            for name in targets.names() {
                println!("{name}");
            }
            Ok(exit_code::OK)
        }
        Command::Run {
            target,
            input,
            workspace_dir,
            apply,
        } => run::run(&targets, &target, &input, workspace_dir.as_deref(), apply),
        #[cfg(feature = "dev-server")]
        Command::Demo {
            workflows,
            threads,
            publications,
            no_progress,
        } => demo(workflows, threads, publications, !no_progress),
        #[cfg(feature = "dev-server")]
        Command::DevServer { addr, data_dir } => dev_server::run(addr, data_dir),
        Command::Start {
            target,
            jobs,
            execution_mode,
        } => start::run(&targets, &target, jobs, execution_mode),
        Command::Child {
            target,
            supervisor_pid,
        } => child::run_child(&targets, &target, supervisor_pid),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

#[cfg(feature = "dev-server")]
fn demo(workflows: usize, threads: usize, publications: usize, progress: bool) -> CommandResult {
    let options = demo::DemoOptions {
        workflows,
        threads,
        publications,
        progress,
    };
    let report = demo::run_demo(&options, &mut std::io::stdout())
        .map_err(|err| CliError::Message(err.to_string()))?;
    Ok(if report.failed == 0 {
        exit_code::OK
    } else {
        exit_code::ERROR
    })
}

/// Loads the configuration for `target` from `.env` and the process environment.
pub(crate) fn load_config(
    target: &str,
    overrides: &ConfigOverrides,
) -> Result<RuntimeConfig, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|err| CliError::Message(format!("cannot read the current directory: {err}")))?;
    Ok(RuntimeConfig::load(target, &cwd, overrides)?)
}

/// Resolves `target` and prints its declaration warnings once.
pub(crate) fn resolve_task(targets: &Targets, target: &str) -> Result<Task, CliError> {
    let task = targets.resolve(target)?;
    for warning in task.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(task)
}
