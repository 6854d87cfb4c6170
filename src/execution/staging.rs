//! Staging branches (SPEC §7): their names, and deleting one a dead execution left behind.

use super::store::{WorkspaceRef, WorkspaceStore};
use crate::task::AttemptIdentity;
use crate::workspace::StagingBranch;

/// Replaces runs of characters outside `[A-Za-z0-9_-]` with `-`, trims leading and trailing
/// `-`/`_`, and falls back to `unknown`.
pub fn branch_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_run = false;
    for ch in raw.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
            out.push(ch);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '_');
    if trimmed.is_empty() {
        "unknown".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `perago-staging-<workflow>-<reference>-seq-<seq>-iteration-<iteration>-task-id-<task_id>-retry-<retry>-exec-<execution_id>`.
pub fn staging_branch_name(identity: &AttemptIdentity) -> String {
    format!(
        "perago-staging-{}-{}-seq-{}-iteration-{}-task-id-{}-retry-{}-exec-{}",
        branch_segment(&identity.workflow_instance_id),
        branch_segment(&identity.reference_task_name),
        identity.seq,
        identity.iteration,
        branch_segment(&identity.task_id),
        identity.retry_count,
        branch_segment(&identity.execution_id),
    )
}

/// Deletes a dead execution's staging branch through `store` (retried there; gone already
/// is fine). Without a store (no lakeFS configured) the branch cannot be reached, and its
/// workspace is kept so that the record is not lost.
pub fn release_staging_branch(
    store: Option<&dyn WorkspaceStore>,
    staging: &StagingBranch,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(store) = store else {
        return Err("lakeFS is not configured".into());
    };
    // Only the repository of the reference matters for a branch deletion.
    let workspace = WorkspaceRef {
        repository: staging.repository.clone(),
        branch: String::new(),
        reference: String::new(),
    };
    store
        .delete_staging_branch(&workspace, &staging.branch)
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_sanitised() {
        let cases = [
            ("abc-DEF_1", "abc-DEF_1"),
            ("a b/c", "a-b-c"),
            ("a  ..b", "a-b"),
            ("--a__", "a"),
            ("", "unknown"),
            ("***", "unknown"),
            ("é", "unknown"),
        ];
        for (raw, expected) in cases {
            assert_eq!(branch_segment(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn branch_name_has_the_spec_layout() {
        let identity = AttemptIdentity {
            task_id: "t-1".into(),
            workflow_instance_id: "wf 1".into(),
            retry_count: 2,
            task_def_name: "features.build".into(),
            reference_task_name: "build_ref".into(),
            seq: 3,
            iteration: 0,
            execution_id: "abc123".into(),
            worker_id: "w0001".into(),
        };
        assert_eq!(
            staging_branch_name(&identity),
            "perago-staging-wf-1-build_ref-seq-3-iteration-0-task-id-t-1-retry-2-exec-abc123"
        );
    }
}
