//! The dev server over real HTTP: Conductor semantics, lakeFS basics, faults and counters,
//! connection handling, persistence and autosave.

use std::time::{Duration, Instant};

use perago_devserver::conductor::UpdateV2;
use perago_devserver::faults::FaultRule;
use perago_devserver::{DevServer, DevServerOptions};
use serde_json::{Value, json};

use crate::support::{LONG, wait_until};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(server: &DevServer) -> Client {
        Client {
            agent: agent(),
            base: server.conductor_url(),
        }
    }

    fn post(&self, path: &str, body: &Value) -> (u16, String) {
        let mut response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .send_json(body)
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn setup(&self, retry_count: u64, response_timeout: u64) {
        let def = json!([{"name": "t_echo", "ownerEmail": "t@example.com", "retryCount": retry_count,
            "retryDelaySeconds": 0, "responseTimeoutSeconds": response_timeout}]);
        assert_eq!(self.post("/metadata/taskdefs", &def).0, 200);
        let wf = json!({"name": "wf", "version": 1, "schemaVersion": 2, "ownerEmail": "t@example.com",
            "tasks": [
                {"name": "t_echo", "taskReferenceName": "first", "type": "SIMPLE",
                 "inputParameters": {"x": "${workflow.input.x}"}},
                {"name": "t_echo", "taskReferenceName": "second", "type": "SIMPLE",
                 "inputParameters": {"x": "${first.output.y}", "wf": "${workflow.workflowId}"}}
            ],
            "outputParameters": {"final": "${second.output.y}"}});
        assert_eq!(self.post("/metadata/workflow", &wf).0, 200);
    }

    fn start(&self) -> String {
        let (status, id) = self.post("/workflow/wf", &json!({"x": {"n": 1}}));
        assert_eq!(status, 200);
        id
    }

    fn poll(&self, count: u32, timeout: u32) -> Vec<Value> {
        let (status, body) = self.get(&format!(
            "/tasks/poll/batch/t_echo?workerid=w1&count={count}&timeout={timeout}"
        ));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn complete(&self, task: &Value, output: Value) -> (u16, String) {
        self.post(
            "/tasks",
            &json!({"taskId": task["taskId"], "workflowInstanceId": task["workflowInstanceId"],
                "status": "COMPLETED", "outputData": output, "workerId": "w1"}),
        )
    }

    fn workflow(&self, id: &str) -> Value {
        serde_json::from_str(&self.get(&format!("/workflow/{id}")).1).unwrap()
    }
}

#[test]
fn a_linear_workflow_runs_with_wiring_and_completes() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    client.setup(0, 60);
    let id = client.start();
    let tasks = client.poll(5, 100);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["inputData"], json!({"x": {"n": 1}}));
    assert_eq!(tasks[0]["status"], "IN_PROGRESS");
    assert_eq!(tasks[0]["workerId"], "w1");
    let (status, body) = client.complete(&tasks[0], json!({"y": 7}));
    assert_eq!(
        (status, body.as_str()),
        (200, tasks[0]["taskId"].as_str().unwrap())
    );
    let second = client.poll(1, 1000);
    assert_eq!(second[0]["inputData"], json!({"x": 7, "wf": id}));
    assert_eq!(second[0]["seq"], 2);
    client.complete(&second[0], json!({"y": "done"}));
    let workflow = client.workflow(&id);
    assert_eq!(workflow["status"], "COMPLETED");
    assert_eq!(workflow["output"], json!({"final": "done"}));
    // A late update to a finished task is accepted and ignored.
    assert_eq!(client.complete(&second[0], json!({"y": "late"})).0, 200);
    assert_eq!(client.workflow(&id)["output"], json!({"final": "done"}));
}

#[test]
fn failures_retry_with_new_ids_and_terminal_errors_fail_the_workflow() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    client.setup(1, 60);
    let id = client.start();
    let task = client.poll(1, 100).remove(0);
    client.post(
        "/tasks",
        &json!({"taskId": task["taskId"], "workflowInstanceId": id, "status": "FAILED",
            "reasonForIncompletion": "boom", "workerId": "w1"}),
    );
    let retry = client.poll(1, 1000).remove(0);
    assert_ne!(retry["taskId"], task["taskId"]);
    assert_eq!(retry["retryCount"], 1);
    assert_eq!(retry["retriedTaskId"], task["taskId"]);
    client.post(
        "/tasks",
        &json!({"taskId": retry["taskId"], "workflowInstanceId": id,
            "status": "FAILED_WITH_TERMINAL_ERROR", "reasonForIncompletion": "fatal", "workerId": "w1"}),
    );
    let workflow = client.workflow(&id);
    assert_eq!(workflow["status"], "FAILED");
    assert_eq!(workflow["tasks"][0]["retried"], true);
    assert!(client.poll(1, 0).is_empty());
}

