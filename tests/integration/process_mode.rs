//! `perago start --execution-mode process` as a real process tree against the dev server:
//! the supervisor is the `perago` binary, its children are `perago` re-executed through the
//! hidden child subcommand. The stubborn-body test runs the test-only `perago-test-worker`
//! instead (the same CLI plus `examples.stubborn`), whose children are re-executed from it.
//!
//! Every test owns its dev server, a temporary directory (workspace root, log root, TMPDIR)
//! and a [`Tree`] guard that SIGKILLs whatever is left of the process tree when the test ends,
//! so a failing test never leaves processes behind. Waits are conditions with deadlines; the
//! deadlines are hang guards, not timing assertions.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use perago::__private::{LakefsClient, UploadSource};
use perago::__private::{MARKER_FILE_NAME, Marker, SUPERVISOR_LOCK_FILE_NAME};
use perago::CancelToken;
use perago::cli::exit_code;
use perago::{LakefsConfig, Secret};
use perago_devserver::faults::FaultRule;
use perago_devserver::{DevServer, DevServerOptions};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use crate::support::{LONG, Lazy, wait_until};

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// A supervisor process and every child it was seen with; Drop kills what is left.
struct Tree {
    supervisor: Child,
    seen_children: BTreeSet<u32>,
}

impl Tree {
    fn pid(&self) -> u32 {
        self.supervisor.id()
    }

    /// The supervisor's live children (from `/proc/<pid>/task/*/children`).
    fn children(&mut self) -> Vec<u32> {
        let pids = children_of(self.pid());
        self.seen_children.extend(&pids);
        pids
    }

    /// Waits until the supervisor has exactly `n` live children with distinct worker ids;
    /// returns `(worker id, pid)` sorted by worker id.
    fn wait_children(&mut self, n: usize) -> Vec<(String, u32)> {
        let mut found = Vec::new();
        wait_until(format!("{n} children"), LONG, || {
            found = self
                .children()
                .into_iter()
                .filter(|pid| !is_gone(*pid))
                .filter_map(|pid| worker_id_of(pid).map(|id| (id, pid)))
                .collect();
            found.sort();
            found.len() == n
        });
        found
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.pid() as i32).expect("pid");
        kill_process(pid, signal).expect("signal delivered");
    }

    /// Waits for the supervisor to exit (hang guard: LONG).
    fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        wait_until("the supervisor to exit", LONG, || {
            status = self.supervisor.try_wait().expect("supervisor status");
            status.is_some()
        });
        status.expect("the wait returned once the supervisor exited")
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut pipe) = self.supervisor.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = self.children();
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
        for pid in &self.seen_children {
            if let Some(pid) = Pid::from_raw(*pid as i32)
                && !is_gone(pid.as_raw_nonzero().get() as u32)
            {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
}

pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return pids;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Whether `pid` has exited: no such process, or a zombie.
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => true,
    }
}

/// `PERAGO_WORKER_ID` from the process's environment.
fn worker_id_of(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix("PERAGO_WORKER_ID="))
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------

/// The shipped binary.
const PERAGO: &str = env!("CARGO_BIN_EXE_perago");
/// The test-only CLI that also serves `examples.stubborn`.
const TEST_WORKER: &str = env!("CARGO_BIN_EXE_perago-test-worker");

struct Fixture {
    server: DevServer,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    /// The binary `command` runs: `perago` unless [`Fixture::test_worker`].
    program: &'static str,
}

