//! The attempt state machine against every row of the SPEC §6 classification table that
//! needs neither lakeFS nor Conductor; stores and fences are trait fakes here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use perago::__private::{
    AttemptEnv, AttemptFence, AttemptReport, FenceError, LocalDirStore, NoFence, StageRequest,
    StoreError, WorkspaceRef, WorkspaceStore, run_attempt,
};
use perago::__private::{LiveOwners, Snapshot};
use perago::{AttemptIdentity, CancelSource, CancelToken};
use perago::{Guardrail, Task, TaskContext, TaskError, WorkspaceSpec};
use perago::{Phase, TaskStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize, JsonSchema)]
struct Params {
    #[schemars(length(min = 1))]
    mode: String,
    #[serde(default)]
    #[schemars(range(min = 1))]
    #[expect(dead_code, reason = "only its schema constraint is exercised")]
    count: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    #[schemars(range(max = 10))]
    value: u32,
}

fn body(ctx: &TaskContext, params: Params) -> Result<Output, TaskError> {
    match params.mode.as_str() {
        "ok" => Ok(Output { value: 1 }),
        "fail" => Err(TaskError::failed("business failure")),
        "terminal" => Err(TaskError::terminal("never retry")),
        "io" => Err(std::io::Error::other("disk on fire").into()),
        "panic" => panic!("boom in body"),
        "bad-result" => Ok(Output { value: 11 }),
        "long" => Err(TaskError::failed("é".repeat(2000))),
        "bytes" => Err(TaskError::failed(String::from_utf8_lossy(
            b"bad \xff\xfe bytes",
        ))),
        "sleep" => {
            ctx.sleep(Duration::from_secs(600))
                .map_err(|_| TaskError::failed("cancelled"))?;
            Ok(Output { value: 2 })
        }
        "write" => {
            let root = ctx.workspace().ok_or_else(|| TaskError::failed("no ws"))?;
            std::fs::write(root.join("new.txt"), b"new")?;
            Ok(Output { value: 3 })
        }
        "symlink" => {
            let root = ctx.workspace().ok_or_else(|| TaskError::failed("no ws"))?;
            #[cfg(unix)]
            std::os::unix::fs::symlink("/etc/hostname", root.join("link"))?;
            Ok(Output { value: 4 })
        }
        "nothing" => Ok(Output { value: 5 }),
        other => Err(TaskError::failed(format!("unknown mode {other}"))),
    }
}

fn free_task(strict: bool) -> Task {
    Task::builder("core.free", "t@example.com")
        .strict_params(strict)
        .handler(body)
        .unwrap()
}

fn ws_task(spec: WorkspaceSpec) -> Task {
    Task::builder("core.ws", "t@example.com")
        .workspace(spec)
        .handler(body)
        .unwrap()
}

fn identity() -> AttemptIdentity {
    AttemptIdentity {
        task_id: "task-1".into(),
        workflow_instance_id: "wf-1".into(),
        retry_count: 0,
        task_def_name: "core".into(),
        reference_task_name: "core_ref".into(),
        seq: 1,
        iteration: 0,
        execution_id: "exec1".into(),
        worker_id: "w0001".into(),
    }
}

struct Harness {
    root: tempfile::TempDir,
    owners: LiveOwners,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            root: tempfile::tempdir().unwrap(),
            owners: LiveOwners::new(),
        }
    }

    fn run(
        &self,
        task: &Task,
        input: Value,
        store: Option<&dyn WorkspaceStore>,
        fence: &dyn AttemptFence,
        cancel: CancelToken,
    ) -> AttemptReport {
        let env = AttemptEnv {
            workspace_root: self.root.path(),
            store,
            fence,
            owners: &self.owners,
            failure_reason_max_length: 500,
            cancel,
            task_log: None,
            previous_output: None,
        };
        run_attempt(task, &identity(), &input, &env)
    }

    fn run_free(&self, task: &Task, input: Value) -> AttemptReport {
        self.run(task, input, None, &NoFence, CancelToken::never())
    }

    fn leftover_dirs(&self) -> usize {
        std::fs::read_dir(self.root.path()).unwrap().count()
    }
}

fn assert_failed(report: &AttemptReport, status: TaskStatus, phase: Phase, needle: &str) {
    assert_eq!(report.result.status, status, "{report:?}");
    assert_eq!(report.failed_phase, Some(phase), "{report:?}");
    let reason = report.result.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains(needle),
        "reason {reason:?} lacks {needle:?}"
    );
    assert!(report.result.output.is_none());
}

#[test]
fn workspace_free_task_completes_with_result_envelope() {
    let harness = Harness::new();
    let report = harness.run_free(&free_task(false), json!({"params": {"mode": "ok"}}));
    assert_eq!(report.result.status, TaskStatus::Completed);
    assert_eq!(report.result.output, Some(json!({"result": {"value": 1}})));
}

