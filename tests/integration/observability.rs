//! SPEC §15 over real sockets: the admin listener's routes, the OTLP payload the dev server
//! decoded, `perago start`'s stderr (banner, attempt reasons, task-body lines, outage rule,
//! shutdown summary), readiness during a SIGTERM drain, and process mode's merged listener.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use perago::{AdminConfig, AdminServer, Runtime, RuntimeHandle, ShutdownReason};
use perago_devserver::DevServer;
use perago_devserver::faults::FaultRule;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use crate::runtime::support::*;
use crate::support::{LONG, wait_until};

fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent.get(url).call().expect("GET answers");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("body"))
}

fn post(url: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.post(url);
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send_empty().expect("POST answers");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("body"))
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn loopback_admin() -> AdminConfig {
    AdminConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        token: None,
    }
}

/// Registers `examples.metered` (and its one-task workflow).
fn register_metered(server: &DevServer) {
    register(server, "examples.metered", 600, 0);
}

fn run_metered(server: &DevServer, n: usize, params: Value) -> Vec<String> {
    (0..n)
        .map(|_| start(server, "examples.metered", params.clone()))
        .collect()
}

/// Waits until every workflow has ended, then asserts each one completed.
fn wait_completed(server: &DevServer, ids: &[String]) {
    let status = |id: &String| {
        workflow(server, id)["status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    wait_until("workflows to finish", LONG, || {
        ids.iter().all(|id| {
            matches!(
                status(id).as_str(),
                "COMPLETED" | "FAILED" | "TERMINATED" | "TIMED_OUT"
            )
        })
    });
    for id in ids {
        assert_eq!(status(id), "COMPLETED", "workflow {id}");
    }
}

fn metered_runtime(server: &DevServer, dir: &Path, extra: &[(&str, &str)]) -> RuntimeHandle {
    let config = config(server, dir, "examples.metered", extra);
    Runtime::builder(config, perago::examples::metered().unwrap())
        .threads(2)
        .conductor(api(server))
        .start()
        .expect("runtime starts")
}

#[test]
fn admin_routes_serve_metrics_status_and_probes_with_bounded_labels() {
    let server = dev_server();
    register_metered(&server);
    let dir = tempfile::tempdir().unwrap();
    let handle = metered_runtime(&server, dir.path(), &[("PERAGO_INSTANCE_ID", "host-a")]);
    let admin = AdminServer::for_runtime(&loopback_admin(), &handle).expect("admin listens");
    let base = format!("http://{}", admin.addr());

    let ids = run_metered(&server, 5, json!({"items": 7, "kind": "parquet"}));
    wait_completed(&server, &ids);
    wait_until("every result reported", LONG, || {
        let c = handle.counters();
        c.completed == 5 && c.in_flight == 0
    });

    let (status, text) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    for needle in [
        "task_execution_started_total{taskType=\"examples.metered\"} 5",
        "task_execute_time_seconds_count{taskType=\"examples.metered\",status=\"COMPLETED\"} 5",
        "task_update_time_seconds_count{taskType=\"examples.metered\",status=\"SUCCESS\"} 5",
        "task_result_size_bytes_count{taskType=\"examples.metered\"} 5",
        "active_workers{taskType=\"examples.metered\"} 0",
        "perago_attempts_total{taskType=\"examples.metered\",status=\"COMPLETED\"} 5",
        "http_api_client_request_seconds_count{method=\"POST\",uri=\"/tasks/update-v2\",status=\"200\"}",
        "runtime_task_attempt_duration_seconds_count{task_name=\"examples.metered\"} 5",
        "runtime_busy_slots{perago_instance_id=\"host-a\",task_name=\"examples.metered\"} 0.0",
        "app_items_count{kind=\"parquet\",task_name=\"examples.metered\"} 5",
        "app_items_sum{kind=\"parquet\",task_name=\"examples.metered\"} 35",
        "app_last_items{task_name=\"examples.metered\"} 7.0",
        "app_step_seconds_count{task_name=\"examples.metered\"} 5",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(text.contains("task_poll_total{taskType=\"examples.metered\"}"));
    // Cardinality: no task id, workflow id, URL or worker id anywhere in the labels.
    let labels: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('{').map(|(_, rest)| rest))
        .collect();
    for task in ids.iter().flat_map(|id| tasks(&server, id)) {
        let task_id = task["taskId"].as_str().unwrap();
        assert!(!text.contains(task_id), "task id {task_id} in /metrics");
    }
    for id in &ids {
        assert!(!text.contains(id.as_str()), "workflow id {id} in /metrics");
    }
    for label in &labels {
        assert!(!label.contains("://"), "a URL in labels: {label}");
        assert!(!label.contains("task_id="), "{label}");
        assert!(!label.contains(handle.worker_id()), "{label}");
    }

    let (status, body) = get(&format!("{base}/status"));
    assert_eq!(status, 200);
    let status_json = json_of(&body);
    assert_eq!(status_json["counters"]["completed"], 5);
    assert_eq!(status_json["tasks"][0]["task"], "examples.metered");
    assert_eq!(status_json["tasks"][0]["counters"]["completed"], 5);
    assert_eq!(status_json["in_flight"], json!([]));
    assert_eq!(status_json["ready"], true);

    assert_eq!(get(&format!("{base}/livez")), (200, "ok\n".to_owned()));
    assert_eq!(get(&format!("{base}/readyz")), (200, "ok\n".to_owned()));
    assert_eq!(get(&format!("{base}/nope")).0, 404);
    assert_eq!(
        get(&format!("{base}/pause")).0,
        405,
        "control routes are POST"
    );

    handle.shutdown();
    assert!(handle.join().is_clean());
    admin.stop();
}

