//! Issue 13 — nothing lost, nothing left behind, forced attempts end on time — over real HTTP
//! against the dev server:
//!
//! - a poll batch with one task nested past the JSON decoder's limit: the others run, the
//!   poison task is reported `FAILED` naming the decode error;
//! - staging branches: a worker SIGKILLed while staging leaves a branch that its restart
//!   deletes; 20 % 500 on branch DELETE leaves none;
//! - a forced attempt blocked in a slow merge ends as `FAILED` (reported, cleaned up) instead
//!   of being abandoned.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use perago::__private::{
    ConductorClient, LakefsClient, LakefsClientOptions, LakefsStore, UploadSource,
};
use perago::{CancelToken, Runtime, RuntimeConfig, Secret, Task, TaskContext, TaskError};
use perago_devserver::faults::FaultRule;
use perago_devserver::{DevServer, DevServerOptions};
use rustix::process::{Pid, Signal, kill_process};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::support::{LONG, wait_until};

const REPOSITORY: &str = "rel";

fn dev_server() -> DevServer {
    DevServer::start(DevServerOptions::default()).expect("dev server starts")
}

fn client(server: &DevServer) -> ConductorClient {
    ConductorClient::for_url(&server.conductor_url())
}

/// Registers `def` (a TaskDef) and a one-task workflow `<name>_wf` wiring `inputs`.
fn register(server: &DevServer, def: Value, inputs: Value) {
    let name = def["name"].as_str().expect("named").to_owned();
    let client = client(server);
    client.register_task_defs(&[def]).expect("task def");
    client
        .register_workflow_def(
            &json!({
                "name": format!("{name}_wf"), "version": 1, "schemaVersion": 2,
                "ownerEmail": "test@example.com", "timeoutSeconds": 0,
                "tasks": [{"name": name, "taskReferenceName": "only", "type": "SIMPLE",
                           "inputParameters": inputs}]
            }),
            true,
        )
        .expect("workflow def");
}

fn workflow(server: &DevServer, id: &str) -> Value {
    server
        .conductor()
        .engine()
        .workflow(id)
        .expect("workflow exists")
}

fn wait_terminal(server: &DevServer, id: &str) -> Value {
    let mut last = Value::Null;
    wait_until(format!("workflow {id} to end"), LONG, || {
        last = workflow(server, id);
        last["status"] != "RUNNING"
    });
    last
}

