//! Every Conductor route of the dev server over real HTTP, checked against what the real
//! Conductor server answers (`protocols/conductor-api.md`, conductor-oss sources): metadata,
//! start and inspect, polling, updates v1 and v2, timeouts, token auth, persistence and bad
//! input. `smoke` holds the first smoke tests; this module covers the rest.
//!
//! Waits are conditions with deadlines, never sleeps used as synchronisation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use perago_devserver::conductor::{ConductorOptions, EmptyPoll};
use perago_devserver::{DevServer, DevServerOptions};
use serde_json::{Value, json};

use crate::support::{LONG, wait_until};

const OWNER: &str = "dev@example.com";

fn start_server(options: DevServerOptions) -> DevServer {
    DevServer::start(options).expect("dev server starts")
}

fn server() -> DevServer {
    start_server(DevServerOptions::default())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// One HTTP answer, fully read.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Asserts the OSS `ErrorResponse` shape: the HTTP status repeated in the body, the
    /// message, and `retryable: false` (only the server's transient errors are retryable).
    fn assert_error(&self, status: u16, message: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert!(
            self.content_type.starts_with("application/json"),
            "error content type {:?}",
            self.content_type
        );
        let body = self.json();
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["message"], message, "{body}");
        assert_eq!(body["retryable"], false, "{body}");
        body
    }

    fn assert_text(&self, text: &str) {
        assert_eq!(
            (self.status, self.body.as_str()),
            (200, text),
            "body: {}",
            self.body
        );
        assert!(
            self.content_type.starts_with("text/plain"),
            "content type {:?}",
            self.content_type
        );
    }

    fn assert_empty(&self, status: u16) {
        assert_eq!(
            (self.status, self.body.as_str()),
            (status, ""),
            "body: {}",
            self.body
        );
    }
}