#[test]
fn bad_input_of_every_kind_fails_the_input_phase() {
    let harness = Harness::new();
    let task = free_task(true);
    let cases = [
        (
            json!([1, 2]),
            "workspace-free task input must contain params",
        ),
        (
            json!("text"),
            "workspace-free task input must contain params",
        ),
        (json!({}), "workspace-free task input must contain params"),
        (json!({"params": 5}), "params must be a JSON object"),
        (json!({"params": {}}), "mode"),
        (json!({"params": {"mode": 1}}), "mode"),
        (json!({"params": {"mode": ""}}), "mode"),
        (json!({"params": {"mode": "ok", "count": 0}}), "count"),
        (json!({"params": {"mode": "ok", "extra": true}}), "extra"),
    ];
    for (input, needle) in cases {
        let report = harness.run_free(&task, input);
        assert_failed(&report, TaskStatus::Failed, Phase::Input, needle);
    }
}

#[test]
fn lenient_params_ignore_unknown_fields_and_extra_top_level_keys() {
    let harness = Harness::new();
    let report = harness.run_free(
        &free_task(false),
        json!({"params": {"mode": "ok", "extra": true}, "other": 1}),
    );
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
}

#[test]
fn body_outcomes_are_classified() {
    let harness = Harness::new();
    let task = free_task(false);
    let cases = [
        ("fail", TaskStatus::Failed, "business failure"),
        (
            "terminal",
            TaskStatus::FailedWithTerminalError,
            "never retry",
        ),
        ("io", TaskStatus::Failed, "disk on fire"),
        (
            "panic",
            TaskStatus::Failed,
            "task body panicked: boom in body",
        ),
        ("bad-result", TaskStatus::Failed, "invalid result: value"),
    ];
    for (mode, status, needle) in cases {
        let report = harness.run_free(&task, json!({"params": {"mode": mode}}));
        assert_failed(&report, status, Phase::Body, needle);
    }
}

#[test]
fn a_panicking_body_leaves_the_thread_usable() {
    let harness = Harness::new();
    let task = free_task(false);
    for _ in 0..3 {
        let report = harness.run_free(&task, json!({"params": {"mode": "panic"}}));
        assert_eq!(report.result.status, TaskStatus::Failed);
    }
    let report = harness.run_free(&task, json!({"params": {"mode": "ok"}}));
    assert_eq!(report.result.status, TaskStatus::Completed);
}

#[test]
fn long_reasons_are_truncated_by_characters() {
    let harness = Harness::new();
    let report = harness.run_free(&free_task(false), json!({"params": {"mode": "long"}}));
    let reason = report.result.reason.unwrap();
    assert_eq!(reason.chars().count(), 500);
    assert_eq!(report.reason_original_chars, Some(2000));
}

#[test]
fn cancellation_reaches_a_cooperative_body() {
    let harness = Harness::new();
    let source = CancelSource::new();
    source.cancel();
    let report = harness.run(
        &free_task(false),
        json!({"params": {"mode": "sleep"}}),
        None,
        &NoFence,
        source.token(),
    );
    assert_failed(
        &report,
        TaskStatus::Failed,
        Phase::Body,
        "worker shutdown deadline exceeded",
    );
}

fn ws_input() -> Value {
    json!({
        "workspace": {"repository": "repo", "branch": "main", "refType": "commit", "ref": "A"},
        "params": {"mode": "ok"}
    })
}

fn with_mode(mode: &str) -> Value {
    let mut input = ws_input();
    input["params"]["mode"] = json!(mode);
    input
}

fn source_dir(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"data").unwrap();
    }
    dir
}

#[test]
fn workspace_input_is_checked() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/"));
    let source = source_dir(&[]);
    let store = LocalDirStore::new(source.path(), false);
    let cases = [
        (
            json!({"params": {"mode": "ok"}}),
            "workspace task input must contain workspace and params",
        ),
        (
            json!({"workspace": {}}),
            "workspace task input must contain workspace and params",
        ),
        (
            json!({"workspace": {"repository": "r", "branch": " ", "refType": "commit", "ref": "A"}, "params": {"mode": "ok"}}),
            "branch must not be blank",
        ),
        (
            json!({"workspace": {"repository": "r", "branch": "b", "refType": "branch", "ref": "A"}, "params": {"mode": "ok"}}),
            "refType",
        ),
    ];
    for (input, needle) in cases {
        let report = harness.run(&task, input, Some(&store), &NoFence, CancelToken::never());
        assert_failed(&report, TaskStatus::Failed, Phase::Input, needle);
    }
    assert_eq!(harness.leftover_dirs(), 0);
}