fn env_map(pairs: Vec<(&str, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn server_env(server: &DevServer, dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("TMPDIR", dir.display().to_string()),
        (
            "PERAGO_WORKSPACE_ROOT",
            dir.join("workspaces").display().to_string(),
        ),
        ("PERAGO_LOG_ROOT", dir.join("logs").display().to_string()),
        ("CONDUCTOR_SERVER_URL", server.conductor_url()),
        ("LAKECTL_SERVER_ENDPOINT_URL", server.lakefs_endpoint()),
        (
            "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
            server.access_key_id().to_owned(),
        ),
        (
            "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
            server.secret_access_key().to_owned(),
        ),
    ]
}

fn config(server: &DevServer, dir: &Path, target: &str, extra: &[(&str, &str)]) -> RuntimeConfig {
    let mut env = server_env(server, dir);
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    RuntimeConfig::from_env_map(target, &env_map(env), &Default::default()).expect("config")
}

fn lakefs(server: &DevServer) -> LakefsClient {
    LakefsClient::new(
        &server.lakefs_endpoint(),
        server.access_key_id(),
        &Secret::new(server.secret_access_key().to_owned()),
        LakefsClientOptions::default(),
    )
    .expect("lakeFS client")
}

/// A repository whose `main` holds what `features.build` needs; returns the head commit.
fn seed_repository(lakefs: &LakefsClient) -> String {
    let cancel = CancelToken::never();
    lakefs
        .create_repository(REPOSITORY, "local://rel", "main", &cancel)
        .expect("repository");
    for path in ["audio/render/raw/a.parquet", "audio/render/raw/b.parquet"] {
        lakefs
            .upload_object(
                REPOSITORY,
                "main",
                path,
                UploadSource::Bytes(b"PAR1-raw"),
                &cancel,
            )
            .expect("upload");
    }
    lakefs
        .commit(REPOSITORY, "main", "seed", &BTreeMap::new(), &cancel)
        .expect("commit")
        .id
}

fn staging_branches(lakefs: &LakefsClient) -> Vec<String> {
    lakefs
        .list_branches(REPOSITORY, &CancelToken::never())
        .expect("branches")
        .into_iter()
        .map(|branch| branch.id)
        .filter(|id| id.starts_with("perago-staging-"))
        .collect()
}

/// `features.build`'s TaskDef with quick retries.
fn register_features(server: &DevServer, retry_count: u64, response_timeout: u64) {
    let mut def = perago::task_def(&perago::examples::features_build().expect("task"));
    def["retryCount"] = json!(retry_count);
    def["retryDelaySeconds"] = json!(0);
    def["responseTimeoutSeconds"] = json!(response_timeout);
    register(
        server,
        def,
        json!({"workspace": "${workflow.input.workspace}", "params": "${workflow.input.params}"}),
    );
}

fn start_features(server: &DevServer, head: &str, feature_set: &str) -> String {
    server
        .conductor()
        .engine()
        .start_workflow(
            "features.build_wf",
            None,
            json!({
                "workspace": {"repository": REPOSITORY, "branch": "main", "refType": "commit",
                              "ref": head},
                "params": {"feature_set": feature_set, "min_rows": 10},
            }),
        )
        .expect("workflow started")
}

fn features_runtime(
    server: &DevServer,
    dir: &Path,
    extra: &[(&str, &str)],
) -> perago::RuntimeBuilder {
    Runtime::builder(
        config(server, dir, "examples.features_build", extra),
        perago::examples::features_build().expect("task"),
    )
    .workspace_store(Arc::new(LakefsStore::new(lakefs(server))))
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoParams {
    message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct EchoResult {
    message: String,
}

fn echo(name: &str) -> Task {
    Task::builder(name, "test@example.com")
        .handler(
            |_ctx: &TaskContext, params: EchoParams| -> Result<EchoResult, TaskError> {
                Ok(EchoResult {
                    message: params.message,
                })
            },
        )
        .expect("valid task")
}

/// `{"d": {"d": … {}}}` nested `depth` objects deep.
fn nested(depth: usize) -> Value {
    let mut value = json!({});
    for _ in 0..depth {
        value = json!({ "d": value });
    }
    value
}

#[test]
fn a_task_nested_at_the_servers_limit_fails_alone_and_its_batch_runs() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(
        &server,
        json!({"name": "rel_echo", "ownerEmail": "t@example.com", "retryCount": 0,
               "responseTimeoutSeconds": 30, "timeoutSeconds": 0}),
        json!({"params": "${workflow.input.params}"}),
    );
    let client = client(&server);
    // The deepest input the server accepts over HTTP (its decoder has a depth limit too).
    let (poison, depth) = (1..=200)
        .rev()
        .find_map(|depth| {
            let input = json!({"params": {"message": "poison", "deep": nested(depth)}});
            client
                .start_workflow("rel_echo_wf", &input)
                .ok()
                .map(|id| (id, depth))
        })
        .expect("the server accepts some nesting");
    assert!(depth > 100, "server accepted only {depth} levels");
    let innocent: Vec<String> = (0..6)
        .map(|i| {
            client
                .start_workflow(
                    "rel_echo_wf",
                    &json!({"params": {"message": format!("m{i}")}}),
                )
                .expect("started")
        })
        .collect();

    // Eight free slots: the first poll takes the poison task and the innocent ones together.
    let handle = Runtime::builder(
        config(&server, dir.path(), "rel.echo", &[]),
        echo("rel_echo"),
    )
    .threads(8)
    .start()
    .unwrap();
    for id in &innocent {
        let done = wait_terminal(&server, id);
        assert_eq!(done["status"], "COMPLETED", "{done}");
        assert_eq!(done["tasks"].as_array().map(Vec::len), Some(1), "{done}");
    }
    let failed = wait_terminal(&server, &poison);
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let task = &failed["tasks"][0];
    assert_eq!(task["status"], "FAILED", "{task}");
    let reason = task["reasonForIncompletion"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("task could not be decoded: recursion limit exceeded"),
        "{reason}"
    );
    handle.shutdown();
    let exit = handle.join();
    assert!(exit.is_clean(), "{exit:?}");
    assert_eq!(exit.counters.failed, 1, "{exit:?}");
}

#[test]
fn staging_branch_deletes_that_fail_a_fifth_of_the_time_leave_no_branch() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let lakefs = lakefs(&server);
    seed_repository(&lakefs);
    register_features(&server, 3, 60);
    server
        .faults()
        .set(FaultRule {
            method: "DELETE".into(),
            path: "/api/v1/repositories/*/branches/perago-staging-*".into(),
            error_status: Some(500),
            error_rate: 0.2,
            ..FaultRule::default()
        })
        .unwrap();
    let handle = features_runtime(&server, dir.path(), &[]).start().unwrap();
    let runs = 12;
    for index in 0..runs {
        let head = lakefs
            .get_branch(REPOSITORY, "main", &CancelToken::never())
            .unwrap()
            .commit_id;
        let id = start_features(&server, &head, &format!("fs{index}"));
        let done = wait_terminal(&server, &id);
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }
    handle.shutdown();
    assert!(handle.join().is_clean());
    assert_eq!(staging_branches(&lakefs), Vec::<String>::new());
    // The fault did fire: some deletes were answered 500 and needed another try.
    assert!(server.faults().injected() > 0, "no DELETE was refused");
    let deletes = server.stats().count(
        "lakefs",
        "DELETE /repositories/{repository}/branches/{branch}",
    );
    assert_eq!(deletes, runs, "one successful DELETE per publication");
    // And nothing is left on the worker's disk either.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("workspaces"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `perago start examples.features_build --execution-mode thread` in `dir`.
fn start_worker(server: &DevServer, dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_perago"))
        .args([
            "start",
            "examples.features_build",
            "--execution-mode",
            "thread",
        ])
        .current_dir(dir)
        .env_clear()
        .envs(server_env(server, dir))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("perago starts")
}

fn signal(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    kill_process(pid, signal).unwrap();
}

#[test]
fn a_worker_killed_while_staging_leaves_a_branch_its_restart_deletes() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let lakefs = lakefs(&server);
    let head = seed_repository(&lakefs);
    // A short response timeout: the killed attempt is retried soon after the restart.
    register_features(&server, 3, 4);
    // Uploads to staging branches hang, so the worker is caught inside stage.
    server
        .faults()
        .set(FaultRule {
            method: "POST".into(),
            path: "/api/v1/repositories/*/branches/perago-staging-*/objects".into(),
            latency_ms: 8_000,
            ..FaultRule::default()
        })
        .unwrap();
    let id = start_features(&server, &head, "killed");
    let mut worker = start_worker(&server, dir.path());
    wait_until("a staging branch", LONG, || {
        !staging_branches(&lakefs).is_empty()
    });
    let branch = staging_branches(&lakefs).remove(0);
    signal(&worker, Signal::KILL);
    worker.wait().unwrap();
    server.faults().clear();

    // The dead execution's workspace is still there, and its marker names the branch.
    let workspaces = dir.path().join("workspaces");
    let markers: Vec<Value> = std::fs::read_dir(&workspaces)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let text = std::fs::read_to_string(e.path().join(".perago-attempt.json")).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect();
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert_eq!(
        markers[0]["staging"],
        json!({"repository": REPOSITORY, "branch": branch})
    );
    assert_eq!(staging_branches(&lakefs), std::slice::from_ref(&branch));

    // The restart's startup sweep removes the workspace and deletes its branch; Conductor
    // then retries the task (the killed attempt times out) and the retry publishes.
    let mut restarted = start_worker(&server, dir.path());
    wait_until("the dead execution's branch to go", LONG, || {
        !staging_branches(&lakefs).contains(&branch)
    });
    let done = wait_terminal(&server, &id);
    assert_eq!(done["status"], "COMPLETED", "{done}");
    signal(&restarted, Signal::TERM);
    let status = restarted.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(staging_branches(&lakefs), Vec::<String>::new());
}

#[test]
fn a_forced_attempt_blocked_in_a_slow_merge_ends_failed_instead_of_being_abandoned() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let lakefs = lakefs(&server);
    let head = seed_repository(&lakefs);
    register_features(&server, 0, 60);
    // The merge takes longer than the force deadline and the grace together.
    server
        .faults()
        .set(FaultRule {
            method: "POST".into(),
            path: "/api/v1/repositories/*/refs/*/merge/*".into(),
            latency_ms: 10_000,
            ..FaultRule::default()
        })
        .unwrap();
    let handle = features_runtime(
        &server,
        dir.path(),
        &[("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "3s")],
    )
    .force_grace(Duration::from_secs(2))
    .start()
    .unwrap();
    let id = start_features(&server, &head, "forced");
    // Once the staging commit exists, only the attempt fence (one quick read) stands between
    // the attempt and its merge; the force comes 3 s after the shutdown request.
    wait_until("the staging commit", LONG, || {
        staging_branches(&lakefs).iter().any(|branch| {
            server.lakefs().branch_head(REPOSITORY, branch).as_deref() != Some(head.as_str())
        })
    });
    handle.shutdown();
    let exit = handle.join();
    assert!(exit.forced, "{exit:?}");
    // Not abandoned: the attempt saw its token inside the merge wait, reported, cleaned up.
    assert_eq!(exit.abandoned_attempts, 0, "{exit:?}");
    assert!(exit.is_clean(), "{exit:?}");
    let done = wait_terminal(&server, &id);
    let task = &done["tasks"][0];
    assert_eq!(task["status"], "FAILED", "{task}");
    assert!(
        task["reasonForIncompletion"]
            .as_str()
            .is_some_and(|r| r.contains("cancelled")),
        "{task}"
    );
    assert_eq!(staging_branches(&lakefs), Vec::<String>::new());
    let left = std::fs::read_dir(dir.path().join("workspaces"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .count();
    assert_eq!(left, 0);
}

/// `perago <args>` in `dir` with only `env` (and roots under `dir`) in its environment.
fn perago(dir: &Path, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_perago"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("TMPDIR", dir)
        .env("PERAGO_WORKSPACE_ROOT", dir.join("workspaces"))
        .env("PERAGO_LOG_ROOT", dir.join("logs"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("perago runs")
}

#[test]
fn features_build_refuses_a_feature_set_that_would_escape_its_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("audio/render/raw")).unwrap();
    std::fs::write(data.join("audio/render/raw/a.parquet"), b"abc").unwrap();
    for feature_set in ["../../../escaped", "/tmp/escaped", "a/b"] {
        let input = json!({"params": {"feature_set": feature_set, "min_rows": 1}});
        std::fs::write(dir.path().join("input.json"), input.to_string()).unwrap();
        let output = perago(
            dir.path(),
            &[
                "run",
                "examples.features_build",
                "--input",
                "input.json",
                "--workspace-dir",
                "data",
                "--apply",
            ],
            &[],
        );
        assert_eq!(output.status.code(), Some(2), "{feature_set}: {output:?}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["status"], "FAILED", "{report}");
        let reason = report["reasonForIncompletion"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("invalid params") && reason.contains("feature_set"),
            "{reason}"
        );
    }
    // Nothing was written anywhere: not in the data dir, not next to it, not in /tmp.
    assert!(!data.join("audio/render/features").exists());
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("escaped"))
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
    assert!(!Path::new("/tmp/escaped/a.parquet").exists());
}

#[test]
fn perago_gc_deletes_old_staging_branches_only_and_dry_run_changes_nothing() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let lakefs = lakefs(&server);
    let head = seed_repository(&lakefs);
    let cancel = CancelToken::never();
    let orphan = "perago-staging-wf-only-seq-1-iteration-0-task-id-t-retry-0-exec-dead";
    lakefs
        .create_branch(REPOSITORY, orphan, &head, &cancel)
        .unwrap();
    lakefs
        .create_branch(REPOSITORY, "feature-x", &head, &cancel)
        .unwrap();
    let env: Vec<(&str, String)> = server_env(&server, dir.path())
        .into_iter()
        .filter(|(key, _)| key.starts_with("LAKECTL_"))
        .collect();
    let gc = |args: &[&str]| {
        let mut all = vec!["gc"];
        all.extend_from_slice(args);
        perago(dir.path(), &all, &env)
    };

    // Younger than the threshold: kept.
    let output = gc(&["--lakefs", "--older-than", "1h"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "staging branches: 1 found, 0 deleted, 1 younger than 1h, 0 failed\n"
    );
    // Old enough, but a dry run: listed, not deleted.
    let output = gc(&["--lakefs", "--older-than", "0s", "--dry-run"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        text.starts_with(&format!(
            "would delete: {REPOSITORY}/{orphan} (head commit "
        )),
        "{text}"
    );
    assert!(
        text.ends_with("staging branches: 1 found, 1 would delete, 0 younger than 0s, 0 failed\n"),
        "{text}"
    );
    assert_eq!(staging_branches(&lakefs), [orphan]);
    // For real: the staging branch goes, every other branch stays.
    let output = gc(&["--lakefs", "--older-than", "0s"]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("deleted: "));
    assert_eq!(staging_branches(&lakefs), Vec::<String>::new());
    let branches: Vec<String> = lakefs
        .list_branches(REPOSITORY, &cancel)
        .unwrap()
        .into_iter()
        .map(|branch| branch.id)
        .collect();
    assert_eq!(branches, ["feature-x", "main"]);
    // Without --lakefs there is nothing to collect.
    let output = gc(&["--older-than", "1h"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: nothing to collect: pass --lakefs to delete orphaned lakeFS staging branches\n"
    );
}