/// A Conductor client for one dev server; `token` goes into `X-Authorization`.
struct Api {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(server: &DevServer) -> Api {
        Api {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(15)))
                .build()
                .into(),
            base: server.conductor_url(),
            token: None,
        }
    }

    fn with_token(mut self, token: &str) -> Api {
        self.token = Some(token.to_owned());
        self
    }

    /// Any request to `base + path` (`/_dev/...` paths go to the server root).
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let url = match path.strip_prefix("/_dev") {
            Some(_) => format!("{}{path}", self.base.trim_end_matches("/api")),
            None => format!("{}{path}", self.base),
        };
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            builder = builder.header("X-Authorization", token);
        }
        let result = match body {
            Some(body) => self.agent.run(
                builder
                    .header("Content-Type", "application/json")
                    .body(body.to_owned())
                    .expect("request builds"),
            ),
            None => self.agent.run(builder.body(()).expect("request builds")),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Reply {
            status: response.status().as_u16(),
            content_type,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }

    fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None)
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(&body.to_string()))
    }

    fn put(&self, path: &str, body: &Value) -> Reply {
        self.call("PUT", path, Some(&body.to_string()))
    }

    fn register_task_defs(&self, defs: &[Value]) {
        self.post("/metadata/taskdefs", &json!(defs))
            .assert_empty(200);
    }

    fn register_workflow(&self, def: &Value) {
        self.post("/metadata/workflow", def).assert_empty(200);
    }

    fn start(&self, name: &str, input: &Value) -> String {
        let reply = self.post(&format!("/workflow/{name}"), input);
        assert_eq!(reply.status, 200, "start {name}: {}", reply.body);
        reply.body
    }

    fn workflow(&self, id: &str) -> Value {
        let reply = self.get(&format!("/workflow/{id}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    fn task(&self, id: &str) -> Value {
        let reply = self.get(&format!("/tasks/{id}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    fn poll(&self, task_type: &str, worker: &str, count: u32, timeout_ms: u32) -> Vec<Value> {
        let reply = self.get(&format!(
            "/tasks/poll/batch/{task_type}?workerid={worker}&count={count}&timeout={timeout_ms}"
        ));
        assert_eq!(reply.status, 200, "{}", reply.body);
        serde_json::from_value(reply.json()).expect("a JSON array of tasks")
    }

    /// Polls with a long-poll timeout and expects exactly one task.
    fn poll_one(&self, task_type: &str, worker: &str) -> Value {
        let mut tasks = self.poll(task_type, worker, 1, 2000);
        assert_eq!(tasks.len(), 1, "expected one {task_type} task: {tasks:?}");
        tasks.remove(0)
    }

    fn update(&self, task: &Value, status: &str, extra: Value) -> Reply {
        let mut body = json!({"taskId": task["taskId"], "workflowInstanceId": task["workflowInstanceId"],
            "status": status, "workerId": "w1"});
        merge(&mut body, extra);
        self.post("/tasks", &body)
    }
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// A TaskDef with test-friendly defaults (no retries, no delays), overridden by `extra`.
fn task_def(name: &str, extra: Value) -> Value {
    let mut def = json!({"name": name, "ownerEmail": OWNER, "retryCount": 0,
        "retryDelaySeconds": 0, "responseTimeoutSeconds": 60, "timeoutSeconds": 0});
    merge(&mut def, extra);
    def
}

/// A linear workflow definition of SIMPLE tasks `(name, reference, inputParameters)`.
fn workflow_def(name: &str, version: u32, tasks: &[(&str, &str, Value)]) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|(task, reference, input)| {
            json!({"name": task, "taskReferenceName": reference, "type": "SIMPLE",
                "inputParameters": input})
        })
        .collect();
    json!({"name": name, "version": version, "schemaVersion": 2, "ownerEmail": OWNER,
        "timeoutSeconds": 0, "tasks": tasks})
}

/// Registers TaskDef `task` (with `extra`) and a one-task workflow `wf` over it.
fn one_task_workflow(api: &Api, wf: &str, task: &str, extra: Value) {
    api.register_task_defs(&[task_def(task, extra)]);
    api.register_workflow(&workflow_def(
        wf,
        1,
        &[(task, "only", json!({"x": "${workflow.input.x}"}))],
    ));
}

fn tasks_of(workflow: &Value) -> Vec<Value> {
    workflow["tasks"].as_array().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn task_defs_register_read_list_update_and_delete() {
    let server = server();
    let api = Api::new(&server);
    api.register_task_defs(&[
        task_def("td_a", json!({"retryCount": 2})),
        task_def("td_b", json!({"description": "b"})),
    ]);

    let a = api.get("/metadata/taskdefs/td_a");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.content_type.starts_with("application/json"));
    assert_eq!(a.json()["name"], "td_a");
    assert_eq!(a.json()["retryCount"], 2);

    let all = api.get("/metadata/taskdefs");
    assert_eq!(all.status, 200);
    let mut names: Vec<String> = all
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, ["td_a", "td_b"]);

    // POST is an upsert.
    api.register_task_defs(&[task_def("td_a", json!({"retryCount": 5}))]);
    assert_eq!(api.get("/metadata/taskdefs/td_a").json()["retryCount"], 5);

    // PUT updates one existing def and refuses an unknown one.
    api.put(
        "/metadata/taskdefs",
        &task_def("td_a", json!({"retryCount": 7})),
    )
    .assert_empty(200);
    assert_eq!(api.get("/metadata/taskdefs/td_a").json()["retryCount"], 7);
    api.put("/metadata/taskdefs", &task_def("td_ghost", json!({})))
        .assert_error(404, "No such task by name td_ghost");

    // DELETE, then the def is gone (and a second DELETE is a 404 too).
    api.delete("/metadata/taskdefs/td_b").assert_empty(200);
    let gone = api
        .get("/metadata/taskdefs/td_b")
        .assert_error(404, "No such taskType found by name: td_b");
    assert!(gone["instance"].is_string(), "{gone}");
    assert_eq!(api.delete("/metadata/taskdefs/td_b").status, 404);
    assert_eq!(
        api.get("/metadata/taskdefs")
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn task_def_validation_failures_are_400_with_validation_errors() {
    let server = server();
    let api = Api::new(&server);
    let cases: &[(&str, &str, Value, &str)] = &[
        (
            "POST",
            "/metadata/taskdefs",
            json!([]),
            "TaskDefList is empty",
        ),
        (
            "POST",
            "/metadata/taskdefs",
            json!([{"description": "no name"}]),
            "TaskDef name cannot be null or empty",
        ),
        (
            "PUT",
            "/metadata/taskdefs",
            json!({"name": ""}),
            "TaskDef name cannot be null or empty",
        ),
    ];
    for (method, path, body, violation) in cases {
        let reply = api.call(method, path, Some(&body.to_string()));
        let error = reply.assert_error(400, "Validation failed, check below errors for detail.");
        let messages: Vec<&str> = error["validationErrors"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}: no validationErrors in {error}"))
            .iter()
            .filter_map(|v| v["message"].as_str())
            .collect();
        assert_eq!(messages, [*violation], "{method} {path} {body}");
    }
    assert_eq!(api.get("/metadata/taskdefs").json(), json!([]));
}

#[test]
fn workflow_defs_register_by_version_conflict_and_overwrite() {
    let server = server();
    let api = Api::new(&server);
    api.register_task_defs(&[task_def("wd_task", json!({}))]);
    let v1 = workflow_def("wd", 1, &[("wd_task", "one", json!({}))]);
    let v2 = workflow_def(
        "wd",
        2,
        &[("wd_task", "one", json!({})), ("wd_task", "two", json!({}))],
    );
    api.register_workflow(&v1);
    api.register_workflow(&v2);

    // Without a version: the latest; with one: that one.
    let latest = api.get("/metadata/workflow/wd");
    assert_eq!(latest.status, 200, "{}", latest.body);
    assert_eq!(latest.json()["version"], 2);
    let first = api.get("/metadata/workflow/wd?version=1").json();
    assert_eq!(
        (first["version"].clone(), tasks_of(&first).len()),
        (json!(1), 1)
    );
    api.get("/metadata/workflow/wd?version=3")
        .assert_error(404, "No such workflow found by name: wd, version: 3");
    api.get("/metadata/workflow/nope")
        .assert_error(404, "No such workflow found by name: nope, version: null");

    // A duplicate name+version is a conflict unless overwrite=true.
    api.post("/metadata/workflow", &v1)
        .assert_error(409, "Workflow with wd.1 already exists!");
    api.post("/metadata/workflow?overwrite=false", &v1)
        .assert_error(409, "Workflow with wd.1 already exists!");
    let mut changed = v1.clone();
    changed["description"] = json!("changed");
    api.post("/metadata/workflow?overwrite=true", &changed)
        .assert_empty(200);
    assert_eq!(
        api.get("/metadata/workflow/wd?version=1").json()["description"],
        "changed"
    );

    // Starting picks the latest version unless one is named.
    let latest_run = api.workflow(&api.start("wd", &json!({})));
    assert_eq!(latest_run["workflowVersion"], 2);
    let v1_run = api.workflow(&api.start("wd?version=1", &json!({})));
    assert_eq!(v1_run["workflowVersion"], 1);

    // Validation: the same messages the real bean validation produces.
    let invalid: &[(Value, &str)] = &[
        (
            json!({"version": 1, "tasks": [{"name": "a", "taskReferenceName": "a"}]}),
            "WorkflowDef name cannot be null or empty",
        ),
        (
            json!({"name": "empty", "version": 1, "tasks": []}),
            "WorkflowTask list cannot be empty",
        ),
        (
            json!({"name": "schema1", "schemaVersion": 1,
                "tasks": [{"name": "a", "taskReferenceName": "a"}]}),
            "workflowDef schemaVersion: 2 is only supported",
        ),
        (
            json!({"name": "noref", "tasks": [{"name": "a"}]}),
            "WorkflowTask taskReferenceName name cannot be empty or null",
        ),
        (
            json!({"name": "dupref", "tasks": [{"name": "a", "taskReferenceName": "r"},
                {"name": "b", "taskReferenceName": "r"}]}),
            "taskReferenceName: r should be unique across tasks for a given workflowDefinition: dupref",
        ),
    ];
    for (def, violation) in invalid {
        let error = api
            .post("/metadata/workflow", def)
            .assert_error(400, "Validation failed, check below errors for detail.");
        assert_eq!(error["validationErrors"][0]["message"], *violation, "{def}");
    }
}

// ---------------------------------------------------------------------------------------------
// Starting and inspecting workflows, wiring
// ---------------------------------------------------------------------------------------------

#[test]
fn start_answers_the_id_as_text_and_the_workflow_lists_its_tasks() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "st", "st_task", json!({}));

    let reply = api.post("/workflow/st", &json!({"x": 1}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type.starts_with("text/plain"));
    let id = reply.body.clone();
    assert!(
        !id.is_empty() && !id.contains('"'),
        "raw id, not JSON: {id}"
    );

    let workflow = api.workflow(&id);
    assert_eq!(workflow["workflowId"], id.as_str());
    assert_eq!(workflow["workflowName"], "st");
    assert_eq!(workflow["workflowVersion"], 1);
    assert_eq!(workflow["status"], "RUNNING");
    assert_eq!(workflow["input"], json!({"x": 1}));
    let tasks = tasks_of(&workflow);
    assert_eq!(tasks.len(), 1, "the first task is scheduled by the start");
    assert_eq!(tasks[0]["status"], "SCHEDULED");
    assert_eq!(tasks[0]["seq"], 1);
    assert_eq!(tasks[0]["taskType"], "st_task");
    assert_eq!(tasks[0]["referenceTaskName"], "only");
    assert_eq!(tasks[0]["workflowInstanceId"], id.as_str());
    assert_eq!(tasks[0]["inputData"], json!({"x": 1}));

    // includeTasks defaults to true; false answers the workflow with an empty task list.
    for (query, expected) in [
        ("", 1),
        ("?includeTasks=true", 1),
        ("?includeTasks=false", 0),
    ] {
        let reply = api.get(&format!("/workflow/{id}{query}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(tasks_of(&reply.json()).len(), expected, "{query}");
        assert_eq!(reply.json()["status"], "RUNNING");
    }

    // The StartWorkflowRequest form.
    let reply = api.post(
        "/workflow",
        &json!({"name": "st", "version": 1, "input": {"x": 2}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type.starts_with("text/plain"));
    assert_eq!(api.workflow(&reply.body)["input"], json!({"x": 2}));
    api.post("/workflow", &json!({"name": "nope", "input": {}}))
        .assert_error(404, "No such workflow defined. name=nope, version=null");
    let error = api
        .post("/workflow", &json!({"input": {}}))
        .assert_error(400, "Validation failed, check below errors for detail.");
    assert_eq!(
        error["validationErrors"][0]["message"],
        "Workflow name cannot be null or empty"
    );
}

#[test]
fn input_wiring_resolves_paths_whole_objects_and_interpolation() {
    let server = server();
    let api = Api::new(&server);
    api.register_task_defs(&[task_def("wire", json!({}))]);
    let mut def = workflow_def(
        "wiring",
        1,
        &[
            (
                "wire",
                "first",
                json!({"deep": "${workflow.input.a.b}", "whole": "${workflow.input.a}",
                    "missing": "${workflow.input.nope.deeper}", "literal": 5,
                    "text": "wf=${workflow.workflowId} s=${workflow.input.s}",
                    "nested": {"list": ["${workflow.input.s}", 1]}}),
            ),
            (
                "wire",
                "second",
                json!({"deep": "${first.output.r.s}", "whole": "${first.output}",
                    "echo": "${first.input.whole}", "missing": "${first.output.nope}"}),
            ),
        ],
    );
    def["outputParameters"] = json!({"all": "${second.output}", "n": "${first.output.n}"});
    api.register_workflow(&def);

    let id = api.start("wiring", &json!({"a": {"b": [1, {"c": true}]}, "s": "str"}));
    let first = api.poll_one("wire", "w1");
    assert_eq!(
        first["inputData"],
        json!({"deep": [1, {"c": true}], "whole": {"b": [1, {"c": true}]}, "missing": null,
            "literal": 5, "text": format!("wf={id} s=str"),
            "nested": {"list": ["str", 1]}})
    );
    let output = json!({"r": {"s": {"k": "v"}}, "n": 3});
    api.update(&first, "COMPLETED", json!({"outputData": output}))
        .assert_text(first["taskId"].as_str().unwrap_or_default());

    let second = api.poll_one("wire", "w1");
    assert_eq!(
        second["inputData"],
        json!({"deep": {"k": "v"}, "whole": output, "echo": {"b": [1, {"c": true}]},
            "missing": null})
    );
    api.update(
        &second,
        "COMPLETED",
        json!({"outputData": {"done": [1, 2]}}),
    );
    let workflow = api.workflow(&id);
    assert_eq!(workflow["status"], "COMPLETED");
    assert_eq!(workflow["output"], json!({"all": {"done": [1, 2]}, "n": 3}));
}

#[test]
fn without_output_parameters_the_workflow_output_is_the_last_task_output() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "plain", "plain_task", json!({}));
    let id = api.start("plain", &json!({"x": 1}));
    let task = api.poll_one("plain_task", "w1");
    api.update(&task, "COMPLETED", json!({"outputData": {"y": 2}}));
    let workflow = api.workflow(&id);
    assert_eq!(workflow["status"], "COMPLETED");
    assert_eq!(workflow["output"], json!({"y": 2}));
}

#[test]
fn terminate_cancels_tasks_and_refuses_a_completed_workflow() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "term", "term_task", json!({}));

    let running = api.start("term", &json!({}));
    api.delete(&format!("/workflow/{running}?reason=stop%20it"))
        .assert_empty(200);
    let workflow = api.workflow(&running);
    assert_eq!(workflow["status"], "TERMINATED");
    assert_eq!(workflow["reasonForIncompletion"], "stop it");
    assert_eq!(tasks_of(&workflow)[0]["status"], "CANCELED");
    assert!(
        api.poll("term_task", "w1", 1, 0).is_empty(),
        "a canceled task is never handed out"
    );
    // Terminating a terminated workflow again is a no-op.
    api.delete(&format!("/workflow/{running}"))
        .assert_empty(200);

    let done = api.start("term", &json!({}));
    let task = api.poll_one("term_task", "w1");
    api.update(&task, "COMPLETED", json!({}));
    api.delete(&format!("/workflow/{done}"))
        .assert_error(409, "Cannot terminate a COMPLETED workflow.");
    assert_eq!(api.workflow(&done)["status"], "COMPLETED");

    // A FAILED workflow can still be terminated.
    let failed = api.start("term", &json!({}));
    let task = api.poll_one("term_task", "w1");
    api.update(&task, "FAILED", json!({"reasonForIncompletion": "boom"}));
    assert_eq!(api.workflow(&failed)["status"], "FAILED");
    api.delete(&format!("/workflow/{failed}")).assert_empty(200);
    assert_eq!(api.workflow(&failed)["status"], "TERMINATED");
}

// ---------------------------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------------------------

#[test]
fn polled_tasks_are_in_progress_for_the_worker() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "pl", "pl_task", json!({}));
    let id = api.start("pl", &json!({"x": "in"}));

    // Single poll: one Task object.
    let reply = api.get("/tasks/poll/pl_task?workerid=w7");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let task = reply.json();
    assert!(task.is_object(), "single poll answers one Task: {task}");
    assert_eq!(task["status"], "IN_PROGRESS");
    assert_eq!(task["workerId"], "w7");
    assert_eq!(task["pollCount"], 1);
    assert_eq!(task["retryCount"], 0);
    assert_eq!(task["callbackAfterSeconds"], 0);
    assert_eq!(task["workflowInstanceId"], id.as_str());
    assert_eq!(task["taskDefName"], "pl_task");
    assert_eq!(task["responseTimeoutSeconds"], 60);
    assert_eq!(task["inputData"], json!({"x": "in"}));
    assert!(
        task["startTime"].as_i64().unwrap_or_default() > 0,
        "startTime is set by the poll: {task}"
    );

    // GET /tasks/{id} shows the same attempt.
    let stored = api.task(task["taskId"].as_str().unwrap_or_default());
    assert_eq!(stored["status"], "IN_PROGRESS");
    assert_eq!(stored["workerId"], "w7");
    assert_eq!(stored["pollCount"], 1);
    assert_eq!(stored["startTime"], task["startTime"]);

    // An empty single poll is 204 with no body; it takes no timeout, so none is refused.
    api.get("/tasks/poll/pl_task?workerid=w7").assert_empty(204);
    api.get("/tasks/poll/pl_task?timeout=60000")
        .assert_empty(204);

    // Batch polls hand out at most `count`, each task once.
    for _ in 0..5 {
        api.start("pl", &json!({}));
    }
    let first = api.poll("pl_task", "w8", 3, 100);
    let second = api.poll("pl_task", "w8", 3, 100);
    assert_eq!((first.len(), second.len()), (3, 2));
    assert!(
        first
            .iter()
            .chain(&second)
            .all(|t| t["status"] == "IN_PROGRESS" && t["workerId"] == "w8" && t["pollCount"] == 1)
    );
    // Omitted count/timeout default to 1 and 100 ms.
    let reply = api.get("/tasks/poll/batch/pl_task");
    assert_eq!((reply.status, reply.json()), (200, json!([])));
}

