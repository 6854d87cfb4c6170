//! The Conductor REST surface (`/api/...`) over the [`Engine`].

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::engine::{Engine, EngineError, TaskResultBody};
use crate::http::{Request, Response, Routed, Service};

/// How an empty batch poll is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyPoll {
    /// `200 []` (OSS ≥ 3.21.20).
    #[default]
    EmptyArray,
    /// `204` with an empty body (older servers).
    NoContent,
}

/// Whether `POST /api/tasks/update-v2` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateV2 {
    /// Available.
    #[default]
    Enabled,
    /// Answered 404, like some Orkes builds.
    Disabled404,
    /// Answered 405, like OSS without the endpoint.
    Disabled405,
}

/// Options of the Conductor side.
#[derive(Debug, Clone, Default)]
pub struct ConductorOptions {
    /// Empty-poll answer.
    pub empty_poll: EmptyPoll,
    /// update-v2 availability.
    pub update_v2: UpdateV2,
    /// Orkes-style auth `(key id, key secret)`; `None` = OSS (no auth).
    pub auth: Option<(String, String)>,
}

/// The Conductor service mounted at `/api`.
pub struct ConductorService {
    engine: Arc<Engine>,
    options: Mutex<ConductorOptions>,
    tokens: Mutex<Vec<String>>,
}

impl std::fmt::Debug for ConductorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConductorService").finish_non_exhaustive()
    }
}

/// The OSS `ErrorResponse`. `retryable` is true only for the real server's
/// `TransientException` (a database or queue hiccup), which the dev server never has.
fn error(status: u16, message: &str) -> Response {
    Response::json(
        status,
        &json!({"status": status, "message": message, "instance": "perago-dev-server", "retryable": false}),
    )
}

fn engine_error(err: EngineError) -> Response {
    if err.violations.is_empty() {
        return error(err.status, &err.message);
    }
    // The bean-validation shape: no `instance`, the failures under `validationErrors`.
    let violations: Vec<Value> = err
        .violations
        .iter()
        .map(|v| json!({"path": v.path, "message": v.message}))
        .collect();
    Response::json(
        err.status,
        &json!({"status": err.status, "message": err.message, "retryable": false,
            "validationErrors": violations}),
    )
}

/// A request body a route cannot read as its type: 500, as in the real server, whose
/// catch-all exception handler maps Jackson's error (and a missing body) to 500.
fn unreadable(what: &str, err: &serde_json::Error) -> Response {
    error(500, &format!("JSON parse error: invalid {what}: {err}"))
}

/// A query parameter Spring cannot convert: an unmapped exception, so 500.
fn bad_query_value(value: &str, java_type: &str) -> Response {
    error(
        500,
        &format!(
            "Failed to convert value of type 'java.lang.String' to required type '{java_type}'; For input string: \"{value}\""
        ),
    )
}

/// A boolean query parameter read as Spring's `StringToBooleanConverter` reads it: trimmed,
/// case-insensitive `true`/`on`/`yes`/`1` and `false`/`off`/`no`/`0`; absent or empty means
/// `default`; anything else is a conversion failure (500).
fn bool_query(request: &Request, name: &str, default: bool) -> Result<bool, Response> {
    match request.query(name) {
        None => Ok(default),
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(default),
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(bad_query_value(value, "boolean")),
        },
    }
}

/// An integer query parameter: `default` when absent, `Err` with the 500 when not a number.
fn int_query(request: &Request, name: &str, default: i64) -> Result<i64, Response> {
    match request.query(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse::<i64>()
            .map_err(|_| bad_query_value(value, "int")),
    }
}

/// The body read as a JSON object into `T`. serde would also fill a struct from a JSON array
/// (`[]` becomes all defaults); Jackson refuses that, and so does this.
fn object_body<T: DeserializeOwned>(request: &Request) -> Result<T, serde_json::Error> {
    let object: Map<String, Value> = request.json()?;
    serde_json::from_value(Value::Object(object))
}

