//! The JSON shapes perago exchanges with Conductor: the polled [`PolledTask`] (read leniently,
//! since servers add fields over time) and the [`TaskUpdate`] it reports (the server's
//! `TaskResult`, written in camelCase with `workerId` always set).

use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde::{Deserialize as DeriveDeserialize, Serialize};
use serde_json::{Map, Value};

use crate::result::{AttemptResult, TaskStatus};

/// One task as Conductor hands it to a worker (poll, update-v2) or reports it (`GET
/// /api/tasks/{taskId}`).
///
/// Deserialisation is lenient, like the server's own: unknown fields are ignored, every field
/// except `taskId` may be missing, and `null` reads as the field's default. Only the fields a
/// worker needs are kept.
#[derive(Debug, Clone, PartialEq, DeriveDeserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolledTask {
    /// The attempt id (new for every retry).
    pub task_id: String,
    /// The owning workflow.
    #[serde(default, deserialize_with = "null_as_default")]
    pub workflow_instance_id: String,
    /// The queue name (for SIMPLE tasks, the task name).
    #[serde(default, deserialize_with = "null_as_default")]
    pub task_type: String,
    /// The TaskDef name; falls back to `task_type` when absent (see [`Self::def_name`]).
    #[serde(default, deserialize_with = "null_as_default")]
    pub task_def_name: Option<String>,
    /// `taskReferenceName` in the workflow definition.
    #[serde(default, deserialize_with = "null_as_default")]
    pub reference_task_name: Option<String>,
    /// The task input (`{}` when absent).
    #[serde(default = "empty_object", deserialize_with = "null_as_empty_object")]
    pub input_data: Value,
    /// Seconds without an update after which the server times the attempt out.
    #[serde(default, deserialize_with = "null_as_default")]
    pub response_timeout_seconds: Option<i64>,
    /// How often the task has been handed to a worker.
    #[serde(default, deserialize_with = "null_as_default")]
    pub poll_count: u32,
    /// Attempt index: 0 for the first attempt.
    #[serde(default, deserialize_with = "null_as_default")]
    pub retry_count: u32,
    /// 1-based position of the task in its workflow.
    #[serde(default, deserialize_with = "null_as_default")]
    pub seq: u64,
    /// DO_WHILE iteration (0 outside loops).
    #[serde(default, deserialize_with = "null_as_default")]
    pub iteration: u64,
    /// Server-side status (`IN_PROGRESS` once polled).
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: Option<String>,
    /// The last worker that polled or updated the task.
    #[serde(default, deserialize_with = "null_as_default")]
    pub worker_id: Option<String>,
    /// The task's current output: `{}` on a first delivery, the intermediate output of the
    /// last in-progress outcome on a re-delivery.
    #[serde(default = "empty_object", deserialize_with = "null_as_empty_object")]
    pub output_data: Value,
}

impl PolledTask {
    /// The TaskDef name: `taskDefName`, or `taskType` when the server omitted it.
    pub fn def_name(&self) -> &str {
        self.task_def_name
            .as_deref()
            .filter(|name| !name.is_empty())
            .unwrap_or(&self.task_type)
    }

    /// The response timeout, when the server sent a positive one.
    pub fn response_timeout(&self) -> Option<std::time::Duration> {
        self.response_timeout_seconds
            .and_then(|secs| u64::try_from(secs).ok())
            .filter(|secs| *secs > 0)
            .map(std::time::Duration::from_secs)
    }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// `null` (as well as a missing field) reads as `T::default()`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + DeserializeOwned,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn null_as_empty_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.unwrap_or_else(empty_object))
}

/// The status a worker reports in a [`TaskUpdate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpdateStatus {
    /// Still running; with `extendLease` this is the heartbeat.
    InProgress,
    /// The attempt produced a result.
    Completed,
    /// A retryable failure.
    Failed,
    /// A failure Conductor must not retry.
    FailedWithTerminalError,
}

impl UpdateStatus {
    /// The Conductor spelling (`IN_PROGRESS`, `COMPLETED`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::InProgress => "IN_PROGRESS",
            UpdateStatus::Completed => "COMPLETED",
            UpdateStatus::Failed => "FAILED",
            UpdateStatus::FailedWithTerminalError => "FAILED_WITH_TERMINAL_ERROR",
        }
    }
}

impl From<TaskStatus> for UpdateStatus {
    fn from(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Completed => UpdateStatus::Completed,
            TaskStatus::Failed => UpdateStatus::Failed,
            TaskStatus::FailedWithTerminalError => UpdateStatus::FailedWithTerminalError,
            TaskStatus::InProgress => UpdateStatus::InProgress,
        }
    }
}