#[test]
fn batch_poll_timeout_and_count_bounds() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "bd", "bd_task", json!({}));
    api.start("bd", &json!({}));
    api.get("/tasks/poll/batch/bd_task?timeout=5001")
        .assert_error(400, "Long Poll Timeout value cannot be more than 5 seconds");
    // The limit itself is allowed (a queued task makes it answer at once).
    assert_eq!(api.poll("bd_task", "w1", 1, 5000).len(), 1);
    for query in ["timeout=soon", "count=many"] {
        let reply = api.get(&format!("/tasks/poll/batch/bd_task?{query}"));
        assert_eq!(reply.status, 500, "{query}: {}", reply.body);
        assert_eq!(reply.json()["status"], 500);
        assert_eq!(reply.json()["retryable"], false);
    }
}

#[test]
fn empty_batch_polls_answer_an_empty_array_or_204() {
    let server = server();
    let api = Api::new(&server);
    let batch = "/tasks/poll/batch/nothing?workerid=w1&timeout=0";
    let single = "/tasks/poll/nothing?workerid=w1";
    let reply = api.get(batch);
    assert_eq!((reply.status, reply.body.as_str()), (200, "[]"));
    assert!(reply.content_type.starts_with("application/json"));

    // Switched in process, then over the admin route, back and forth.
    server.conductor().set_empty_poll(EmptyPoll::NoContent);
    api.get(batch).assert_empty(204);
    server.conductor().set_empty_poll(EmptyPoll::EmptyArray);
    assert_eq!(api.get(batch).body, "[]");
    let cases: &[(&str, u16, &str)] = &[("204", 204, ""), ("array", 200, "[]"), ("204", 204, "")];
    for (mode, status, body) in cases {
        api.call("POST", &format!("/_dev/conductor/empty-poll/{mode}"), None)
            .assert_empty(204);
        let reply = api.get(batch);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (*status, *body),
            "{mode}"
        );
        // The single poll answers 204 whatever the mode.
        api.get(single).assert_empty(204);
    }
    let reply = api.call("POST", "/_dev/conductor/empty-poll/maybe", None);
    assert_eq!(reply.status, 400, "{}", reply.body);

    // A non-empty poll is unaffected by the mode.
    one_task_workflow(&api, "ep", "nothing", json!({}));
    api.start("ep", &json!({}));
    assert_eq!(api.poll("nothing", "w1", 2, 100).len(), 1);
}