/// The body of `POST /api/workflow` (`StartWorkflowRequest`, the fields the dev server uses).
#[derive(Debug, Deserialize)]
struct StartRequest {
    name: Option<String>,
    version: Option<u64>,
    input: Option<Map<String, Value>>,
    #[serde(default, rename = "taskToDomain")]
    task_to_domain: Option<std::collections::BTreeMap<String, String>>,
}

/// Paths the dev server serves, for telling a wrong method (405) from an unknown path (404).
fn known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["tasks"]
            | ["tasks", _]
            | ["tasks", _, "log"]
            | ["tasks", "poll", _]
            | ["tasks", "poll", "batch", _]
            | ["metadata", "taskdefs"]
            | ["metadata", "taskdefs", _]
            | ["metadata", "workflow"]
            | ["metadata", "workflow", _]
            | ["workflow"]
            | ["workflow", _]
    )
}

impl ConductorService {
    /// A service over `engine`.
    pub fn new(engine: Arc<Engine>, options: ConductorOptions) -> ConductorService {
        ConductorService {
            engine,
            options: Mutex::new(options),
            tokens: Mutex::new(Vec::new()),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Changes update-v2 availability at run time.
    pub fn set_update_v2(&self, mode: UpdateV2) {
        self.options.lock().update_v2 = mode;
    }

    /// Changes the empty-poll answer at run time.
    pub fn set_empty_poll(&self, mode: EmptyPoll) {
        self.options.lock().empty_poll = mode;
    }

    fn authorised(&self, request: &Request) -> bool {
        if self.options.lock().auth.is_none() {
            return true;
        }
        request
            .header("X-Authorization")
            .is_some_and(|token| self.tokens.lock().iter().any(|t| t == token))
    }

    fn token(&self, request: &Request) -> Response {
        let auth = self.options.lock().auth.clone();
        let Some((key, secret)) = auth else {
            return error(404, "No static resource api/token.");
        };
        let body: Value = request.json().unwrap_or(Value::Null);
        if body.get("keyId").and_then(Value::as_str) == Some(key.as_str())
            && body.get("keySecret").and_then(Value::as_str) == Some(secret.as_str())
        {
            let token = format!("devtoken-{:016x}", fastrand::u64(..));
            self.tokens.lock().push(token.clone());
            Response::json(200, &json!({"token": token}))
        } else {
            Response::json(
                401,
                &json!({"message": "Invalid credentials", "error": "INVALID_TOKEN"}),
            )
        }
    }

    fn poll(&self, request: &Request, task_type: &str, batch: bool) -> Response {
        // The single poll takes no count or timeout: it is a batch of one with 100 ms.
        let (count, timeout) = if batch {
            let count = match int_query(request, "count", 1) {
                Ok(count) => count,
                Err(response) => return response,
            };
            let timeout = match int_query(request, "timeout", 100) {
                Ok(timeout) => timeout,
                Err(response) => return response,
            };
            if timeout > 5000 {
                return error(400, "Long Poll Timeout value cannot be more than 5 seconds");
            }
            // Backends differ on a count below 1 and SDKs never send one; take one.
            (
                usize::try_from(count).unwrap_or(0).max(1),
                u64::try_from(timeout).unwrap_or(0),
            )
        } else {
            (1, 100)
        };
        // An empty `domain=` names the queue `:<taskType>`, as in the real server.
        let tasks = self.engine.poll(
            task_type,
            request.query("domain"),
            request.query("workerid"),
            count,
            Duration::from_millis(timeout),
        );
        if !batch {
            return match tasks.first() {
                Some(task) => Response::json(200, task),
                None => Response::empty(204),
            };
        }
        if tasks.is_empty() && self.options.lock().empty_poll == EmptyPoll::NoContent {
            return Response::empty(204);
        }
        Response::json(200, &tasks)
    }

    fn update(&self, request: &Request, v2: bool) -> Response {
        // A TaskResult Jackson cannot read is an unmapped exception in the real server: 500.
        let body: TaskResultBody = match object_body(request) {
            Ok(body) => body,
            Err(err) => return error(500, &format!("JSON parse error: {err}")),
        };
        let worker_id = body.worker_id.clone();
        match self.engine.update(body) {
            Err(err) => engine_error(err),
            Ok(updated) if !v2 => Response::text(200, &updated.task_id),
            Ok(updated) if !updated.poll_next => Response::empty(204),
            Ok(updated) => {
                let task_type = updated.task_type;
                let next = self.engine.poll(
                    &task_type,
                    updated.domain.as_deref(),
                    worker_id.as_deref(),
                    1,
                    Duration::from_millis(100),
                );
                match next.first() {
                    Some(task) => Response::json(200, task),
                    None => Response::empty(204),
                }
            }
        }
    }
}

impl ConductorService {
    /// `GET /workflow/{id}?includeTasks=`: without tasks the list is empty, not absent.
    fn workflow(&self, request: &Request, id: &str) -> Response {
        let include_tasks = match bool_query(request, "includeTasks", true) {
            Ok(include) => include,
            Err(response) => return response,
        };
        match self.engine.workflow(id) {
            Ok(mut workflow) => {
                if !include_tasks {
                    workflow["tasks"] = json!([]);
                }
                Response::json(200, &workflow)
            }
            Err(err) => engine_error(err),
        }
    }
}

impl Service for ConductorService {
    fn handle(&self, request: &Request) -> Routed {
        let segments = request.segment_strs();
        let method = request.method.as_str();
        let (route, response) = match (method, segments.as_slice()) {
            ("POST", ["token"]) => ("POST /token", self.token(request)),
            _ if !self.authorised(request) => (
                "unauthorised",
                Response::json(
                    401,
                    &json!({"message": "Token cannot be null or empty", "error": "INVALID_TOKEN"}),
                ),
            ),
            ("GET", ["tasks", "poll", "batch", task_type]) => (
                "GET /tasks/poll/batch/{taskType}",
                self.poll(request, task_type, true),
            ),
            ("GET", ["tasks", "poll", task_type]) => (
                "GET /tasks/poll/{taskType}",
                self.poll(request, task_type, false),
            ),
            ("POST", ["tasks", "update-v2"]) => {
                let mode = self.options.lock().update_v2;
                let response = match mode {
                    UpdateV2::Enabled => self.update(request, true),
                    UpdateV2::Disabled404 => error(404, "No static resource api/tasks/update-v2."),
                    UpdateV2::Disabled405 => error(405, "Request method 'POST' is not supported"),
                };
                ("POST /tasks/update-v2", response)
            }
            ("POST", ["tasks"]) => ("POST /tasks", self.update(request, false)),
            ("POST", ["tasks", task_id, "log"]) => (
                "POST /tasks/{taskId}/log",
                // Spring's `@RequestBody String`: the raw body, whatever its content type.
                {
                    self.engine
                        .add_log(task_id, String::from_utf8_lossy(&request.body).into_owned());
                    Response::empty(200)
                },
            ),
            ("GET", ["tasks", task_id, "log"]) => (
                "GET /tasks/{taskId}/log",
                Response::json(200, &self.engine.logs(task_id)),
            ),
            ("GET", ["tasks", task_id]) => (
                "GET /tasks/{taskId}",
                match self.engine.task(task_id) {
                    Some(task) => Response::json(200, &task),
                    None => error(404, &format!("Task not found for taskId: {task_id}")),
                },
            ),
            ("POST", ["metadata", "taskdefs"]) => (
                "POST /metadata/taskdefs",
                match request.json::<Vec<Map<String, Value>>>() {
                    Ok(defs) => match self
                        .engine
                        .register_task_defs(defs.into_iter().map(Value::Object).collect())
                    {
                        Ok(()) => Response::empty(200),
                        Err(err) => engine_error(err),
                    },
                    Err(err) => unreadable("TaskDef list", &err),
                },
            ),
            ("PUT", ["metadata", "taskdefs"]) => (
                "PUT /metadata/taskdefs",
                match request.json::<Map<String, Value>>() {
                    Ok(def) => match self.engine.update_task_def(Value::Object(def)) {
                        Ok(()) => Response::empty(200),
                        Err(err) => engine_error(err),
                    },
                    Err(err) => unreadable("TaskDef", &err),
                },
            ),
            ("GET", ["metadata", "taskdefs"]) => (
                "GET /metadata/taskdefs",
                Response::json(200, &self.engine.task_defs()),
            ),
            ("GET", ["metadata", "taskdefs", name]) => (
                "GET /metadata/taskdefs/{name}",
                match self.engine.task_def(name) {
                    Ok(def) => Response::json(200, &def),
                    Err(err) => engine_error(err),
                },
            ),
            ("DELETE", ["metadata", "taskdefs", name]) => (
                "DELETE /metadata/taskdefs/{name}",
                match self.engine.delete_task_def(name) {
                    Ok(()) => Response::empty(200),
                    Err(err) => engine_error(err),
                },
            ),
            ("POST", ["metadata", "workflow"]) => (
                "POST /metadata/workflow",
                match request.json::<Map<String, Value>>() {
                    Ok(def) => {
                        let overwrite = match bool_query(request, "overwrite", false) {
                            Ok(overwrite) => overwrite,
                            Err(response) => {
                                return Routed {
                                    route: "POST /metadata/workflow",
                                    response,
                                };
                            }
                        };
                        match self
                            .engine
                            .register_workflow_def(Value::Object(def), overwrite)
                        {
                            Ok(()) => Response::empty(200),
                            Err(err) => engine_error(err),
                        }
                    }
                    Err(err) => unreadable("WorkflowDef", &err),
                },
            ),
            ("GET", ["metadata", "workflow", name]) => (
                "GET /metadata/workflow/{name}",
                match self
                    .engine
                    .workflow_def(name, request.query("version").and_then(|v| v.parse().ok()))
                {
                    Ok(def) => Response::json(200, &def),
                    Err(err) => engine_error(err),
                },
            ),
            ("POST", ["workflow"]) => (
                "POST /workflow",
                match object_body::<StartRequest>(request) {
                    Ok(body) => {
                        let input = Value::Object(body.input.unwrap_or_default());
                        match self.engine.start_workflow_request(
                            body.name.as_deref(),
                            body.version,
                            input,
                            body.task_to_domain.unwrap_or_default(),
                        ) {
                            Ok(id) => Response::text(200, &id),
                            Err(err) => engine_error(err),
                        }
                    }
                    Err(err) => unreadable("StartWorkflowRequest", &err),
                },
            ),
            ("POST", ["workflow", name]) => (
                "POST /workflow/{name}",
                // The body is the input map; anything else (an array, `null`) is unreadable.
                match request.json::<Map<String, Value>>() {
                    Ok(input) => {
                        let version = request.query("version").and_then(|v| v.parse().ok());
                        match self
                            .engine
                            .start_workflow(name, version, Value::Object(input))
                        {
                            Ok(id) => Response::text(200, &id),
                            Err(err) => engine_error(err),
                        }
                    }
                    Err(err) => unreadable("workflow input", &err),
                },
            ),
            ("GET", ["workflow", id]) => ("GET /workflow/{workflowId}", self.workflow(request, id)),
            ("DELETE", ["workflow", id]) => (
                "DELETE /workflow/{workflowId}",
                match self
                    .engine
                    .terminate(id, request.query("reason").map(str::to_owned))
                {
                    Ok(()) => Response::empty(200),
                    Err(err) => engine_error(err),
                },
            ),
            (method, segments) if known_path(segments) => (
                "method not allowed",
                error(405, &format!("Request method '{method}' is not supported")),
            ),
            _ => (
                "unknown",
                error(404, &format!("No static resource {}.", request.path)),
            ),
        };
        Routed { route, response }
    }
}