#[test]
fn pre_guardrail_failure_is_terminal_and_skips_the_body() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/data").pre([Guardrail::require_file("input.csv")]));
    let source = source_dir(&["other.csv"]);
    let store = LocalDirStore::new(source.path(), true);
    let report = harness.run(
        &task,
        with_mode("write"),
        Some(&store),
        &NoFence,
        CancelToken::never(),
    );
    assert_failed(
        &report,
        TaskStatus::FailedWithTerminalError,
        Phase::PreGuardrail,
        "pre guardrail require_file('input.csv') did not find a file",
    );
    assert!(
        !report
            .timings
            .iter()
            .any(|(phase, _)| *phase == Phase::Body)
    );
    assert!(!source.path().join("data/new.txt").exists());
    assert_eq!(harness.leftover_dirs(), 0, "attempt dir must be removed");
}

#[test]
fn post_guardrail_failure_is_retryable_and_publishes_nothing() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/").post([Guardrail::forbid_glob("*.txt")]));
    let source = source_dir(&["a.bin"]);
    let store = LocalDirStore::new(source.path(), true);
    let report = harness.run(
        &task,
        with_mode("write"),
        Some(&store),
        &NoFence,
        CancelToken::never(),
    );
    assert_failed(
        &report,
        TaskStatus::Failed,
        Phase::PostGuardrail,
        "post guardrail forbid_glob('*.txt') matched 1 files",
    );
    assert!(!source.path().join("new.txt").exists());
}

#[test]
fn read_only_task_completes_with_the_input_ref() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/").read_only(true));
    let store = RecordingStore::default();
    let report = harness.run(
        &task,
        with_mode("write"),
        Some(&store),
        &FailingFence,
        CancelToken::never(),
    );
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    let output = report.result.output.unwrap();
    assert_eq!(output["workspace"]["ref"], "A");
    assert_eq!(output["result"]["value"], 3);
    assert_eq!(
        store.calls(),
        vec!["download"],
        "read-only must never write or fence"
    );
}

#[test]
fn writable_task_with_changes_stages_and_publishes_between_fences() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/"));
    let store = RecordingStore::default();
    let fence = CountingFence::default();
    let report = harness.run(
        &task,
        with_mode("write"),
        Some(&store),
        &fence,
        CancelToken::never(),
    );
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(
        report.result.output.unwrap()["workspace"]["ref"],
        "PUBLISHED"
    );
    assert_eq!(
        store.calls(),
        vec!["download", "stage", "publish", "delete_staging"]
    );
    assert_eq!(*fence.count.lock(), 2);
    assert_eq!(report.changes.unwrap().added, vec!["new.txt".to_owned()]);
}

#[test]
fn writable_task_without_changes_completes_as_a_no_op() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/"));
    let store = RecordingStore::default();
    let fence = CountingFence::default();
    let report = harness.run(
        &task,
        with_mode("nothing"),
        Some(&store),
        &fence,
        CancelToken::never(),
    );
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(store.calls(), vec!["download", "publish_noop"]);
    assert_eq!(*fence.count.lock(), 1);
}

#[test]
fn a_stale_attempt_fails_at_the_fence_and_publishes_nothing() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/"));
    let store = RecordingStore::default();
    let report = harness.run(
        &task,
        with_mode("write"),
        Some(&store),
        &FailingFence,
        CancelToken::never(),
    );
    assert_failed(
        &report,
        TaskStatus::Failed,
        Phase::AttemptFence,
        "stale attempt",
    );
    assert_eq!(store.calls(), vec!["download"]);
}

#[test]
fn symlinks_refuse_publication() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/"));
    let store = RecordingStore::default();
    let report = harness.run(
        &task,
        with_mode("symlink"),
        Some(&store),
        &NoFence,
        CancelToken::never(),
    );
    assert_failed(
        &report,
        TaskStatus::Failed,
        Phase::Stage,
        "workspace publication does not support symlinks: link",
    );
    assert_eq!(store.calls(), vec!["download"]);
}