#[test]
fn a_long_poll_returns_when_a_delayed_task_becomes_visible() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "lp", "lp_task", json!({}));
    api.start("lp", &json!({}));
    let task = api.poll_one("lp_task", "w1");
    // "Check back in a second": the task goes back to the queue, invisible for 1 s.
    api.update(&task, "IN_PROGRESS", json!({"callbackAfterSeconds": 1}))
        .assert_text(task["taskId"].as_str().unwrap_or_default());
    // One long poll (up to 5 s) picks it up once it becomes visible.
    let again = api.poll("lp_task", "w2", 1, 5000);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["taskId"], task["taskId"]);
    assert_eq!(again[0]["pollCount"], 2);
    assert_eq!(again[0]["workerId"], "w2");
}

#[test]
fn concurrent_exec_limit_caps_in_progress_tasks() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "cl", "cl_task", json!({"concurrentExecLimit": 2}));
    let ids: Vec<String> = (0..5).map(|_| api.start("cl", &json!({}))).collect();

    let first = api.poll("cl_task", "w1", 5, 100);
    assert_eq!(first.len(), 2, "only two may be IN_PROGRESS at once");
    assert!(api.poll("cl_task", "w1", 5, 0).is_empty());

    // As tasks finish, the rest are handed out, never more than two at a time.
    let mut running = first;
    let mut completed = 0;
    wait_until(
        "every limited task to be handed out and completed",
        LONG,
        || {
            if let Some(task) = running.pop() {
                api.update(&task, "COMPLETED", json!({}));
                completed += 1;
            }
            let polled = api.poll("cl_task", "w1", 5, 50);
            running.extend(polled);
            assert!(running.len() <= 2, "{} in progress", running.len());
            completed == ids.len()
        },
    );
    for id in &ids {
        assert_eq!(api.workflow(id)["status"], "COMPLETED");
    }
}

// ---------------------------------------------------------------------------------------------
// Updates (v1)
// ---------------------------------------------------------------------------------------------

/// What should be pollable right after the update.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Next {
    /// Nothing (the workflow ended, or the next attempt is delayed).
    Nothing,
    /// The same task id again, for another worker.
    SameTask,
    /// A retry attempt with a new id.
    Retry,
}

struct UpdateCase {
    name: &'static str,
    /// TaskDef overrides.
    def: Value,
    /// `retryCount` on the WorkflowTask (overrides the TaskDef's).
    task_retry_count: Option<u32>,
    status: &'static str,
    extra: Value,
    task_status: &'static str,
    workflow_status: &'static str,
    attempts: usize,
    next: Next,
}

