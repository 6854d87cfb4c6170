//! The CLI's one error and exit policy.
//!
//! Every command returns a [`CommandResult`]: an [`Outcome`] when it ran to its end, or a
//! typed [`CliError`] when it could not. [`finish`] is the one place that prints either
//! (`error: <message>: <cause>: <cause of cause>`, every cause once, via
//! [`error_chain`]) and [`exit_code`] the one function that maps them to the
//! [`exit_code`](super::exit_code) constants. Thread mode, process mode's supervisor and
//! its children all end here, so the same failure prints the same line in every mode.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use super::exit_code as code;
use super::serve::ServeError;
use super::supervise::SupervisorError;
use crate::conductor::ConductorError;
use crate::config::ConfigError;
use crate::registry::TargetError;
use crate::runtime::RuntimeExit;
use crate::supervisor::imp::SupervisorExit;
use crate::supervisor::unix::ParentDeathError;
use crate::taskdef::ExtractError;
use crate::util::error_chain;

/// How a command that ran to its end ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Done; exit 0.
    Success,
    /// `perago run`: the attempt ran but did not complete (its JSON is on stdout).
    AttemptNotCompleted,
    /// A thread runtime (`start` in thread mode, or a process-mode child) stopped.
    Runtime(RuntimeExit),
    /// A process-mode supervisor stopped.
    Supervisor(SupervisorExit),
    /// `perago demo` ran, but some workflows failed (its report is on stdout).
    #[cfg(feature = "dev-server")]
    DemoFailures,
    /// `perago register --dry-run`: some TaskDef differs from the server's (listed on
    /// stdout).
    Differs,
    /// `perago workflow`: the workflow ended other than `COMPLETED` or did not end in time
    /// (said on stdout).
    WorkflowNotCompleted,
}

/// What a command hands back to [`finish`].
pub(crate) type CommandResult = Result<Outcome, CliError>;

