//! `perago start` as a child process: the checks before serving, the exit code when a body
//! ignores its cancellation token (`examples.stubborn`, served by the test-only
//! `perago-test-worker` binary), and the log file the runner writes.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use perago::__private::acquire_supervisor_lock;
use perago_devserver::DevServer;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use super::support::*;
use crate::support::{LONG, wait_until};

/// The shipped binary.
const PERAGO: &str = env!("CARGO_BIN_EXE_perago");
/// The test-only CLI that also serves `examples.stubborn`.
const TEST_WORKER: &str = env!("CARGO_BIN_EXE_perago-test-worker");

/// Environment variables given to the child.
type Env = Vec<(&'static str, String)>;

/// `program <args>` in `dir`, with exactly `env` (nothing inherited).
fn command(program: &str, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("TMPDIR", dir)
        .env("PERAGO_WORKSPACE_ROOT", dir.join("workspaces"))
        .env("PERAGO_LOG_ROOT", dir.join("logs"));
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn run(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    command(PERAGO, dir, args, env)
        .output()
        .expect("perago runs")
}

/// The child's stderr without the drift warnings `start` prints for the TaskDefs these
/// tests register with their own timeouts and retries (harmless drift, SPEC §16).
fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.starts_with("warning: Conductor TaskDef "))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn server_env(server: &DevServer) -> Vec<(&'static str, String)> {
    vec![("CONDUCTOR_SERVER_URL", server.conductor_url())]
}

/// A child process that is killed (and reaped) when the test ends, even by a panic.
struct Running(Child);

impl Deref for Running {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Running {
    Running(
        command(program, dir, args, env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("perago starts"),
    )
}

fn terminate(child: &Child) {
    kill_process(Pid::from_child(child), Signal::TERM).expect("SIGTERM delivered");
}

/// Waits for the child to exit; fails after `deadline` (and the child is killed on drop).
fn wait_exit(child: &mut Child, deadline: Duration) -> ExitStatus {
    let mut status = None;
    wait_until("perago to exit", deadline, || {
        status = child.try_wait().expect("child status");
        status.is_some()
    });
    status.expect("the wait returned once the child exited")
}

#[test]
fn start_checks_configuration_jobs_mode_and_taskdef_in_order() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let thread = ["--execution-mode", "thread"];
    let cases: Vec<(Vec<&str>, Env, String)> = vec![
        (
            vec!["start", "examples.echo", "-j", "0"],
            vec![],
            "error: CONDUCTOR_SERVER_URL is required for perago start".into(),
        ),
        (
            vec!["start", "examples.features_build"],
            server_env(&server),
            "error: LakeFS config is required for workspace tasks".into(),
        ),
        (
            vec!["start", "examples.echo", "-j", "0", thread[0], thread[1]],
            server_env(&server),
            "error: worker process count must be at least 1".into(),
        ),
        (
            // Process mode (the default) checks the TaskDef too, before starting children.
            vec!["start", "examples.echo"],
            server_env(&server),
            "error: Conductor TaskDef 'examples.echo' is not registered; \
             run perago extract and register it before start"
                .into(),
        ),
        (
            vec!["start", "examples.echo", thread[0], thread[1]],
            server_env(&server),
            "error: Conductor TaskDef 'examples.echo' is not registered; \
             run perago extract and register it before start"
                .into(),
        ),
    ];
    for (args, env, expected) in cases {
        let output = run(dir.path(), &args, &env);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output).trim_end(), expected, "{args:?}");
    }
}

#[test]
fn a_second_runtime_on_the_same_workspace_root_is_refused() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "examples.echo", 30, 0);
    let _lock = acquire_supervisor_lock(&dir.path().join("workspaces")).unwrap();
    let output = run(
        dir.path(),
        &["start", "examples.echo", "--execution-mode", "thread"],
        &server_env(&server),
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim_end(),
        format!(
            "error: workspace root {} is already locked by supervisor pid {}; \
             use a different PERAGO_WORKSPACE_ROOT for each supervisor",
            dir.path().join("workspaces").display(),
            std::process::id()
        )
    );
}

