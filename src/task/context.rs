//! What a task body sees of its attempt: identity, cancellation, workspace and a logger.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::cancel::{CancelToken, Cancelled};
use super::workspace_path::{WorkspacePathError, join_within};
use crate::metrics::{MetricRecorder, MetricTimer};

/// The identity of one execution of one Conductor task attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptIdentity {
    /// Conductor `taskId` of this attempt.
    pub task_id: String,
    /// Conductor `workflowInstanceId` owning the task.
    pub workflow_instance_id: String,
    /// Conductor `retryCount` (0 for the first attempt).
    pub retry_count: u32,
    /// The TaskDef name.
    pub task_def_name: String,
    /// Conductor `referenceTaskName` (empty when unknown).
    pub reference_task_name: String,
    /// Conductor `seq` (0 when unknown).
    pub seq: u64,
    /// Conductor `iteration` (0 outside loops).
    pub iteration: u64,
    /// Fresh random id of this run of the attempt in this process.
    pub execution_id: String,
    /// The worker id reported to Conductor.
    pub worker_id: String,
}

/// The context handed to a task body.
///
/// # Threads
/// A context lives for one attempt on one worker thread; the body may pass `&TaskContext` to
/// scoped helper threads (it is `Sync`).
#[derive(Debug, Clone)]
pub struct TaskContext {
    identity: AttemptIdentity,
    cancel: CancelToken,
    workspace: Option<PathBuf>,
    logger: AttemptLogger,
    previous_output: Option<Map<String, Value>>,
    metrics: MetricRecorder,
}

impl TaskContext {
    /// Builds a context. The runtime does this; tests of task bodies may too.
    pub fn new(
        identity: AttemptIdentity,
        cancel: CancelToken,
        workspace: Option<PathBuf>,
    ) -> TaskContext {
        let logger = AttemptLogger {
            task_id: identity.task_id.clone(),
            workflow_instance_id: identity.workflow_instance_id.clone(),
            execution_id: identity.execution_id.clone(),
            remote: None,
        };
        TaskContext {
            identity,
            cancel,
            workspace,
            logger,
            previous_output: None,
            metrics: MetricRecorder::disabled(),
        }
    }

    /// Also sends every line logged through [`TaskContext::log`] to `sink` (the runtime
    /// ships them to Conductor's task log).
    pub fn with_task_log(mut self, sink: Option<TaskLogSink>) -> TaskContext {
        self.logger.remote = sink;
        self
    }

    /// Sets the output this task reported with its last in-progress outcome.
    pub fn with_previous_output(mut self, output: Option<Map<String, Value>>) -> TaskContext {
        self.previous_output = output.filter(|output| !output.is_empty());
        self
    }

    /// The intermediate output of this attempt's previous in-progress outcome (Conductor
    /// re-delivers the same task with the output it was last given), or `None` on a first
    /// delivery.
    pub fn previous_output(&self) -> Option<&Map<String, Value>> {
        self.previous_output.as_ref()
    }

    /// The same context recording application metrics into `recorder` (the runtime binds
    /// the process's recorder for tasks with a metrics declaration).
    pub fn with_metrics(mut self, recorder: MetricRecorder) -> TaskContext {
        self.metrics = recorder;
        self
    }

    /// The application metrics recorder (`app.<name>` series; SPEC §15).
    pub fn metrics(&self) -> &MetricRecorder {
        &self.metrics
    }

    /// Records a distribution sample of `app.<name>`; `task_name` is added, and reserved
    /// (`task_id`, `workflow_instance_id`, `execution_id`, `worker_id`) or clashing labels
    /// are ignored with a warning. A no-op for tasks without a metrics declaration.
    pub fn histogram(&self, name: &str, value: f64, labels: &[(&str, &str)]) {
        self.metrics.histogram(name, value, labels);
    }

    /// Sets the current value of `app.<name>` (same label rules as
    /// [`histogram`](Self::histogram)).
    pub fn gauge(&self, name: &str, value: f64, labels: &[(&str, &str)]) {
        self.metrics.gauge(name, value, labels);
    }

    /// Times a block: the elapsed seconds become an `app.<name>` histogram sample when the
    /// returned guard drops.
    pub fn timer(&self, name: &str, labels: &[(&str, &str)]) -> MetricTimer {
        self.metrics.timer(name, labels)
    }

