//! Stage (SPEC §7): create the staging branch from the input ref, apply the local diff —
//! upload only new and changed files, delete removed ones, all under the task's prefix —
//! and commit, giving the staged commit C.
//!
//! Cost is proportional to the change, not to the workspace: a 10,000-file workspace with
//! 10 changed files costs 10 uploads. The staging branch must not exist; lakeFS answers 409
//! for an existing branch and stage fails closed without touching it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::client::{LakefsClient, LakefsError, UploadSource};
use super::download::{UnsafePathReason, check_relative_path};
use super::pool::{PoolStop, run_bounded};
use super::presign::PresignError;
use crate::execution::StageRequest;
use crate::task::CancelToken;

/// Why stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The workspace holds a symlink where a changed file should be.
    #[error("workspace publication does not support symlinks: {path}")]
    Symlink {
        /// Relative path of the symlink.
        path: String,
    },
    /// A changed path cannot be an object key (never produced by a local scan).
    #[error("refusing unsafe workspace path {path:?}: {reason}")]
    UnsafePath {
        /// The relative path.
        path: String,
        /// What is wrong with it.
        reason: UnsafePathReason,
    },
    /// A changed file could not be inspected.
    #[error("failed to read workspace file {}", path.display())]
    Read {
        /// The local file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The staging branch already exists: another execution owns that name.
    #[error("staging branch {branch} already exists")]
    BranchExists {
        /// The staging branch.
        branch: String,
    },
    /// The staging branch could not be created.
    #[error("failed to create staging branch {branch}")]
    CreateBranch {
        /// The staging branch.
        branch: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// A file could not be uploaded.
    #[error("failed to upload {key} to staging branch {branch}")]
    Upload {
        /// Object key.
        key: String,
        /// The staging branch.
        branch: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// Removed files could not be deleted.
    #[error("failed to delete {count} removed object(s) from staging branch {branch}")]
    Delete {
        /// How many keys were to be deleted.
        count: usize,
        /// The staging branch.
        branch: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// The commit failed.
    #[error("failed to commit staging branch {branch}")]
    Commit {
        /// The staging branch.
        branch: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// Cancellation was requested.
    #[error("stage cancelled")]
    Cancelled,
    /// An upload thread panicked (a bug).
    #[error("an upload thread panicked")]
    Panicked,
}

/// Counts of what one stage sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageStats {
    /// Objects uploaded (new and changed files).
    pub uploaded: usize,
    /// Objects deleted (removed files).
    pub deleted: usize,
}

/// Commit message and metadata that identify the attempt that published.
fn commit_details(request: &StageRequest<'_>) -> (String, BTreeMap<String, String>) {
    let identity = request.identity;
    let message = format!(
        "perago: publish {} task {} (workflow {}, retry {}, execution {})",
        identity.task_def_name,
        identity.task_id,
        identity.workflow_instance_id,
        identity.retry_count,
        identity.execution_id
    );
    let metadata = [
        ("perago.task_def_name", identity.task_def_name.clone()),
        ("perago.task_id", identity.task_id.clone()),
        (
            "perago.workflow_instance_id",
            identity.workflow_instance_id.clone(),
        ),
        ("perago.retry_count", identity.retry_count.to_string()),
        ("perago.execution_id", identity.execution_id.clone()),
        ("perago.worker_id", identity.worker_id.clone()),
        ("perago.input_ref", request.workspace.reference.clone()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    (message, metadata)
}

/// A cancelled call ends stage as cancelled; anything else gets its context.
fn classify(error: LakefsError, wrap: impl FnOnce(LakefsError) -> StageError) -> StageError {
    match error {
        LakefsError::Cancelled { .. } => StageError::Cancelled,
        other => wrap(other),
    }
}

/// Creates the staging branch, applies `request.changes` with at most `parallelism`
/// concurrent uploads, and commits; returns the staged commit id.
///
/// Sets `*created` as soon as the branch may exist (also when its creation timed out), so
/// the caller's cleanup deletes it.
pub fn stage_changes(
    client: &LakefsClient,
    request: &StageRequest<'_>,
    created: &mut bool,
    parallelism: usize,
    cancel: &CancelToken,
) -> Result<(String, StageStats), StageError> {
    stage_changes_with(client, request, created, parallelism, false, cancel)
}

/// Uploads one file: through a pre-signed URL when `presign` (falling back to the proxied
/// upload when the object store refuses), else through lakeFS.
fn upload_one(
    client: &LakefsClient,
    repository: &str,
    branch: &str,
    key: &str,
    local: &Path,
    presign: bool,
    cancel: &CancelToken,
) -> Result<(), LakefsError> {
    if presign {
        match client.upload_presigned(repository, branch, key, local, cancel) {
            Ok(_) => return Ok(()),
            Err(PresignError::Cancelled) => {
                return Err(LakefsError::Cancelled {
                    operation: "upload object",
                });
            }
            Err(error) => log::warn!(
                key = key,
                error = crate::util::error_chain(&error).as_str();
                "pre-signed upload failed; uploading through lakeFS"
            ),
        }
    }
    client
        .upload_object(repository, branch, key, UploadSource::File(local), cancel)
        .map(drop)
}

/// [`stage_changes`], uploading through pre-signed URLs when `presign` is set.
pub fn stage_changes_with(
    client: &LakefsClient,
    request: &StageRequest<'_>,
    created: &mut bool,
    parallelism: usize,
    presign: bool,
    cancel: &CancelToken,
) -> Result<(String, StageStats), StageError> {
    let repository = request.workspace.repository.as_str();
    let branch = request.staging_branch;
    let changes = request.changes;
    let uploads: Vec<&String> = changes.added.iter().chain(&changes.modified).collect();
    // Check everything local before creating anything remote.
    for path in uploads.iter().copied().chain(&changes.deleted) {
        check_relative_path(path).map_err(|reason| StageError::UnsafePath {
            path: path.clone(),
            reason,
        })?;
    }
    for path in &uploads {
        let local = request.source_dir.join(path);
        let metadata = fs::symlink_metadata(&local).map_err(|source| StageError::Read {
            path: local.clone(),
            source,
        })?;
        if metadata.file_type().is_symlink() {
            return Err(StageError::Symlink {
                path: (*path).clone(),
            });
        }
    }

    match client.create_branch(repository, branch, &request.workspace.reference, cancel) {
        Ok(_) => *created = true,
        Err(error) if error.is_conflict() => {
            return Err(StageError::BranchExists {
                branch: branch.to_owned(),
            });
        }
        Err(error) => {
            if error.is_uncertain() {
                *created = true;
            }
            return Err(classify(error, |source| StageError::CreateBranch {
                branch: branch.to_owned(),
                source: Box::new(source),
            }));
        }
    }

    run_bounded(
        "lakefs-upload",
        parallelism,
        &uploads,
        cancel,
        |stop| match stop {
            PoolStop::Cancelled => StageError::Cancelled,
            PoolStop::Panicked => StageError::Panicked,
        },
        |path| {
            let key = format!("{}{path}", request.object_prefix);
            let local = request.source_dir.join(path.as_str());
            upload_one(client, repository, branch, &key, &local, presign, cancel).map_err(|error| {
                classify(error, |source| StageError::Upload {
                    key: key.clone(),
                    branch: branch.to_owned(),
                    source: Box::new(source),
                })
            })
        },
    )?;

    if !changes.deleted.is_empty() {
        let keys: Vec<String> = changes
            .deleted
            .iter()
            .map(|path| format!("{}{path}", request.object_prefix))
            .collect();
        client
            .delete_objects(repository, branch, &keys, cancel)
            .map_err(|error| {
                classify(error, |source| StageError::Delete {
                    count: keys.len(),
                    branch: branch.to_owned(),
                    source: Box::new(source),
                })
            })?;
    }

    let (message, metadata) = commit_details(request);
    let commit = client
        .commit(repository, branch, &message, &metadata, cancel)
        .map_err(|error| {
            classify(error, |source| StageError::Commit {
                branch: branch.to_owned(),
                source: Box::new(source),
            })
        })?;
    Ok((
        commit.id,
        StageStats {
            uploaded: uploads.len(),
            deleted: changes.deleted.len(),
        },
    ))
}
