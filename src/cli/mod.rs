//! The command-line interface every task binary exposes (SPEC §12).
//!
//! [`main_with`] is the one entry point: it takes an [`App`], a binary's own name, version,
//! about text, targets and optional commands. `perago` passes the example targets with
//! `demo` and `dev-server`; a team's binary passes its own. Commands live one per file and
//! return an `Outcome` or a typed `CliError`; the `outcome` module owns the exit policy:
//! an error prints one `error: <message>: <cause>…` line on stderr (every cause once) and
//! one function maps outcomes and errors to the exit codes. Warnings print
//! `warning: <message>`.

mod check;
mod child;
mod config_cmd;
#[cfg(feature = "dev-server")]
pub(crate) mod demo;
#[cfg(feature = "dev-server")]
mod dev_server;
mod drift;
mod extract;
mod gc;
mod outcome;
mod preflight;
mod register;
mod run;
mod serve;
mod start;
mod supervise;
mod target_set;
mod workflow;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{
    ConfigError, ConfigOverrides, ConfigSources, ExecutionMode, RuntimeConfig, ValueSource,
};
use crate::registry::Targets;
use crate::task::Task;

pub(crate) use outcome::{CliError, CommandResult, Outcome};

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
    /// `perago start` in thread mode: the drain deadline (`PERAGO_SHUTDOWN_FORCE_KILL_AFTER`)
    /// or a second signal cancelled in-flight attempts, which were reported `FAILED`.
    pub const FORCED_DRAIN: u8 = 7;
    /// `perago workflow`: the workflow ended other than `COMPLETED`, or was still running
    /// at the timeout.
    pub const WORKFLOW_NOT_COMPLETED: u8 = 8;
}