#[test]
fn status_lists_in_flight_attempts_and_pause_resume_drain_steer_the_worker() {
    let server = dev_server();
    register(&server, "obs_sleepy", 600, 0);
    let dir = tempfile::tempdir().unwrap();
    let handle = Runtime::builder(
        config(&server, dir.path(), "obs.sleepy", &[]),
        sleepy("obs_sleepy"),
    )
    .threads(2)
    .conductor(api(&server))
    .start()
    .expect("runtime starts");
    let admin = AdminServer::for_runtime(&loopback_admin(), &handle).expect("admin listens");
    let base = format!("http://{}", admin.addr());

    // An attempt in its body shows in /status with its identity, phase and age.
    let slow = start(
        &server,
        "obs_sleepy",
        json!({"message": "m", "sleep_ms": 60000}),
    );
    let mut in_flight = Value::Null;
    wait_until("the attempt in /status", LONG, || {
        in_flight = json_of(&get(&format!("{base}/status")).1)["in_flight"].clone();
        in_flight[0]["phase"] == "body"
    });
    let task_id = tasks(&server, &slow)[0]["taskId"].clone();
    assert_eq!(in_flight[0]["task_id"], task_id);
    assert_eq!(in_flight[0]["workflow_instance_id"], json!(slow));
    assert!(in_flight[0]["age_ms"].is_u64());

    // Pause: readiness fails and nothing new is polled; resume picks the work up again.
    let (status, body) = post(&format!("{base}/pause"), None);
    assert_eq!(
        (status, json_of(&body)["changed"].clone()),
        (200, json!(true))
    );
    let (status, body) = get(&format!("{base}/readyz"));
    assert_eq!((status, body.as_str()), (503, "paused\n"));
    assert_eq!(get(&format!("{base}/livez")).0, 200, "paused is still live");
    wait_until("the poller to see the pause", LONG, || {
        get(&format!("{base}/metrics"))
            .1
            .contains("task_paused_total{taskType=\"obs_sleepy\"} 1")
    });
    let quick = start(&server, "obs_sleepy", json!({"message": "q"}));
    assert_eq!(tasks(&server, &quick)[0]["status"], "SCHEDULED");
    assert_eq!(
        json_of(&get(&format!("{base}/status")).1)["counters"]["polled"],
        1
    );
    let (status, body) = post(&format!("{base}/resume"), None);
    assert_eq!(
        (status, json_of(&body)["changed"].clone()),
        (200, json!(true))
    );
    wait_until("the quick workflow after resume", LONG, || {
        workflow(&server, &quick)["status"] == "COMPLETED"
    });
    assert_eq!(get(&format!("{base}/readyz")).0, 200);

    // Drain = SIGTERM: readiness fails at once, the slow attempt is still running.
    let (status, _) = post(&format!("{base}/drain"), None);
    assert_eq!(status, 202);
    let (status, body) = get(&format!("{base}/readyz"));
    assert_eq!((status, body.as_str()), (503, "draining\n"));
    assert_eq!(handle.shutdown_reason(), Some(ShutdownReason::Signal));
    assert_eq!(
        json_of(&get(&format!("{base}/status")).1)["in_flight"][0]["task_id"],
        task_id
    );
    handle.force();
    let exit = handle.join();
    assert_eq!(
        exit.counters.failed, 1,
        "the slow attempt was cancelled and reported"
    );
    admin.stop();
}

