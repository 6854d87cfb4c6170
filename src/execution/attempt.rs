//! The attempt state machine (SPEC §6): one execution of one task attempt, from input checks
//! to a classified [`AttemptResult`].
//!
//! ```text
//! input → [workspace: attempt dir + download → pre guardrails] → body → result validation
//!       → [workspace: post guardrails → read-only | fence → no-op | fence → stage → fence → publish]
//!       → finally: delete staging branch (if created), delete attempt dir
//! ```
//!
//! Every failure is classified by the phase it happened in; cleanup failures are logged and
//! never change the result. A panic in the body is caught here and becomes `FAILED`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use super::input::{ParsedInput, completed_output, parse_input, workspace_output};
use super::staging::staging_branch_name;
use super::store::{AttemptFence, StageRequest, WorkspaceRef, WorkspaceStore};
use crate::logging::panic::{PanicContext, attempt_scope, payload_text};
use crate::metrics::MetricRecorder;
use crate::result::{AttemptResult, Phase, TaskStatus, truncate_reason};
use crate::task::contract::HandlerError;
use crate::task::guardrail::{GuardrailPhase, check_all};
use crate::task::{
    AttemptIdentity, CancelToken, InProgress, Task, TaskContext, TaskError, TaskLogSink,
};
use crate::workspace::{
    AttemptDir, ChangeSet, LiveOwners, Marker, Snapshot, StagingBranch, create_attempt_dir, diff,
    new_owner_token,
};

/// The failure reason when a writable workspace task returns an in-progress outcome.
pub const IN_PROGRESS_WRITABLE_REASON: &str = "in-progress outcomes are not supported for writable workspace tasks (publication happens only with a final outcome); nothing was published";

/// The failure reason when the shutdown deadline cancels an attempt.
pub const SHUTDOWN_DEADLINE_REASON: &str = "worker shutdown deadline exceeded";

/// Everything an attempt needs from its runtime.
pub struct AttemptEnv<'a> {
    /// Root under which attempt workspaces are created.
    pub workspace_root: &'a Path,
    /// Where workspaces come from and go to (workspace tasks only).
    pub store: Option<&'a dyn WorkspaceStore>,
    /// The attempt fence.
    pub fence: &'a dyn AttemptFence,
    /// Live owner tokens of this process (GC never removes a live attempt's directory).
    pub owners: &'a LiveOwners,
    /// Character limit of failure reasons.
    pub failure_reason_max_length: usize,
    /// Fires when the shutdown deadline is reached.
    pub cancel: CancelToken,
    /// Where `ctx.log()` lines go besides the worker log (Conductor's task log).
    pub task_log: Option<TaskLogSink>,
    /// The task's output as delivered: the intermediate output of its last in-progress
    /// outcome on a re-delivery, `{}` (or `None`) otherwise.
    pub previous_output: Option<&'a Value>,
}

/// What the body produced, when it did not fail.
enum BodyOutcome {
    Result(Value),
    InProgress(InProgress),
}

/// What a successful run reports.
enum Outcome {
    Completed(Value),
    InProgress(InProgress),
}

/// The outcome of one attempt, with what the runtime logs about it.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    /// What to report to Conductor.
    pub result: AttemptResult,
    /// The phase that failed, if any.
    pub failed_phase: Option<Phase>,
    /// Wall time per phase, in execution order.
    pub timings: Vec<(Phase, Duration)>,
    /// The local diff of a writable workspace task, once computed.
    pub changes: Option<ChangeSet>,
    /// Length in characters of the failure reason before truncation, when it was truncated.
    pub reason_original_chars: Option<usize>,
    /// Cleanup problems that were logged and did not change the result.
    pub cleanup_errors: Vec<String>,
    /// Bytes of the downloaded workspace, once downloaded.
    pub download_bytes: Option<u64>,
    /// Bytes of the workspace as staged (every file, as the reference counts), when staged.
    pub upload_bytes: Option<u64>,
}

struct Failure {
    phase: Phase,
    status: TaskStatus,
    reason: String,
}