#[test]
fn thread_and_process_mode_print_the_same_line_for_the_same_failure() {
    // The lock path is a directory: the lock cannot be taken, and both modes must say why
    // with the whole chain of causes, once.
    let server = dev_server();
    register(&server, "examples.echo", 30, 0);
    let mut lines = Vec::new();
    for mode in ["thread", "process"] {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir
            .path()
            .join("workspaces")
            .join(".perago-supervisor.lock");
        std::fs::create_dir_all(&lock).unwrap();
        let output = run(
            dir.path(),
            &["start", "examples.echo", "--execution-mode", mode],
            &server_env(&server),
        );
        assert_eq!(output.status.code(), Some(1), "{mode}: {}", stderr(&output));
        let line = stderr(&output)
            .trim_end()
            .replace(&dir.path().display().to_string(), "<dir>");
        lines.push(line);
    }
    assert_eq!(
        lines[0],
        "error: failed to acquire supervisor lock <dir>/workspaces/.perago-supervisor.lock: \
         Is a directory (os error 21)"
    );
    assert_eq!(lines[0], lines[1], "thread mode vs process mode");
}

#[test]
fn a_body_that_ignores_its_token_is_abandoned_and_the_process_exits_non_zero() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "examples.stubborn", 60, 0);
    let id = start(&server, "examples.stubborn", json!({"hold_seconds": 600}));
    let mut env = server_env(&server);
    env.push(("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "1s".into()));
    let mut child = spawn(
        TEST_WORKER,
        dir.path(),
        &["start", "examples.stubborn", "--execution-mode", "thread"],
        &env,
    );
    wait_until("the stubborn task to be running", LONG, || {
        tasks(&server, &id)[0]["status"] == "IN_PROGRESS"
    });
    terminate(&child);
    // Deadline 1 s + grace 5 s; the bound here is only a hang guard.
    let status = wait_exit(&mut child, LONG);
    assert_eq!(status.code(), Some(3), "ATTEMPTS_ABANDONED");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        pipe.read_to_string(&mut stderr).unwrap();
    }
    assert!(
        stderr.contains("error: runtime stopped uncleanly: 1 attempt(s) abandoned"),
        "{stderr}"
    );
    // The abandoned attempt's workspace-free run left no workspace; its task stays
    // IN_PROGRESS until Conductor's response timeout retries it.
    assert_eq!(tasks(&server, &id)[0]["status"], "IN_PROGRESS");
}