/// The body of `POST /api/tasks` and `POST /api/tasks/update-v2` (Conductor's `TaskResult`).
///
/// `workerId` is always sent: the server overwrites the task's worker id with whatever the
/// update carries, so omitting it would erase it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskUpdate {
    /// The owning workflow.
    pub workflow_instance_id: String,
    /// The attempt being updated.
    pub task_id: String,
    /// The reported status.
    pub status: UpdateStatus,
    /// The output of a completed attempt (replaces the task's output on the server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_data: Option<Value>,
    /// Why a failed attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_for_incompletion: Option<String>,
    /// This worker's id.
    pub worker_id: String,
    /// `true` for a heartbeat: the server only restarts the response-timeout clock.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub extend_lease: bool,
    /// With `IN_PROGRESS` (not a heartbeat): hand the task out again after this many seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_after_seconds: Option<u64>,
}

impl TaskUpdate {
    /// The final update reporting `result` for `task`.
    pub fn result(task: &PolledTask, worker_id: &str, result: AttemptResult) -> TaskUpdate {
        TaskUpdate {
            workflow_instance_id: task.workflow_instance_id.clone(),
            task_id: task.task_id.clone(),
            status: result.status.into(),
            output_data: result.output,
            reason_for_incompletion: result.reason,
            worker_id: worker_id.to_owned(),
            extend_lease: false,
            callback_after_seconds: result.callback_after_seconds,
        }
    }

    /// The heartbeat `{taskId, workflowInstanceId, status: IN_PROGRESS, extendLease: true,
    /// workerId}`.
    pub fn heartbeat(task_id: &str, workflow_instance_id: &str, worker_id: &str) -> TaskUpdate {
        TaskUpdate {
            workflow_instance_id: workflow_instance_id.to_owned(),
            task_id: task_id.to_owned(),
            status: UpdateStatus::InProgress,
            output_data: None,
            reason_for_incompletion: None,
            worker_id: worker_id.to_owned(),
            extend_lease: true,
            callback_after_seconds: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn polled_task_reads_leniently() {
        let full = json!({
            "taskId": "t1", "workflowInstanceId": "w1", "taskType": "echo",
            "taskDefName": "echo", "referenceTaskName": "echo_ref",
            "inputData": {"params": {"x": 1}}, "responseTimeoutSeconds": 30,
            "pollCount": 2, "retryCount": 1, "seq": 3, "iteration": 0,
            "status": "IN_PROGRESS", "workerId": "w0001",
            "workflowTask": {"name": "echo"}, "startTime": 1700000000000_i64
        });
        let task: PolledTask = serde_json::from_value(full).unwrap();
        assert_eq!(task.task_id, "t1");
        assert_eq!(task.def_name(), "echo");
        assert_eq!(task.input_data, json!({"params": {"x": 1}}));
        assert_eq!(
            task.response_timeout(),
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!((task.poll_count, task.retry_count, task.seq), (2, 1, 3));

        let sparse = json!({"taskId": "t2", "taskType": "q", "inputData": null,
                            "retryCount": null, "taskDefName": null,
                            "responseTimeoutSeconds": -1});
        let task: PolledTask = serde_json::from_value(sparse).unwrap();
        assert_eq!(task.def_name(), "q", "falls back to the task type");
        assert_eq!(task.input_data, json!({}));
        assert_eq!(task.retry_count, 0);
        assert_eq!(task.response_timeout(), None);
        assert_eq!(task.workflow_instance_id, "");

        assert!(serde_json::from_value::<PolledTask>(json!({"taskType": "q"})).is_err());
    }

    #[test]
    fn updates_serialise_like_task_result() {
        let task: PolledTask =
            serde_json::from_value(json!({"taskId": "t", "workflowInstanceId": "w"})).unwrap();
        let done = TaskUpdate::result(&task, "w1", AttemptResult::completed(json!({"result": {}})));
        assert_eq!(
            serde_json::to_value(&done).unwrap(),
            json!({"workflowInstanceId": "w", "taskId": "t", "status": "COMPLETED",
                   "outputData": {"result": {}}, "workerId": "w1"})
        );
        let failed = TaskUpdate::result(
            &task,
            "w1",
            AttemptResult::failed(TaskStatus::FailedWithTerminalError, "no".into()),
        );
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"workflowInstanceId": "w", "taskId": "t",
                   "status": "FAILED_WITH_TERMINAL_ERROR",
                   "reasonForIncompletion": "no", "workerId": "w1"})
        );
        assert_eq!(
            serde_json::to_value(TaskUpdate::heartbeat("t", "w", "w1")).unwrap(),
            json!({"workflowInstanceId": "w", "taskId": "t", "status": "IN_PROGRESS",
                   "workerId": "w1", "extendLease": true})
        );
    }
}