#[test]
fn control_routes_need_the_bearer_token_when_one_is_set() {
    let server = dev_server();
    register_metered(&server);
    let dir = tempfile::tempdir().unwrap();
    let handle = metered_runtime(&server, dir.path(), &[]);
    let config = AdminConfig {
        token: Some(perago::Secret::new("s3cret".into())),
        ..loopback_admin()
    };
    let admin = AdminServer::for_runtime(&config, &handle).expect("admin listens");
    let base = format!("http://{}", admin.addr());
    assert_eq!(post(&format!("{base}/pause"), None).0, 401);
    assert_eq!(post(&format!("{base}/pause"), Some("wrong")).0, 401);
    assert!(!handle.probe().not_ready.contains(&"paused".to_owned()));
    assert_eq!(post(&format!("{base}/pause"), Some("s3cret")).0, 200);
    assert!(handle.probe().not_ready.contains(&"paused".to_owned()));
    assert_eq!(
        get(&format!("{base}/metrics")).0,
        200,
        "reads need no token"
    );
    handle.shutdown();
    handle.join();
    admin.stop();
}

#[test]
fn livez_turns_red_while_a_poll_outlives_its_bound_and_green_after() {
    let server = dev_server();
    register_metered(&server);
    server
        .faults()
        .set(FaultRule {
            method: "GET".into(),
            path: "/api/tasks/poll/batch/*".into(),
            latency_ms: 2000,
            ..FaultRule::default()
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&server, dir.path(), "examples.metered", &[]);
    let api: Arc<dyn perago::__private::ConductorApi> =
        Arc::new(perago::__private::ConductorClient::with_options(
            &perago::ConductorConfig::new(server.conductor_url(), None),
            perago::__private::ConductorClientOptions {
                poll_slack: Duration::from_secs(10),
                ..fast_options()
            },
        ));
    let handle = Runtime::builder(config, perago::examples::metered().unwrap())
        .conductor(api)
        .poll_liveness_bound(Duration::from_millis(300))
        .start()
        .expect("runtime starts");
    let admin = AdminServer::for_runtime(&loopback_admin(), &handle).expect("admin listens");
    let base = format!("http://{}", admin.addr());
    let mut body = String::new();
    wait_until("/livez to fail", LONG, || {
        let (status, text) = get(&format!("{base}/livez"));
        body = text;
        status == 503
    });
    assert!(
        body.starts_with("poll loop wedged: a poll has run"),
        "{body}"
    );
    assert_eq!(
        get(&format!("{base}/readyz")).0,
        503,
        "not live is not ready"
    );
    server.faults().clear();
    wait_until("/livez to recover", LONG, || {
        get(&format!("{base}/livez")).0 == 200
    });
    handle.shutdown();
    handle.join();
    admin.stop();
}

#[test]
fn otlp_export_reaches_the_dev_server_with_the_reference_names_and_labels() {
    let server = dev_server();
    register_metered(&server);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}/v1/metrics", server.addr());
    let handle = metered_runtime(
        &server,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
            ("PERAGO_INSTANCE_ID", "host-b"),
        ],
    );
    let ids = run_metered(&server, 3, json!({"items": 2}));
    wait_completed(&server, &ids);
    let decoded_url = format!("http://{}/_dev/metrics", server.addr());
    let find = |decoded: &Value, name: &str| -> Option<Value> {
        decoded["metrics"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
    };
    let mut decoded = Value::Null;
    wait_until("an export with all three attempts", LONG, || {
        decoded = json_of(&get(&decoded_url).1);
        find(&decoded, "runtime.task_attempt_duration_seconds")
            .is_some_and(|m| m["point"]["count"] == 3)
            && find(&decoded, "app.items").is_some_and(|m| m["point"]["count"] == 3)
    });
    assert!(decoded["gzip_requests"].as_u64() >= Some(1));
    assert_eq!(decoded["resource"]["service.name"], "perago");
    let attempt = find(&decoded, "runtime.task_attempt_duration_seconds").unwrap();
    assert_eq!(attempt["kind"], "histogram");
    assert_eq!(attempt["scope"], "perago");
    assert_eq!(attempt["unit"], "1");
    assert_eq!(
        attempt["attributes"],
        json!({"task_name": "examples.metered"})
    );
    assert_eq!(
        attempt["point"]["explicit_bounds"],
        json!([
            0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
            7500.0, 10000.0
        ])
    );
    let busy = find(&decoded, "runtime.busy_slots").expect("busy slots exported");
    assert_eq!(busy["kind"], "gauge");
    assert_eq!(
        busy["attributes"],
        json!({"task_name": "examples.metered", "perago_instance_id": "host-b"})
    );
    let items = find(&decoded, "app.items").unwrap();
    assert_eq!(
        items["attributes"],
        json!({"kind": "plain", "task_name": "examples.metered"}),
        "the reserved task_id label was dropped"
    );
    assert_eq!(items["point"]["sum"], 6.0);
    handle.shutdown();
    handle.join();
}