#[test]
fn v1_updates_complete_fail_retry_and_requeue() {
    let cases = [
        UpdateCase {
            name: "completed",
            def: json!({"retryCount": 2}),
            task_retry_count: None,
            status: "COMPLETED",
            extra: json!({"outputData": {"y": 1}}),
            task_status: "COMPLETED",
            workflow_status: "COMPLETED",
            attempts: 1,
            next: Next::Nothing,
        },
        UpdateCase {
            name: "failed with retries left",
            def: json!({"retryCount": 2}),
            task_retry_count: None,
            status: "FAILED",
            extra: json!({"reasonForIncompletion": "boom"}),
            task_status: "FAILED",
            workflow_status: "RUNNING",
            attempts: 2,
            next: Next::Retry,
        },
        UpdateCase {
            name: "failed, retry delayed",
            def: json!({"retryCount": 2, "retryDelaySeconds": 600}),
            task_retry_count: None,
            status: "FAILED",
            extra: json!({"reasonForIncompletion": "boom"}),
            task_status: "FAILED",
            workflow_status: "RUNNING",
            attempts: 2,
            next: Next::Nothing,
        },
        UpdateCase {
            name: "failed, workflow task overrides retryCount",
            def: json!({"retryCount": 0}),
            task_retry_count: Some(1),
            status: "FAILED",
            extra: json!({"reasonForIncompletion": "boom"}),
            task_status: "FAILED",
            workflow_status: "RUNNING",
            attempts: 2,
            next: Next::Retry,
        },
        UpdateCase {
            name: "failed without retries",
            def: json!({"retryCount": 0}),
            task_retry_count: None,
            status: "FAILED",
            extra: json!({"reasonForIncompletion": "boom"}),
            task_status: "FAILED",
            workflow_status: "FAILED",
            attempts: 1,
            next: Next::Nothing,
        },
        UpdateCase {
            name: "terminal error ignores retries",
            def: json!({"retryCount": 3}),
            task_retry_count: None,
            status: "FAILED_WITH_TERMINAL_ERROR",
            extra: json!({"reasonForIncompletion": "fatal"}),
            task_status: "FAILED_WITH_TERMINAL_ERROR",
            workflow_status: "FAILED",
            attempts: 1,
            next: Next::Nothing,
        },
        UpdateCase {
            name: "canceled by the worker",
            def: json!({"retryCount": 3}),
            task_retry_count: None,
            status: "CANCELED",
            extra: json!({}),
            task_status: "CANCELED",
            workflow_status: "TERMINATED",
            attempts: 1,
            next: Next::Nothing,
        },
        UpdateCase {
            name: "in progress, check back now",
            def: json!({}),
            task_retry_count: None,
            status: "IN_PROGRESS",
            extra: json!({"outputData": {"partial": 1}}),
            task_status: "SCHEDULED",
            workflow_status: "RUNNING",
            attempts: 1,
            next: Next::SameTask,
        },
        UpdateCase {
            name: "in progress, check back later",
            def: json!({}),
            task_retry_count: None,
            status: "IN_PROGRESS",
            extra: json!({"callbackAfterSeconds": 600}),
            task_status: "SCHEDULED",
            workflow_status: "RUNNING",
            attempts: 1,
            next: Next::Nothing,
        },
    ];
    let server = server();
    let api = Api::new(&server);
    for (index, case) in cases.iter().enumerate() {
        let task_type = format!("up_{index}");
        let wf = format!("up_wf_{index}");
        api.register_task_defs(&[task_def(&task_type, case.def.clone())]);
        let mut def = workflow_def(&wf, 1, &[(&task_type, "only", json!({"i": index}))]);
        if let Some(count) = case.task_retry_count {
            def["tasks"][0]["retryCount"] = json!(count);
        }
        api.register_workflow(&def);
        let id = api.start(&wf, &json!({}));
        let task = api.poll_one(&task_type, "w1");
        let task_id = task["taskId"].as_str().unwrap_or_default();

        api.update(&task, case.status, case.extra.clone())
            .assert_text(task_id);

        let stored = api.task(task_id);
        assert_eq!(stored["status"], case.task_status, "{}", case.name);
        let workflow = api.workflow(&id);
        assert_eq!(workflow["status"], case.workflow_status, "{}", case.name);
        let tasks = tasks_of(&workflow);
        assert_eq!(tasks.len(), case.attempts, "{}: {tasks:?}", case.name);
        if case.task_status != "SCHEDULED" {
            assert!(
                stored["endTime"].as_i64().unwrap_or_default() > 0,
                "{}",
                case.name
            );
        }
        if let Some(output) = case.extra.get("outputData") {
            assert_eq!(&stored["outputData"], output, "{}", case.name);
        }
        if case.workflow_status == "FAILED" {
            let reason = workflow["reasonForIncompletion"]
                .as_str()
                .unwrap_or_default();
            assert!(reason.contains(task_id), "{}: {reason}", case.name);
        }
        if case.attempts == 2 {
            let retry = &tasks[1];
            assert_eq!(tasks[0]["retried"], true, "{}", case.name);
            assert_ne!(retry["taskId"], task["taskId"], "{}", case.name);
            assert_eq!(retry["retriedTaskId"], task["taskId"], "{}", case.name);
            assert_eq!(retry["retryCount"], 1, "{}", case.name);
            assert_eq!(retry["status"], "SCHEDULED", "{}", case.name);
            assert_eq!(retry["pollCount"], 0, "{}", case.name);
            assert_eq!(retry["seq"], 2, "{}", case.name);
            assert_eq!(retry["reasonForIncompletion"], "boom", "{}", case.name);
            assert_eq!(retry["inputData"], json!({"i": index}), "{}", case.name);
            assert!(retry.get("workerId").is_none(), "{}", case.name);
        }
        if case.status == "IN_PROGRESS" {
            let expected = case.extra["callbackAfterSeconds"].as_u64().unwrap_or(0);
            assert_eq!(stored["callbackAfterSeconds"], expected, "{}", case.name);
        }

        let polled = api.poll(&task_type, "w2", 1, 0);
        match case.next {
            Next::Nothing => assert!(polled.is_empty(), "{}: {polled:?}", case.name),
            Next::SameTask => {
                assert_eq!(polled.len(), 1, "{}", case.name);
                assert_eq!(polled[0]["taskId"], task["taskId"], "{}", case.name);
                assert_eq!(polled[0]["pollCount"], 2, "{}", case.name);
                assert_eq!(polled[0]["workerId"], "w2", "{}", case.name);
                assert_eq!(polled[0]["startTime"], task["startTime"], "{}", case.name);
            }
            Next::Retry => {
                assert_eq!(polled.len(), 1, "{}", case.name);
                assert_eq!(polled[0]["taskId"], tasks[1]["taskId"], "{}", case.name);
                assert_eq!(polled[0]["retryCount"], 1, "{}", case.name);
                assert_eq!(polled[0]["pollCount"], 1, "{}", case.name);
            }
        }
    }
}

#[test]
fn a_repeated_in_progress_update_queues_the_task_once() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "rq", "rq_task", json!({}));
    api.start("rq", &json!({}));
    let task = api.poll_one("rq_task", "w1");
    // A client re-sending the same "check back now" (say, after a lost response).
    for _ in 0..3 {
        api.update(&task, "IN_PROGRESS", json!({}))
            .assert_text(task["taskId"].as_str().unwrap_or_default());
    }
    let polled = api.poll("rq_task", "w2", 5, 100);
    assert_eq!(polled.len(), 1, "{polled:?}");
    assert!(
        api.poll("rq_task", "w3", 5, 0).is_empty(),
        "handed out twice"
    );
}

