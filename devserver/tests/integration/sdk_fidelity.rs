//! What the official SDKs rely on and the dev server models like Conductor does (issue 16):
//! task domains (`taskToDomain` at start, `domain=` on polls, update-v2 staying in the
//! domain), task execution logs (`POST`/`GET /api/tasks/{taskId}/log`, `TaskResult.logs`),
//! `callbackAfterSeconds` on an `IN_PROGRESS` update, and query-string booleans parsed the
//! way Spring parses them. Everything goes over loopback HTTP.

use std::time::Duration;

use crate::support::{LONG, wait_until};

use perago_devserver::{DevServer, DevServerOptions};
use serde_json::{Value, json};

const OWNER: &str = "dev@example.com";

fn server() -> DevServer {
    DevServer::start(DevServerOptions::default()).expect("dev server starts")
}

/// A small raw client: status and body of every call.
struct Api {
    agent: ureq::Agent,
    base: String,
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
        }
    }

    fn call(&self, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Content-Type", content_type)
            .body(body.to_owned())
            .expect("request builds");
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn get(&self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn post(&self, path: &str, body: &Value) -> (u16, String) {
        self.call("POST", path, "application/json", &body.to_string())
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    fn setup(&self, task: &str, workflow: &str) {
        let (status, body) = self.post(
            "/metadata/taskdefs",
            &json!([{"name": task, "ownerEmail": OWNER, "retryCount": 0}]),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = self.post(
            "/metadata/workflow",
            &json!({"name": workflow, "version": 1, "schemaVersion": 2, "ownerEmail": OWNER,
                "tasks": [{"name": task, "taskReferenceName": "only", "type": "SIMPLE"}]}),
        );
        assert_eq!(status, 200, "{body}");
    }

    fn start(&self, request: &Value) -> String {
        let (status, body) = self.post("/workflow", request);
        assert_eq!(status, 200, "{body}");
        body
    }

    fn poll(&self, task: &str, domain: Option<&str>, timeout_ms: u32) -> Vec<Value> {
        let domain = domain.map_or(String::new(), |d| format!("&domain={d}"));
        let value = self.json(&format!(
            "/tasks/poll/batch/{task}?workerid=w1&count=5&timeout={timeout_ms}{domain}"
        ));
        serde_json::from_value(value).expect("an array of tasks")
    }

    /// The one task of workflow `id`.
    fn only_task(&self, id: &str) -> Value {
        self.json(&format!("/workflow/{id}"))["tasks"][0].clone()
    }
}

#[test]
fn task_to_domain_delivers_only_to_pollers_of_that_domain() {
    let server = server();
    let api = Api::new(&server);
    api.setup("dm_task", "dm_wf");
    let id = api.start(&json!({"name": "dm_wf", "input": {}, "taskToDomain": {"dm_task": "blue"}}));
    assert_eq!(api.only_task(&id)["domain"], "blue");
    assert_eq!(
        api.json(&format!("/workflow/{id}"))["taskToDomain"],
        json!({"dm_task": "blue"})
    );

    assert!(
        api.poll("dm_task", None, 0).is_empty(),
        "no domain: nothing"
    );
    assert!(
        api.poll("dm_task", Some("green"), 0).is_empty(),
        "another domain: nothing"
    );
    let polled = api.poll("dm_task", Some("blue"), 100);
    assert_eq!(polled.len(), 1);
    assert_eq!(polled[0]["workflowInstanceId"], id.as_str());

    // Without taskToDomain the task is in the default queue, invisible to domain pollers.
    let plain = api.start(&json!({"name": "dm_wf", "input": {}}));
    assert!(api.poll("dm_task", Some("blue"), 0).is_empty());
    let polled = api.poll("dm_task", None, 100);
    assert_eq!(polled[0]["workflowInstanceId"], plain.as_str());
    assert!(polled[0].get("domain").is_none());
}

#[test]
fn domain_lists_pick_an_active_domain_else_the_last_and_wildcards_apply() {
    let server = server();
    let api = Api::new(&server);
    api.setup("dl_task", "dl_wf");
    // Nobody polled "red" or "amber" yet: the last listed domain is used.
    let first = api.start(&json!({"name": "dl_wf", "taskToDomain": {"*": "red,amber"}}));
    assert_eq!(api.only_task(&first)["domain"], "amber");
    // Once "red" has been polled recently, it is preferred.
    assert!(api.poll("dl_task", Some("red"), 0).is_empty());
    let second = api.start(&json!({"name": "dl_wf", "taskToDomain": {"*": "red,amber"}}));
    assert_eq!(api.only_task(&second)["domain"], "red");
    // NO_DOMAIN means the default queue.
    let third = api.start(&json!({"name": "dl_wf", "taskToDomain": {"dl_task": "NO_DOMAIN"}}));
    assert!(api.only_task(&third).get("domain").is_none());
    assert_eq!(api.poll("dl_task", None, 100).len(), 1);
}

#[test]
fn update_v2_and_in_progress_requeues_stay_in_the_domain() {
    let server = server();
    let api = Api::new(&server);
    api.setup("dv_task", "dv_wf");
    let start = json!({"name": "dv_wf", "taskToDomain": {"dv_task": "blue"}});
    let a = api.start(&start);
    let b = api.start(&start);
    let polled = api.poll("dv_task", Some("blue"), 100);
    let first = polled
        .iter()
        .find(|t| t["workflowInstanceId"] == a.as_str())
        .cloned()
        .or_else(|| polled.first().cloned())
        .expect("a task");
    // Put the other one back with a callback of 0 so update-v2 can hand it out next.
    for task in polled.iter().filter(|t| t["taskId"] != first["taskId"]) {
        let (status, _) = api.post(
            "/tasks",
            &json!({"taskId": task["taskId"], "workflowInstanceId": task["workflowInstanceId"],
                "status": "IN_PROGRESS", "callbackAfterSeconds": 0, "workerId": "w1"}),
        );
        assert_eq!(status, 200);
    }
    let (status, body) = api.post(
        "/tasks/update-v2",
        &json!({"taskId": first["taskId"], "workflowInstanceId": first["workflowInstanceId"],
            "status": "COMPLETED", "workerId": "w1", "outputData": {}}),
    );
    assert_eq!(
        status, 200,
        "update-v2 hands back the next task of the domain: {body}"
    );
    let next: Value = serde_json::from_str(&body).expect("a task");
    assert_eq!(next["domain"], "blue");
    let other = if first["workflowInstanceId"] == a.as_str() {
        &b
    } else {
        &a
    };
    assert_eq!(next["workflowInstanceId"], other.as_str());
}

#[test]
fn callback_after_seconds_hides_the_task_then_redelivers_it_with_its_output() {
    let server = server();
    let api = Api::new(&server);
    api.setup("cb_task", "cb_wf");
    let id = api.start(&json!({"name": "cb_wf"}));
    let task = api.poll("cb_task", None, 100).remove(0);
    let (status, _) = api.post(
        "/tasks",
        &json!({"taskId": task["taskId"], "workflowInstanceId": id, "status": "IN_PROGRESS",
            "callbackAfterSeconds": 1, "outputData": {"step": 1}, "workerId": "w1"}),
    );
    assert_eq!(status, 200);
    let stored = api.only_task(&id);
    assert_eq!(stored["status"], "SCHEDULED");
    assert_eq!(stored["callbackAfterSeconds"], 1);
    assert!(
        api.poll("cb_task", None, 0).is_empty(),
        "hidden during the callback delay"
    );
    let mut again = None;
    wait_until("the task to come back", LONG, || {
        again = api.poll("cb_task", None, 1000).pop();
        again.is_some()
    });
    let again = again.expect("the task came back");
    assert_eq!(again["taskId"], task["taskId"], "same attempt");
    assert_eq!(again["pollCount"], 2);
    assert_eq!(again["outputData"], json!({"step": 1}));
}

#[test]
fn task_logs_are_stored_from_the_log_route_and_from_results() {
    let server = server();
    let api = Api::new(&server);
    api.setup("lg_task", "lg_wf");
    let id = api.start(&json!({"name": "lg_wf"}));
    let task = api.poll("lg_task", None, 100).remove(0);
    let task_id = task["taskId"].as_str().expect("task id").to_owned();
    let (status, _) = api.call(
        "POST",
        &format!("/tasks/{task_id}/log"),
        "text/plain",
        "first line",
    );
    assert_eq!(status, 200);
    let (status, _) = api.post(
        "/tasks",
        &json!({"taskId": task_id, "workflowInstanceId": id, "status": "COMPLETED",
            "workerId": "w1", "logs": [{"log": "from the result", "createdTime": 5}]}),
    );
    assert_eq!(status, 200);
    let logs = api.json(&format!("/tasks/{task_id}/log"));
    let logs = logs.as_array().expect("a list");
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["log"], "first line");
    assert_eq!(logs[0]["taskId"], task_id.as_str());
    assert!(logs[0]["createdTime"].as_i64().unwrap_or(0) > 0);
    assert_eq!(logs[1]["log"], "from the result");
    assert_eq!(logs[1]["createdTime"], 5);
    assert_eq!(api.json("/tasks/unknown-task/log"), json!([]));
}

#[test]
fn query_booleans_are_parsed_like_spring() {
    let server = server();
    let api = Api::new(&server);
    let def = |description: &str| {
        json!({"name": "qb_wf", "version": 1, "schemaVersion": 2, "ownerEmail": OWNER,
            "description": description,
            "tasks": [{"name": "qb_task", "taskReferenceName": "only", "type": "SIMPLE"}]})
    };
    assert_eq!(api.post("/metadata/workflow", &def("v0")).0, 200);
    for (value, description) in [
        ("True", "v1"),
        ("TRUE", "v2"),
        ("on", "v3"),
        ("yes", "v4"),
        ("1", "v5"),
    ] {
        let (status, body) = api.post(
            &format!("/metadata/workflow?overwrite={value}"),
            &def(description),
        );
        assert_eq!(status, 200, "overwrite={value}: {body}");
        assert_eq!(
            api.json("/metadata/workflow/qb_wf")["description"],
            description
        );
    }
    for value in ["False", "off", "NO", "0", ""] {
        let (status, body) = api.post(
            &format!("/metadata/workflow?overwrite={value}"),
            &def("never"),
        );
        assert_eq!(status, 409, "overwrite={value}: {body}");
        assert!(
            body.contains("Workflow with qb_wf.1 already exists!"),
            "{body}"
        );
    }
    let (status, body) = api.post("/metadata/workflow?overwrite=maybe", &def("never"));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("required type 'boolean'"), "{body}");
}