impl Failure {
    fn failed(phase: Phase, reason: impl Into<String>) -> Failure {
        Failure {
            phase,
            status: TaskStatus::Failed,
            reason: reason.into(),
        }
    }

    fn terminal(phase: Phase, reason: impl Into<String>) -> Failure {
        Failure {
            phase,
            status: TaskStatus::FailedWithTerminalError,
            reason: reason.into(),
        }
    }
}

/// Watches one attempt as it runs: the runtime uses it for `/status` phases and to hand the
/// body its metrics recorder. Every method has a no-op default.
pub trait AttemptObserver: Sync {
    /// A phase starts.
    fn phase(&self, _phase: Phase) {}

    /// The recorder the body's [`TaskContext`] gets (default: one that drops samples).
    fn recorder(&self) -> MetricRecorder {
        MetricRecorder::disabled()
    }
}

/// An [`AttemptObserver`] that observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl AttemptObserver for NoObserver {}

struct Run<'a> {
    task: &'a Task,
    identity: &'a AttemptIdentity,
    env: &'a AttemptEnv<'a>,
    observer: &'a dyn AttemptObserver,
    download_bytes: Option<u64>,
    upload_bytes: Option<u64>,
    timings: Vec<(Phase, Duration)>,
    changes: Option<ChangeSet>,
    staging_created: Option<(WorkspaceRef, String)>,
    attempt_dir: Option<AttemptDir>,
    /// The marker written into `attempt_dir`, kept to record the staging branch in it.
    marker: Option<Marker>,
    owner_token: String,
}

impl<'a> Run<'a> {
    fn timed<T>(&mut self, phase: Phase, step: impl FnOnce(&mut Self) -> T) -> T {
        self.observer.phase(phase);
        let started = Instant::now();
        let value = step(self);
        self.timings.push((phase, started.elapsed()));
        value
    }

    fn check_cancel(&self, phase: Phase) -> Result<(), Failure> {
        if self.env.cancel.is_cancelled() {
            Err(Failure::failed(
                phase,
                format!("{SHUTDOWN_DEADLINE_REASON} before {phase}"),
            ))
        } else {
            Ok(())
        }
    }

    fn body(&mut self, params: Value) -> Result<BodyOutcome, Failure> {
        self.check_cancel(Phase::Body)?;
        let workspace = self
            .attempt_dir
            .as_ref()
            .map(|dir| dir.path().to_path_buf());
        let previous = self.env.previous_output.and_then(Value::as_object).cloned();
        let ctx = TaskContext::new(self.identity.clone(), self.env.cancel.clone(), workspace)
            .with_task_log(self.env.task_log.clone())
            .with_previous_output(previous)
            .with_metrics(self.observer.recorder());
        let task = self.task;
        let outcome = {
            let _panics = attempt_scope(PanicContext {
                task_id: self.identity.task_id.clone(),
                workflow_instance_id: self.identity.workflow_instance_id.clone(),
                execution_id: self.identity.execution_id.clone(),
            });
            catch_unwind(AssertUnwindSafe(|| task.call(&ctx, params)))
        };
        let value = match outcome {
            Err(payload) => {
                return Err(Failure::failed(
                    Phase::Body,
                    format!("task body panicked: {}", payload_text(payload.as_ref())),
                ));
            }
            Ok(Err(HandlerError::InvalidParams(error))) => {
                return Err(Failure::failed(
                    Phase::Input,
                    format!("invalid params: {error}"),
                ));
            }
            Ok(Err(HandlerError::InvalidResult(error))) => {
                return Err(Failure::failed(
                    Phase::Body,
                    format!("invalid result: {error}"),
                ));
            }
            Ok(Err(HandlerError::Body(TaskError::Terminal(reason)))) => {
                return Err(Failure::terminal(Phase::Body, reason));
            }
            Ok(Err(HandlerError::Body(TaskError::InProgress(progress)))) => {
                if self.task.is_writable() {
                    return Err(Failure::failed(Phase::Body, IN_PROGRESS_WRITABLE_REASON));
                }
                return Ok(BodyOutcome::InProgress(progress));
            }
            Ok(Err(HandlerError::Body(error))) => {
                return Err(Failure::failed(Phase::Body, error.reason()));
            }
            Ok(Ok(value)) => value,
        };
        if !value.is_object() {
            return Err(Failure::failed(
                Phase::Body,
                "invalid result: result must be a JSON object",
            ));
        }
        self.task
            .validate_result(&value)
            .map_err(|error| Failure::failed(Phase::Body, format!("invalid result: {error}")))?;
        Ok(BodyOutcome::Result(value))
    }

