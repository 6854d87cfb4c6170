//! Publish (SPEC §7): move the target branch by its head state, fail closed otherwise.
//!
//! Let A be the input ref, H the target branch head, C the staged commit.
//!
//! | head state              | with a staged commit C               | writable no-op            |
//! |-------------------------|--------------------------------------|---------------------------|
//! | `H == A`                | squash-merge C into the target       | complete with A           |
//! | `first_parent(H) == A`  | hard-reset the target to C (`A -> C`)| hard-reset the target to A|
//! | anything else           | fail closed, target untouched        | fail closed               |
//!
//! `first_parent(H) == A` means H is an earlier publication of this same input whose attempt
//! was abandoned (its result never reached Conductor); replacing it keeps the visible history
//! `A -> C`, never `A -> H -> C`. A hard reset is refused when the target carries uncommitted
//! changes, as a merge would be. Merges and resets run under the publish budget's merge
//! timeout; a timeout, dropped connection or server error leaves the outcome uncertain and is
//! reported as a failure, never as success (the next attempt finds the head state and
//! resolves it). No empty commit is ever created.

use std::collections::BTreeMap;
use std::time::Duration;

use super::client::{LakefsClient, LakefsError};
use crate::task::CancelToken;

/// Which row of the protocol a publication took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishPath {
    /// `H == A`: the staged commit was squash-merged.
    Merged,
    /// `first_parent(H) == A`: the target was hard-reset to the staged commit.
    Replaced,
    /// No-op with `H == A`: nothing was written.
    Unchanged,
    /// No-op with `first_parent(H) == A`: the target was hard-reset back to A.
    Relocated,
}

/// The result of a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The ref to report as the output workspace ref.
    pub reference: String,
    /// The protocol row taken.
    pub path: PublishPath,
}

