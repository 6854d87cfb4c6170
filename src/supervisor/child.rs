//! How the supervisor starts a child: the hidden subcommand, the command line and the
//! environment, all defined here and only here.
//!
//! A child is the current executable re-run as
//! `<exe> __perago-child --supervisor-pid <supervisor pid> <target>` with
//! `PERAGO_WORKER_ID=<prefix><slot as 4 digits>` added to the supervisor's own environment;
//! everything else (the `.env` file in the same working directory, the other variables) is
//! inherited, so the child loads the same configuration the supervisor loaded. The child
//! runs the thread runtime with one worker thread under that worker id (see
//! the CLI's hidden entry, `cli::child`).
//!
//! Because it re-executes *the current binary* through the library's CLI (`cli::main_with`,
//! which every task binary calls, whatever name it has), process mode works the same for
//! `perago` and for a user's own binary that registers its targets. The executable is resolved once, when the
//! supervisor starts: if the binary is replaced on disk later (an upgrade), restarted children
//! still run the file the supervisor resolved, and if it was deleted, restarts fail and are
//! retried with backoff rather than silently running a different program.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::parse::vars::PERAGO_WORKER_ID;

/// The hidden CLI subcommand a supervised child runs. Not for direct use.
pub const CHILD_SUBCOMMAND: &str = "__perago-child";

/// The long option of [`CHILD_SUBCOMMAND`] carrying the supervisor's pid, which the child
/// checks against its parent (see [`die_with_parent`](super::die_with_parent)).
pub const SUPERVISOR_PID_ARG: &str = "supervisor-pid";

/// The hidden child option naming the file the child writes its admin address to.
pub const ADMIN_FILE_ARG: &str = "admin-file";

/// The worker id of slot `slot` (from 1): `<prefix><slot as 4 zero-padded digits>`, e.g.
/// `prodAFeaturesBuild0001` (SPEC §2). A restarted slot keeps its id.
pub fn child_worker_id(prefix: &str, slot: usize) -> String {
    format!("{prefix}{slot:04}")
}

/// The current executable could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("failed to resolve the current executable to start child processes")]
pub struct CurrentExeError {
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// Everything needed to start children: the executable (resolved once), the target and the
/// supervisor's pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildLauncher {
    exe: PathBuf,
    target: String,
    supervisor_pid: u32,
    /// Where children write their admin listener's address (process-mode admin).
    admin_dir: Option<PathBuf>,
    env_file: Option<PathBuf>,
}

impl ChildLauncher {
    /// Resolves the current executable (once: see the [module docs](self)) for children
    /// serving `target` under this process.
    pub fn for_current_exe(target: &str) -> Result<ChildLauncher, CurrentExeError> {
        let exe = std::env::current_exe().map_err(|source| CurrentExeError { source })?;
        Ok(ChildLauncher::new(exe, target, std::process::id()))
    }

    /// A launcher for an explicit executable and supervisor pid.
    pub fn new(exe: impl Into<PathBuf>, target: &str, supervisor_pid: u32) -> ChildLauncher {
        ChildLauncher {
            exe: exe.into(),
            target: target.to_owned(),
            supervisor_pid,
            admin_dir: None,
            env_file: None,
        }
    }

    /// Children also run a loopback admin listener and write its address to
    /// `<dir>/<worker id>.addr` (see `admin::supervisor`).
    pub fn with_admin_dir(mut self, dir: impl Into<PathBuf>) -> ChildLauncher {
        self.admin_dir = Some(dir.into());
        self
    }

    /// Children read `path` instead of `./.env` (the CLI's global `--env-file`); `None`
    /// keeps `./.env`.
    pub fn with_env_file(mut self, path: Option<PathBuf>) -> ChildLauncher {
        self.env_file = path;
        self
    }

    /// The executable children run.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The target children serve.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The arguments after the program name.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            CHILD_SUBCOMMAND.to_owned(),
            format!("--{SUPERVISOR_PID_ARG}"),
            self.supervisor_pid.to_string(),
            self.target.clone(),
        ];
        if let Some(path) = &self.env_file {
            args.push("--env-file".to_owned());
            args.push(path.display().to_string());
        }
        args
    }

    /// The command for the child with worker id `worker_id`: inherited environment plus
    /// `PERAGO_WORKER_ID`, stdin closed, stdout and stderr shared with the supervisor, and
    /// its own process group, so a terminal's Ctrl-C reaches only the supervisor (which
    /// forwards it) and a kill can take the child's whole group.
    pub fn command(&self, worker_id: &str) -> Command {
        let mut command = Command::new(&self.exe);
        command.args(self.args());
        if let Some(dir) = &self.admin_dir {
            command
                .arg(format!("--{ADMIN_FILE_ARG}"))
                .arg(dir.join(format!("{worker_id}.addr")));
        }
        command
            .env(PERAGO_WORKER_ID, worker_id)
            .stdin(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_are_prefix_and_four_digit_slot() {
        let table = [
            ("prodAFeaturesBuild", 1, "prodAFeaturesBuild0001"),
            ("w", 12, "w0012"),
            ("w", 9999, "w9999"),
            ("w", 12345, "w12345"),
        ];
        for (prefix, slot, expected) in table {
            assert_eq!(child_worker_id(prefix, slot), expected);
        }
    }

    #[test]
    fn command_line_and_environment() {
        let launcher = ChildLauncher::new("/opt/bin/worker", "app.features", 4242);
        let command = launcher.command("appfeatures0003");
        assert_eq!(command.get_program(), "/opt/bin/worker");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            ["__perago-child", "--supervisor-pid", "4242", "app.features"]
        );
        let envs: Vec<_> = command.get_envs().collect();
        assert_eq!(
            envs,
            [(
                std::ffi::OsStr::new("PERAGO_WORKER_ID"),
                Some(std::ffi::OsStr::new("appfeatures0003"))
            )],
            "only the worker id is added; the rest is inherited"
        );
    }

    #[test]
    fn current_exe_resolves() {
        match ChildLauncher::for_current_exe("t") {
            Ok(launcher) => assert!(launcher.exe().is_file()),
            Err(e) => panic!("{e}"),
        }
    }
}