#[test]
fn extend_lease_bumps_the_update_time_and_changes_nothing_else() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "el", "el_task", json!({}));
    api.start("el", &json!({}));
    let task = api.poll_one("el_task", "w1");
    let task_id = task["taskId"].as_str().unwrap_or_default().to_owned();
    let polled_at = api.task(&task_id)["updateTime"]
        .as_i64()
        .unwrap_or_default();
    wait_until("the clock to move past the poll", LONG, || {
        now_ms() > polled_at
    });

    // Status, output and callback in a heartbeat are ignored.
    api.update(
        &task,
        "COMPLETED",
        json!({"extendLease": true, "outputData": {"ignored": true}, "callbackAfterSeconds": 9}),
    )
    .assert_text(&task_id);
    let stored = api.task(&task_id);
    assert_eq!(stored["status"], "IN_PROGRESS");
    assert!(stored["updateTime"].as_i64().unwrap_or_default() > polled_at);
    assert_eq!(stored["outputData"], json!({}));
    assert_eq!(stored["callbackAfterSeconds"], 0);
    assert_eq!(stored["pollCount"], 1);

    // Unknown task: 404; both ids are still required.
    api.post(
        "/tasks",
        &json!({"taskId": "nope", "workflowInstanceId": "nope", "status": "IN_PROGRESS",
            "extendLease": true}),
    )
    .assert_error(404, "No such task found by id: nope");
    let error = api
        .post(
            "/tasks",
            &json!({"taskId": task_id, "status": "IN_PROGRESS", "extendLease": true}),
        )
        .assert_error(400, "Validation failed, check below errors for detail.");
    assert_eq!(
        error["validationErrors"][0]["message"],
        "Workflow Id cannot be null or empty"
    );

    // A heartbeat for a finished task is accepted and changes nothing.
    api.update(&task, "COMPLETED", json!({"outputData": {"y": 1}}));
    let finished = api.task(&task_id);
    api.update(&task, "IN_PROGRESS", json!({"extendLease": true}))
        .assert_text(&task_id);
    assert_eq!(api.task(&task_id), finished);
}

#[test]
fn late_updates_are_accepted_and_ignored() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "late", "late_task", json!({"retryCount": 3}));

    // A FAILED after COMPLETED neither changes the task nor schedules a retry.
    let id = api.start("late", &json!({}));
    let task = api.poll_one("late_task", "w1");
    let task_id = task["taskId"].as_str().unwrap_or_default().to_owned();
    api.update(&task, "COMPLETED", json!({"outputData": {"y": 1}}));
    let before = api.workflow(&id);
    for status in [
        "FAILED",
        "IN_PROGRESS",
        "COMPLETED",
        "FAILED_WITH_TERMINAL_ERROR",
    ] {
        api.update(&task, status, json!({"outputData": {"y": "late"}}))
            .assert_text(&task_id);
    }
    assert_eq!(api.workflow(&id), before);

    // A task of a terminated workflow was canceled; its result is dropped the same way.
    let id = api.start("late", &json!({}));
    let task = api.poll_one("late_task", "w1");
    api.delete(&format!("/workflow/{id}")).assert_empty(200);
    api.update(&task, "COMPLETED", json!({}))
        .assert_text(task["taskId"].as_str().unwrap_or_default());
    let workflow = api.workflow(&id);
    assert_eq!(workflow["status"], "TERMINATED");
    assert_eq!(tasks_of(&workflow)[0]["status"], "CANCELED");
    assert_eq!(tasks_of(&workflow).len(), 1);
}

#[test]
fn bad_updates_answer_the_real_statuses() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "bu", "bu_task", json!({}));
    let id = api.start("bu", &json!({}));
    let task = api.poll_one("bu_task", "w1");
    let task_id = task["taskId"].as_str().unwrap_or_default().to_owned();
    let validation = "Validation failed, check below errors for detail.";
    // (body, status, message or None when only the status and shape are fixed)
    let cases: Vec<(String, u16, Option<String>)> = vec![
        (
            json!({"workflowInstanceId": "nope", "taskId": task_id, "status": "COMPLETED"})
                .to_string(),
            404,
            Some("No such workflow found by id: nope".into()),
        ),
        (
            json!({"workflowInstanceId": id, "taskId": "nope", "status": "COMPLETED"}).to_string(),
            404,
            Some("No such task found by id: nope".into()),
        ),
        (
            json!({"status": "COMPLETED"}).to_string(),
            400,
            Some(validation.into()),
        ),
        (
            json!({"workflowInstanceId": "", "taskId": "", "status": "COMPLETED"}).to_string(),
            400,
            Some(validation.into()),
        ),
        // Jackson cannot read these bodies: the real server maps that to 500, not retryable.
        ("{not json".into(), 500, None),
        ("".into(), 500, None),
        (
            json!({"workflowInstanceId": id, "taskId": task_id, "status": "DONE"}).to_string(),
            500,
            None,
        ),
        (
            json!({"workflowInstanceId": id, "taskId": task_id, "status": "COMPLETED",
                "callbackAfterSeconds": "soon"})
            .to_string(),
            500,
            None,
        ),
        (
            json!({"workflowInstanceId": id, "taskId": task_id, "status": "COMPLETED",
                "outputData": [1, 2]})
            .to_string(),
            500,
            None,
        ),
        // A missing status on a live task fails inside the server (an NPE there).
        (
            json!({"workflowInstanceId": id, "taskId": task_id}).to_string(),
            500,
            None,
        ),
    ];
    for path in ["/tasks", "/tasks/update-v2"] {
        for (body, status, message) in &cases {
            let reply = api.call("POST", path, Some(body));
            match message {
                Some(message) => {
                    reply.assert_error(*status, message);
                }
                None => {
                    assert_eq!(reply.status, *status, "{path} {body}: {}", reply.body);
                    let error = reply.json();
                    assert_eq!(error["status"], *status, "{path} {body}");
                    assert_eq!(error["retryable"], false, "{path} {body}");
                    assert!(error["message"].is_string(), "{path} {body}");
                }
            }
        }
    }
    // Both missing ids are reported.
    let error = api
        .post("/tasks", &json!({"status": "COMPLETED"}))
        .assert_error(400, validation);
    let mut messages: Vec<&str> = error["validationErrors"]
        .as_array()
        .map(|v| v.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    messages.sort_unstable();
    assert_eq!(
        messages,
        [
            "Task ID cannot be null or empty",
            "Workflow Id cannot be null or empty"
        ]
    );
    // None of that touched the task, and the server still serves.
    assert_eq!(api.task(&task_id)["status"], "IN_PROGRESS");
    api.update(&task, "COMPLETED", json!({}))
        .assert_text(&task_id);
    assert_eq!(api.workflow(&id)["status"], "COMPLETED");
}

// ---------------------------------------------------------------------------------------------
// update-v2
// ---------------------------------------------------------------------------------------------