    fn run(&mut self, input: &Value) -> Result<Outcome, Failure> {
        let ParsedInput { workspace, params } = self
            .timed(Phase::Input, |_| parse_input(self.task, input))
            .map_err(|reason| Failure::failed(Phase::Input, reason))?;
        let Some(workspace) = workspace else {
            return match self.timed(Phase::Body, |run| run.body(params))? {
                BodyOutcome::Result(result) => {
                    Ok(Outcome::Completed(completed_output(None, result)))
                }
                BodyOutcome::InProgress(progress) => Ok(Outcome::InProgress(progress)),
            };
        };
        let Some(spec) = self.task.workspace().cloned() else {
            return Err(Failure::failed(Phase::Input, "task has no workspace spec"));
        };
        let before = self.timed(Phase::Download, |run| run.download(&workspace))?;
        let root = self.root()?;
        self.timed(Phase::PreGuardrail, |_| {
            check_all(&root, spec.pre_guardrails(), GuardrailPhase::Pre)
        })
        .map_err(|violation| Failure::terminal(Phase::PreGuardrail, violation.to_string()))?;
        // Only a read-only workspace task gets an in-progress outcome this far (a writable
        // one failed in `body`): nothing to check or publish for an unfinished attempt.
        let result = match self.timed(Phase::Body, |run| run.body(params))? {
            BodyOutcome::Result(result) => result,
            BodyOutcome::InProgress(progress) => return Ok(Outcome::InProgress(progress)),
        };
        self.timed(Phase::PostGuardrail, |_| {
            check_all(&root, spec.post_guardrails(), GuardrailPhase::Post)
        })
        .map_err(|violation| Failure::failed(Phase::PostGuardrail, violation.to_string()))?;
        let published = if spec.is_read_only() {
            workspace.reference.clone()
        } else {
            self.publish(&workspace, &before, &root)?
        };
        Ok(Outcome::Completed(completed_output(
            Some(workspace_output(&workspace, &published)),
            result,
        )))
    }

    fn root(&self) -> Result<std::path::PathBuf, Failure> {
        self.attempt_dir
            .as_ref()
            .map(|dir| dir.path().to_path_buf())
            .ok_or_else(|| Failure::failed(Phase::Download, "attempt workspace was not created"))
    }

