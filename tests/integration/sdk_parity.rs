//! What a worker moved from an official Conductor SDK expects (issue 16), over loopback HTTP
//! against the dev server: the configured task domain is polled and nothing else, an
//! in-progress outcome frees the slot and the re-delivered task sees its previous output,
//! `ctx.log()` lines reach the task's execution log (bounded, secrets redacted), and a
//! writable workspace task cannot publish from an in-progress outcome.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use perago::__private::{
    AttemptEnv, ConductorApi, ConductorClient, ConductorClientOptions, LiveOwners, LocalDirStore,
    NoFence, run_attempt,
};
use perago::{
    AttemptIdentity, CancelToken, ConductorConfig, Runtime, RuntimeConfig, Task, TaskContext,
    TaskError, TaskStatus, WorkspaceSpec,
};
use perago_devserver::{DevServer, DevServerOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::support::{LONG, wait_until};

fn dev_server() -> DevServer {
    DevServer::start(DevServerOptions::default()).expect("dev server starts")
}

fn config(server: &DevServer, dir: &Path, extra: &[(&str, &str)]) -> RuntimeConfig {
    let mut env = BTreeMap::new();
    env.insert("CONDUCTOR_SERVER_URL".to_owned(), server.conductor_url());
    env.insert(
        "PERAGO_WORKSPACE_ROOT".to_owned(),
        dir.join("workspaces").display().to_string(),
    );
    env.insert(
        "PERAGO_LOG_ROOT".to_owned(),
        dir.join("logs").display().to_string(),
    );
    for (key, value) in extra {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    RuntimeConfig::from_env_map("sdk.target", &env, &Default::default()).expect("valid config")
}

fn api(server: &DevServer) -> Arc<dyn ConductorApi> {
    Arc::new(ConductorClient::with_options(
        &ConductorConfig::new(server.conductor_url(), None),
        ConductorClientOptions {
            request_timeout: Duration::from_secs(10),
            poll_slack: Duration::from_secs(1),
            ..ConductorClientOptions::default()
        },
    ))
}

fn register(server: &DevServer, name: &str) {
    let client = ConductorClient::for_url(&server.conductor_url());
    client
        .register_task_defs(&[json!({"name": name, "ownerEmail": "t@example.com",
            "retryCount": 0, "responseTimeoutSeconds": 600})])
        .expect("task def");
    client
        .register_workflow_def(
            &json!({"name": format!("{name}_wf"), "version": 1, "schemaVersion": 2,
                "ownerEmail": "t@example.com",
                "tasks": [{"name": name, "taskReferenceName": "only", "type": "SIMPLE",
                    "inputParameters": {"params": "${workflow.input.params}"}}]}),
            true,
        )
        .expect("workflow def");
}

fn start(server: &DevServer, name: &str, domain: Option<&str>) -> String {
    let task_to_domain = domain
        .map(|d| BTreeMap::from([(name.to_owned(), d.to_owned())]))
        .unwrap_or_default();
    server
        .conductor()
        .engine()
        .start_workflow_request(
            Some(&format!("{name}_wf")),
            None,
            json!({"params": {"text": "hi"}}),
            task_to_domain,
        )
        .expect("workflow started")
}

fn workflow(server: &DevServer, id: &str) -> Value {
    server.conductor().engine().workflow(id).expect("workflow")
}

fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    wait_until(what, LONG, condition);
}

#[derive(Deserialize, JsonSchema)]
struct Params {
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    text: String,
    steps: u64,
}

fn echo(name: &str) -> Task {
    Task::builder(name, "t@example.com")
        .handler(|_: &TaskContext, p: Params| -> Result<Output, TaskError> {
            Ok(Output {
                text: p.text,
                steps: 1,
            })
        })
        .expect("task")
}

#[test]
fn the_configured_domain_is_polled_and_other_queues_are_left_alone() {
    let server = dev_server();
    register(&server, "sdk.domain");
    let dir = tempfile::tempdir().expect("tempdir");
    // The shell-friendly per-task name: `sdk.domain` → `SDK_DOMAIN`.
    let config = config(
        &server,
        dir.path(),
        &[
            ("CONDUCTOR_WORKER_SDK_DOMAIN_DOMAIN", "blue"),
            ("conductor.worker.all.domain", "green"),
        ],
    );
    assert_eq!(config.worker("sdk.domain").domain(), Some("blue"));
    let default_queue = start(&server, "sdk.domain", None);
    let green = start(&server, "sdk.domain", Some("green"));
    let blue = start(&server, "sdk.domain", Some("blue"));
    let handle = Runtime::builder(config, echo("sdk.domain"))
        .conductor(api(&server))
        .threads(2)
        .start()
        .expect("runtime starts");
    wait_for("the blue workflow", || {
        workflow(&server, &blue)["status"] == "COMPLETED"
    });
    handle.shutdown();
    assert!(handle.join().is_clean());
    for id in [&default_queue, &green] {
        let task = &workflow(&server, id)["tasks"][0];
        assert_eq!(task["status"], "SCHEDULED", "{task}");
        assert_eq!(task["pollCount"], 0, "never handed to this worker: {task}");
    }
}

#[test]
fn in_progress_frees_the_slot_and_the_redelivery_sees_its_previous_output() {
    let server = dev_server();
    register(&server, "sdk.progress");
    let dir = tempfile::tempdir().expect("tempdir");
    let task = Task::builder("sdk.progress", "t@example.com")
        .handler(
            |ctx: &TaskContext, p: Params| -> Result<Output, TaskError> {
                let step = ctx
                    .previous_output()
                    .and_then(|out| out.get("step"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if step < 2 {
                    let mut partial = Map::new();
                    partial.insert("step".into(), json!(step + 1));
                    return Err(TaskError::in_progress(0, partial));
                }
                Ok(Output {
                    text: p.text,
                    steps: step + 1,
                })
            },
        )
        .expect("task");
    // One worker thread: the re-deliveries can only run because the slot was freed.
    let handle = Runtime::builder(config(&server, dir.path(), &[]), task)
        .conductor(api(&server))
        .threads(1)
        .start()
        .expect("runtime starts");
    let id = start(&server, "sdk.progress", None);
    wait_for("the workflow", || {
        workflow(&server, &id)["status"] == "COMPLETED"
    });
    let counters = handle.counters();
    handle.shutdown();
    assert!(handle.join().is_clean());
    let tasks = workflow(&server, &id)["tasks"].clone();
    assert_eq!(
        tasks.as_array().map(Vec::len),
        Some(1),
        "one attempt: {tasks}"
    );
    assert_eq!(tasks[0]["pollCount"], 3);
    assert_eq!(tasks[0]["outputData"]["result"]["steps"], 3, "{tasks}");
    assert_eq!(counters.in_progress, 2);
    assert_eq!(counters.completed, 1);
}

#[test]
fn log_lines_reach_the_task_log_bounded_and_without_secrets() {
    let server = dev_server();
    register(&server, "sdk.logs");
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = server.secret_access_key().to_owned();
    let lines = 250;
    let task = {
        let secret = secret.clone();
        Task::builder("sdk.logs", "t@example.com")
            .handler(
                move |ctx: &TaskContext, p: Params| -> Result<Output, TaskError> {
                    ctx.log().info(&format!("connecting with {secret} now"));
                    for n in 1..lines {
                        ctx.log().debug(&format!("line {n}"));
                    }
                    Ok(Output {
                        text: p.text,
                        steps: 1,
                    })
                },
            )
            .expect("task")
    };
    let access_key = server.access_key_id().to_owned();
    let endpoint = server.lakefs_endpoint();
    let config = config(
        &server,
        dir.path(),
        &[
            ("LAKECTL_SERVER_ENDPOINT_URL", &endpoint),
            ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", &access_key),
            ("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", &secret),
        ],
    );
    let handle = Runtime::builder(config, task)
        .conductor(api(&server))
        .start()
        .expect("runtime starts");
    let id = start(&server, "sdk.logs", None);
    wait_for("the workflow", || {
        workflow(&server, &id)["status"] == "COMPLETED"
    });
    let task_id = workflow(&server, &id)["tasks"][0]["taskId"]
        .as_str()
        .expect("task id")
        .to_owned();
    // 200 lines and one notice are shipped; everything else stays local.
    wait_for("the shipped lines", || {
        let c = handle.counters();
        c.task_logs_sent + c.task_logs_dropped >= 201
    });
    handle.shutdown();
    assert!(handle.join().is_clean());
    let logs = server.conductor().engine().logs(&task_id);
    assert_eq!(logs.len(), 201, "bounded per attempt");
    assert_eq!(logs[0].log, "INFO connecting with ********** now");
    assert_eq!(logs[1].log, "DEBUG line 1");
    assert!(
        logs[200].log.contains("200 log lines sent"),
        "{}",
        logs[200].log
    );
    assert!(logs.iter().all(|l| !l.log.contains(&secret)));
}

fn identity() -> AttemptIdentity {
    AttemptIdentity {
        task_id: "task-1".into(),
        workflow_instance_id: "wf-1".into(),
        retry_count: 0,
        task_def_name: "sdk.ws".into(),
        reference_task_name: "only".into(),
        seq: 1,
        iteration: 0,
        execution_id: "exec1".into(),
        worker_id: "w0001".into(),
    }
}

#[derive(Deserialize, JsonSchema)]
struct Empty {
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
}

#[test]
fn a_writable_workspace_task_cannot_publish_from_an_in_progress_outcome() {
    let body = |ctx: &TaskContext, _: Empty| -> Result<Output, TaskError> {
        let root = ctx
            .workspace()
            .ok_or_else(|| TaskError::failed("no workspace"))?;
        std::fs::write(root.join("partial.txt"), b"half done")?;
        Err(TaskError::in_progress(30, Map::new()))
    };
    let source = tempfile::tempdir().expect("source");
    let root = tempfile::tempdir().expect("root");
    let owners = LiveOwners::new();
    let store = LocalDirStore::new(source.path(), true);
    let input = json!({
        "workspace": {"repository": "repo", "branch": "main", "refType": "commit", "ref": "A"},
        "params": {}
    });
    let run = |task: &Task| {
        let env = AttemptEnv {
            workspace_root: root.path(),
            store: Some(&store),
            fence: &NoFence,
            owners: &owners,
            failure_reason_max_length: 500,
            cancel: CancelToken::never(),
            task_log: None,
            previous_output: None,
        };
        run_attempt(task, &identity(), &input, &env)
    };

    let writable = Task::builder("sdk.ws", "t@example.com")
        .workspace(WorkspaceSpec::new("/"))
        .handler(body)
        .expect("task");
    let report = run(&writable);
    assert_eq!(report.result.status, TaskStatus::Failed, "{report:?}");
    assert!(
        report.result.reason.as_deref().is_some_and(|r| r
            .starts_with("in-progress outcomes are not supported for writable workspace tasks")),
        "{report:?}"
    );
    assert!(
        !source.path().join("partial.txt").exists(),
        "nothing was published"
    );

    // A read-only workspace task publishes nothing anyway: its in-progress outcome stands.
    let read_only = Task::builder("sdk.ws", "t@example.com")
        .workspace(WorkspaceSpec::new("/").read_only(true))
        .handler(body)
        .expect("task");
    let report = run(&read_only);
    assert_eq!(report.result.status, TaskStatus::InProgress, "{report:?}");
    assert_eq!(report.result.callback_after_seconds, Some(30));
    assert!(!source.path().join("partial.txt").exists());
}

/// `perago config` as an operator runs it, in a scratch directory with a controlled
/// environment and a `.env` file (where the dotted names conductor-python uses can be set).
fn perago_config(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_perago"));
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TMPDIR", dir.join("tmp"))
        .stdin(std::process::Stdio::null());
    std::fs::create_dir_all(dir.join("tmp")).expect("tmp dir");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("perago runs")
}

#[test]
fn perago_config_shows_worker_settings_and_names_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".env"),
        "conductor.worker.all.poll_interval=250\nconductor.worker.examples.echo.batch_size=4\n",
    )
    .expect(".env");
    let env = [("CONDUCTOR_WORKER_EXAMPLES_ECHO_DOMAIN", "blue")];
    let output = perago_config(dir.path(), &["config", "examples.echo"], &env);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "blue (from CONDUCTOR_WORKER_EXAMPLES_ECHO_DOMAIN)",
        "250 ms (from conductor.worker.all.poll_interval)",
        "100 ms (default)",
        "4 (from conductor.worker.examples.echo.batch_size)",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    let output = perago_config(dir.path(), &["config", "examples.echo", "--json"], &env);
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        json["worker"],
        json!({"task": "examples.echo", "domain": "blue", "poll_interval_ms": 250,
            "poll_timeout_ms": 100, "batch_size": 4, "thread_count": null})
    );

    let output = perago_config(
        dir.path(),
        &["config", "examples.echo"],
        &[("CONDUCTOR_WORKER_POLL_TIMEOUT", "9000")],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "error: CONDUCTOR_WORKER_POLL_TIMEOUT must be a whole number of milliseconds from 0 to 5000"
    );
}