/// Why a CLI command failed: printed as `error: <message>` followed by its causes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The configuration is invalid (its text is fixed by SPEC §2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configuration value is invalid; `origin` says where it came from (the SPEC text
    /// first, byte for byte, then the origin in parentheses).
    #[error("{error} ({origin})")]
    ConfigFrom {
        /// The error, whose text SPEC §2 fixes.
        error: ConfigError,
        /// `PERAGO_LOG_RETENTION from .env line 3`, `the default PERAGO_LOG_ROOT`.
        origin: String,
    },
    /// Writing to stdout failed (other than a closed pipe, which ends the command quietly).
    #[error("failed to write to stdout")]
    Stdout {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The target is unknown or its declaration is invalid.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A serving process (thread mode or a child) could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The process-mode supervisor could not run.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// `extract` could not write the TaskDef.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// The working directory (where `.env` is looked up) is unreadable.
    #[error("cannot read the current directory")]
    CurrentDir {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `run --input -`: stdin could not be read.
    #[error("failed to read input from stdin")]
    ReadStdin {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `run --input FILE`: the file could not be read.
    #[error("failed to read input {path}")]
    ReadInput {
        /// The path as given.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `run --input`: the text is not JSON.
    #[error("input {path} is not valid JSON")]
    InvalidInput {
        /// The path as given (`-` for stdin).
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `run --workspace-dir DIR`: no such directory.
    #[error("workspace directory {} does not exist", path.display())]
    WorkspaceDirMissing {
        /// The directory as given.
        path: PathBuf,
    },
    /// `run` of a workspace task without `--workspace-dir`.
    #[error("{task} is a workspace task; pass --workspace-dir DIR")]
    WorkspaceDirRequired {
        /// The task name.
        task: String,
    },
    /// A JSON document could not be encoded for stdout.
    #[error("failed to encode {what}")]
    Encode {
        /// What was encoded (`config`, `result`).
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A command given the same target twice.
    #[error("target '{target}' is given more than once")]
    RepeatedTarget {
        /// The repeated target.
        target: String,
    },
    /// `start -j 0` (text fixed by SPEC §12).
    #[error("worker process count must be at least 1")]
    NoWorkers,
    /// `start`: the TaskDef is not registered in Conductor.
    #[error(
        "Conductor TaskDef '{task}' is not registered; run perago extract and register it before start"
    )]
    TaskDefNotRegistered {
        /// The task name.
        task: String,
    },
    /// `start`: Conductor could not be asked for the TaskDef.
    #[error("failed to check Conductor TaskDef '{task}'")]
    TaskDefCheck {
        /// The task name.
        task: String,
        /// The cause (boxed: it is large and rare).
        #[source]
        source: Box<ConductorError>,
    },
    /// `perago gc` could not list or delete staging branches.
    #[error(transparent)]
    Gc(#[from] super::gc::GcError),
    /// An online check (`check --online`, `start`) failed.
    #[error(transparent)]
    Preflight(#[from] super::preflight::PreflightError),
    /// `register`: Conductor refused the TaskDef.
    #[error("failed to register Conductor TaskDef '{task}'")]
    Register {
        /// The task name.
        task: String,
        /// The cause (boxed: it is large and rare).
        #[source]
        source: Box<ConductorError>,
    },
    /// `workflow --param` without `=`.
    #[error("--param {pair} must be KEY=VALUE")]
    ParamInvalid {
        /// The argument as given.
        pair: String,
    },
    /// `workflow` of a workspace task.
    #[error(
        "perago workflow runs workspace-free tasks only; {task} needs a lakeFS commit in its input: start it from your own workflow definition"
    )]
    WorkflowWorkspaceTask {
        /// The task name.
        task: String,
    },
    /// `workflow`: a Conductor call failed.
    #[error("failed to {what}")]
    Workflow {
        /// What was attempted.
        what: &'static str,
        /// The cause.
        #[source]
        source: Box<ConductorError>,
    },
    /// `run --apply` / `--workspace-dir` for a workspace-free task.
    #[error("{flag} is only for workspace tasks; {task} is workspace-free")]
    FlagNeedsWorkspaceTask {
        /// The flag given.
        flag: &'static str,
        /// The task name.
        task: String,
    },
    /// `run --apply` without `--workspace-dir`.
    #[error("--apply needs --workspace-dir DIR")]
    ApplyNeedsWorkspaceDir,
    /// `start -j N` (all targets' counts together) beyond what one start is allowed.
    #[error(
        "{jobs} workers are more than one perago start can run (at most {max}); lower -j or the <target>=N counts"
    )]
    TooManyWorkers {
        /// All targets' worker counts together.
        jobs: usize,
        /// The limit.
        max: usize,
    },
    /// A supervised child could not tie its life to its supervisor's.
    #[error(transparent)]
    ParentDeath(#[from] ParentDeathError),
    /// A supervised child was started without its worker id.
    #[error("PERAGO_WORKER_ID must be set for a supervised child")]
    ChildWorkerIdMissing,
    /// SIGINT/SIGTERM handlers could not be installed (`dev-server`).
    #[cfg(feature = "dev-server")]
    #[error("failed to install signal handlers")]
    Signals {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `dev-server --addr` is not a resolvable `HOST:PORT`.
    #[cfg(feature = "dev-server")]
    #[error("invalid --addr {addr}; expected HOST:PORT")]
    DevServerAddr {
        /// As given.
        addr: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `demo --threads 0`.
    #[cfg(feature = "dev-server")]
    #[error("--threads must be at least 1")]
    DemoNoThreads,
    /// The dev server could not start.
    #[cfg(feature = "dev-server")]
    #[error(transparent)]
    DevServerStart(perago_devserver::DevServerError),
    /// The dev server could not save its state when stopping.
    #[cfg(feature = "dev-server")]
    #[error("failed to save dev server state")]
    DevServerStop {
        /// The cause.
        #[source]
        source: perago_devserver::DevServerError,
    },
    /// `perago demo` could not run to its end.
    #[cfg(feature = "dev-server")]
    #[error(transparent)]
    Demo(#[from] super::demo::DemoError),
}

/// The exit code for how a command ended; the one mapping from outcomes and errors to the
/// [`exit_code`](super::exit_code) constants.
pub(crate) fn exit_code(result: &CommandResult) -> u8 {
    match result {
        Ok(Outcome::Success) => code::OK,
        Ok(Outcome::AttemptNotCompleted) => code::ATTEMPT_NOT_COMPLETED,
        Ok(Outcome::Runtime(exit)) if exit.runtime_failure => code::RUNTIME_FAILURE,
        Ok(Outcome::Runtime(exit)) if exit.abandoned_attempts > 0 => code::ATTEMPTS_ABANDONED,
        Ok(Outcome::Runtime(exit)) if exit.forced => code::FORCED_DRAIN,
        Ok(Outcome::Runtime(_)) => code::OK,
        Ok(Outcome::Supervisor(exit)) if exit.is_clean() => code::OK,
        Ok(Outcome::Supervisor(_)) => code::CHILDREN_UNCLEAN,
        #[cfg(feature = "dev-server")]
        Ok(Outcome::DemoFailures) => code::ERROR,
        Ok(Outcome::Differs) => code::ERROR,
        Ok(Outcome::WorkflowNotCompleted) => code::WORKFLOW_NOT_COMPLETED,
        Err(CliError::Supervisor(SupervisorError::CurrentExe(_) | SupervisorError::Spawn(_))) => {
            code::CHILD_START_FAILED
        }
        Err(_) => code::ERROR,
    }
}

/// The `error: …` line a result prints on stderr, if any: the whole error chain for an
/// error, a summary for a runtime or supervisor that stopped uncleanly.
pub(crate) fn error_line(result: &CommandResult) -> Option<String> {
    let message = match result {
        Err(error) => error_chain(error),
        Ok(Outcome::Runtime(exit)) if exit.runtime_failure || exit.abandoned_attempts > 0 => {
            format!(
                "runtime stopped uncleanly: {} attempt(s) abandoned{}",
                exit.abandoned_attempts,
                if exit.runtime_failure {
                    ", a runtime thread failed"
                } else {
                    ""
                }
            )
        }
        Ok(Outcome::Runtime(exit)) if exit.forced => {
            "drain deadline passed: in-flight attempts were cancelled and reported FAILED"
                .to_owned()
        }
        Ok(Outcome::Supervisor(exit)) if !exit.is_clean() => format!(
            "supervisor stopped uncleanly: {} child process(es) killed, {} exited with a failure",
            exit.killed.len(),
            exit.unclean_exits.len()
        ),
        Ok(_) => return None,
    };
    Some(format!("error: {message}"))
}

/// Whether an I/O error in `error`'s chain is EPIPE: stdout's reader closed it.
fn is_broken_pipe(error: &CliError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// Writes one line to stdout; a closed pipe (`perago targets | head -1`) is not an error
/// worth a message: [`finish`] ends such a command quietly.
pub(crate) fn write_line(out: &mut impl io::Write, line: &str) -> Result<(), CliError> {
    writeln!(out, "{line}").map_err(|source| CliError::Stdout { source })
}

/// Prints the result's `error: …` line (if any) on stderr and returns its exit code.
///
/// A command that stopped because stdout is a closed pipe (EPIPE) exits 1 without a line:
/// the reader went away on purpose.
pub(crate) fn finish(result: CommandResult) -> ExitCode {
    if let Err(error) = &result
        && is_broken_pipe(error)
    {
        return ExitCode::from(code::ERROR);
    }
    if let Some(line) = error_line(&result) {
        eprintln!("{line}");
    }
    ExitCode::from(exit_code(&result))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::RuntimeConfig;
    use crate::runtime::{Runtime, RuntimeError};
    use crate::supervisor::child::CurrentExeError;
    use crate::supervisor::imp::UncleanExit;
    use crate::workspace::{SUPERVISOR_LOCK_FILE_NAME, acquire_supervisor_lock};

    fn exit(abandoned: u64, failure: bool) -> RuntimeExit {
        RuntimeExit {
            reason: None,
            forced: abandoned > 0,
            runtime_failure: failure,
            abandoned_attempts: abandoned,
            counters: Default::default(),
            tasks: Vec::new(),
            drain: None,
        }
    }

    #[test]
    fn the_same_lock_failure_prints_the_same_full_line_in_thread_and_process_mode() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(SUPERVISOR_LOCK_FILE_NAME)).unwrap();
        let env: BTreeMap<String, String> = [
            ("PERAGO_WORKSPACE_ROOT", root.path().display().to_string()),
            ("CONDUCTOR_SERVER_URL", "http://127.0.0.1:9/api".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let config =
            RuntimeConfig::from_env_map("examples.echo", &env, &Default::default()).unwrap();
        let task = crate::examples::targets().resolve("examples.echo").unwrap();

        // Thread mode: the runtime builder takes the lock (cli::serve wraps its error).
        let thread_error = match Runtime::builder(config, task)
            .lock_workspace_root(true)
            .start()
        {
            Err(error @ RuntimeError::Workspace(_)) => error,
            other => panic!("expected a lock failure, got {other:?}"),
        };
        let thread: CommandResult = Err(ServeError::Runtime(thread_error).into());
        // Process mode: the supervisor takes the lock itself.
        let process_error = acquire_supervisor_lock(root.path()).unwrap_err();
        let process: CommandResult = Err(SupervisorError::Lock(process_error).into());

        let line = error_line(&thread).unwrap();
        assert_eq!(Some(&line), error_line(&process).as_ref());
        let lock = root.path().join(SUPERVISOR_LOCK_FILE_NAME);
        let io_cause = std::io::Error::from_raw_os_error(21).to_string();
        assert_eq!(
            line,
            format!(
                "error: failed to acquire supervisor lock {}: {io_cause}",
                lock.display()
            ),
            "the message, then the OS cause"
        );
        assert_eq!(exit_code(&thread), code::ERROR);
        assert_eq!(exit_code(&process), code::ERROR);
    }

    #[test]
    fn a_chain_prints_every_cause_once() {
        let result: CommandResult = Err(CliError::ReadInput {
            path: "in.json".into(),
            source: io::Error::new(io::ErrorKind::NotFound, "No such file or directory"),
        });
        assert_eq!(
            error_line(&result).unwrap(),
            "error: failed to read input in.json: No such file or directory"
        );
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let json_text = json.to_string();
        let result: CommandResult = Err(CliError::InvalidInput {
            path: "-".into(),
            source: json,
        });
        let line = error_line(&result).unwrap();
        assert_eq!(
            line,
            format!("error: input - is not valid JSON: {json_text}")
        );
        assert_eq!(line.matches(&json_text).count(), 1);
    }

    #[test]
    fn every_outcome_has_its_exit_code_and_line() {
        let table: Vec<(CommandResult, u8, Option<&str>)> = vec![
            (Ok(Outcome::Success), code::OK, None),
            (
                Ok(Outcome::AttemptNotCompleted),
                code::ATTEMPT_NOT_COMPLETED,
                None,
            ),
            (Ok(Outcome::Runtime(exit(0, false))), code::OK, None),
            (
                Ok(Outcome::Runtime(exit(1, false))),
                code::ATTEMPTS_ABANDONED,
                Some("error: runtime stopped uncleanly: 1 attempt(s) abandoned"),
            ),
            (
                Ok(Outcome::Runtime(exit(0, true))),
                code::RUNTIME_FAILURE,
                Some(
                    "error: runtime stopped uncleanly: 0 attempt(s) abandoned, a runtime thread failed",
                ),
            ),
            (
                Ok(Outcome::Supervisor(SupervisorExit::default())),
                code::OK,
                None,
            ),
            (
                Ok(Outcome::Supervisor(SupervisorExit {
                    unclean_exits: vec![UncleanExit {
                        worker_id: "w0001".into(),
                        pid: 1,
                        status: "exit status: 3".into(),
                    }],
                    ..SupervisorExit::default()
                })),
                code::CHILDREN_UNCLEAN,
                Some(
                    "error: supervisor stopped uncleanly: 0 child process(es) killed, 1 exited with a failure",
                ),
            ),
            (
                Err(CliError::NoWorkers),
                code::ERROR,
                Some("error: worker process count must be at least 1"),
            ),
            (
                Err(SupervisorError::CurrentExe(CurrentExeError {
                    source: io::Error::other("gone"),
                })
                .into()),
                code::CHILD_START_FAILED,
                None,
            ),
        ];
        for (result, expected_code, expected_line) in table {
            assert_eq!(exit_code(&result), expected_code, "{result:?}");
            let line = error_line(&result);
            match expected_line {
                Some(expected) => assert_eq!(line.as_deref(), Some(expected)),
                None if result.is_err() => assert!(line.is_some(), "{result:?}"),
                None => assert_eq!(line, None, "{result:?}"),
            }
        }
    }
}