    fn store(&self, phase: Phase) -> Result<&'a dyn WorkspaceStore, Failure> {
        self.env
            .store
            .ok_or_else(|| Failure::failed(phase, "LakeFS config is required for workspace tasks"))
    }

    fn download(&mut self, workspace: &WorkspaceRef) -> Result<Snapshot, Failure> {
        self.check_cancel(Phase::Download)?;
        let store = self.store(Phase::Download)?;
        let marker = Marker {
            workflow_instance_id: self.identity.workflow_instance_id.clone(),
            task_id: self.identity.task_id.clone(),
            execution_id: self.identity.execution_id.clone(),
            retry_count: self.identity.retry_count,
            task_def_name: self.identity.task_def_name.clone(),
            owner_worker_id: self.identity.worker_id.clone(),
            owner_pid: std::process::id(),
            owner_token: self.owner_token.clone(),
            started_at: Utc::now().fixed_offset(),
            staging: None,
        };
        let dir = create_attempt_dir(self.env.workspace_root, &marker).map_err(|error| {
            Failure::failed(
                Phase::Download,
                format!("failed to create attempt workspace: {error}"),
            )
        })?;
        let path = dir.path().to_path_buf();
        self.attempt_dir = Some(dir);
        self.marker = Some(marker);
        let snapshot = store
            .download(
                workspace,
                self.task.object_prefix(),
                &path,
                &self.env.cancel,
            )
            .map_err(|error| Failure::failed(Phase::Download, error.to_string()))?;
        self.download_bytes = Some(snapshot.total_size());
        // A writable workspace is scanned again after the body: seal it so that the files
        // the body left alone are not read twice.
        let mut snapshot = snapshot;
        if self
            .task
            .workspace()
            .is_some_and(|spec| !spec.is_read_only())
        {
            snapshot.seal(&path);
        }
        Ok(snapshot)
    }

    fn fence(&mut self) -> Result<(), Failure> {
        self.timed(Phase::AttemptFence, |run| {
            run.check_cancel(Phase::AttemptFence)?;
            run.env
                .fence
                .check(run.identity, &run.env.cancel)
                .map_err(|error| Failure::failed(Phase::AttemptFence, error.to_string()))
        })
    }

    fn publish(
        &mut self,
        workspace: &WorkspaceRef,
        before: &Snapshot,
        root: &Path,
    ) -> Result<String, Failure> {
        let after = Snapshot::rescan(root, before).map_err(|error| {
            Failure::failed(Phase::Stage, format!("failed to scan workspace: {error}"))
        })?;
        if let Some(link) = after.symlinks().first() {
            return Err(Failure::failed(
                Phase::Stage,
                format!("workspace publication does not support symlinks: {link}"),
            ));
        }
        let changes = diff(before, &after);
        self.changes = Some(changes.clone());
        let merge_timeout = self
            .task
            .effective_publish_budget()
            .map(|budget| Duration::from_secs(budget.lakefs_merge_timeout_seconds));
        let store = self.store(Phase::Publish)?;
        if changes.is_empty() {
            self.fence()?;
            return self.timed(Phase::Publish, |run| {
                run.check_cancel(Phase::Publish)?;
                store
                    .publish_noop(workspace, merge_timeout, &run.env.cancel)
                    .map_err(|error| Failure::failed(Phase::Publish, error.to_string()))
            });
        }
        self.fence()?;
        // As the reference measures it: every file of the workspace being staged.
        self.upload_bytes = Some(after.total_size());
        let staging_branch = staging_branch_name(self.identity);
        let staged_commit = self.timed(Phase::Stage, |run| {
            run.check_cancel(Phase::Stage)?;
            run.record_staging_branch(workspace, &staging_branch)?;
            let request = StageRequest {
                workspace,
                staging_branch: &staging_branch,
                object_prefix: run.task.object_prefix(),
                source_dir: root,
                changes: &changes,
                identity: run.identity,
            };
            let mut created = false;
            let staged = store.stage(&request, &mut created, &run.env.cancel);
            if created {
                run.staging_created = Some((workspace.clone(), staging_branch.clone()));
            }
            staged.map_err(|error| Failure::failed(Phase::Stage, error.to_string()))
        })?;
        self.fence()?;
        self.timed(Phase::Publish, |run| {
            run.check_cancel(Phase::Publish)?;
            store
                .publish(
                    workspace,
                    &staging_branch,
                    &staged_commit,
                    merge_timeout,
                    &run.env.cancel,
                )
                .map_err(|error| Failure::failed(Phase::Publish, error.to_string()))
        })
    }

    /// Writes the staging branch into the attempt marker before the branch exists, so that if
    /// this process dies from here on, the GC that removes the workspace deletes the branch.
    fn record_staging_branch(
        &mut self,
        workspace: &WorkspaceRef,
        staging_branch: &str,
    ) -> Result<(), Failure> {
        let (Some(dir), Some(marker)) = (&self.attempt_dir, &mut self.marker) else {
            return Err(Failure::failed(
                Phase::Stage,
                "attempt workspace was not created",
            ));
        };
        marker.staging = Some(StagingBranch {
            repository: workspace.repository.clone(),
            branch: staging_branch.to_owned(),
        });
        dir.rewrite_marker(marker).map_err(|error| {
            Failure::failed(
                Phase::Stage,
                format!("failed to record the staging branch: {error}"),
            )
        })
    }

    /// Deletes the staging branch and the attempt directory; returns what failed.
    fn cleanup(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut staging_left = false;
        if let Some((workspace, branch)) = self.staging_created.take()
            && let Some(store) = self.env.store
            && let Err(error) = store.delete_staging_branch(&workspace, &branch)
        {
            staging_left = true;
            log::warn!(
                task_id = self.identity.task_id.as_str(),
                execution_id = self.identity.execution_id.as_str(),
                staging_branch = branch.as_str(),
                error = error.to_string().as_str();
                "failed to clean staging workspace"
            );
            errors.push(format!(
                "failed to clean staging workspace {branch}: {error}"
            ));
        }
        if let Some(dir) = self.attempt_dir.take() {
            let path = dir.path().display().to_string();
            // The marker records the branch that could not be deleted: keep it (and only it)
            // so that a later GC sweep deletes the branch, then the directory.
            let removed = if staging_left {
                dir.clear_except_marker()
            } else {
                dir.remove()
            };
            if let Err(error) = removed {
                log::warn!(
                    task_id = self.identity.task_id.as_str(),
                    execution_id = self.identity.execution_id.as_str(),
                    path = path.as_str(),
                    error = error.to_string().as_str();
                    "failed to remove attempt workspace"
                );
                errors.push(format!(
                    "failed to remove attempt workspace {path}: {error}"
                ));
            }
        }
        errors
    }
}