#[test]
fn staging_cleanup_failure_keeps_the_result_and_stage_errors_still_clean_up() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/"));
    let store = RecordingStore {
        fail_delete: true,
        ..RecordingStore::default()
    };
    let report = harness.run(
        &task,
        with_mode("write"),
        Some(&store),
        &NoFence,
        CancelToken::never(),
    );
    assert_eq!(report.result.status, TaskStatus::Completed);
    assert_eq!(report.cleanup_errors.len(), 1);
    // The branch is still there: the workspace is emptied but keeps its marker, which names
    // the branch, so that a later GC sweep deletes the branch and then the directory.
    let kept: Vec<_> = std::fs::read_dir(harness.root.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let inside: Vec<_> = std::fs::read_dir(&kept[0])
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(inside, [perago::__private::MARKER_FILE_NAME]);
    let marker: Value = serde_json::from_str(
        &std::fs::read_to_string(kept[0].join(perago::__private::MARKER_FILE_NAME)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        marker["staging"]["branch"],
        perago::__private::staging_branch_name(&identity())
    );
    // What that GC would do, so the next run may use the same identity.
    std::fs::remove_dir_all(&kept[0]).unwrap();

    let store = RecordingStore {
        fail_stage_after_create: true,
        ..RecordingStore::default()
    };
    let report = harness.run(
        &task,
        with_mode("write"),
        Some(&store),
        &NoFence,
        CancelToken::never(),
    );
    assert_failed(&report, TaskStatus::Failed, Phase::Stage, "upload failed");
    assert_eq!(store.calls(), vec!["download", "stage", "delete_staging"]);
    assert_eq!(harness.leftover_dirs(), 0);
}

#[test]
fn download_errors_fail_the_download_phase() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/"));
    let store = RecordingStore {
        fail_download: true,
        ..RecordingStore::default()
    };
    let report = harness.run(
        &task,
        ws_input(),
        Some(&store),
        &NoFence,
        CancelToken::never(),
    );
    assert_failed(
        &report,
        TaskStatus::Failed,
        Phase::Download,
        "ref not found",
    );
    assert_eq!(harness.leftover_dirs(), 0);
}

#[test]
fn a_workspace_task_without_a_store_fails_clearly() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/"));
    let report = harness.run(&task, ws_input(), None, &NoFence, CancelToken::never());
    assert_failed(
        &report,
        TaskStatus::Failed,
        Phase::Download,
        "LakeFS config is required for workspace tasks",
    );
}

#[test]
fn local_store_reports_and_applies_changes_within_the_prefix() {
    let harness = Harness::new();
    let task = ws_task(WorkspaceSpec::new("/sub"));
    let source = source_dir(&["sub/keep.bin", "outside.bin"]);
    let store = LocalDirStore::new(source.path(), true);
    let report = harness.run(
        &task,
        with_mode("write"),
        Some(&store),
        &NoFence,
        CancelToken::never(),
    );
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert!(source.path().join("sub/new.txt").is_file());
    assert!(!source.path().join("new.txt").exists());
}

#[derive(Default)]
struct RecordingStore {
    calls: Mutex<Vec<&'static str>>,
    fail_delete: bool,
    fail_download: bool,
    fail_stage_after_create: bool,
}

impl RecordingStore {
    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().clone()
    }
}

impl WorkspaceStore for RecordingStore {
    fn download(
        &self,
        _: &WorkspaceRef,
        _: &str,
        dest: &Path,
        _: &CancelToken,
    ) -> Result<Snapshot, StoreError> {
        self.calls.lock().push("download");
        if self.fail_download {
            return Err(StoreError::new("ref not found"));
        }
        Snapshot::scan(dest).map_err(|e| StoreError::new(e.to_string()))
    }

    fn stage(
        &self,
        _: &StageRequest<'_>,
        created: &mut bool,
        _: &CancelToken,
    ) -> Result<String, StoreError> {
        self.calls.lock().push("stage");
        *created = true;
        if self.fail_stage_after_create {
            return Err(StoreError::new("upload failed"));
        }
        Ok("C".into())
    }

    fn publish(
        &self,
        _: &WorkspaceRef,
        _: &str,
        _: &str,
        _: Option<Duration>,
        _: &CancelToken,
    ) -> Result<String, StoreError> {
        self.calls.lock().push("publish");
        Ok("PUBLISHED".into())
    }

    fn publish_noop(
        &self,
        workspace: &WorkspaceRef,
        _: Option<Duration>,
        _: &CancelToken,
    ) -> Result<String, StoreError> {
        self.calls.lock().push("publish_noop");
        Ok(workspace.reference.clone())
    }

    fn delete_staging_branch(&self, _: &WorkspaceRef, _: &str) -> Result<(), StoreError> {
        self.calls.lock().push("delete_staging");
        if self.fail_delete {
            Err(StoreError::new("delete failed"))
        } else {
            Ok(())
        }
    }
}

struct FailingFence;

impl AttemptFence for FailingFence {
    fn check(&self, _: &AttemptIdentity, _: &CancelToken) -> Result<(), FenceError> {
        Err(FenceError::new("stale attempt: task is COMPLETED"))
    }
}

#[derive(Default)]
struct CountingFence {
    count: Arc<Mutex<u32>>,
}

impl AttemptFence for CountingFence {
    fn check(&self, _: &AttemptIdentity, _: &CancelToken) -> Result<(), FenceError> {
        *self.count.lock() += 1;
        Ok(())
    }
}

#[test]
fn reasons_built_from_invalid_utf8_are_reported_lossily() {
    let harness = Harness::new();
    let report = harness.run_free(&free_task(false), json!({"params": {"mode": "bytes"}}));
    let reason = report.result.reason.unwrap();
    assert_eq!(reason, "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(report.reason_original_chars, None);
}