#[test]
fn response_timeouts_retry_unless_the_lease_is_extended() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    client.setup(1, 2);
    let id = client.start();
    let task = client.poll(1, 100).remove(0);
    // Heartbeats keep it alive past its response timeout (2 s): time passes on purpose, a
    // beat every 100 ms for 3 s, so only a stall of 2 s between two beats would fail it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let beat = json!({"taskId": task["taskId"], "workflowInstanceId": id,
            "status": "IN_PROGRESS", "extendLease": true, "workerId": "w1"});
        assert_eq!(client.post("/tasks", &beat).0, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(client.workflow(&id)["tasks"][0]["status"], "IN_PROGRESS");
    // Without heartbeats the sweeper times it out and a retry appears.
    wait_until("a timeout retry", LONG, || {
        client.workflow(&id)["tasks"].as_array().unwrap().len() == 2
    });
    let workflow = client.workflow(&id);
    assert_eq!(workflow["tasks"][0]["status"], "TIMED_OUT");
    assert!(
        workflow["tasks"][0]["reasonForIncompletion"]
            .as_str()
            .unwrap()
            .starts_with("responseTimeout: 2 exceeded")
    );
}

#[test]
fn update_v2_hands_back_the_next_task_and_can_be_disabled() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    client.setup(0, 60);
    let first_wf = client.start();
    let _second_wf = client.start();
    let task = client.poll(1, 100).remove(0);
    let (status, body) = client.post(
        "/tasks/update-v2",
        &json!({"taskId": task["taskId"], "workflowInstanceId": first_wf, "status": "COMPLETED",
            "outputData": {"y": 1}, "workerId": "w1"}),
    );
    assert_eq!(status, 200);
    let next: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(next["status"], "IN_PROGRESS");
    server.conductor().set_update_v2(UpdateV2::Disabled405);
    assert_eq!(client.post("/tasks/update-v2", &json!({})).0, 405);
    server.conductor().set_update_v2(UpdateV2::Disabled404);
    assert_eq!(client.post("/tasks/update-v2", &json!({})).0, 404);
}

#[test]
fn error_statuses_match_the_real_api() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    let (status, body) = client.get("/metadata/taskdefs/nope");
    assert_eq!(status, 404);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["message"], "No such taskType found by name: nope");
    assert_eq!(body["retryable"], false);
    assert_eq!(client.get("/tasks/unknown-id").0, 404);
    assert_eq!(client.get("/tasks/poll/batch/x?timeout=6000").0, 400);
    assert_eq!(
        client.post("/tasks", &json!({"status": "COMPLETED"})).0,
        400
    );
    assert_eq!(
        client
            .post(
                "/tasks",
                &json!({"taskId": "x", "workflowInstanceId": "y", "status": "COMPLETED"})
            )
            .0,
        404
    );
    assert_eq!(client.post("/workflow/none", &json!({})).0, 404);
    client.setup(0, 60);
    let wf =
        json!({"name": "wf", "version": 1, "tasks": [{"name": "a", "taskReferenceName": "a"}]});
    assert_eq!(client.post("/metadata/workflow", &wf).0, 409);
    assert_eq!(client.post("/metadata/workflow?overwrite=true", &wf).0, 200);
    // Malformed JSON is the real server's 500 and never wedges the server.
    let mut response = client
        .agent
        .post(&format!("{}/metadata/taskdefs", client.base))
        .header("Content-Type", "application/json")
        .send("{not json")
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let _ = response.body_mut().read_to_string();
    assert_eq!(client.get("/metadata/taskdefs").0, 200);
}

#[test]
fn long_polls_return_as_soon_as_a_task_is_queued() {
    // The longest long poll the API allows: the margin the answer is measured against.
    const POLL_TIMEOUT: Duration = Duration::from_millis(5000);
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    client.setup(0, 60);
    let (sending, sent) = crossbeam_channel::bounded::<()>(1);
    let (tasks, waited, workflow_id) = std::thread::scope(|scope| {
        let poller = std::thread::Builder::new()
            .name("test-poller".into())
            .spawn_scoped(scope, || {
                let poller = Client::new(&server);
                let started = Instant::now();
                sending.send(()).unwrap();
                let tasks = poller.poll(1, POLL_TIMEOUT.as_millis() as u32);
                (tasks, started.elapsed())
            })
            .unwrap();
        // Nothing is queued until the poll is on its way, so whatever it answers was queued
        // while it was waiting.
        sent.recv().unwrap();
        let workflow_id = client.start();
        let (tasks, waited) = poller.join().unwrap();
        (tasks, waited, workflow_id)
    });
    assert_eq!(
        tasks.len(),
        1,
        "the poll hands out the task queued meanwhile"
    );
    assert_eq!(tasks[0]["workflowInstanceId"], workflow_id.as_str());
    assert_eq!(tasks[0]["referenceTaskName"], "first");
    // It did not sit out its wait: the answer came before the poll's own timeout ran out
    // (a margin of seconds over what an idle machine takes, a few milliseconds).
    assert!(
        waited < POLL_TIMEOUT,
        "the poll ran to its timeout ({waited:?}) instead of waking on the enqueue"
    );
}

