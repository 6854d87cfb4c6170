//! The seams between the attempt core and the outside world.
//!
//! The attempt state machine ([`super::attempt`]) owns the order of phases and the failure
//! classification; a [`WorkspaceStore`] owns how bytes move (lakeFS over HTTP in production,
//! a local directory for `perago run`, in-memory fakes in unit tests) and an
//! [`AttemptFence`] owns how "is this attempt still current?" is answered (the Conductor
//! task in production).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::task::{AttemptIdentity, CancelToken};
use crate::workspace::{ChangeSet, Snapshot};

/// The workspace an attempt reads: `{repository, branch, refType: "commit", ref}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRef {
    /// lakeFS repository.
    pub repository: String,
    /// Target branch that publication updates.
    pub branch: String,
    /// Immutable commit id the attempt reads.
    pub reference: String,
}

/// Why a store operation failed; the message becomes the failure reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// A store error with this message.
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
        }
    }
}

/// What stage needs: where the changed files are and where they go.
#[derive(Debug, Clone, Copy)]
pub struct StageRequest<'a> {
    /// The workspace being published.
    pub workspace: &'a WorkspaceRef,
    /// The staging branch to create from `workspace.reference` (must not exist).
    pub staging_branch: &'a str,
    /// lakeFS key prefix of the projection (`""` or `p/`).
    pub object_prefix: &'a str,
    /// The attempt workspace directory.
    pub source_dir: &'a Path,
    /// The local diff against the downloaded snapshot.
    pub changes: &'a ChangeSet,
    /// The identity of the attempt, for commit metadata.
    pub identity: &'a AttemptIdentity,
}

/// Moves workspace bytes between the store and an attempt directory, and publishes.
///
/// Every method must observe `cancel` in its waits and must never report success on
/// uncertain state.
pub trait WorkspaceStore: Send + Sync {
    /// Materialises the prefix projection of `workspace.reference` into `dest` and returns
    /// the snapshot of what was written.
    fn download(
        &self,
        workspace: &WorkspaceRef,
        object_prefix: &str,
        dest: &Path,
        cancel: &CancelToken,
    ) -> Result<Snapshot, StoreError>;

    /// Creates the staging branch, applies the diff and commits; returns the staged commit.
    /// Sets `*created = true` as soon as the branch exists, so cleanup can delete it.
    fn stage(
        &self,
        request: &StageRequest<'_>,
        created: &mut bool,
        cancel: &CancelToken,
    ) -> Result<String, StoreError>;

    /// Publishes the staged commit to the target branch; returns the published ref.
    fn publish(
        &self,
        workspace: &WorkspaceRef,
        staging_branch: &str,
        staged_commit: &str,
        merge_timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<String, StoreError>;

    /// Completes a writable attempt that changed nothing; returns the ref to report.
    fn publish_noop(
        &self,
        workspace: &WorkspaceRef,
        merge_timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<String, StoreError>;

    /// Deletes a staging branch (best effort; callers only log failures).
    fn delete_staging_branch(
        &self,
        workspace: &WorkspaceRef,
        staging_branch: &str,
    ) -> Result<(), StoreError>;
}

/// Why an attempt is no longer current.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FenceError {
    message: String,
}

impl FenceError {
    /// A fence failure with this message.
    pub fn new(message: impl Into<String>) -> FenceError {
        FenceError {
            message: message.into(),
        }
    }
}

/// Answers "is this attempt still the current one?" before anything is published.
pub trait AttemptFence: Send + Sync {
    /// `Ok` if the attempt is still current.
    fn check(&self, identity: &AttemptIdentity, cancel: &CancelToken) -> Result<(), FenceError>;
}

/// A fence that always passes: for local runs with no Conductor.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFence;

impl AttemptFence for NoFence {
    fn check(&self, _: &AttemptIdentity, _: &CancelToken) -> Result<(), FenceError> {
        Ok(())
    }
}

impl fmt::Display for WorkspaceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.repository, self.branch, self.reference)
    }
}
