//! The Conductor state machine: definitions, workflows, task attempts and queues.
//!
//! It models what `protocols/conductor-api.md` §9 calls the minimum faithful fake: upserted
//! TaskDefs copied into workflows at start, linear workflows of SIMPLE tasks, "deliver once,
//! ack on poll" queues with delayed visibility, retries with new task ids, response timeouts
//! applied by a sweeper, and late updates to finished tasks accepted and ignored.
//!
//! # Threads
//! One mutex guards all state; it is never held across I/O. Long polls wait on a condvar that
//! every enqueue notifies.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::wiring::Scope;

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// One task attempt as the server stores and returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// Attempt id.
    pub task_id: String,
    /// Queue name.
    pub task_type: String,
    /// TaskDef name.
    pub task_def_name: String,
    /// Reference name in the workflow.
    pub reference_task_name: String,
    /// Owning workflow.
    pub workflow_instance_id: String,
    /// Owning workflow name.
    pub workflow_type: String,
    /// Status.
    pub status: String,
    /// Resolved input.
    pub input_data: Value,
    /// Output.
    pub output_data: Value,
    /// Attempt index.
    pub retry_count: u32,
    /// The attempt this one retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried_task_id: Option<String>,
    /// Superseded by a retry.
    pub retried: bool,
    /// 1-based order in the workflow.
    pub seq: u64,
    /// Loop iteration.
    pub iteration: u64,
    /// Times handed to a worker.
    pub poll_count: u32,
    /// Last poller or updater.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Response timeout copied from the TaskDef.
    pub response_timeout_seconds: u64,
    /// Re-queue delay.
    pub callback_after_seconds: u64,
    /// The task domain the task was queued in (from the workflow's `taskToDomain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Failure text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_for_incompletion: Option<String>,
    /// Epoch ms.
    pub scheduled_time: i64,
    /// Epoch ms of the first poll.
    pub start_time: i64,
    /// Epoch ms when terminal.
    pub end_time: i64,
    /// Epoch ms of the last change.
    pub update_time: i64,
}

/// One workflow execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkflowRecord {
    id: String,
    name: String,
    version: u32,
    def: Value,
    input: Value,
    output: Value,
    status: String,
    reason: Option<String>,
    task_ids: Vec<String>,
    task_defs: HashMap<String, Value>,
    /// `taskToDomain` of the start request: task name (or `*`) → comma-separated domains.
    #[serde(default)]
    task_to_domain: BTreeMap<String, String>,
    create_time: i64,
    end_time: i64,
}

/// One task execution log line (`TaskExecLog`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskLog {
    /// The text, as the worker sent it.
    pub log: String,
    /// The task it belongs to.
    pub task_id: String,
    /// Epoch ms.
    pub created_time: i64,
}

/// The most log lines kept per task; older lines are dropped first.
pub const MAX_LOGS_PER_TASK: usize = 10_000;

/// How recently a domain must have been polled to be chosen (the real server's
/// `activeWorkerLastPollTimeout`, 10 s).
const ACTIVE_WORKER_LAST_POLL_MS: i64 = 10_000;

/// The queue of `task_type` in `domain`: `<domain>:<taskType>`, or `<taskType>` without one.
fn queue_name(domain: Option<&str>, task_type: &str) -> String {
    match domain {
        Some(domain) => format!("{domain}:{task_type}"),
        None => task_type.to_owned(),
    }
}

/// The persisted part of the engine.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    task_defs: BTreeMap<String, Value>,
    workflow_defs: BTreeMap<String, Value>,
    workflows: HashMap<String, WorkflowRecord>,
    tasks: HashMap<String, TaskRecord>,
    queues: HashMap<String, Vec<String>>,
    /// Epoch ms from which a queued task may be handed out (retry delays, callbacks); kept
    /// here rather than on the task so it persists without showing in the task JSON.
    #[serde(default)]
    visible_at: HashMap<String, i64>,
    /// Execution logs per task id.
    #[serde(default)]
    logs: HashMap<String, Vec<TaskLog>>,
    /// Epoch ms of the last poll per queue name, for domain selection (not persisted).
    #[serde(skip)]
    last_poll: HashMap<String, i64>,
    next_id: u64,
}

/// A failed engine call: an HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    /// HTTP status.
    pub status: u16,
    /// Message for the error body.
    pub message: String,
    /// Bean-validation failures (a 400 whose body lists them as `validationErrors`).
    pub violations: Vec<Violation>,
}