#[test]
fn tasks_are_delivered_exactly_once_to_concurrent_pollers() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    client.setup(0, 60);
    for _ in 0..200 {
        client.start();
    }
    let seen = parking_lot::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let client = Client::new(&server);
                loop {
                    let tasks = client.poll(10, 50);
                    if tasks.is_empty() {
                        break;
                    }
                    for task in tasks {
                        seen.lock()
                            .push(task["taskId"].as_str().unwrap().to_owned());
                    }
                }
            });
        }
    });
    let mut seen = seen.into_inner();
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((total, seen.len()), (200, 200));
}

#[test]
fn injected_faults_and_counters() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    server
        .faults()
        .set(FaultRule {
            method: "GET".into(),
            path: "/api/tasks/poll/batch/*".into(),
            error_status: Some(503),
            error_rate: 1.0,
            latency_ms: 0,
            ..FaultRule::default()
        })
        .unwrap();
    assert_eq!(client.get("/tasks/poll/batch/x").0, 503);
    server.faults().clear();
    assert_eq!(client.get("/tasks/poll/batch/x?timeout=0").0, 200);
    assert_eq!(
        server
            .stats()
            .count("conductor", "GET /tasks/poll/batch/{taskType}"),
        1,
        "an injected error never reaches the service"
    );
}

#[test]
fn lakefs_requires_basic_auth_and_serves_repositories() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let base = format!("{}/api/v1", server.lakefs_endpoint());
    let agent = agent();
    assert_eq!(
        agent
            .get(&format!("{base}/healthcheck"))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        agent
            .get(&format!("{base}/repositories"))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    use base64::Engine as _;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            server.access_key_id(),
            server.secret_access_key()
        ))
    );
    let response = agent
        .post(&format!("{base}/repositories"))
        .header("Authorization", &auth)
        .send_json(
            json!({"name": "repo1", "storage_namespace": "mem://repo1", "default_branch": "main"}),
        )
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let response = agent
        .post(&format!(
            "{base}/repositories/repo1/branches/main/objects?path=a%2Bb.txt"
        ))
        .header("Authorization", &auth)
        .send(&b"hello"[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let mut response = agent
        .get(&format!(
            "{base}/repositories/repo1/refs/main/objects?path=a%2Bb.txt"
        ))
        .header("Authorization", &auth)
        .call()
        .unwrap();
    assert_eq!(response.body_mut().read_to_string().unwrap(), "hello");
    assert_eq!(
        server.stats().count(
            "lakefs",
            "POST /repositories/{repository}/branches/{branch}/objects"
        ),
        1
    );
}

#[test]
fn state_survives_a_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let options = DevServerOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..DevServerOptions::default()
    };
    let server = DevServer::start(options.clone()).unwrap();
    Client::new(&server).setup(0, 60);
    server.stop().unwrap();
    let server = DevServer::start(options).unwrap();
    assert_eq!(Client::new(&server).get("/metadata/taskdefs/t_echo").0, 200);
}

