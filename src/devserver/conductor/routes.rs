//! The Conductor REST surface (`/api/...`) over the [`Engine`].

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::engine::{Engine, EngineError, TaskResultBody};
use crate::devserver::http::{Request, Response, Routed, Service};

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

fn error(status: u16, message: &str) -> Response {
    Response::json(
        status,
        &json!({"status": status, "message": message, "instance": "perago-dev-server", "retryable": status >= 500}),
    )
}

fn engine_error(err: EngineError) -> Response {
    error(err.status, &err.message)
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
        let count = request
            .query("count")
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let timeout = request
            .query("timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(100);
        if timeout > 5000 {
            return error(400, "Long Poll Timeout value cannot be more than 5 seconds");
        }
        let (count, timeout) = if batch { (count, timeout) } else { (1, 100) };
        let tasks = self.engine.poll(
            task_type,
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
        let body: TaskResultBody = match request.json() {
            Ok(body) => body,
            Err(err) => return error(500, &format!("failed to parse task result: {err}")),
        };
        let worker_id = body.worker_id.clone();
        let extend = body.extend_lease == Some(true);
        let in_progress = body.status.as_deref() == Some("IN_PROGRESS");
        match self.engine.update(body) {
            Err(err) => engine_error(err),
            Ok((task_id, _)) if !v2 => Response::text(200, &task_id),
            Ok(_) if extend || in_progress => Response::empty(204),
            Ok((_, task_type)) => {
                let next = self.engine.poll(
                    &task_type,
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
            ("GET", ["tasks", task_id]) => (
                "GET /tasks/{taskId}",
                match self.engine.task(task_id) {
                    Some(task) => Response::json(200, &task),
                    None => error(404, &format!("Task not found for taskId: {task_id}")),
                },
            ),
            ("POST", ["metadata", "taskdefs"]) => (
                "POST /metadata/taskdefs",
                match request.json::<Vec<Value>>() {
                    Ok(defs) => match self.engine.register_task_defs(defs) {
                        Ok(()) => Response::empty(200),
                        Err(err) => engine_error(err),
                    },
                    Err(err) => error(400, &format!("invalid TaskDef list: {err}")),
                },
            ),
            ("PUT", ["metadata", "taskdefs"]) => (
                "PUT /metadata/taskdefs",
                match request.json::<Value>() {
                    Ok(def) => match self.engine.update_task_def(def) {
                        Ok(()) => Response::empty(200),
                        Err(err) => engine_error(err),
                    },
                    Err(err) => error(400, &format!("invalid TaskDef: {err}")),
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
                match request.json::<Value>() {
                    Ok(def) => {
                        let overwrite = request.query("overwrite") == Some("true");
                        match self.engine.register_workflow_def(def, overwrite) {
                            Ok(()) => Response::empty(200),
                            Err(err) => engine_error(err),
                        }
                    }
                    Err(err) => error(400, &format!("invalid WorkflowDef: {err}")),
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
                match request.json::<Value>() {
                    Ok(body) => {
                        let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
                        let version = body.get("version").and_then(Value::as_u64);
                        let input = body.get("input").cloned().unwrap_or(json!({}));
                        match self.engine.start_workflow(name, version, input) {
                            Ok(id) => Response::text(200, &id),
                            Err(err) => engine_error(err),
                        }
                    }
                    Err(err) => error(400, &format!("invalid StartWorkflowRequest: {err}")),
                },
            ),
            ("POST", ["workflow", name]) => (
                "POST /workflow/{name}",
                match request.json::<Value>() {
                    Ok(input) => {
                        let version = request.query("version").and_then(|v| v.parse().ok());
                        match self.engine.start_workflow(name, version, input) {
                            Ok(id) => Response::text(200, &id),
                            Err(err) => engine_error(err),
                        }
                    }
                    Err(err) => error(400, &format!("invalid workflow input: {err}")),
                },
            ),
            ("GET", ["workflow", id]) => (
                "GET /workflow/{workflowId}",
                match self.engine.workflow(id) {
                    Ok(workflow) => Response::json(200, &workflow),
                    Err(err) => engine_error(err),
                },
            ),
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
            _ => (
                "unknown",
                error(404, &format!("No static resource {}.", request.path)),
            ),
        };
        Routed { route, response }
    }
}
