//! Attempt workspaces on the local disk (SPEC §8): creation with a marker, live-owner
//! tracking, garbage collection, the supervisor lock, and file snapshots for publication.
//!
//! - [`attempt_dir`]: [`create_attempt_dir`] makes `<root>/task_id=<..>-exec=<..>` exclusively
//!   and writes its marker; ids come from [`new_execution_id`] and [`new_owner_token`].
//! - [`marker`]: the [`Marker`] file `.perago-attempt.json` and its validation.
//! - [`owners`]: [`LiveOwners`], the in-process registry of running attempts, and
//!   [`pid_is_alive`].
//! - [`gc`]: [`sweep`] and [`remove_for_owner`]; never deletes without a valid marker and never
//!   follows symlinks.
//! - [`lock`]: [`acquire_supervisor_lock`], one runtime per workspace root.
//! - [`snapshot`]: [`Snapshot`], [`diff`] and hashing helpers for the publication diff.

use std::io;
use std::path::PathBuf;

pub mod attempt_dir;
pub mod gc;
pub mod lock;
pub mod marker;
pub mod owners;
pub mod snapshot;
pub mod walk;

pub use attempt_dir::{AttemptDir, create_attempt_dir, new_execution_id};
#[cfg(feature = "cli")]
pub use gc::remove_for_owner;
pub use gc::sweep_releasing;
pub use lock::{
    LockOwner, SUPERVISOR_LOCK_FILE_NAME, SupervisorLock, acquire_supervisor_lock,
    acquire_workspace_lock,
};
pub use marker::{MARKER_FILE_NAME, Marker, StagingBranch};
pub use owners::{LiveOwners, new_owner_token};
pub use snapshot::{ChangeSet, FileState, HashingWriter, Snapshot, diff};
pub use walk::{WorkspaceEntry, walk};

/// Failure to create, remove or lock workspaces.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The workspace root could not be created.
    #[error("failed to create workspace root {}", path.display())]
    CreateRoot {
        /// The workspace root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The attempt workspace already exists; directories are never reused.
    #[error("attempt workspace {} already exists", path.display())]
    AttemptDirExists {
        /// The existing directory.
        path: PathBuf,
    },
    /// The attempt workspace could not be created.
    #[error("failed to create attempt workspace {}", path.display())]
    CreateAttemptDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The marker could not be written (when creating the workspace, it was removed again).
    #[error("failed to write attempt marker {}", path.display())]
    WriteMarker {
        /// The marker file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The attempt workspace could not be (fully) deleted.
    #[error("failed to remove attempt workspace {}", path.display())]
    RemoveAttemptDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Another live process holds the workspace lock.
    #[error(
        "workspace root {} is already locked by {owner} pid {pid}; use a different PERAGO_WORKSPACE_ROOT for each {owner}",
        root.display()
    )]
    Locked {
        /// The workspace root.
        root: PathBuf,
        /// The pid in the lock file.
        pid: u32,
        /// What kind of process holds it.
        owner: LockOwner,
    },
    /// The lock file could not be created, read or replaced.
    #[error("failed to acquire supervisor lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