    /// The attempt identity.
    pub fn identity(&self) -> &AttemptIdentity {
        &self.identity
    }

    /// Conductor `taskId`.
    pub fn task_id(&self) -> &str {
        &self.identity.task_id
    }

    /// Conductor `workflowInstanceId`.
    pub fn workflow_instance_id(&self) -> &str {
        &self.identity.workflow_instance_id
    }

    /// Conductor `retryCount`.
    pub fn retry_count(&self) -> u32 {
        self.identity.retry_count
    }

    /// The execution id of this run.
    pub fn execution_id(&self) -> &str {
        &self.identity.execution_id
    }

    /// The worker id.
    pub fn worker_id(&self) -> &str {
        &self.identity.worker_id
    }

    /// The attempt workspace root (workspace tasks only).
    pub fn workspace(&self) -> Option<&Path> {
        self.workspace.as_deref()
    }

    /// `relative` joined onto the attempt workspace root, refused if it could lead outside it:
    /// an absolute path, a `..` component, or a symlink that resolves out of the root.
    ///
    /// Build every path a body reads or writes from user input through this, so that params
    /// such as `"../../x"` fail the attempt instead of touching files outside the workspace.
    /// The error converts into a retryable [`TaskError`](super::TaskError) with `?`.
    pub fn workspace_path(
        &self,
        relative: impl AsRef<Path>,
    ) -> Result<PathBuf, WorkspacePathError> {
        let root = self
            .workspace
            .as_deref()
            .ok_or(WorkspacePathError::NoWorkspace)?;
        join_within(root, relative.as_ref())
    }

    /// The cancellation token: fires when the worker's shutdown deadline is reached.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Whether the runtime asked this attempt to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Sleeps for `duration`, waking early with `Err(Cancelled)` on cancellation.
    pub fn sleep(&self, duration: Duration) -> Result<(), Cancelled> {
        self.cancel.sleep(duration)
    }

    /// Sleeps until `deadline`, waking early with `Err(Cancelled)` on cancellation.
    pub fn sleep_until(&self, deadline: Instant) -> Result<(), Cancelled> {
        self.cancel.sleep_until(deadline)
    }

    /// A logger whose records carry this attempt's identity.
    pub fn log(&self) -> &AttemptLogger {
        &self.logger
    }
}

/// A logger bound to one attempt: every record carries `task_id`, `workflow_instance_id`
/// and `execution_id` as structured fields.
#[derive(Debug, Clone)]
pub struct AttemptLogger {
    task_id: String,
    workflow_instance_id: String,
    execution_id: String,
    remote: Option<TaskLogSink>,
}

/// Where an attempt's log lines go besides the worker log: a function taking each line.
///
/// The runtime's sink queues lines for Conductor's task log without blocking; see
/// `perago start` in the README for its bounds and redaction.
#[derive(Clone)]
pub struct TaskLogSink {
    send: Arc<dyn Fn(&str) + Send + Sync>,
}

impl TaskLogSink {
    /// A sink calling `send` with every line (`LEVEL message`).
    pub fn new(send: impl Fn(&str) + Send + Sync + 'static) -> TaskLogSink {
        TaskLogSink {
            send: Arc::new(send),
        }
    }
}

impl fmt::Debug for TaskLogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLogSink").finish_non_exhaustive()
    }
}

impl AttemptLogger {
    /// Logs at `level`.
    pub fn log(&self, level: log::Level, message: &str) {
        log::log!(
            target: "perago::task",
            level,
            task_id = self.task_id.as_str(),
            workflow_instance_id = self.workflow_instance_id.as_str(),
            execution_id = self.execution_id.as_str();
            "{message}"
        );
        if let Some(remote) = &self.remote {
            (remote.send)(&format!("{level} {message}"));
        }
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.log(log::Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        self.log(log::Level::Warn, message);
    }

    /// Logs at error level.
    pub fn error(&self, message: &str) {
        self.log(log::Level::Error, message);
    }

    /// Logs at debug level.
    pub fn debug(&self, message: &str) {
        self.log(log::Level::Debug, message);
    }
}