/// Why publication failed. The target branch was not changed unless the variant says the
/// outcome is uncertain.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The target head could not be read.
    #[error("failed to read the head of target branch {branch}")]
    ReadHead {
        /// Target branch.
        branch: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// The head commit could not be read.
    #[error("failed to read commit {commit} of target branch {branch}")]
    ReadCommit {
        /// Target branch.
        branch: String,
        /// The commit.
        commit: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// Publish fence: the target moved on independently.
    #[error(
        "publish fence: target branch {branch} head {head} is neither the input ref {input} nor a publication on top of it; target left untouched"
    )]
    Fence {
        /// Target branch.
        branch: String,
        /// Its head.
        head: String,
        /// The input ref.
        input: String,
    },
    /// The target has uncommitted changes, so a hard reset would not give a clean head.
    #[error("target branch {branch} has uncommitted changes; refusing to reset it")]
    Dirty {
        /// Target branch.
        branch: String,
    },
    /// The uncommitted-changes check failed.
    #[error("failed to check target branch {branch} for uncommitted changes")]
    DirtyCheck {
        /// Target branch.
        branch: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// lakeFS refused the merge; the target is unchanged.
    #[error("failed to merge {staged} into {branch}")]
    Merge {
        /// Target branch.
        branch: String,
        /// The staged commit.
        staged: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// lakeFS refused the hard reset; the target is unchanged.
    #[error("failed to reset {branch} to {target}")]
    Reset {
        /// Target branch.
        branch: String,
        /// The commit it was to point at.
        target: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// The merge or reset timed out, lost its connection or hit a server error: it may or
    /// may not have happened.
    #[error("{action} of {branch} to {target} has an uncertain outcome; not reporting success")]
    Uncertain {
        /// `merge` or `hard reset`.
        action: &'static str,
        /// Target branch.
        branch: String,
        /// The staged commit or input ref.
        target: String,
        /// The cause.
        #[source]
        source: Box<LakefsError>,
    },
    /// Cancellation was requested. When it interrupted a merge or reset, that request may
    /// still take effect on the server: the attempt fails anyway, and a retry finds the
    /// abandoned publication through the publish fence (SPEC §7).
    #[error("publish cancelled")]
    Cancelled,
}

enum HeadState {
    AtInput,
    AbandonedPublication,
}

/// Reads H and decides which row applies; fails closed on any other head.
fn head_state(
    client: &LakefsClient,
    repository: &str,
    branch: &str,
    input: &str,
    cancel: &CancelToken,
) -> Result<HeadState, PublishError> {
    let head = client
        .get_branch(repository, branch, cancel)
        .map_err(|source| match source {
            LakefsError::Cancelled { .. } => PublishError::Cancelled,
            source => PublishError::ReadHead {
                branch: branch.to_owned(),
                source: Box::new(source),
            },
        })?
        .commit_id;
    if head == input {
        return Ok(HeadState::AtInput);
    }
    let commit = client
        .get_commit(repository, &head, cancel)
        .map_err(|source| match source {
            LakefsError::Cancelled { .. } => PublishError::Cancelled,
            source => PublishError::ReadCommit {
                branch: branch.to_owned(),
                commit: head.clone(),
                source: Box::new(source),
            },
        })?;
    if commit.first_parent() == Some(input) {
        Ok(HeadState::AbandonedPublication)
    } else {
        Err(PublishError::Fence {
            branch: branch.to_owned(),
            head,
            input: input.to_owned(),
        })
    }
}

fn reset(
    client: &LakefsClient,
    repository: &str,
    branch: &str,
    target: &str,
    timeout: Option<Duration>,
    cancel: &CancelToken,
) -> Result<(), PublishError> {
    let dirty = client
        .has_uncommitted_changes(repository, branch, cancel)
        .map_err(|source| match source {
            LakefsError::Cancelled { .. } => PublishError::Cancelled,
            source => PublishError::DirtyCheck {
                branch: branch.to_owned(),
                source: Box::new(source),
            },
        })?;
    if dirty {
        return Err(PublishError::Dirty {
            branch: branch.to_owned(),
        });
    }
    client
        .hard_reset(repository, branch, target, timeout, cancel)
        .map_err(|source| match source {
            LakefsError::Cancelled { .. } => PublishError::Cancelled,
            source if source.is_uncertain() => PublishError::Uncertain {
                action: "hard reset",
                branch: branch.to_owned(),
                target: target.to_owned(),
                source: Box::new(source),
            },
            source => PublishError::Reset {
                branch: branch.to_owned(),
                target: target.to_owned(),
                source: Box::new(source),
            },
        })
}

/// Publishes the staged commit `staged` to `branch` (input ref `input`).
pub fn publish_staged(
    client: &LakefsClient,
    repository: &str,
    branch: &str,
    input: &str,
    staged: &str,
    merge_timeout: Option<Duration>,
    cancel: &CancelToken,
) -> Result<Published, PublishError> {
    match head_state(client, repository, branch, input, cancel)? {
        HeadState::AtInput => {
            let message = format!("perago: publish {staged} onto {input}");
            let metadata = BTreeMap::from([
                ("perago.staged_commit".to_owned(), staged.to_owned()),
                ("perago.input_ref".to_owned(), input.to_owned()),
            ]);
            let reference = client
                .merge(
                    repository,
                    staged,
                    branch,
                    &message,
                    &metadata,
                    true,
                    merge_timeout,
                    cancel,
                )
                .map_err(|source| match source {
                    LakefsError::Cancelled { .. } => PublishError::Cancelled,
                    source if source.is_uncertain() => PublishError::Uncertain {
                        action: "merge",
                        branch: branch.to_owned(),
                        target: staged.to_owned(),
                        source: Box::new(source),
                    },
                    source => PublishError::Merge {
                        branch: branch.to_owned(),
                        staged: staged.to_owned(),
                        source: Box::new(source),
                    },
                })?;
            Ok(Published {
                reference,
                path: PublishPath::Merged,
            })
        }
        HeadState::AbandonedPublication => {
            reset(client, repository, branch, staged, merge_timeout, cancel)?;
            Ok(Published {
                reference: staged.to_owned(),
                path: PublishPath::Replaced,
            })
        }
    }
}

/// Completes a writable attempt that changed nothing: never an empty commit.
pub fn publish_noop(
    client: &LakefsClient,
    repository: &str,
    branch: &str,
    input: &str,
    merge_timeout: Option<Duration>,
    cancel: &CancelToken,
) -> Result<Published, PublishError> {
    match head_state(client, repository, branch, input, cancel)? {
        HeadState::AtInput => Ok(Published {
            reference: input.to_owned(),
            path: PublishPath::Unchanged,
        }),
        HeadState::AbandonedPublication => {
            reset(client, repository, branch, input, merge_timeout, cancel)?;
            Ok(Published {
                reference: input.to_owned(),
                path: PublishPath::Relocated,
            })
        }
    }
}