#[test]
fn update_v2_returns_the_next_task_or_nothing() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "v2", "v2_task", json!({}));
    let first_wf = api.start("v2", &json!({}));
    let second_wf = api.start("v2", &json!({}));
    let first = api.poll_one("v2_task", "w1");
    let v2 = |task: &Value, status: &str, extra: Value| {
        let mut body = json!({"taskId": task["taskId"], "workflowInstanceId": task["workflowInstanceId"],
            "status": status, "workerId": "w9"});
        merge(&mut body, extra);
        api.post("/tasks/update-v2", &body)
    };

    // IN_PROGRESS (not terminal) → 204; the task is re-queued for a later poll.
    v2(&first, "IN_PROGRESS", json!({"callbackAfterSeconds": 600})).assert_empty(204);
    assert_eq!(
        api.task(first["taskId"].as_str().unwrap_or_default())["status"],
        "SCHEDULED"
    );
    // A heartbeat → 204.
    let second = api.poll_one("v2_task", "w1");
    assert_eq!(second["workflowInstanceId"], second_wf.as_str());
    v2(&second, "IN_PROGRESS", json!({"extendLease": true})).assert_empty(204);

    // COMPLETED with another task waiting → that task, handed to the updating worker.
    let third_wf = api.start("v2", &json!({}));
    let reply = v2(&second, "COMPLETED", json!({"outputData": {"y": 1}}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let next = reply.json();
    assert_eq!(next["workflowInstanceId"], third_wf.as_str());
    assert_eq!(next["status"], "IN_PROGRESS");
    assert_eq!(next["workerId"], "w9");
    assert_eq!(next["pollCount"], 1);
    assert_eq!(api.workflow(&second_wf)["status"], "COMPLETED");

    // COMPLETED with nothing waiting → 204 (the first task is delayed 600 s).
    v2(&next, "COMPLETED", json!({})).assert_empty(204);
    assert_eq!(api.workflow(&third_wf)["status"], "COMPLETED");

    // An ignored update (task already finished) still polls for the next task.
    let fourth_wf = api.start("v2", &json!({}));
    let reply = v2(&next, "IN_PROGRESS", json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["workflowInstanceId"], fourth_wf.as_str());
    assert_eq!(api.workflow(&first_wf)["status"], "RUNNING");
}

#[test]
fn update_v2_can_be_switched_off_as_404_or_405_over_the_admin_route() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "v2off", "v2off_task", json!({}));
    let id = api.start("v2off", &json!({}));
    let task = api.poll_one("v2off_task", "w1");
    let task_id = task["taskId"].as_str().unwrap_or_default().to_owned();
    let body = json!({"taskId": task_id, "workflowInstanceId": id, "status": "COMPLETED",
        "workerId": "w1"});
    let cases: &[(&str, u16, &str)] = &[
        ("404", 404, "No static resource api/tasks/update-v2."),
        ("405", 405, "Request method 'POST' is not supported"),
    ];
    for (mode, status, message) in cases {
        api.call("POST", &format!("/_dev/conductor/update-v2/{mode}"), None)
            .assert_empty(204);
        api.post("/tasks/update-v2", &body)
            .assert_error(*status, message);
        // The refused result was not applied: a client re-sends it via v1.
        assert_eq!(api.task(&task_id)["status"], "IN_PROGRESS", "{mode}");
    }
    let reply = api.call("POST", "/_dev/conductor/update-v2/sometimes", None);
    assert_eq!(reply.status, 400, "{}", reply.body);
    api.call("POST", "/_dev/conductor/update-v2/enabled", None)
        .assert_empty(204);
    api.post("/tasks/update-v2", &body).assert_empty(204);
    assert_eq!(api.workflow(&id)["status"], "COMPLETED");
}

// ---------------------------------------------------------------------------------------------
// Response timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn response_timeouts_retry_then_time_the_workflow_out() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(
        &api,
        "rt",
        "rt_task",
        json!({"retryCount": 1, "responseTimeoutSeconds": 1}),
    );
    let id = api.start("rt", &json!({}));
    let first = api.poll_one("rt_task", "w1");
    assert_eq!(first["responseTimeoutSeconds"], 1);

    // No answer: the sweeper times the attempt out and schedules a retry.
    wait_until("the first attempt to time out", LONG, || {
        tasks_of(&api.workflow(&id)).len() == 2
    });
    let workflow = api.workflow(&id);
    let tasks = tasks_of(&workflow);
    assert_eq!(workflow["status"], "RUNNING");
    assert_eq!(tasks[0]["status"], "TIMED_OUT");
    assert_eq!(tasks[0]["retried"], true);
    assert_eq!(
        tasks[0]["reasonForIncompletion"],
        format!(
            "responseTimeout: 1 exceeded for the taskId: {}",
            first["taskId"].as_str().unwrap_or_default()
        )
    );
    assert_eq!(tasks[1]["retriedTaskId"], first["taskId"]);

    // The late result of the timed-out attempt is accepted and dropped.
    api.update(&first, "COMPLETED", json!({}))
        .assert_text(first["taskId"].as_str().unwrap_or_default());
    assert_eq!(
        api.task(first["taskId"].as_str().unwrap_or_default())["status"],
        "TIMED_OUT"
    );

    // The retry goes to the next poller; when it times out too, the workflow does.
    let retry = api.poll_one("rt_task", "w2");
    assert_eq!(retry["taskId"], tasks[1]["taskId"]);
    assert_eq!(retry["retryCount"], 1);
    wait_until("the workflow to time out", LONG, || {
        api.workflow(&id)["status"] == "TIMED_OUT"
    });
    let workflow = api.workflow(&id);
    assert_eq!(tasks_of(&workflow).len(), 2);
    assert_eq!(tasks_of(&workflow)[1]["status"], "TIMED_OUT");
    assert!(
        workflow["reasonForIncompletion"]
            .as_str()
            .unwrap_or_default()
            .contains("responseTimeout: 1 exceeded"),
        "{workflow}"
    );
}

// ---------------------------------------------------------------------------------------------
// Token auth
// ---------------------------------------------------------------------------------------------

