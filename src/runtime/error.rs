//! [`RuntimeError`]: why a runtime could not start.

use std::io;

use crate::config::ConfigError;
use crate::workspace::WorkspaceError;

/// A runtime failed to start; nothing is left running when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No Conductor is configured and no [`ConductorApi`](crate::conductor::ConductorApi)
    /// was given (`CONDUCTOR_SERVER_URL is required for perago start`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `threads(0)`, or a task added with 0 threads.
    #[error("worker thread count must be at least 1")]
    NoThreads,
    /// The builder has no task.
    #[error("a runtime needs at least one task")]
    NoTasks,
    /// Two hosted tasks have the same name (Conductor task type).
    #[error("task '{task}' is added to the runtime more than once")]
    DuplicateTask {
        /// The repeated task name.
        task: String,
    },
    /// The workspace root is locked by another live runtime, or could not be locked.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// A thread could not be spawned.
    #[error("failed to start the {thread} thread")]
    Spawn {
        /// The thread's name.
        thread: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// SIGINT/SIGTERM handlers could not be installed.
    #[error("failed to install signal handlers")]
    Signals {
        /// The cause.
        #[source]
        source: io::Error,
    },
}