/// perago's commands; [`App::command`] puts them under a binary's own name.
#[derive(Debug, Parser)]
#[command(name = "perago", version, about = PERAGO_ABOUT)]
struct Cli {
    /// Read this file instead of `./.env` (relative to the working directory).
    #[arg(long, global = true, value_name = "PATH")]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Options every command sees (global flags).
#[derive(Debug, Clone, Default)]
pub(crate) struct Globals {
    /// `--env-file PATH`.
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate targets' task declarations and the runtime configuration.
    Check {
        /// The targets to check (several: checked as the set `start` would serve).
        #[arg(required = true, num_args = 1..)]
        targets: Vec<String>,
        /// Also check the servers: Conductor reachable, auth accepted, each TaskDef
        /// registered and in sync; lakeFS reachable and credentials accepted (workspace
        /// tasks).
        #[arg(long)]
        online: bool,
    },
    /// Write a target's Conductor TaskDef as JSON.
    Extract {
        /// The target to extract.
        target: String,
        /// Output path, ending in `.json`, or `-` for stdout.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Create or update targets' TaskDefs in Conductor, printing what changed.
    Register {
        /// The targets to register.
        #[arg(required = true)]
        targets: Vec<String>,
        /// Change nothing; exit 1 when a registered TaskDef differs from the code.
        #[arg(long)]
        dry_run: bool,
    },
    /// Start one workflow running a workspace-free target's task once and wait for it.
    Workflow {
        /// The target whose task the workflow runs.
        target: String,
        /// A params field, `KEY=VALUE` (VALUE is JSON when it parses, else a string).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Seconds to wait for the workflow to end.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Print the resolved runtime configuration (secrets redacted).
    Config {
        /// The target (or targets, as one set) whose configuration to resolve.
        #[arg(required = true, num_args = 1..)]
        targets: Vec<String>,
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
        /// Local repository root used as the workspace source (workspace tasks): the task's
        /// object prefix is looked up under it.
        #[arg(long, conflicts_with = "prefix_dir")]
        workspace_dir: Option<PathBuf>,
        /// Local directory that is the task's prefix directory itself (workspace tasks).
        #[arg(long)]
        prefix_dir: Option<PathBuf>,
        /// Write the attempt's changes back to the workspace or prefix directory.
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
        /// Listen address, `HOST:PORT` (default 127.0.0.1:0, a free port); a host name
        /// such as `localhost` is resolved.
        #[arg(long)]
        addr: Option<String>,
        /// Directory where state persists across restarts.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run workers that poll Conductor.
    Start {
        /// The targets to serve, each optionally as `target=N` with its own worker count.
        #[arg(required = true, num_args = 1.., value_name = "TARGET[=N]")]
        targets: Vec<target_set::TargetSpec>,
        /// Number of workers of every target without its own `=N` (threads in thread mode,
        /// child processes in process mode), at most 4096. Default: each task's
        /// `thread_count` worker setting, else 1.
        #[arg(short = 'j', long = "jobs")]
        jobs: Option<usize>,
        /// Execution mode; overrides PERAGO_EXECUTION_MODE.
        #[arg(long, value_parser = parse_mode)]
        execution_mode: Option<ExecutionMode>,
    },
    /// Delete orphaned lakeFS staging branches (`perago-staging-*`) whose head commit is old.
    Gc {
        /// Collect lakeFS staging branches.
        #[arg(long)]
        lakefs: bool,
        /// Minimum age of a branch's head commit, e.g. `24h` or `7d`.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        /// Print what would be deleted and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Internal: one supervised child of `start --execution-mode process`.
    #[command(name = crate::supervisor::CHILD_SUBCOMMAND, hide = true)]
    Child {
        /// The target to serve.
        target: String,
        /// The supervisor's pid, checked against this process's parent.
        #[arg(long = crate::supervisor::SUPERVISOR_PID_ARG)]
        supervisor_pid: u32,
        /// Run a loopback admin listener and write its address here.
        #[arg(long = crate::supervisor::ADMIN_FILE_ARG)]
        admin_file: Option<std::path::PathBuf>,
    },
}

/// `--execution-mode`: the error names the flag, not the variable.
fn parse_mode(text: &str) -> Result<ExecutionMode, String> {
    text.parse::<ExecutionMode>()
        .map_err(|_| "--execution-mode must be either 'process' or 'thread'".to_owned())
}

/// perago's own about text (what `perago --help` says).
pub const PERAGO_ABOUT: &str = "Typed runtime for Conductor task workers over lakeFS workspaces";

/// A task binary's identity and the commands it exposes: what [`main_with`] runs.
///
/// ```no_run
/// # fn targets() -> perago::Targets { perago::Targets::new() }
/// let app = perago::cli::App::new("word-count", env!("CARGO_PKG_VERSION"), targets())
///     .about("The word-count team's workers");
/// std::process::exit(i32::from(perago::cli::main_with(app) != std::process::ExitCode::SUCCESS));
/// ```
///
/// `--version` prints `<name> <version>` and `--help` the about text. The optional commands
/// `demo` and `dev-server` (feature `dev-server`) are off unless asked for; a command that
/// is off is absent from `--help` and rejected like an unknown one.
#[derive(Debug)]
pub struct App {
    name: &'static str,
    version: &'static str,
    about: Option<&'static str>,
    targets: Targets,
    #[cfg(feature = "dev-server")]
    demo: bool,
    #[cfg(feature = "dev-server")]
    dev_server: bool,
}

impl App {
    /// A binary called `name` at `version` (usually `env!("CARGO_PKG_NAME")` and
    /// `env!("CARGO_PKG_VERSION")`) serving `targets`, with no about text and no optional
    /// commands.
    pub fn new(name: &'static str, version: &'static str, targets: Targets) -> App {
        App {
            name,
            version,
            about: None,
            targets,
            #[cfg(feature = "dev-server")]
            demo: false,
            #[cfg(feature = "dev-server")]
            dev_server: false,
        }
    }

    /// The one-line description `--help` shows.
    pub fn about(mut self, text: &'static str) -> App {
        self.about = Some(text);
        self
    }

    /// Whether the binary exposes `demo` (default: no).
    #[cfg(feature = "dev-server")]
    pub fn demo(mut self, expose: bool) -> App {
        self.demo = expose;
        self
    }

    /// Whether the binary exposes `dev-server` (default: no).
    #[cfg(feature = "dev-server")]
    pub fn dev_server(mut self, expose: bool) -> App {
        self.dev_server = expose;
        self
    }

    /// Whether the subcommand `name` is part of this binary's CLI.
    fn exposes(&self, name: &str) -> bool {
        match name {
            #[cfg(feature = "dev-server")]
            "demo" => self.demo,
            #[cfg(feature = "dev-server")]
            "dev-server" => self.dev_server,
            _ => true,
        }
    }

    /// The clap command: perago's subcommands under this binary's name, version and about
    /// text, without the optional commands it does not expose.
    fn command(&self) -> clap::Command {
        let full = Cli::command();
        let mut command = clap::Command::new(self.name)
            .version(self.version)
            .subcommand_required(true)
            .arg_required_else_help(true);
        if let Some(about) = self.about {
            command = command.about(about);
        }
        for arg in full.get_arguments() {
            command = command.arg(arg.clone());
        }
        for sub in full.get_subcommands() {
            if self.exposes(sub.get_name()) {
                command = command.subcommand(sub.clone());
            }
        }
        command
    }
}

/// Runs the CLI of `app` with the process arguments and environment.
pub fn main_with(app: App) -> ExitCode {
    run_with_args(app, std::env::args_os())
}

/// Runs the CLI of `app` with explicit arguments (the first is the program name).
pub fn run_with_args(app: App, args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match app
        .command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
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
    let globals = Globals {
        env_file: cli.env_file,
    };
    outcome::finish(dispatch(&globals, &app.targets, cli.command))
}

/// Runs one parsed command.
fn dispatch(globals: &Globals, targets: &Targets, command: Command) -> CommandResult {
    match command {
        Command::Check {
            targets: names,
            online,
        } => check::run(globals, targets, &names, online),
        Command::Extract { target, output } => extract::run(globals, targets, &target, &output),
        Command::Register {
            targets: names,
            dry_run,
        } => register::run(globals, targets, &names, dry_run),
        Command::Workflow {
            target,
            params,
            timeout,
        } => workflow::run(
            globals,
            targets,
            &target,
            &params,
            std::time::Duration::from_secs(timeout),
        ),
        Command::Config {
            targets: names,
            json,
        } => config_cmd::run(globals, targets, &names, json),
        Command::Targets => {
            let mut out = std::io::stdout().lock();
            for name in targets.names() {
                outcome::write_line(&mut out, name)?;
            }
            Ok(Outcome::Success)
        }
        Command::Run {
            target,
            input,
            workspace_dir,
            prefix_dir,
            apply,
        } => {
            let source = match (&workspace_dir, &prefix_dir) {
                (Some(dir), _) => Some(run::LocalSource::RepositoryRoot(dir)),
                (None, Some(dir)) => Some(run::LocalSource::PrefixDir(dir)),
                (None, None) => None,
            };
            run::run(globals, targets, &target, &input, source, apply)
        }
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
            targets: specs,
            jobs,
            execution_mode,
        } => start::run(globals, targets, &specs, jobs, execution_mode),
        Command::Gc {
            lakefs,
            older_than,
            dry_run,
        } => gc::run(
            globals,
            gc::GcOptions {
                lakefs,
                older_than,
                dry_run,
            },
        ),
        Command::Child {
            target,
            supervisor_pid,
            admin_file,
        } => child::run_child(globals, targets, &target, supervisor_pid, admin_file),
    }
}

#[cfg(feature = "dev-server")]
fn demo(workflows: usize, threads: usize, publications: usize, progress: bool) -> CommandResult {
    if threads == 0 {
        return Err(CliError::DemoNoThreads);
    }
    let options = demo::DemoOptions {
        workflows,
        threads,
        publications,
        progress,
    };
    let report = demo::run_demo(&options, &mut std::io::stdout())?;
    Ok(if report.failed == 0 {
        Outcome::Success
    } else {
        Outcome::DemoFailures
    })
}

/// Loads the configuration for `target` from `.env` (or `--env-file`) and the process
/// environment. An error about a value says where the value came from when its message
/// does not already: a `.env` line, or the root variable (or its default) that is not
/// writable.
pub(crate) fn load_config(
    globals: &Globals,
    target: &str,
    overrides: &ConfigOverrides,
) -> Result<RuntimeConfig, CliError> {
    let cwd = std::env::current_dir().map_err(|source| CliError::CurrentDir { source })?;
    RuntimeConfig::load_with_env_file(target, &cwd, globals.env_file.as_deref(), overrides)
        .map_err(|error| with_origin(globals, error, &config_sources(globals, &cwd, overrides)))
}

/// Where each configuration value of this invocation came from.
pub(crate) fn config_sources(
    globals: &Globals,
    cwd: &Path,
    overrides: &ConfigOverrides,
) -> ConfigSources {
    ConfigSources::gather(
        cwd,
        globals.env_file.as_deref(),
        std::env::vars_os(),
        overrides,
    )
}

/// Adds the value's origin to a configuration error when the SPEC text does not name it.
fn with_origin(globals: &Globals, error: ConfigError, sources: &ConfigSources) -> CliError {
    if globals.env_file.is_some()
        && matches!(
            error,
            ConfigError::DotenvUnreadable { .. } | ConfigError::DotenvNotUtf8 { .. }
        )
    {
        return CliError::ConfigFrom {
            error,
            origin: "flag --env-file".to_owned(),
        };
    }
    let Some(var) = error.var() else {
        return error.into();
    };
    let origin = match (sources.of(var), &error) {
        (source @ ValueSource::Dotenv { .. }, _) => format!("{var} from {source}"),
        (ValueSource::Default, ConfigError::NotWritable { .. }) => format!("the default {var}"),
        (_, ConfigError::NotWritable { .. }) => var.to_owned(),
        _ => return error.into(),
    };
    CliError::ConfigFrom { error, origin }
}

/// Resolves `target` and prints its declaration warnings once.
pub(crate) fn resolve_task(targets: &Targets, target: &str) -> Result<Task, CliError> {
    let task = targets.resolve(target)?;
    for warning in task.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn team_app() -> App {
        App::new("word-count", "1.4.0", Targets::new()).about("The text team's word-count worker")
    }

    fn render(app: &App, args: &[&str]) -> (ErrorKind, String) {
        let args = std::iter::once("word-count").chain(args.iter().copied());
        match app.command().try_get_matches_from(args) {
            Ok(matches) => panic!("expected clap to stop, got {matches:?}"),
            Err(err) => (err.kind(), err.render().to_string()),
        }
    }

    #[test]
    fn a_team_binary_prints_its_own_name_version_and_about_text() {
        let app = team_app();
        let (kind, version) = render(&app, &["--version"]);
        assert_eq!(kind, ErrorKind::DisplayVersion);
        assert_eq!(version.trim_end(), "word-count 1.4.0");
        let (kind, help) = render(&app, &["--help"]);
        assert_eq!(kind, ErrorKind::DisplayHelp);
        assert!(
            help.starts_with("The text team's word-count worker\n"),
            "{help}"
        );
        assert!(!help.contains(PERAGO_ABOUT), "{help}");
        for command in ["check", "extract", "config", "targets", "run", "start"] {
            assert!(
                help.contains(&format!("  {command} ")),
                "{command} in {help}"
            );
        }
        assert!(
            !help.contains(crate::supervisor::CHILD_SUBCOMMAND),
            "{help}"
        );
    }

    #[cfg(feature = "dev-server")]
    #[test]
    fn optional_commands_exist_only_when_exposed() {
        let team = team_app();
        let (_, help) = render(&team, &["--help"]);
        assert!(
            !help.contains("demo") && !help.contains("dev-server"),
            "{help}"
        );
        for command in ["demo", "dev-server"] {
            let (kind, text) = render(&team, &[command]);
            assert_eq!(kind, ErrorKind::InvalidSubcommand, "{command}: {text}");
        }
        // Exposed one at a time.
        let with_demo = team_app().demo(true);
        let (_, help) = render(&with_demo, &["--help"]);
        assert!(
            help.contains("  demo ") && !help.contains("dev-server"),
            "{help}"
        );
        let (kind, _) = render(&with_demo, &["dev-server", "--help"]);
        assert_eq!(kind, ErrorKind::InvalidSubcommand);
        let (kind, _) = render(&with_demo, &["demo", "--help"]);
        assert_eq!(kind, ErrorKind::DisplayHelp);
        let perago = App::new("perago", "0.1.0", Targets::new())
            .demo(true)
            .dev_server(true);
        let (_, help) = render(&perago, &["--help"]);
        assert!(
            help.contains("  demo ") && help.contains("  dev-server "),
            "{help}"
        );
    }

    #[test]
    fn the_hidden_child_entry_parses_in_a_team_binary() {
        let launcher =
            crate::supervisor::child::ChildLauncher::new("/bin/word-count", "app.word_count", 42);
        let args = std::iter::once("word-count".to_owned()).chain(launcher.args());
        let matches = team_app()
            .command()
            .try_get_matches_from(args)
            .unwrap_or_else(|err| panic!("{}", err.render()));
        match Cli::from_arg_matches(&matches).map(|cli| cli.command) {
            Ok(Command::Child {
                target,
                supervisor_pid,
                ..
            }) => {
                assert_eq!(target, "app.word_count");
                assert_eq!(supervisor_pid, 42);
            }
            other => panic!("unexpected parse: {other:?}"),
        }
    }
}