// --- `perago start` as a child process. ---

/// A running `perago` whose stderr is collected line by line.
struct Perago {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Perago {
    fn spawn(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Perago {
        let mut command = Command::new(env!("CARGO_BIN_EXE_perago"));
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("TMPDIR", dir)
            .env("PERAGO_WORKSPACE_ROOT", dir.join("workspaces"))
            .env("PERAGO_LOG_ROOT", dir.join("logs"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("perago starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::Builder::new()
            .name("stderr-reader".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().unwrap().push(line);
                }
            })
            .expect("reader thread");
        Perago { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut found = None;
        wait_until(what, LONG, || {
            found = self.lines().into_iter().find(|l| pred(l));
            found.is_some()
        });
        found.unwrap()
    }

    fn json_line(&self, message: &str) -> Value {
        let line = self.wait_line(message, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| v["message"] == message)
        });
        json_of(&line)
    }

    fn terminate(&self) {
        kill_process(Pid::from_child(&self.child), Signal::TERM).expect("SIGTERM delivered");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "perago did not exit; stderr:
{}",
                    self.lines().join(
                        "
"
                    )
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Perago {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn start_logs_a_banner_reasons_task_lines_and_a_summary_to_stderr_as_json() {
    let server = dev_server();
    register_metered(&server);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}/v1/metrics", server.addr());
    let mut perago = Perago::spawn(
        dir.path(),
        &["start", "examples.metered", "--execution-mode", "thread"],
        &[
            ("CONDUCTOR_SERVER_URL", server.conductor_url()),
            ("PERAGO_LOG_FORMAT", "json".into()),
            ("PERAGO_ADMIN_ADDR", "127.0.0.1:0".into()),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint),
            ("PERAGO_INSTANCE_ID", "host-c".into()),
        ],
    );
    let banner = perago.json_line("thread runner started");
    assert_eq!(banner["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(banner["mode"], "thread");
    assert_eq!(banner["threads"], 1);
    assert_eq!(banner["conductor_url"], server.conductor_url());
    assert_eq!(banner["metrics_export"], "otlp");
    let admin = banner["admin_addr"].as_str().unwrap().to_owned();
    assert!(admin.starts_with("127.0.0.1:"), "{banner}");

    let failing = start(
        &server,
        "examples.metered",
        json!({"items": 2, "fail_with": "boom: the 'reason'"}),
    );
    let finished = perago.json_line("attempt finished");
    assert_eq!(finished["status"], "FAILED");
    assert_eq!(finished["phase"], "body");
    assert_eq!(finished["reason"], "boom: the 'reason'");
    assert_eq!(finished["workflow_instance_id"], json!(failing));
    let body_line = perago.json_line("metering 2 plain items");
    assert_eq!(body_line["workflow_instance_id"], json!(failing));
    assert_eq!(body_line["module"], "perago::task");
    let ignored = perago.json_line("metric label ignored");
    assert_eq!(ignored["label_key"], "task_id");
    assert_eq!(ignored["perago_label_value"], "<reserved>");

    // SIGTERM: the drain shows in the summary; exit 0.
    assert_eq!(get(&format!("http://{admin}/readyz")).0, 200);
    perago.terminate();
    assert!(perago.wait_exit().success());
    let summary = perago.json_line("thread runner stopped");
    assert_eq!(summary["completed"], 0);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["lost"], 0);
    assert_eq!(summary["exit_reason"], "signal");
    assert!(summary["drain_ms"].is_u64());

    // The log file has the same attempt record, reason included.
    let log_dir = dir.path().join("logs/examples.metered");
    let file_text: String = walkdir::WalkDir::new(&log_dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let record = file_text
        .lines()
        .map(json_of)
        .find(|v| v["message"] == "attempt finished")
        .expect("attempt record in the file");
    assert_eq!(record["reason"], "boom: the 'reason'");
}

#[test]
fn start_text_logs_summarise_a_poll_outage_and_its_recovery() {
    let server = dev_server();
    register(&server, "examples.echo", 600, 0);
    server
        .faults()
        .set(FaultRule {
            method: "GET".into(),
            path: "/api/tasks/poll/batch/*".into(),
            error_status: Some(503),
            error_rate: 1.0,
            ..FaultRule::default()
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut perago = Perago::spawn(
        dir.path(),
        &["start", "examples.echo", "--execution-mode", "thread"],
        &[
            ("CONDUCTOR_SERVER_URL", server.conductor_url()),
            ("PERAGO_ADMIN_ADDR", "127.0.0.1:0".into()),
        ],
    );
    let banner = perago.wait_line("the banner", |l| l.contains(" thread runner started "));
    assert!(
        banner.contains(" INFO  thread runner started worker_id="),
        "{banner}"
    );
    let admin = banner
        .split(' ')
        .find_map(|field| field.strip_prefix("admin_addr="))
        .expect("admin address in the banner")
        .to_owned();
    wait_until("three failed polls", LONG, || {
        json_of(&get(&format!("http://{admin}/status")).1)["counters"]["poll_errors"].as_u64()
            >= Some(3)
    });
    let count = |needle: &str| perago.lines().iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count(" poll failed "), 1, "{:#?}", perago.lines());
    assert_eq!(count("poll still failing"), 0, "no summary before 30 s");
    server.faults().clear();
    let recovered = perago.wait_line("the recovery", |l| l.contains(" polling recovered "));
    let failed: u64 = recovered
        .split(' ')
        .find_map(|field| field.strip_prefix("failed_polls="))
        .and_then(|n| n.parse().ok())
        .expect("failed_polls in the recovery line");
    assert!(failed >= 3, "{recovered}");
    perago.terminate();
    assert!(perago.wait_exit().success());
    let summary = perago.wait_line("the summary", |l| l.contains(" thread runner stopped "));
    assert!(summary.contains(" exit_reason=signal"), "{summary}");
}

#[test]
fn run_prints_task_body_lines_on_stderr_and_keeps_stdout_for_the_result() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.json"), r#"{"params": {"items": 3}}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_perago"))
        .args(["run", "examples.metered", "--input", "in.json"])
        .current_dir(dir.path())
        .env_clear()
        .env("TMPDIR", dir.path())
        .output()
        .expect("perago runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(json_of(&stdout)["output"], json!({"result": {"items": 3}}));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("metering 3 plain items"))
        .unwrap_or_else(|| panic!("no task line in\n{stderr}"));
    assert!(
        line.contains(" INFO  metering 3 plain items worker_id="),
        "{line}"
    );
    assert!(line.contains(" task_id=local-"), "{line}");
}

#[test]
fn start_refuses_a_metrics_enabled_task_without_a_destination() {
    let server = dev_server();
    register_metered(&server);
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_perago"))
        .args(["start", "examples.metered", "--execution-mode", "thread"])
        .current_dir(dir.path())
        .env_clear()
        .env("TMPDIR", dir.path())
        .env("CONDUCTOR_SERVER_URL", server.conductor_url())
        .output()
        .expect("perago runs");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is required for metrics-enabled tasks\n"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_perago"))
        .args(["start", "examples.metered", "--execution-mode", "thread"])
        .current_dir(dir.path())
        .env_clear()
        .env("TMPDIR", dir.path())
        .env("CONDUCTOR_SERVER_URL", server.conductor_url())
        .env(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://127.0.0.1:9/v1/metrics",
        )
        .output()
        .expect("perago runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: PERAGO_INSTANCE_ID is required when worker_capacity metrics are enabled\n"
    );
}

#[test]
fn sigterm_fails_readiness_while_in_flight_attempts_drain() {
    let server = dev_server();
    register(&server, "examples.echo", 600, 0);
    let dir = tempfile::tempdir().unwrap();
    let mut perago = Perago::spawn(
        dir.path(),
        &["start", "examples.echo", "--execution-mode", "thread"],
        &[
            ("CONDUCTOR_SERVER_URL", server.conductor_url()),
            ("PERAGO_ADMIN_ADDR", "127.0.0.1:0".into()),
            ("PERAGO_LOG_FORMAT", "json".into()),
        ],
    );
    let admin = perago.json_line("thread runner started")["admin_addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = start(
        &server,
        "examples.echo",
        json!({"message": "m", "sleep_ms": 3000}),
    );
    wait_until("the attempt in its body", LONG, || {
        json_of(&get(&format!("http://{admin}/status")).1)["in_flight"][0]["phase"] == "body"
    });
    perago.terminate();
    wait_until("readiness to fail", LONG, || {
        get(&format!("http://{admin}/readyz")) == (503, "draining\n".to_owned())
    });
    // Still draining: the attempt is running and the listener answers.
    assert_eq!(get(&format!("http://{admin}/livez")).0, 200);
    assert!(perago.wait_exit().success());
    assert_eq!(
        workflow(&server, &id)["status"],
        "COMPLETED",
        "the drain let it finish"
    );
}

#[test]
fn process_mode_serves_one_listener_with_the_children_merged() {
    let server = dev_server();
    register(&server, "examples.echo", 600, 0);
    let dir = tempfile::tempdir().unwrap();
    let mut perago = Perago::spawn(
        dir.path(),
        &[
            "start",
            "examples.echo",
            "-j",
            "2",
            "--execution-mode",
            "process",
        ],
        &[
            ("CONDUCTOR_SERVER_URL", server.conductor_url()),
            ("PERAGO_ADMIN_ADDR", "127.0.0.1:0".into()),
            ("PERAGO_LOG_FORMAT", "json".into()),
        ],
    );
    let banner = perago.json_line("process supervisor started");
    let admin = banner["admin_addr"].as_str().unwrap().to_owned();
    wait_until("both children ready", LONG, || {
        let status = json_of(&get(&format!("http://{admin}/status")).1);
        status["children"].as_array().is_some_and(|c| c.len() == 2) && status["ready"] == true
    });
    let ids: Vec<String> = (0..4)
        .map(|i| {
            start(
                &server,
                "examples.echo",
                json!({"message": format!("m{i}")}),
            )
        })
        .collect();
    wait_completed(&server, &ids);
    wait_until("the merged counters", LONG, || {
        get(&format!("http://{admin}/metrics"))
            .1
            .contains("task_execution_started_total{taskType=\"examples.echo\"} 4")
    });
    let (_, text) = get(&format!("http://{admin}/metrics"));
    assert_eq!(
        text.matches("# TYPE task_poll counter").count(),
        1,
        "one family header after merging:\n{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    assert!(
        !text.contains("worker_restart_total{"),
        "no restart yet:\n{text}"
    );

    // A child killed under the supervisor is restarted, and the restart is counted.
    let children = crate::process_mode::children_of(perago.child.id());
    assert_eq!(children.len(), 2, "two children: {children:?}");
    kill_process(Pid::from_raw(children[0] as i32).unwrap(), Signal::KILL).unwrap();
    wait_until("the restart counted on the supervisor", LONG, || {
        get(&format!("http://{admin}/metrics"))
            .1
            .contains("worker_restart_total{taskType=\"examples.echo\"} 1")
    });
    wait_until("both children ready again", LONG, || {
        let status = json_of(&get(&format!("http://{admin}/status")).1);
        status["children"].as_array().is_some_and(|c| c.len() == 2) && status["ready"] == true
    });
    let (status, body) = post(&format!("http://{admin}/pause"), None);
    assert_eq!(
        (status, json_of(&body)["changed"].clone()),
        (200, json!(true))
    );
    let (status, body) = get(&format!("http://{admin}/readyz"));
    assert_eq!(status, 503);
    assert_eq!(body.matches(": paused").count(), 2, "{body}");
    let (status, _) = post(&format!("http://{admin}/drain"), None);
    assert_eq!(status, 202);
    assert!(perago.wait_exit().success());
}

#[test]
fn readiness_fails_after_conductor_fails_for_the_bound_and_recovers_with_it() {
    let server = dev_server();
    register_metered(&server);
    let dir = tempfile::tempdir().unwrap();
    let handle = Runtime::builder(
        config(&server, dir.path(), "examples.metered", &[]),
        perago::examples::metered().unwrap(),
    )
    .conductor(api(&server))
    .unreachable_after(Duration::from_millis(500))
    .start()
    .expect("runtime starts");
    let admin = AdminServer::for_runtime(&loopback_admin(), &handle).expect("admin listens");
    let base = format!("http://{}", admin.addr());
    assert_eq!(get(&format!("{base}/readyz")).0, 200);

    // Every poll fails with a 503: ready until the failures have lasted the bound.
    server
        .faults()
        .set(FaultRule {
            method: "GET".into(),
            path: "/api/tasks/poll/batch/*".into(),
            error_status: Some(503),
            error_rate: 1.0,
            ..FaultRule::default()
        })
        .unwrap();
    let mut body = String::new();
    wait_until("/readyz to fail", LONG, || {
        let (status, text) = get(&format!("{base}/readyz"));
        body = text;
        status == 503
    });
    assert!(body.starts_with("Conductor unreachable for "), "{body}");
    assert_eq!(
        get(&format!("{base}/livez")).0,
        200,
        "an outage is not a wedge"
    );

    // One successful call makes it ready again.
    server.faults().clear();
    wait_until("/readyz to recover", LONG, || {
        get(&format!("{base}/readyz")).0 == 200
    });
    handle.shutdown();
    assert!(handle.join().is_clean());
    admin.stop();
}

#[test]
fn one_listener_serves_every_hosted_task_and_pause_holds_every_poller() {
    let server = dev_server();
    register_metered(&server);
    register(&server, "obs_sleepy", 600, 0);
    let dir = tempfile::tempdir().unwrap();
    let handle = perago::RuntimeBuilder::new(config(&server, dir.path(), "obs.set", &[]))
        .task_with_threads(perago::examples::metered().unwrap(), 2)
        .task(sleepy("obs_sleepy"))
        .conductor(api(&server))
        .start()
        .expect("runtime starts");
    let admin = AdminServer::for_runtime(&loopback_admin(), &handle).expect("admin listens");
    let base = format!("http://{}", admin.addr());

    let metered = run_metered(&server, 2, json!({"items": 3, "kind": "csv"}));
    let sleepy_id = start(&server, "obs_sleepy", json!({"message": "s"}));
    wait_completed(&server, &metered);
    wait_until("the sleepy workflow", LONG, || {
        workflow(&server, &sleepy_id)["status"] == "COMPLETED"
    });

    // The worker counts an attempt once its update returned, just after Conductor saw it.
    let mut status = Value::Null;
    wait_until("three attempts counted", LONG, || {
        status = json_of(&get(&format!("{base}/status")).1);
        status["counters"]["completed"] == 3
    });
    let per_task: Vec<(Value, Value, Value)> = status["tasks"]
        .as_array()
        .expect("tasks listed")
        .iter()
        .map(|t| {
            (
                t["task"].clone(),
                t["threads"].clone(),
                t["counters"]["completed"].clone(),
            )
        })
        .collect();
    assert_eq!(
        per_task,
        [
            (json!("examples.metered"), json!(2), json!(2)),
            (json!("obs_sleepy"), json!(1), json!(1)),
        ]
    );
    assert_eq!(status["threads"], 3);
    assert_eq!(status["counters"]["completed"], 3);
    let (_, text) = get(&format!("{base}/metrics"));
    for needle in [
        "task_execution_started_total{taskType=\"examples.metered\"} 2",
        "task_execution_started_total{taskType=\"obs_sleepy\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }

    // Pause holds both pollers; resume wakes both.
    assert_eq!(post(&format!("{base}/pause"), None).0, 200);
    wait_until("both pollers to see the pause", LONG, || {
        let text = get(&format!("{base}/metrics")).1;
        text.contains("task_paused_total{taskType=\"examples.metered\"}")
            && text.contains("task_paused_total{taskType=\"obs_sleepy\"}")
    });
    let held_metered = run_metered(&server, 1, json!({"items": 1, "kind": "csv"}));
    let held_sleepy = start(&server, "obs_sleepy", json!({"message": "h"}));
    assert_eq!(tasks(&server, &held_metered[0])[0]["status"], "SCHEDULED");
    assert_eq!(tasks(&server, &held_sleepy)[0]["status"], "SCHEDULED");
    assert_eq!(post(&format!("{base}/resume"), None).0, 200);
    wait_completed(&server, &held_metered);
    wait_until("the held sleepy workflow", LONG, || {
        workflow(&server, &held_sleepy)["status"] == "COMPLETED"
    });
    handle.shutdown();
    assert!(handle.join().is_clean());
    admin.stop();
}