/// One bean-validation failure, as the real server lists it in `validationErrors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Property path, e.g. `updateTask.taskResult.taskId`.
    pub path: String,
    /// The constraint's message.
    pub message: String,
}

/// The message of every bean-validation 400 of the real server.
pub const VALIDATION_FAILED: &str = "Validation failed, check below errors for detail.";

impl EngineError {
    fn new(status: u16, message: impl Into<String>) -> EngineError {
        EngineError {
            status,
            message: message.into(),
            violations: Vec::new(),
        }
    }
}

fn not_found(message: String) -> EngineError {
    EngineError::new(404, message)
}

fn violation(path: impl Into<String>, message: &str) -> Violation {
    Violation {
        path: path.into(),
        message: message.to_owned(),
    }
}

fn invalid(violations: Vec<Violation>) -> EngineError {
    EngineError {
        status: 400,
        message: VALIDATION_FAILED.to_owned(),
        violations,
    }
}

/// `Err` with the violations, if there are any.
fn validated(violations: Vec<Violation>) -> Result<(), EngineError> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(invalid(violations))
    }
}

fn non_empty_str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A worker's update (`TaskResult`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskResultBody {
    /// Workflow id.
    pub workflow_instance_id: Option<String>,
    /// Task id.
    pub task_id: Option<String>,
    /// New status.
    pub status: Option<String>,
    /// Output (replaces; absent means empty, as the real `TaskResult` defaults it).
    pub output_data: Option<Map<String, Value>>,
    /// Failure text.
    pub reason_for_incompletion: Option<String>,
    /// Re-queue delay for IN_PROGRESS.
    pub callback_after_seconds: Option<u64>,
    /// Worker id.
    pub worker_id: Option<String>,
    /// Heartbeat flag.
    pub extend_lease: Option<bool>,
    /// Execution logs sent with the result (`[{"log", "createdTime"}]`).
    pub logs: Option<Vec<LogBody>>,
}

/// One entry of `TaskResult.logs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogBody {
    /// The text.
    pub log: Option<String>,
    /// Epoch ms (the server's time when absent).
    pub created_time: Option<i64>,
}

/// The values of the real `TaskResult.Status`; anything else fails to deserialize there.
const RESULT_STATUSES: &[&str] = &[
    "IN_PROGRESS",
    "FAILED",
    "FAILED_WITH_TERMINAL_ERROR",
    "COMPLETED",
    "CANCELED",
];

/// What [`Engine::update`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The task id the update named (the v1 answer).
    pub task_id: String,
    /// The task's type: the queue update-v2 polls next.
    pub task_type: String,
    /// The task's domain: update-v2 polls the same domain.
    pub domain: Option<String>,
    /// Whether update-v2 goes on to poll: the task is terminal after the update (also when
    /// the update was ignored because it already was); not after a lease extension.
    pub poll_next: bool,
}

const TERMINAL: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "FAILED_WITH_TERMINAL_ERROR",
    "TIMED_OUT",
    "CANCELED",
    "COMPLETED_WITH_ERRORS",
    "SKIPPED",
];

fn is_terminal(status: &str) -> bool {
    TERMINAL.contains(&status)
}