/// Runs one attempt of `task` on `input` (the Conductor `inputData`).
pub fn run_attempt(
    task: &Task,
    identity: &AttemptIdentity,
    input: &Value,
    env: &AttemptEnv<'_>,
) -> AttemptReport {
    run_attempt_observed(task, identity, input, env, &NoObserver)
}

/// [`run_attempt`], telling `observer` about phases and giving the body its recorder.
pub fn run_attempt_observed(
    task: &Task,
    identity: &AttemptIdentity,
    input: &Value,
    env: &AttemptEnv<'_>,
    observer: &dyn AttemptObserver,
) -> AttemptReport {
    let owner_token = new_owner_token();
    let _owner = env.owners.register(owner_token.clone());
    let mut run = Run {
        task,
        identity,
        env,
        observer,
        download_bytes: None,
        upload_bytes: None,
        timings: Vec::new(),
        changes: None,
        staging_created: None,
        attempt_dir: None,
        marker: None,
        owner_token,
    };
    let outcome = run.run(input);
    let cleanup_started = Instant::now();
    let cleanup_errors = run.cleanup();
    run.timings
        .push((Phase::Cleanup, cleanup_started.elapsed()));
    let (result, failed_phase, reason_original_chars) = match outcome {
        Ok(Outcome::Completed(output)) => (AttemptResult::completed(output), None, None),
        Ok(Outcome::InProgress(progress)) => (
            AttemptResult::in_progress(
                Value::Object(progress.output),
                progress.callback_after_seconds,
            ),
            None,
            None,
        ),
        Err(failure) => {
            let cut = truncate_reason(&failure.reason, env.failure_reason_max_length);
            let original = cut.truncated.then_some(cut.original_chars);
            (
                AttemptResult::failed(failure.status, cut.text),
                Some(failure.phase),
                original,
            )
        }
    };
    AttemptReport {
        result,
        failed_phase,
        timings: run.timings,
        changes: run.changes,
        reason_original_chars,
        cleanup_errors,
        download_bytes: run.download_bytes,
        upload_bytes: run.upload_bytes,
    }
}

/// The report of an attempt refused before it started: its task could not be decoded
/// (`reason` names the decode error), so nothing ran and nothing needs cleaning up.
pub fn undecodable_task_report(reason: &str, failure_reason_max_length: usize) -> AttemptReport {
    let cut = truncate_reason(reason, failure_reason_max_length);
    AttemptReport {
        result: AttemptResult::failed(TaskStatus::Failed, cut.text),
        failed_phase: Some(Phase::Input),
        timings: Vec::new(),
        changes: None,
        reason_original_chars: cut.truncated.then_some(cut.original_chars),
        cleanup_errors: Vec::new(),
        download_bytes: None,
        upload_bytes: None,
    }
}