#[test]
fn state_is_saved_while_running_so_a_crash_loses_little() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(DevServerOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..DevServerOptions::default()
    })
    .unwrap();
    Client::new(&server).setup(0, 60);
    let state = dir.path().join("conductor-state.json");
    wait_until("the autosave", LONG, || {
        std::fs::read_to_string(&state).is_ok_and(|text| text.contains("t_echo"))
    });
    // What a crash right now would leave behind: a copy of the data dir, read by a new server.
    let copy = tempfile::tempdir().unwrap();
    for entry in walkdir::WalkDir::new(dir.path()) {
        let entry = entry.unwrap();
        let target = copy
            .path()
            .join(entry.path().strip_prefix(dir.path()).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    let restarted = DevServer::start(DevServerOptions {
        data_dir: Some(copy.path().to_path_buf()),
        ..DevServerOptions::default()
    })
    .unwrap();
    assert_eq!(
        Client::new(&restarted).get("/metadata/taskdefs/t_echo").0,
        200
    );
}

#[test]
fn dropped_connections_lose_the_request_or_only_its_answer() {
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let client = Client::new(&server);
    client.setup(0, 60);
    let workflow_id = client.start();
    let task = client.poll(1, 0).remove(0);
    let admin = format!("http://{}/_dev/faults", server.addr());
    let set_rule = |rule: Value| {
        let status = client
            .agent
            .post(&admin)
            .send_json(rule)
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 204);
    };
    let complete = || {
        client
            .agent
            .post(&format!("{}/tasks", client.base))
            .send_json(
                json!({"taskId": task["taskId"], "workflowInstanceId": workflow_id,
                "status": "COMPLETED", "outputData": {"y": 1}}),
            )
    };
    let task_status = || {
        let (_, body) = client.get(&format!("/tasks/{}", task["taskId"].as_str().unwrap()));
        serde_json::from_str::<Value>(&body).unwrap()["status"].clone()
    };

    // Dropped before handling: the client sees a broken connection, the update never happened.
    set_rule(json!({"method": "POST", "path": "/api/tasks", "drop_rate": 1.0}));
    let sent = complete();
    assert!(sent.is_err(), "no answer: {sent:?}");
    assert_eq!(task_status(), "IN_PROGRESS");

    // Dropped after handling: the client sees the same failure, but the update took effect.
    server.faults().clear();
    set_rule(
        json!({"method": "POST", "path": "/api/tasks", "drop_rate": 1.0, "drop_after_handling": true}),
    );
    let sent = complete();
    assert!(sent.is_err(), "no answer: {sent:?}");
    assert_eq!(task_status(), "COMPLETED");
    assert_eq!(
        server.stats().count("conductor", "POST /tasks"),
        1,
        "only the request dropped after handling reached the service"
    );
    // The server goes on answering on fresh connections.
    server.faults().clear();
    assert_eq!(client.get("/metadata/taskdefs").0, 200);
}

#[test]
fn a_burst_of_new_connections_is_served_while_kept_alive_ones_stay_open() {
    const CLIENTS: usize = 48;
    let server = DevServer::start(DevServerOptions::default()).unwrap();
    let url = format!("{}/metadata/taskdefs", server.conductor_url());
    // Each agent keeps its connection alive once it has read a whole response.
    let get = |agent: &ureq::Agent| {
        agent.get(&url).call().map_or(0, |mut response| {
            let _ = response.body_mut().read_to_string();
            response.status().as_u16()
        })
    };
    let agents: Vec<ureq::Agent> = (0..CLIENTS).map(|_| agent()).collect();
    for agent in &agents[..CLIENTS / 2] {
        assert_eq!(get(agent), 200);
    }
    wait_until("kept-alive connections", LONG, || {
        server.open_connections() >= CLIENTS / 2
    });
    // Half reuse their idle connections, half open new ones, all at once.
    let barrier = std::sync::Barrier::new(CLIENTS);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = agents
            .iter()
            .map(|agent| {
                let (barrier, get) = (&barrier, &get);
                scope.spawn(move || {
                    barrier.wait();
                    get(agent)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(statuses, vec![200; CLIENTS]);
    assert_eq!(
        server.open_connections(),
        CLIENTS,
        "every client kept its connection"
    );
    drop(agents);
    wait_until("closed connections to be released", LONG, || {
        server.open_connections() == 0
    });
}

#[test]
fn stalled_half_closed_and_oversized_requests_never_wedge_the_server() {
    use std::io::{Read, Write};
    let server = DevServer::start(DevServerOptions {
        idle_timeout: Duration::from_millis(500),
        max_body_bytes: 1024,
        ..DevServerOptions::default()
    })
    .unwrap();
    let client = Client::new(&server);
    let raw = || {
        let stream = std::net::TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    // A client that stops in the middle of its request head.
    let mut stalled = raw();
    stalled
        .write_all(b"GET /api/metadata/taskdefs HTTP/1.1\r\nHost: x\r\nAcc")
        .unwrap();
    // A client that promises a body and never sends it.
    let mut short_body = raw();
    short_body
        .write_all(b"POST /api/metadata/taskdefs HTTP/1.1\r\nContent-Length: 100\r\n\r\n[")
        .unwrap();
    // Meanwhile everybody else is served.
    assert_eq!(client.get("/metadata/taskdefs").0, 200);
    // The stalled head and the short body are both answered 408 after the idle timeout.
    for mut stalled in [stalled, short_body] {
        let mut answer = String::new();
        stalled.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    }
    // A half-closed client still gets its answer.
    let mut half = raw();
    half.write_all(b"GET /api/metadata/taskdefs HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    half.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    // An oversized body gets 413 with a JSON error.
    let mut response = client
        .agent
        .post(&format!("{}/metadata/taskdefs", client.base))
        .header("Content-Type", "application/json")
        .send(vec![b' '; 2048])
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["message"], "request body too large");
    assert_eq!(client.get("/metadata/taskdefs").0, 200);
}