#[test]
fn a_drain_deadline_that_cancels_attempts_exits_with_forced_drain() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "examples.echo", 60, 0);
    // The body sleeps cancellably: the deadline cancels it, nothing is abandoned.
    let id = start(
        &server,
        "examples.echo",
        json!({"message": "slow", "sleep_ms": 600_000}),
    );
    let mut env = server_env(&server);
    env.push(("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "1s".into()));
    let mut child = spawn(
        PERAGO,
        dir.path(),
        &["start", "examples.echo", "--execution-mode", "thread"],
        &env,
    );
    wait_until("the slow task to be running", LONG, || {
        tasks(&server, &id)[0]["status"] == "IN_PROGRESS"
    });
    terminate(&child);
    let status = wait_exit(&mut child, LONG);
    let mut text = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        pipe.read_to_string(&mut text).unwrap();
    }
    assert_eq!(status.code(), Some(7), "FORCED_DRAIN: {text}");
    assert!(
        text.contains(
            "error: drain deadline passed: in-flight attempts were cancelled and reported FAILED"
        ),
        "{text}"
    );
    wait_until("the cancelled task to be reported", LONG, || {
        tasks(&server, &id)[0]["status"] == "FAILED"
    });
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("log dir {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn the_runner_writes_rotated_jsonl_logs_and_drains_cleanly_on_sigterm() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "examples.echo", 30, 0);
    let ids: Vec<String> = (0..20)
        .map(|i| {
            start(
                &server,
                "examples.echo",
                json!({"message": format!("m{i}")}),
            )
        })
        .collect();
    let mut env = server_env(&server);
    env.push(("PERAGO_LOG_FILE_MAX_SIZE", "2KB".into()));
    let mut child = spawn(
        PERAGO,
        dir.path(),
        &[
            "start",
            "examples.echo",
            "-j",
            "2",
            "--execution-mode",
            "thread",
        ],
        &env,
    );
    wait_until("20 completed workflows", LONG, || {
        ids.iter()
            .all(|id| workflow(&server, id)["status"] == "COMPLETED")
    });
    terminate(&child);
    let status = wait_exit(&mut child, LONG);
    assert_eq!(status.code(), Some(0), "clean drain");

    // Started by hand, so the worker id is `<prefix from target>-pid-<pid>` (SPEC §2).
    let pid = child.id();
    let worker_id = format!("examplesecho-pid-{pid}");
    let worker_dir = dir
        .path()
        .join(format!("logs/examples.echo/worker_id={worker_id}"));
    let files = log_files(&worker_dir);
    let live = files
        .iter()
        .find(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("pid={pid}__started=")) && name.ends_with("+0800.jsonl")
        })
        .unwrap_or_else(|| panic!("no live log file in {files:?}"));
    assert!(files.len() >= 2, "rotated at 2 KB: {files:?}");
    let mut records = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.len() <= 2048,
            "{} is {} bytes",
            file.display(),
            text.len()
        );
        for line in text.lines() {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("invalid JSON line {line:?}: {e}"));
            records.push(record);
        }
    }
    for record in &records {
        for key in ["time", "level", "message", "thread", "worker_id", "target"] {
            assert!(record.get(key).is_some(), "{key} missing in {record}");
        }
        assert!(
            record["time"].as_str().unwrap().ends_with("+08:00"),
            "{record}"
        );
        assert_eq!(record["worker_id"], worker_id.as_str());
        assert_eq!(record["target"], "examples.echo");
    }
    let started = records
        .iter()
        .find(|r| r["message"] == "thread runner started")
        .expect("startup record");
    assert_eq!(
        started["log_file"].as_str().map(PathBuf::from).as_ref(),
        Some(live)
    );
    let summaries: Vec<&Value> = records
        .iter()
        .filter(|r| r["message"] == "attempt finished")
        .collect();
    assert_eq!(summaries.len(), 20, "one summary per attempt");
    for summary in summaries {
        assert_eq!(summary["status"], "COMPLETED");
        assert!(summary["thread"].as_str().unwrap().starts_with("worker-"));
        for key in [
            "task_id",
            "workflow_instance_id",
            "execution_id",
            "input_ms",
            "body_ms",
            "duration_ms",
        ] {
            assert!(summary.get(key).is_some(), "{key} missing in {summary}");
        }
    }
}