fn u64_field(def: Option<&Value>, key: &str, default: u64) -> u64 {
    def.and_then(|d| d.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(default)
}

/// The Conductor engine of the dev server.
#[derive(Debug, Default)]
pub struct Engine {
    state: Mutex<State>,
    enqueued: Condvar,
    /// Set when the server stops: long polls return at once instead of holding a connection.
    closed: std::sync::atomic::AtomicBool,
}

impl Engine {
    /// An engine with `state`.
    pub(crate) fn with_state(state: State) -> Engine {
        Engine {
            state: Mutex::new(state),
            enqueued: Condvar::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Ends every long poll now and makes later polls return without waiting.
    pub(crate) fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        // Taking the lock orders the flag before any waiter's next check.
        let _state = self.state.lock();
        self.enqueued.notify_all();
    }

    /// The state as JSON (for persistence).
    pub(crate) fn snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&*self.state.lock())
    }

    /// Upserts TaskDefs. The whole list is validated first, as the real server does, so an
    /// invalid entry registers nothing.
    pub fn register_task_defs(&self, defs: Vec<Value>) -> Result<(), EngineError> {
        let mut violations = Vec::new();
        if defs.is_empty() {
            violations.push(violation(
                "registerTaskDef.taskDefinitions",
                "TaskDefList is empty",
            ));
        }
        for (index, def) in defs.iter().enumerate() {
            if non_empty_str(def, "name").is_none() {
                violations.push(violation(
                    format!("registerTaskDef.taskDefinitions[{index}].name"),
                    "TaskDef name cannot be null or empty",
                ));
            }
        }
        validated(violations)?;
        let mut state = self.state.lock();
        for def in defs {
            if let Some(name) = non_empty_str(&def, "name").map(str::to_owned) {
                state.task_defs.insert(name, def);
            }
        }
        Ok(())
    }

    /// Updates one existing TaskDef.
    pub fn update_task_def(&self, def: Value) -> Result<(), EngineError> {
        let Some(name) = non_empty_str(&def, "name").map(str::to_owned) else {
            return Err(invalid(vec![violation(
                "updateTaskDef.taskDefinition.name",
                "TaskDef name cannot be null or empty",
            )]));
        };
        let mut state = self.state.lock();
        if !state.task_defs.contains_key(&name) {
            return Err(not_found(format!("No such task by name {name}")));
        }
        state.task_defs.insert(name, def);
        Ok(())
    }

    /// One TaskDef.
    pub fn task_def(&self, name: &str) -> Result<Value, EngineError> {
        self.state
            .lock()
            .task_defs
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(format!("No such taskType found by name: {name}")))
    }

    /// All TaskDefs.
    pub fn task_defs(&self) -> Vec<Value> {
        self.state.lock().task_defs.values().cloned().collect()
    }

    /// Deletes a TaskDef.
    pub fn delete_task_def(&self, name: &str) -> Result<(), EngineError> {
        self.state
            .lock()
            .task_defs
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| not_found(format!("No such taskType found by name: {name}")))
    }

    /// Registers a workflow definition. Like the real `MetadataResource.create`, a duplicate
    /// name+version is a 409 before the rest of the definition is validated.
    pub fn register_workflow_def(&self, def: Value, overwrite: bool) -> Result<(), EngineError> {
        let Some(name) = non_empty_str(&def, "name").map(str::to_owned) else {
            return validated(Self::workflow_def_violations(&def));
        };
        let version = u64_field(Some(&def), "version", 1);
        let key = format!("{name}.{version}");
        let mut state = self.state.lock();
        if state.workflow_defs.contains_key(&key) && !overwrite {
            return Err(EngineError::new(
                409,
                format!("Workflow with {key} already exists!"),
            ));
        }
        validated(Self::workflow_def_violations(&def))?;
        state.workflow_defs.insert(key, def);
        Ok(())
    }

    /// The bean-validation failures of a WorkflowDef (the subset the dev server runs).
    fn workflow_def_violations(def: &Value) -> Vec<Violation> {
        const PATH: &str = "registerWorkflowDef.workflowDef";
        let mut violations = Vec::new();
        let name = non_empty_str(def, "name");
        if name.is_none() {
            violations.push(violation(
                format!("{PATH}.name"),
                "WorkflowDef name cannot be null or empty",
            ));
        }
        if def
            .get("schemaVersion")
            .is_some_and(|v| !v.is_null() && v.as_u64() != Some(2))
        {
            violations.push(violation(
                format!("{PATH}.schemaVersion"),
                "workflowDef schemaVersion: 2 is only supported",
            ));
        }
        let tasks = def
            .get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if tasks.is_empty() {
            violations.push(violation(
                format!("{PATH}.tasks"),
                "WorkflowTask list cannot be empty",
            ));
        }
        let mut seen = Vec::new();
        for (index, task) in tasks.iter().enumerate() {
            if non_empty_str(task, "name").is_none() {
                violations.push(violation(
                    format!("{PATH}.tasks[{index}].name"),
                    "WorkflowTask name cannot be empty or null",
                ));
            }
            match non_empty_str(task, "taskReferenceName") {
                None => violations.push(violation(
                    format!("{PATH}.tasks[{index}].taskReferenceName"),
                    "WorkflowTask taskReferenceName name cannot be empty or null",
                )),
                Some(reference) if seen.contains(&reference) => violations.push(violation(
                    PATH,
                    &format!(
                        "taskReferenceName: {reference} should be unique across tasks for a given workflowDefinition: {}",
                        name.unwrap_or_default()
                    ),
                )),
                Some(reference) => seen.push(reference),
            }
        }
        violations
    }

    /// A workflow definition (latest version when `version` is None).
    pub fn workflow_def(&self, name: &str, version: Option<u64>) -> Result<Value, EngineError> {
        let state = self.state.lock();
        Self::find_def(&state, name, version)
    }

    fn find_def(state: &State, name: &str, version: Option<u64>) -> Result<Value, EngineError> {
        let found = match version {
            Some(v) => state.workflow_defs.get(&format!("{name}.{v}")).cloned(),
            None => state
                .workflow_defs
                .values()
                .filter(|d| d.get("name").and_then(Value::as_str) == Some(name))
                .max_by_key(|d| u64_field(Some(d), "version", 1))
                .cloned(),
        };
        found.ok_or_else(|| {
            not_found(format!(
                "No such workflow found by name: {name}, version: {}",
                version.map_or("null".to_owned(), |v| v.to_string())
            ))
        })
    }

    /// Starts a workflow; returns its id.
    pub fn start_workflow(
        &self,
        name: &str,
        version: Option<u64>,
        input: Value,
    ) -> Result<String, EngineError> {
        let state = self.state.lock();
        let def = Self::find_def(&state, name, version)?;
        Ok(self.start(state, def, name, input, BTreeMap::new()))
    }

    /// Starts a workflow from a `StartWorkflowRequest` (`POST /api/workflow`), whose checks and
    /// not-found message differ from [`Engine::start_workflow`]'s in the real server.
    pub fn start_workflow_request(
        &self,
        name: Option<&str>,
        version: Option<u64>,
        input: Value,
        task_to_domain: BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let Some(name) = name else {
            return Err(invalid(vec![violation(
                "startWorkflow.startWorkflowRequest.name",
                "Workflow name cannot be null or empty",
            )]));
        };
        if name.trim().is_empty() {
            return Err(EngineError::new(
                400,
                "Workflow name must be specified when searching for a definition",
            ));
        }
        let state = self.state.lock();
        let def = Self::find_def(&state, name, version).map_err(|_| {
            not_found(format!(
                "No such workflow defined. name={name}, version={}",
                version.map_or("null".to_owned(), |v| v.to_string())
            ))
        })?;
        Ok(self.start(state, def, name, input, task_to_domain))
    }

    fn start(
        &self,
        mut state: parking_lot::MutexGuard<'_, State>,
        def: Value,
        name: &str,
        input: Value,
        task_to_domain: BTreeMap<String, String>,
    ) -> String {
        state.next_id += 1;
        let id = format!("wf-{:08}-{:08x}", state.next_id, fastrand::u32(..));
        let task_defs = state.task_defs.clone().into_iter().collect();
        let workflow = WorkflowRecord {
            id: id.clone(),
            name: name.to_owned(),
            version: u64_field(Some(&def), "version", 1) as u32,
            def,
            input: if input.is_object() { input } else { json!({}) },
            output: json!({}),
            status: "RUNNING".into(),
            reason: None,
            task_ids: Vec::new(),
            task_defs,
            task_to_domain,
            create_time: now_ms(),
            end_time: 0,
        };
        state.workflows.insert(id.clone(), workflow);
        Self::schedule(&mut state, &id, 0, None, 0);
        drop(state);
        self.enqueued.notify_all();
        id
    }

    /// Schedules task `index` of workflow `id` (a retry when `retry_of` is set).
    fn schedule(
        state: &mut State,
        id: &str,
        index: usize,
        retry_of: Option<&TaskRecord>,
        delay_ms: i64,
    ) {
        let Some(workflow) = state.workflows.get(id) else {
            return;
        };
        let Some(wt) = workflow
            .def
            .get("tasks")
            .and_then(Value::as_array)
            .and_then(|t| t.get(index))
            .cloned()
        else {
            return;
        };
        let name = wt
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let reference = wt
            .get("taskReferenceName")
            .and_then(Value::as_str)
            .unwrap_or(&name)
            .to_owned();
        let latest: Vec<(&str, &Value, &Value)> = workflow
            .task_ids
            .iter()
            .filter_map(|tid| state.tasks.get(tid))
            .map(|t| {
                (
                    t.reference_task_name.as_str(),
                    &t.input_data,
                    &t.output_data,
                )
            })
            .collect();
        let scope = Scope {
            workflow_id: id,
            input: &workflow.input,
            tasks: latest,
        };
        let input = scope.resolve(wt.get("inputParameters").unwrap_or(&json!({})));
        let task_def = workflow.task_defs.get(&name);
        let response_timeout = u64_field(task_def, "responseTimeoutSeconds", 3600);
        let workflow_type = workflow.name.clone();
        let domain = Self::pick_domain(
            workflow
                .task_to_domain
                .get(&name)
                .or_else(|| workflow.task_to_domain.get("*")),
            &name,
            &state.last_poll,
        );
        let seq = workflow.task_ids.len() as u64 + 1;
        state.next_id += 1;
        let task_id = format!("task-{:08}-{:08x}", state.next_id, fastrand::u32(..));
        let now = now_ms();
        let record = TaskRecord {
            task_id: task_id.clone(),
            task_type: name.clone(),
            task_def_name: name.clone(),
            reference_task_name: reference,
            workflow_instance_id: id.to_owned(),
            workflow_type,
            status: "SCHEDULED".into(),
            input_data: input,
            output_data: json!({}),
            retry_count: retry_of.map_or(0, |t| t.retry_count + 1),
            retried_task_id: retry_of.map(|t| t.task_id.clone()),
            retried: false,
            seq,
            iteration: 0,
            poll_count: 0,
            worker_id: None,
            response_timeout_seconds: response_timeout,
            callback_after_seconds: 0,
            domain: domain.clone(),
            reason_for_incompletion: retry_of.and_then(|t| t.reason_for_incompletion.clone()),
            scheduled_time: now,
            start_time: 0,
            end_time: 0,
            update_time: now,
        };
        state.tasks.insert(task_id.clone(), record);
        if delay_ms > 0 {
            state.visible_at.insert(task_id.clone(), now + delay_ms);
        }
        if let Some(workflow) = state.workflows.get_mut(id) {
            workflow.task_ids.push(task_id.clone());
        }
        state
            .queues
            .entry(queue_name(domain.as_deref(), &name))
            .or_default()
            .push(task_id);
    }

    /// The domain a task is queued in, as the real server picks it: the first listed domain
    /// polled within the last 10 s, else the last one listed; `NO_DOMAIN` is the default queue.
    fn pick_domain(
        mapping: Option<&String>,
        task_type: &str,
        last_poll: &HashMap<String, i64>,
    ) -> Option<String> {
        let domains: Vec<&str> = mapping?
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        let now = now_ms();
        let active = domains.iter().find(|domain| {
            last_poll
                .get(&queue_name(Some(domain), task_type))
                .is_some_and(|at| now - at <= ACTIVE_WORKER_LAST_POLL_MS)
        });
        let chosen = active.or(domains.last())?;
        (*chosen != "NO_DOMAIN").then(|| (*chosen).to_owned())
    }

    /// Hands out up to `count` tasks of `task_type`, waiting up to `timeout` for the first.
    pub fn poll(
        &self,
        task_type: &str,
        domain: Option<&str>,
        worker_id: Option<&str>,
        count: usize,
        timeout: Duration,
    ) -> Vec<TaskRecord> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        loop {
            let taken = Self::take(&mut state, task_type, domain, worker_id, count);
            if !taken.is_empty()
                || Instant::now() >= deadline
                || self.closed.load(std::sync::atomic::Ordering::Acquire)
            {
                return taken;
            }
            // Wake at the deadline, on an enqueue, or soon for delayed tasks becoming visible.
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20));
            self.enqueued.wait_for(&mut state, wait);
        }
    }

    fn take(
        state: &mut State,
        task_type: &str,
        domain: Option<&str>,
        worker_id: Option<&str>,
        count: usize,
    ) -> Vec<TaskRecord> {
        let now = now_ms();
        let queue_name = queue_name(domain, task_type);
        state.last_poll.insert(queue_name.clone(), now);
        let limit = state
            .task_defs
            .get(task_type)
            .and_then(|d| d.get("concurrentExecLimit"))
            .and_then(Value::as_u64);
        let mut in_progress = match limit {
            Some(_) => state
                .tasks
                .values()
                .filter(|t| t.task_def_name == task_type && t.status == "IN_PROGRESS")
                .count() as u64,
            None => 0,
        };
        let Some(queue) = state.queues.get_mut(&queue_name) else {
            return Vec::new();
        };
        let mut picked = Vec::new();
        let mut index = 0;
        while index < queue.len() && picked.len() < count {
            let id = &queue[index];
            let Some(task) = state.tasks.get(id) else {
                queue.remove(index);
                continue;
            };
            if is_terminal(&task.status) {
                state.visible_at.remove(id);
                queue.remove(index);
                continue;
            }
            let hidden = state.visible_at.get(id).is_some_and(|at| *at > now);
            if hidden || limit.is_some_and(|l| in_progress >= l) {
                index += 1;
                continue;
            }
            state.visible_at.remove(id);
            picked.push(queue.remove(index));
            in_progress += 1;
        }
        picked
            .into_iter()
            .filter_map(|id| {
                let task = state.tasks.get_mut(&id)?;
                task.status = "IN_PROGRESS".into();
                if task.start_time == 0 {
                    task.start_time = now;
                }
                task.callback_after_seconds = 0;
                task.worker_id = worker_id.map(str::to_owned);
                task.poll_count += 1;
                task.update_time = now;
                Some(task.clone())
            })
            .collect()
    }

    /// One task.
    pub fn task(&self, task_id: &str) -> Option<TaskRecord> {
        self.state.lock().tasks.get(task_id).cloned()
    }

    /// Applies a worker update (`POST /api/tasks`) in the real server's order: the status
    /// must be a `TaskResult.Status` (500 otherwise, a body Jackson cannot read), both ids
    /// are required (400), a lease extension only bumps `updateTime`, unknown ids are 404,
    /// an update to a finished task or workflow is accepted and ignored, and only then is a
    /// missing status an error (500, an NPE there).
    pub fn update(&self, body: TaskResultBody) -> Result<Updated, EngineError> {
        if let Some(status) = body.status.as_deref()
            && !RESULT_STATUSES.contains(&status)
        {
            return Err(EngineError::new(
                500,
                format!(
                    "JSON parse error: Cannot deserialize value of type `TaskResult$Status` from String \"{status}\": not one of the values accepted for Enum class: [{}]",
                    RESULT_STATUSES.join(", ")
                ),
            ));
        }
        let task_id = body.task_id.clone().unwrap_or_default();
        let workflow_id = body.workflow_instance_id.clone().unwrap_or_default();
        let mut violations = Vec::new();
        if workflow_id.is_empty() {
            violations.push(violation(
                "updateTask.taskResult.workflowInstanceId",
                "Workflow Id cannot be null or empty",
            ));
        }
        if task_id.is_empty() {
            violations.push(violation(
                "updateTask.taskResult.taskId",
                "Task ID cannot be null or empty",
            ));
        }
        validated(violations)?;
        let mut state = self.state.lock();
        let now = now_ms();
        if body.extend_lease == Some(true) {
            let task = state
                .tasks
                .get_mut(&task_id)
                .ok_or_else(|| not_found(format!("No such task found by id: {task_id}")))?;
            if !is_terminal(&task.status) {
                task.update_time = now;
            }
            return Ok(Updated {
                task_type: task.task_type.clone(),
                domain: task.domain.clone(),
                task_id,
                poll_next: false,
            });
        }
        let workflow_terminal = match state.workflows.get(&workflow_id) {
            None => {
                return Err(not_found(format!(
                    "No such workflow found by id: {workflow_id}"
                )));
            }
            Some(w) => w.status != "RUNNING",
        };
        let task = state
            .tasks
            .get_mut(&task_id)
            .ok_or_else(|| not_found(format!("No such task found by id: {task_id}")))?;
        let task_type = task.task_type.clone();
        let domain = task.domain.clone();
        if is_terminal(&task.status) || workflow_terminal {
            return Ok(Updated {
                poll_next: is_terminal(&task.status),
                task_id,
                task_type,
                domain,
            });
        }
        let Some(status) = body.status else {
            return Err(EngineError::new(500, "task result status is null"));
        };
        // Like the real server: worker id, output and reason are replaced, not merged.
        task.worker_id = body.worker_id;
        task.update_time = now;
        task.output_data = Value::Object(body.output_data.unwrap_or_default());
        task.reason_for_incompletion = body
            .reason_for_incompletion
            .map(|r| r.chars().take(500).collect());
        for entry in body.logs.unwrap_or_default() {
            let created_time = entry.created_time.unwrap_or(now);
            Self::push_log(
                &mut state,
                &task_id,
                entry.log.unwrap_or_default(),
                created_time,
            );
        }
        let Some(task) = state.tasks.get_mut(&task_id) else {
            return Err(not_found(format!("No such task found by id: {task_id}")));
        };
        if status == "IN_PROGRESS" {
            // "Check back later": back to the queue, visible after the callback delay.
            let delay = body.callback_after_seconds.unwrap_or(0);
            task.status = "SCHEDULED".into();
            task.callback_after_seconds = delay;
            if delay > 0 {
                state.visible_at.insert(
                    task_id.clone(),
                    now.saturating_add((delay as i64).saturating_mul(1000)),
                );
            } else {
                state.visible_at.remove(&task_id);
            }
            let queue = state
                .queues
                .entry(queue_name(domain.as_deref(), &task_type))
                .or_default();
            if !queue.contains(&task_id) {
                queue.push(task_id.clone());
            }
            drop(state);
            self.enqueued.notify_all();
            return Ok(Updated {
                task_id,
                task_type,
                domain,
                poll_next: false,
            });
        }
        task.status = status;
        task.end_time = now;
        Self::decide(&mut state, &task_id);
        drop(state);
        self.enqueued.notify_all();
        Ok(Updated {
            task_id,
            task_type,
            domain,
            poll_next: true,
        })
    }

    fn push_log(state: &mut State, task_id: &str, log: String, created_time: i64) {
        let logs = state.logs.entry(task_id.to_owned()).or_default();
        if logs.len() >= MAX_LOGS_PER_TASK {
            logs.remove(0);
        }
        logs.push(TaskLog {
            log,
            task_id: task_id.to_owned(),
            created_time,
        });
    }

    /// Appends one execution log line to a task (`POST /api/tasks/{taskId}/log`). Like the
    /// real server, the task id is not checked.
    pub fn add_log(&self, task_id: &str, log: String) {
        let mut state = self.state.lock();
        Self::push_log(&mut state, task_id, log, now_ms());
    }

    /// A task's execution logs in the order received (`GET /api/tasks/{taskId}/log`).
    pub fn logs(&self, task_id: &str) -> Vec<TaskLog> {
        self.state
            .lock()
            .logs
            .get(task_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Reacts to a task reaching a terminal status.
    fn decide(state: &mut State, task_id: &str) {
        let Some(task) = state.tasks.get(task_id).cloned() else {
            return;
        };
        let Some(workflow) = state.workflows.get(&task.workflow_instance_id) else {
            return;
        };
        let workflow_id = workflow.id.clone();
        let tasks_in_def = workflow
            .def
            .get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let index = tasks_in_def
            .iter()
            .position(|t| {
                t.get("taskReferenceName").and_then(Value::as_str)
                    == Some(task.reference_task_name.as_str())
            })
            .unwrap_or(0);
        match task.status.as_str() {
            "COMPLETED" => {
                if index + 1 < tasks_in_def.len() {
                    Self::schedule(state, &workflow_id, index + 1, None, 0);
                } else {
                    Self::finish_workflow(state, &workflow_id, "COMPLETED", None);
                }
            }
            "FAILED" | "TIMED_OUT" => {
                let def = workflow.task_defs.get(&task.task_def_name);
                let allowed = tasks_in_def
                    .get(index)
                    .and_then(|t| t.get("retryCount"))
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| {
                        u64_field(def, "retryCount", if def.is_some() { 3 } else { 0 })
                    });
                if u64::from(task.retry_count) < allowed {
                    let delay = u64_field(def, "retryDelaySeconds", 60);
                    let max = u64_field(def, "maxRetryDelaySeconds", 0);
                    let logic = def
                        .and_then(|d| d.get("retryLogic"))
                        .and_then(Value::as_str)
                        .unwrap_or("FIXED");
                    let mut seconds = match logic {
                        "EXPONENTIAL_BACKOFF" => {
                            delay.saturating_mul(1 << task.retry_count.min(30))
                        }
                        "LINEAR_BACKOFF" => delay
                            .saturating_mul(u64_field(def, "backoffScaleFactor", 1))
                            .saturating_mul(u64::from(task.retry_count) + 1),
                        _ => delay,
                    };
                    if max > 0 {
                        seconds = seconds.min(max);
                    }
                    if let Some(old) = state.tasks.get_mut(task_id) {
                        old.retried = true;
                    }
                    Self::schedule(
                        state,
                        &workflow_id,
                        index,
                        Some(&task),
                        (seconds * 1000) as i64,
                    );
                } else {
                    let status = if task.status == "TIMED_OUT" {
                        "TIMED_OUT"
                    } else {
                        "FAILED"
                    };
                    Self::fail_workflow(state, &workflow_id, status, &task);
                }
            }
            "FAILED_WITH_TERMINAL_ERROR" => {
                Self::fail_workflow(state, &workflow_id, "FAILED", &task)
            }
            "CANCELED" => Self::finish_workflow(state, &workflow_id, "TERMINATED", None),
            _ => {}
        }
    }

    fn fail_workflow(state: &mut State, id: &str, status: &str, task: &TaskRecord) {
        let reason = format!(
            "Task {} failed with status: {} and reason: '{}'",
            task.task_id,
            task.status,
            task.reason_for_incompletion.clone().unwrap_or_default()
        );
        Self::finish_workflow(state, id, status, Some(reason));
    }

    fn finish_workflow(state: &mut State, id: &str, status: &str, reason: Option<String>) {
        let outputs: Vec<(String, Value, Value)> = state
            .workflows
            .get(id)
            .map(|w| {
                w.task_ids
                    .iter()
                    .filter_map(|t| state.tasks.get(t))
                    .map(|t| {
                        (
                            t.reference_task_name.clone(),
                            t.input_data.clone(),
                            t.output_data.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let Some(workflow) = state.workflows.get_mut(id) else {
            return;
        };
        workflow.status = status.to_owned();
        workflow.reason = reason;
        workflow.end_time = now_ms();
        if status == "COMPLETED" {
            workflow.output = match workflow.def.get("outputParameters") {
                Some(template) if template.as_object().is_some_and(|m| !m.is_empty()) => Scope {
                    workflow_id: id,
                    input: &workflow.input,
                    tasks: outputs.iter().map(|(r, i, o)| (r.as_str(), i, o)).collect(),
                }
                .resolve(template),
                _ => outputs
                    .last()
                    .map(|(_, _, o)| o.clone())
                    .unwrap_or(json!({})),
            };
        }
    }

    /// Terminates a workflow: its unfinished tasks become CANCELED.
    ///
    /// As in the real server, a COMPLETED workflow cannot be terminated (409), terminating a
    /// TERMINATED one is a no-op, and a FAILED or TIMED_OUT one becomes TERMINATED.
    pub fn terminate(&self, id: &str, reason: Option<String>) -> Result<(), EngineError> {
        let mut state = self.state.lock();
        let (task_ids, status) = state
            .workflows
            .get(id)
            .map(|w| (w.task_ids.clone(), w.status.clone()))
            .ok_or_else(|| not_found(format!("No such workflow found by id: {id}")))?;
        match status.as_str() {
            "COMPLETED" => {
                return Err(EngineError::new(
                    409,
                    "Cannot terminate a COMPLETED workflow.",
                ));
            }
            "TERMINATED" => return Ok(()),
            _ => {}
        }
        for task_id in task_ids {
            if let Some(task) = state.tasks.get_mut(&task_id)
                && !is_terminal(&task.status)
            {
                task.status = "CANCELED".into();
                task.end_time = now_ms();
            }
        }
        Self::finish_workflow(&mut state, id, "TERMINATED", reason);
        Ok(())
    }

    /// A workflow as JSON, with its tasks in seq order.
    pub fn workflow(&self, id: &str) -> Result<Value, EngineError> {
        let state = self.state.lock();
        let workflow = state
            .workflows
            .get(id)
            .ok_or_else(|| not_found(format!("No such workflow found by id: {id}")))?;
        let tasks: Vec<Value> = workflow
            .task_ids
            .iter()
            .filter_map(|t| state.tasks.get(t))
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        let mut out = Map::new();
        out.insert("workflowId".into(), json!(workflow.id));
        out.insert("workflowName".into(), json!(workflow.name));
        out.insert("workflowVersion".into(), json!(workflow.version));
        out.insert("status".into(), json!(workflow.status));
        out.insert("input".into(), workflow.input.clone());
        out.insert("output".into(), workflow.output.clone());
        out.insert("createTime".into(), json!(workflow.create_time));
        out.insert("startTime".into(), json!(workflow.create_time));
        out.insert("endTime".into(), json!(workflow.end_time));
        if let Some(reason) = &workflow.reason {
            out.insert("reasonForIncompletion".into(), json!(reason));
        }
        if !workflow.task_to_domain.is_empty() {
            out.insert("taskToDomain".into(), json!(workflow.task_to_domain));
        }
        out.insert("tasks".into(), Value::Array(tasks));
        Ok(Value::Object(out))
    }

    /// Applies response timeouts; called by the sweeper.
    pub fn sweep(&self) {
        let mut state = self.state.lock();
        let now = now_ms();
        let expired: Vec<String> = state
            .tasks
            .values()
            .filter(|t| {
                t.status == "IN_PROGRESS"
                    && now - t.update_time
                        >= ((t.response_timeout_seconds + t.callback_after_seconds) * 1000) as i64
            })
            .map(|t| t.task_id.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in expired {
            if let Some(task) = state.tasks.get_mut(&id) {
                task.status = "TIMED_OUT".into();
                task.end_time = now;
                task.reason_for_incompletion = Some(format!(
                    "responseTimeout: {} exceeded for the taskId: {id}",
                    task.response_timeout_seconds
                ));
            }
            Self::decide(&mut state, &id);
        }
        drop(state);
        self.enqueued.notify_all();
    }
}