impl Fixture {
    fn new() -> Fixture {
        let server = DevServer::start(DevServerOptions::default()).expect("dev server starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let env = vec![("CONDUCTOR_SERVER_URL", server.conductor_url())];
        Fixture {
            server,
            dir,
            env,
            program: PERAGO,
        }
    }

    /// Runs `perago-test-worker` (which also serves `examples.stubborn`) instead of `perago`.
    fn test_worker(mut self) -> Fixture {
        self.program = TEST_WORKER;
        self
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("workspaces")
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn with_lakefs(mut self) -> Fixture {
        self.env.extend([
            ("LAKECTL_SERVER_ENDPOINT_URL", self.server.lakefs_endpoint()),
            (
                "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
                self.server.access_key_id().to_owned(),
            ),
            (
                "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
                self.server.secret_access_key().to_owned(),
            ),
        ]);
        self
    }

    fn with(mut self, key: &'static str, value: &str) -> Fixture {
        self.env.push((key, value.to_owned()));
        self
    }

    /// `perago <args>` in the temp dir with exactly the fixture's environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.program);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("TMPDIR", self.dir.path())
            .env("PERAGO_WORKSPACE_ROOT", self.root())
            .env("PERAGO_LOG_ROOT", self.logs())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Starts `perago start <target> -j <jobs>` (process mode by default, no flag).
    fn supervise(&self, target: &str, jobs: usize) -> Tree {
        let jobs = jobs.to_string();
        let supervisor = self
            .command(&["start", target, "-j", &jobs])
            .spawn()
            .expect("perago starts");
        Tree {
            supervisor,
            seen_children: BTreeSet::new(),
        }
    }

    /// Registers `name` (with this response timeout and retry count) and a one-task
    /// workflow `<name>_wf` wiring `workflow.input.params` (and `.workspace`) to it.
    fn register(&self, name: &str, response_timeout: u64, retry_count: u64) {
        let engine = self.server.conductor().engine();
        engine
            .register_task_defs(vec![crate::support::generated_task_def(
                name,
                json!({
                    "retryCount": retry_count, "retryLogic": "FIXED", "retryDelaySeconds": 0,
                    "timeoutSeconds": 0, "responseTimeoutSeconds": response_timeout,
                    "timeoutPolicy": "TIME_OUT_WF"
                }),
            )])
            .expect("task def registered");
        engine
            .register_workflow_def(
                json!({
                    "name": format!("{name}_wf"), "version": 1, "schemaVersion": 2,
                    "ownerEmail": "test@example.com", "timeoutSeconds": 0,
                    "tasks": [{"name": name, "taskReferenceName": "only", "type": "SIMPLE",
                               "inputParameters": {"params": "${workflow.input.params}",
                                                   "workspace": "${workflow.input.workspace}"}}]
                }),
                true,
            )
            .expect("workflow def registered");
    }

    fn start_workflow(&self, name: &str, input: Value) -> String {
        self.server
            .conductor()
            .engine()
            .start_workflow(&format!("{name}_wf"), None, input)
            .expect("workflow started")
    }

    fn workflow(&self, id: &str) -> Value {
        self.server
            .conductor()
            .engine()
            .workflow(id)
            .expect("workflow exists")
    }

    fn tasks(&self, id: &str) -> Vec<Value> {
        self.workflow(id)["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn wait_completed(&self, ids: &[String]) {
        let what = Lazy(|| {
            let workflows: Vec<Value> = ids.iter().map(|id| self.workflow(id)).collect();
            format!(
                "workflows to complete: {workflows:#?}\nlogs:\n{}",
                self.all_logs()
            )
        });
        wait_until(what, LONG, || {
            ids.iter()
                .all(|id| self.workflow(id)["status"] == "COMPLETED")
        });
    }

    /// Every log line under the log root, for failure messages.
    fn all_logs(&self) -> String {
        let mut text = String::new();
        for entry in walkdir::WalkDir::new(self.logs()).sort_by_file_name() {
            let Ok(entry) = entry else { continue };
            if entry.file_type().is_file() {
                text.push_str(&format!("== {}\n", entry.path().display()));
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    /// Every JSONL record in the log directory of `worker_id` (all files, all pids).
    fn log_records(&self, target: &str, worker_id: &str) -> Vec<Value> {
        let dir = self
            .logs()
            .join(target)
            .join(format!("worker_id={worker_id}"));
        let mut records = Vec::new();
        for file in log_files(&dir) {
            let text = std::fs::read_to_string(&file).expect("log file");
            for line in text.lines() {
                records.push(serde_json::from_str(line).expect("JSON line"));
            }
        }
        records
    }

    /// The supervisor's records (it logs under the worker id prefix).
    fn supervisor_records(&self, target: &str, prefix: &str) -> Vec<Value> {
        self.log_records(target, prefix)
    }
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn with_message<'a>(records: &'a [Value], message: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["message"] == message).collect()
}

/// Marked attempt workspaces under `root`.
fn attempt_dirs(root: &Path) -> Vec<(PathBuf, Marker)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(MARKER_FILE_NAME).is_file())
        .filter_map(|p| Marker::read(&p).ok().map(|m| (p, m)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn three_children_serve_under_their_slot_worker_ids_and_drain_on_sigterm() {
    let fx = Fixture::new();
    fx.register("examples.echo", 30, 0);
    let mut tree = fx.supervise("examples.echo", 3);
    let children = tree.wait_children(3);
    let ids: Vec<&str> = children.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["examplesecho0001", "examplesecho0002", "examplesecho0003"]
    );

    // Three slow tasks in flight at once can only be three different children (each has
    // one worker thread), so each worker id shows up on a task.
    let slow: Vec<String> = (0..3)
        .map(|i| {
            fx.start_workflow(
                "examples.echo",
                json!({"params": {"message": format!("slow{i}"), "sleep_ms": 1500}}),
            )
        })
        .collect();
    let mut in_flight = BTreeSet::new();
    wait_until("three tasks in flight", LONG, || {
        in_flight = slow
            .iter()
            .filter_map(|id| {
                let task = fx.tasks(id).into_iter().next()?;
                (task["status"] == "IN_PROGRESS")
                    .then(|| task["workerId"].as_str().map(str::to_owned))?
            })
            .collect();
        in_flight.len() == 3
    });
    let fast: Vec<String> = (0..9)
        .map(|i| {
            fx.start_workflow(
                "examples.echo",
                json!({"params": {"message": format!("fast{i}")}}),
            )
        })
        .collect();
    let all: Vec<String> = slow.iter().chain(&fast).cloned().collect();
    fx.wait_completed(&all);
    let completed_by: BTreeSet<String> = all
        .iter()
        .map(|id| {
            let task = &fx.tasks(id)[0];
            assert_eq!(task["status"], "COMPLETED");
            task["workerId"].as_str().expect("workerId").to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(in_flight, expected);
    assert_eq!(completed_by, expected);

    tree.signal(Signal::TERM);
    let status = tree.wait_exit();
    assert_eq!(status.code(), Some(0), "clean drain: {}", tree.stderr());
    for (_, pid) in &children {
        assert!(is_gone(*pid), "child {pid} outlived the supervisor");
    }
    assert!(
        !fx.root().join(SUPERVISOR_LOCK_FILE_NAME).exists(),
        "lock released"
    );

    let records = fx.supervisor_records("examples.echo", "examplesecho");
    let started = with_message(&records, "process supervisor started");
    assert_eq!(started.len(), 1, "{records:#?}");
    assert_eq!(started[0]["children"], 3);
    assert_eq!(started[0]["target"], "examples.echo");
    assert_eq!(started[0]["role"], "supervisor");
    assert_eq!(started[0]["worker_id"], "examplesecho");
    let mut child_started: Vec<&str> = with_message(&records, "child started")
        .iter()
        .map(|r| r["child_worker_id"].as_str().expect("child_worker_id"))
        .collect();
    child_started.sort_unstable();
    assert_eq!(child_started, ids);
    assert_eq!(with_message(&records, "child exited").len(), 3);
    // Each child logged its own runner start in its own directory.
    for id in &ids {
        let child = fx.log_records("examples.echo", id);
        assert_eq!(
            with_message(&child, "thread runner started").len(),
            1,
            "{id}"
        );
    }
}

#[test]
fn a_killed_child_is_restarted_with_its_worker_id_its_workspace_removed_and_its_task_retried() {
    let fx = Fixture::new().with_lakefs();
    let target = "examples.catalog_read";
    let task = "catalog.read";
    // A short response timeout so the server retries the killed attempt promptly.
    fx.register(task, 2, 2);
    let lakefs = LakefsClient::from_config(&LakefsConfig::new(
        fx.server.lakefs_endpoint(),
        fx.server.access_key_id().to_owned(),
        Secret::new(fx.server.secret_access_key().to_owned()),
    ))
    .expect("lakeFS client");
    let cancel = CancelToken::never();
    lakefs
        .create_repository("repo", "mem://repo", "main", &cancel)
        .expect("repository");
    lakefs
        .upload_object(
            "repo",
            "main",
            "data/a.txt",
            UploadSource::Bytes(b"a"),
            &cancel,
        )
        .expect("upload");
    let commit = lakefs
        .commit("repo", "main", "data", &Default::default(), &cancel)
        .expect("commit");
    // The download stalls on its listing, so the attempt sits in its workspace.
    fx.server
        .faults()
        .set(FaultRule {
            method: "GET".into(),
            path: "/api/v1/repositories/*/refs/*/objects/ls".into(),
            error_status: None,
            error_rate: 0.0,
            latency_ms: 5000,
            ..FaultRule::default()
        })
        .expect("fault rule");

    let mut tree = fx.supervise(target, 2);
    let before = tree.wait_children(2);
    let id = fx.start_workflow(
        task,
        json!({
            "workspace": {"repository": "repo", "branch": "main", "refType": "commit",
                          "ref": commit.id},
            "params": {"pattern": "data/*.txt"}
        }),
    );
    let mut attempt = None;
    wait_until("an attempt workspace", LONG, || {
        attempt = attempt_dirs(&fx.root()).into_iter().next();
        attempt.is_some()
    });
    let (attempt_dir, marker) = attempt.expect("attempt workspace");
    let victim = (marker.owner_worker_id.clone(), marker.owner_pid);
    assert!(before.contains(&victim), "{victim:?} not in {before:?}");

    fx.server.faults().clear();
    kill_process(Pid::from_raw(victim.1 as i32).expect("pid"), Signal::KILL)
        .expect("SIGKILL the child");

    // Same slot, same worker id, new pid.
    let mut after = Vec::new();
    wait_until("the slot to be restarted", LONG, || {
        after = tree.wait_children(2);
        after
            .iter()
            .any(|(wid, pid)| *wid == victim.0 && *pid != victim.1)
    });
    let ids: Vec<&String> = after.iter().map(|(wid, _)| wid).collect();
    let before_ids: Vec<&String> = before.iter().map(|(wid, _)| wid).collect();
    assert_eq!(ids, before_ids);
    assert!(
        !attempt_dir.exists(),
        "the dead child's attempt workspace is removed"
    );

    fx.wait_completed(std::slice::from_ref(&id));
    let tasks = fx.tasks(&id);
    assert_eq!(tasks.len(), 2, "{tasks:#?}");
    assert_eq!(tasks[0]["status"], "TIMED_OUT", "the killed attempt");
    assert_eq!(tasks[1]["status"], "COMPLETED", "the server's retry");
    assert_eq!(tasks[1]["outputData"]["result"]["matches"], 1);

    tree.signal(Signal::TERM);
    assert_eq!(tree.wait_exit().code(), Some(0), "{}", tree.stderr());

    // A new log file for the new pid, in the same worker directory.
    let new_pid = after
        .iter()
        .find(|(wid, _)| *wid == victim.0)
        .map(|(_, pid)| *pid)
        .expect("restarted child");
    let dir = fx
        .logs()
        .join(target)
        .join(format!("worker_id={}", victim.0));
    let names: Vec<String> = log_files(&dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for pid in [victim.1, new_pid] {
        assert!(
            names.iter().any(|n| n.starts_with(&format!("pid={pid}__"))),
            "no log file for pid {pid}: {names:?}"
        );
    }
    let records = fx.supervisor_records(target, "examplescatalogread");
    let exited = with_message(&records, "child exited")
        .into_iter()
        .filter(|r| r["child_pid"] == victim.1)
        .count();
    assert_eq!(exited, 1, "{records:#?}");
    let restart = with_message(&records, "child restart scheduled");
    assert_eq!(restart.len(), 1, "{records:#?}");
    assert_eq!(restart[0]["child_worker_id"], victim.0.as_str());
    assert_eq!(restart[0]["delay_ms"], 1000, "first restart delay");
}

#[test]
fn the_force_deadline_kills_a_child_whose_body_ignores_cancellation() {
    let fx = Fixture::new()
        .test_worker()
        .with("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "1s");
    fx.register("examples.stubborn", 60, 0);
    let mut tree = fx.supervise("examples.stubborn", 1);
    let children = tree.wait_children(1);
    let id = fx.start_workflow(
        "examples.stubborn",
        json!({"params": {"hold_seconds": 600}}),
    );
    wait_until("the stubborn task to run", LONG, || {
        fx.tasks(&id)
            .first()
            .is_some_and(|t| t["status"] == "IN_PROGRESS")
    });
    tree.signal(Signal::TERM);
    let status = tree.wait_exit();
    assert_eq!(status.code(), Some(exit_code::CHILDREN_UNCLEAN.into()));
    let stderr = tree.stderr();
    assert!(
        stderr.contains(
            "error: supervisor stopped uncleanly: 1 child process(es) killed, 0 exited with a failure"
        ),
        "{stderr}"
    );
    assert!(is_gone(children[0].1));
    let records = fx.supervisor_records("examples.stubborn", "examplesstubborn");
    let killed = with_message(&records, "child killed");
    assert_eq!(killed.len(), 1, "{records:#?}");
    assert_eq!(killed[0]["child_worker_id"], "examplesstubborn0001");
    assert_eq!(killed[0]["child_pid"], children[0].1);
    assert_eq!(killed[0]["phase"], "drain");
    assert_eq!(killed[0]["reason"], "force_deadline");
    assert_eq!(killed[0]["deadline"], "1s");
    assert!(!fx.root().join(SUPERVISOR_LOCK_FILE_NAME).exists());
}

#[test]
fn a_second_supervisor_on_the_same_root_is_refused() {
    let fx = Fixture::new();
    fx.register("examples.echo", 30, 0);
    let mut first = fx.supervise("examples.echo", 1);
    first.wait_children(1);
    let output = fx
        .command(&["start", "examples.echo", "-j", "2"])
        .output()
        .expect("second perago runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The last line: the lines before it warn about the harmless drift of the TaskDef this
    // test registers with its own timeout and retries.
    assert_eq!(
        stderr.trim_end().lines().last().unwrap_or_default(),
        format!(
            "error: workspace root {} is already locked by supervisor pid {}; \
             use a different PERAGO_WORKSPACE_ROOT for each supervisor",
            fx.root().display(),
            first.pid()
        )
    );
    assert_eq!(
        first.children().len(),
        1,
        "the first supervisor is untouched"
    );
    first.signal(Signal::TERM);
    assert_eq!(first.wait_exit().code(), Some(0));
}

#[test]
fn killing_the_supervisor_kills_its_children_and_the_next_one_replaces_its_stale_lock() {
    let fx = Fixture::new();
    // A killed child's long poll may still be open at the server and take the next task
    // into the void (as with a real Conductor); the response timeout then retries it.
    fx.register("examples.echo", 2, 2);
    let mut first = fx.supervise("examples.echo", 2);
    let children = first.wait_children(2);
    first.signal(Signal::KILL);
    let _ = first.wait_exit();
    // The parent-death signal takes the children down with it.
    wait_until("the orphaned children to die", LONG, || {
        children.iter().all(|(_, pid)| is_gone(*pid))
    });
    let lock = fx.root().join(SUPERVISOR_LOCK_FILE_NAME);
    let stale = std::fs::read_to_string(&lock).expect("the killed supervisor's lock is left");
    assert!(stale.contains(&first.pid().to_string()));

    let mut second = fx.supervise("examples.echo", 1);
    second.wait_children(1);
    let lock_text = std::fs::read_to_string(&lock).expect("lock");
    assert_eq!(
        lock_text.trim_end(),
        format!("{{\"supervisor_pid\": {}}}", second.pid())
    );
    let id = fx.start_workflow("examples.echo", json!({"params": {"message": "hi"}}));
    fx.wait_completed(std::slice::from_ref(&id));
    second.signal(Signal::TERM);
    assert_eq!(second.wait_exit().code(), Some(0));
    assert!(!lock.exists());
}

#[test]
fn several_targets_get_their_own_children_numbered_across_the_set() {
    let fx = Fixture::new();
    fx.register("examples.echo", 30, 0);
    fx.register("metadata.validate", 30, 0);
    let mut tree = Tree {
        supervisor: fx
            .command(&["start", "examples.echo=2", "examples.metadata_validate"])
            .spawn()
            .expect("perago starts"),
        seen_children: BTreeSet::new(),
    };
    let prefix = "examplesechoexamplesmetadatavalidate";
    let children = tree.wait_children(3);
    let ids: Vec<&str> = children.iter().map(|(id, _)| id.as_str()).collect();
    let expected_ids: Vec<String> = (1..=3).map(|slot| format!("{prefix}{slot:04}")).collect();
    assert_eq!(ids, expected_ids);

    // Slow echoes (2 s each) on their two children; metadata on the third, at its own rate.
    let slow: Vec<String> = (0..2)
        .map(|i| {
            fx.start_workflow(
                "examples.echo",
                json!({"params": {"message": format!("slow{i}"), "sleep_ms": 2000}}),
            )
        })
        .collect();
    let fast: Vec<String> = (0..6)
        .map(|i| {
            fx.start_workflow(
                "metadata.validate",
                json!({"params": {"song_id": format!("s{i}"), "min_duration_seconds": 1}}),
            )
        })
        .collect();
    let all: Vec<String> = slow.iter().chain(&fast).cloned().collect();
    fx.wait_completed(&all);
    let served_by = |ids: &[String]| -> BTreeSet<String> {
        ids.iter()
            .map(|id| {
                fx.tasks(id)[0]["workerId"]
                    .as_str()
                    .expect("workerId")
                    .to_owned()
            })
            .collect()
    };
    let metadata_child: BTreeSet<String> = [expected_ids[2].clone()].into();
    assert_eq!(served_by(&fast), metadata_child);
    assert!(
        served_by(&slow).is_subset(&expected_ids[..2].iter().cloned().collect()),
        "{:?}",
        served_by(&slow)
    );

    tree.signal(Signal::TERM);
    let status = tree.wait_exit();
    assert_eq!(status.code(), Some(0), "clean drain: {}", tree.stderr());

    // The supervisor logs under the set's name; each child under its own target.
    let records = fx.supervisor_records("examples.echo_examples.metadata_validate", prefix);
    let started = with_message(&records, "process supervisor started");
    assert_eq!(started.len(), 1, "{records:#?}");
    assert_eq!(started[0]["children"], 3);
    assert_eq!(
        started[0]["targets"],
        "examples.echo=2,examples.metadata_validate=1"
    );
    assert_eq!(
        started[0]["target"],
        "examples.echo+examples.metadata_validate"
    );
    for (id, target) in [
        (&expected_ids[0], "examples.echo"),
        (&expected_ids[1], "examples.echo"),
        (&expected_ids[2], "examples.metadata_validate"),
    ] {
        let child = fx.log_records(target, id);
        let runner = with_message(&child, "thread runner started");
        assert_eq!(runner.len(), 1, "{id}");
        assert_eq!(runner[0]["target"], target, "{id}");
    }
}