#[test]
fn token_auth_guards_every_route_when_switched_on() {
    let server = start_server(DevServerOptions {
        conductor: ConductorOptions {
            auth: Some(("key-1".into(), "secret-1".into())),
            ..ConductorOptions::default()
        },
        ..DevServerOptions::default()
    });
    let anonymous = Api::new(&server);

    // Bad credentials → 401; good ones → a token.
    for body in [
        json!({"keyId": "key-1", "keySecret": "wrong"}),
        json!({"keyId": "other", "keySecret": "secret-1"}),
        json!({}),
    ] {
        let reply = anonymous.post("/token", &body);
        assert_eq!(reply.status, 401, "{body}: {}", reply.body);
        assert!(reply.json()["message"].is_string());
    }
    let reply = anonymous.post(
        "/token",
        &json!({"keyId": "key-1", "keySecret": "secret-1"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.json()["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!token.is_empty());

    let authorised = Api::new(&server).with_token(&token);
    let wrong = Api::new(&server).with_token("not-a-token");
    let routes: &[(&str, &str, Option<Value>)] = &[
        ("GET", "/metadata/taskdefs", None),
        ("GET", "/metadata/taskdefs/x", None),
        (
            "POST",
            "/metadata/taskdefs",
            Some(json!([task_def("x", json!({}))])),
        ),
        ("GET", "/metadata/workflow/x", None),
        ("POST", "/workflow/x", Some(json!({}))),
        ("GET", "/workflow/x", None),
        ("GET", "/tasks/poll/batch/x?timeout=0", None),
        ("GET", "/tasks/poll/x", None),
        ("GET", "/tasks/x", None),
        ("POST", "/tasks", Some(json!({}))),
        ("POST", "/tasks/update-v2", Some(json!({}))),
    ];
    for (method, path, body) in routes {
        let body = body.as_ref().map(Value::to_string);
        let missing = anonymous.call(method, path, body.as_deref());
        assert_eq!(missing.status, 401, "{method} {path}: {}", missing.body);
        assert_eq!(missing.json()["error"], "INVALID_TOKEN");
        assert_eq!(missing.json()["message"], "Token cannot be null or empty");
        let rejected = wrong.call(method, path, body.as_deref());
        assert_eq!(rejected.status, 401, "{method} {path}");
        assert_eq!(rejected.json()["error"], "INVALID_TOKEN");
        let accepted = authorised.call(method, path, body.as_deref());
        assert_ne!(accepted.status, 401, "{method} {path}: {}", accepted.body);
    }
    // The header name matters: a bearer token is not the Orkes header.
    let reply = Api::new(&server)
        .agent
        .get(&format!("{}/metadata/taskdefs", server.conductor_url()))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("request");
    assert_eq!(reply.status().as_u16(), 401);
    assert_eq!(authorised.get("/metadata/taskdefs").status, 200);
}

#[test]
fn without_auth_no_header_is_needed_and_token_is_404() {
    let server = server();
    let anonymous = Api::new(&server);
    anonymous
        .post("/token", &json!({"keyId": "k", "keySecret": "s"}))
        .assert_error(404, "No static resource api/token.");
    assert_eq!(anonymous.get("/metadata/taskdefs").status, 200);
    // A header is ignored, whatever it holds.
    assert_eq!(
        Api::new(&server)
            .with_token("anything")
            .get("/metadata/taskdefs")
            .status,
        200
    );
}

// ---------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------

#[test]
fn conductor_state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = DevServerOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..DevServerOptions::default()
    };
    let server = start_server(options.clone());
    let api = Api::new(&server);
    one_task_workflow(
        &api,
        "ps",
        "ps_task",
        json!({"retryCount": 1, "retryDelaySeconds": 600}),
    );
    // A: handed out (IN_PROGRESS). B: failed, its retry delayed 600 s. C: queued.
    let a = api.start("ps", &json!({"x": "a"}));
    let a_task = api.poll_one("ps_task", "w1");
    let b = api.start("ps", &json!({"x": "b"}));
    let b_task = api.poll_one("ps_task", "w1");
    api.update(&b_task, "FAILED", json!({"reasonForIncompletion": "boom"}));
    let c = api.start("ps", &json!({"x": "c"}));
    let before: Vec<Value> = [&a, &b, &c].iter().map(|id| api.workflow(id)).collect();
    server.stop().expect("stop saves state");

    let server = start_server(options);
    let api = Api::new(&server);
    assert_eq!(
        api.get("/metadata/taskdefs/ps_task").json()["retryCount"],
        1
    );
    assert_eq!(api.get("/metadata/workflow/ps").json()["name"], "ps");
    let after: Vec<Value> = [&a, &b, &c].iter().map(|id| api.workflow(id)).collect();
    assert_eq!(after, before);
    assert_eq!(
        api.task(a_task["taskId"].as_str().unwrap_or_default())["status"],
        "IN_PROGRESS"
    );

    // The queue survived: C's task is handed out, B's delayed retry still is not.
    let polled = api.poll("ps_task", "w2", 5, 100);
    assert_eq!(polled.len(), 1, "{polled:?}");
    assert_eq!(polled[0]["workflowInstanceId"], c.as_str());
    // The in-flight attempt can still report.
    api.update(&a_task, "COMPLETED", json!({"outputData": {"y": 1}}));
    assert_eq!(api.workflow(&a)["status"], "COMPLETED");
    // Definitions registered before the restart still conflict.
    api.post(
        "/metadata/workflow",
        &workflow_def("ps", 1, &[("ps_task", "only", json!({}))]),
    )
    .assert_error(409, "Workflow with ps.1 already exists!");
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_gets_json_errors_and_the_server_keeps_serving() {
    let server = server();
    let api = Api::new(&server);
    one_task_workflow(&api, "bi", "bi_task", json!({}));
    // (method, path, raw body, status). A body no route can read is 500, as in the real
    // server (its catch-all exception handler maps Jackson's error to 500).
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        ("POST", "/metadata/taskdefs", Some("{not json"), 500),
        ("POST", "/metadata/taskdefs", Some(r#"{"name": "x"}"#), 500),
        ("PUT", "/metadata/taskdefs", Some("[1"), 500),
        ("POST", "/metadata/workflow", Some("\"wf\""), 500),
        ("POST", "/workflow/bi", Some("[1, 2]"), 500),
        ("POST", "/workflow/bi", Some(""), 500),
        ("POST", "/workflow/bi", Some("null"), 500),
        ("POST", "/workflow", Some("{"), 500),
        ("POST", "/tasks", Some("{"), 500),
        ("POST", "/tasks/update-v2", Some("[]"), 500),
        // Unknown names and ids.
        ("POST", "/workflow/unknown_wf", Some("{}"), 404),
        ("GET", "/workflow/unknown-id", None, 404),
        ("DELETE", "/workflow/unknown-id", None, 404),
        ("GET", "/tasks/unknown-id", None, 404),
        ("GET", "/metadata/workflow/unknown_wf", None, 404),
        ("DELETE", "/metadata/taskdefs/unknown_task", None, 404),
        ("GET", "/no/such/route", None, 404),
        // A known path with a method it does not take.
        ("DELETE", "/tasks", None, 405),
        ("PATCH", "/metadata/taskdefs", Some("[]"), 405),
        ("PUT", "/workflow/bi", Some("{}"), 405),
    ];
    for (method, path, body, status) in cases {
        let reply = api.call(method, path, *body);
        assert_eq!(
            reply.status, *status,
            "{method} {path} {body:?}: {}",
            reply.body
        );
        assert!(
            reply.content_type.starts_with("application/json"),
            "{method} {path}: {:?}",
            reply.content_type
        );
        let error = reply.json();
        assert_eq!(error["status"], *status, "{method} {path}");
        assert_eq!(error["retryable"], false, "{method} {path}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: {error}"
        );
    }
    api.get("/tasks/unknown-id")
        .assert_error(404, "Task not found for taskId: unknown-id");
    api.get("/workflow/unknown-id")
        .assert_error(404, "No such workflow found by id: unknown-id");
    api.post("/workflow/unknown_wf", &json!({})).assert_error(
        404,
        "No such workflow found by name: unknown_wf, version: null",
    );

    // Nothing of that changed state, and everything still works.
    assert_eq!(
        api.get("/metadata/taskdefs")
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let id = api.start("bi", &json!({"x": 1}));
    let task = api.poll_one("bi_task", "w1");
    api.update(&task, "COMPLETED", json!({}));
    assert_eq!(api.workflow(&id)["status"], "COMPLETED");
}
