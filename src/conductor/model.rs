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
    /// Set when the task's identity could be read but the rest of it (usually its input)
    /// could not: the worker reports it `FAILED` with this reason instead of running it.
    #[serde(skip)]
    pub decode_error: Option<String>,
}

/// The fields of a task besides its input, read when the whole task cannot be: every
/// unknown field (the input among them) is skipped without building it, and skipping has
/// no nesting limit.
#[derive(DeriveDeserialize)]
#[serde(rename_all = "camelCase")]
struct TaskHeader {
    task_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    workflow_instance_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    task_type: String,
    #[serde(default, deserialize_with = "null_as_default")]
    task_def_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    reference_task_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    response_timeout_seconds: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    poll_count: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    retry_count: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    seq: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    iteration: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    status: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    worker_id: Option<String>,
}

/// Only the ids, for a task whose other fields do not read either.
#[derive(DeriveDeserialize)]
#[serde(rename_all = "camelCase")]
struct TaskIds {
    task_id: String,
    #[serde(default)]
    workflow_instance_id: Option<String>,
}

impl From<TaskHeader> for PolledTask {
    fn from(header: TaskHeader) -> PolledTask {
        PolledTask {
            task_id: header.task_id,
            workflow_instance_id: header.workflow_instance_id,
            task_type: header.task_type,
            task_def_name: header.task_def_name,
            reference_task_name: header.reference_task_name,
            input_data: empty_object(),
            response_timeout_seconds: header.response_timeout_seconds,
            poll_count: header.poll_count,
            retry_count: header.retry_count,
            seq: header.seq,
            iteration: header.iteration,
            status: header.status,
            worker_id: header.worker_id,
            output_data: empty_object(),
            decode_error: None,
        }
    }
}

/// A task in a poll answer that could not be read at all, not even its `taskId`.
#[derive(Debug)]
pub struct UnreadableTask {
    /// Why it could not be read.
    pub error: serde_json::Error,
}

/// Reads one task (a poll entry or an update-v2 answer) task by task, so that one task that
/// cannot be decoded (an input nested past the JSON decoder's depth limit, a field of the
/// wrong type) never costs the others.
///
/// A task whose `taskId` is readable comes back with [`PolledTask::decode_error`] set and an
/// empty input, for the worker to report `FAILED`; one without a readable id is an
/// [`UnreadableTask`].
pub fn decode_task(raw: &str) -> Result<PolledTask, UnreadableTask> {
    let error = match serde_json::from_str::<PolledTask>(raw) {
        Ok(task) => return Ok(task),
        Err(error) => error,
    };
    let mut task = match serde_json::from_str::<TaskHeader>(raw) {
        Ok(header) => PolledTask::from(header),
        Err(_) => match serde_json::from_str::<TaskIds>(raw) {
            Ok(ids) => PolledTask::from(TaskHeader {
                task_id: ids.task_id,
                workflow_instance_id: ids.workflow_instance_id.unwrap_or_default(),
                task_type: String::new(),
                task_def_name: None,
                reference_task_name: None,
                response_timeout_seconds: None,
                poll_count: 0,
                retry_count: 0,
                seq: 0,
                iteration: 0,
                status: None,
                worker_id: None,
            }),
            Err(_) => return Err(UnreadableTask { error }),
        },
    };
    task.decode_error = Some(format!("task could not be decoded: {error}"));
    Ok(task)
}

/// Reads a poll answer (a JSON array of tasks) entry by entry with [`decode_task`]; only an
/// answer that is not an array at all is an error.
pub fn decode_task_batch(
    body: &[u8],
) -> Result<(Vec<PolledTask>, Vec<UnreadableTask>), serde_json::Error> {
    // Raw entries are skipped over, not built, so no task's depth counts against the batch.
    let entries: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(body)?;
    let mut tasks = Vec::with_capacity(entries.len());
    let mut unreadable = Vec::new();
    for entry in &entries {
        match decode_task(entry.get()) {
            Ok(task) => tasks.push(task),
            Err(bad) => unreadable.push(bad),
        }
    }
    Ok((tasks, unreadable))
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
    fn a_batch_is_decoded_task_by_task() {
        let mut deep = String::from("{}");
        for _ in 0..200 {
            deep = format!("{{\"d\":{deep}}}");
        }
        let body = format!(
            "[{{\"taskId\":\"ok\",\"inputData\":{{\"params\":{{}}}}}},\
             {{\"taskId\":\"deep\",\"workflowInstanceId\":\"w\",\"retryCount\":2,\"inputData\":{deep}}},\
             {{\"taskId\":\"typed\",\"retryCount\":\"x\"}},\
             {{\"noId\":{deep}}}]"
        );
        let (tasks, unreadable) = decode_task_batch(body.as_bytes()).unwrap();
        let ids: Vec<_> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["ok", "deep", "typed"]);
        assert_eq!(tasks[0].decode_error, None);
        assert_eq!(tasks[0].input_data, json!({"params": {}}));
        let deep_task = &tasks[1];
        assert_eq!(
            (
                deep_task.workflow_instance_id.as_str(),
                deep_task.retry_count
            ),
            ("w", 2)
        );
        assert_eq!(deep_task.input_data, json!({}));
        let reason = deep_task.decode_error.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with("task could not be decoded: recursion limit exceeded"),
            "{reason}"
        );
        // Even a field of the wrong type only costs that task.
        assert!(tasks[2].decode_error.is_some());
        assert_eq!(unreadable.len(), 1);
        // A body that is not an array at all is still an error.
        assert!(decode_task_batch(b"{}").is_err());
    }

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