/// Every JSONL record in the files of `dir`.
fn records_in(dir: &Path) -> Vec<Value> {
    log_files(dir)
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).expect("log file");
            text.lines()
                .map(|line| serde_json::from_str::<Value>(line).expect("JSON line"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn thread_mode_serves_several_targets_each_with_its_own_threads_and_says_which_task() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "examples.echo", 30, 0);
    register(&server, "metadata.validate", 30, 0);
    // Slow echo (2 s each, one thread) next to fast metadata validations (two threads).
    let slow: Vec<String> = (0..2)
        .map(|i| {
            start(
                &server,
                "examples.echo",
                json!({"message": format!("slow{i}"), "sleep_ms": 2000}),
            )
        })
        .collect();
    let fast: Vec<String> = (0..10)
        .map(|i| {
            start(
                &server,
                "metadata.validate",
                json!({"song_id": format!("s{i}"), "min_duration_seconds": 1}),
            )
        })
        .collect();
    let mut child = spawn(
        PERAGO,
        dir.path(),
        &[
            "start",
            "examples.echo",
            "examples.metadata_validate=2",
            "--execution-mode",
            "thread",
        ],
        &server_env(&server),
    );
    wait_until("every workflow of both targets to complete", LONG, || {
        slow.iter()
            .chain(&fast)
            .all(|id| workflow(&server, id)["status"] == "COMPLETED")
    });
    terminate(&child);
    let status = wait_exit(&mut child, LONG);
    assert_eq!(status.code(), Some(0), "clean drain");

    // One process, one worker id (from the set's name), one log directory for the set.
    let worker_id = format!("examplesechoexamplesmetadatavalidate-pid-{}", child.id());
    for id in slow.iter().chain(&fast) {
        assert_eq!(
            tasks(&server, id)[0]["workerId"],
            worker_id.as_str(),
            "{id}"
        );
    }
    let records = records_in(&dir.path().join(format!(
        "logs/examples.echo_examples.metadata_validate/worker_id={worker_id}"
    )));
    let started: Vec<&Value> = records
        .iter()
        .filter(|r| r["message"] == "thread runner started")
        .collect();
    assert_eq!(started.len(), 1, "{records:#?}");
    assert_eq!(
        started[0]["target"],
        "examples.echo+examples.metadata_validate"
    );
    assert_eq!(started[0]["threads"], 3);
    assert_eq!(started[0]["tasks"], "examples.echo=1,metadata.validate=2");
    let runtime_started: Vec<&str> = records
        .iter()
        .filter(|r| r["message"] == "runtime started")
        .map(|r| r["task"].as_str().expect("task"))
        .collect();
    assert_eq!(runtime_started, ["examples.echo", "metadata.validate"]);
    // Each attempt record says its task, and so does the thread that ran it.
    let mut attempts: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["message"] == "attempt finished")
        .map(|r| {
            let task = r["task_def_name"]
                .as_str()
                .expect("task_def_name")
                .to_owned();
            let thread = r["thread"].as_str().expect("thread");
            let prefix = thread
                .rsplit_once('-')
                .expect("numbered worker")
                .0
                .to_owned();
            (task, prefix)
        })
        .collect();
    attempts.sort();
    attempts.dedup();
    assert_eq!(
        attempts,
        [
            (
                "examples.echo".to_owned(),
                "worker-examples.echo".to_owned()
            ),
            (
                "metadata.validate".to_owned(),
                "worker-metadata.validate".to_owned()
            ),
        ]
    );
}

#[test]
fn start_of_several_targets_checks_every_target_before_serving() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "examples.echo", 30, 0);
    let thread = ["--execution-mode", "thread"];
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec![
                "start",
                "examples.echo",
                "examples.metadata_validate",
                thread[0],
                thread[1],
            ],
            "error: Conductor TaskDef 'metadata.validate' is not registered; \
             run perago extract and register it before start"
                .into(),
        ),
        (
            vec![
                "start",
                "examples.echo",
                "examples.metadata_validate=0",
                thread[0],
                thread[1],
            ],
            "error: worker process count must be at least 1".into(),
        ),
        (
            vec![
                "start",
                "examples.echo",
                "examples.echo=2",
                thread[0],
                thread[1],
            ],
            "error: target 'examples.echo' is given more than once".into(),
        ),
        (
            vec![
                "start",
                "examples.echo",
                "examples.features_build",
                thread[0],
                thread[1],
            ],
            "error: LakeFS config is required for workspace tasks".into(),
        ),
    ];
    for (args, expected) in cases {
        let output = run(dir.path(), &args, &server_env(&server));
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output).trim_end(), expected, "{args:?}");
    }
    let log_files: Vec<_> = walkdir::WalkDir::new(dir.path().join("logs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.path().to_owned())
        .collect();
    assert!(
        log_files.is_empty(),
        "nothing was served, so no log was written: {log_files:?}"
    );
}
