//! The lakeFS publication protocol (SPEC §6–§8) end to end: attempts driven through
//! `run_attempt` with a `LakefsStore` against the embedded dev server, over HTTP.
//!
//! Every test starts its own dev server, so request counters and fault injection are
//! per test. Assertions read lakeFS state through the same HTTP client perago uses.
//!
//! - `server`: the dev server as these tests use it (route counters, faults by route).
//! - `harness`: one dev server, a `LakefsStore` over it, lakeFS set-up and inspection, fences.
//! - `conductor`: the Conductor fence and a chained workflow through the runtime.

mod conductor;
pub(crate) mod harness;
mod server;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{Env, FailAtFence, identity, ws_input};
use perago::__private::NoFence;
use perago::__private::staging_branch_name;
use perago::{CancelSource, CancelToken, PublishBudget, TaskControls};
use perago::{Guardrail, Task, TaskContext, TaskError, WorkspaceSpec};
use perago::{Phase, TaskStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::{LONG, wait_until};

#[derive(Deserialize, JsonSchema)]
struct Params {
    mode: String,
    #[serde(default)]
    count: usize,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    files: usize,
}

fn write(root: &std::path::Path, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

/// File name of the `i`-th file of a generated workspace.
fn numbered(i: usize) -> String {
    format!("f/{:03}/{i:05}.bin", i / 100)
}

fn body(ctx: &TaskContext, params: Params) -> Result<Output, TaskError> {
    let root = ctx
        .workspace()
        .ok_or_else(|| TaskError::failed("no workspace"))?
        .to_path_buf();
    match params.mode.as_str() {
        "nothing" => {}
        "edit" => {
            write(&root, "out/new.txt", b"new file")?;
            write(&root, "data/b.txt", b"changed b")?;
            std::fs::remove_file(root.join("data/c.txt"))?;
        }
        "generate" => {
            for i in 0..params.count {
                write(&root, &numbered(i), format!("file {i}").as_bytes())?;
            }
        }
        "touch10" => {
            // 7 changed, 3 added, 5 removed: 10 uploads and 5 deletes.
            for i in 0..7 {
                write(&root, &numbered(i * 1000 + 1), b"changed")?;
            }
            for i in 0..3 {
                write(&root, &format!("added/{i}.bin"), b"added")?;
            }
            for i in 0..5 {
                std::fs::remove_file(root.join(numbered(i * 1000 + 500)))?;
            }
        }
        "symlink" => {
            std::os::unix::fs::symlink("/etc/hostname", root.join("link"))?;
        }
        "sleep" => {
            ctx.sleep(Duration::from_secs(600))
                .map_err(|_| TaskError::failed("cancelled while sleeping"))?;
        }
        other => return Err(TaskError::failed(format!("unknown mode {other}"))),
    }
    let files = walk_count(&root);
    Ok(Output { files })
}

/// Cancels its source when dropped (also when the thread holding it panics).
struct CancelOnDrop<'a>(&'a CancelSource);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn walk_count(root: &std::path::Path) -> usize {
    perago::__private::Snapshot::scan(root)
        .map(|s| s.len())
        .unwrap_or_default()
}

fn task_with(spec: WorkspaceSpec, controls: Option<TaskControls>) -> Task {
    let mut builder = Task::builder("lakefs.test", "t@example.com").workspace(spec);
    if let Some(controls) = controls {
        builder = builder.controls(controls);
    }
    match builder.handler(body) {
        Ok(task) => task,
        Err(e) => panic!("task declaration: {e}"),
    }
}

fn writable() -> Task {
    task_with(WorkspaceSpec::new("/"), None)
}

fn seed_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("data/a.txt", b"a"),
        ("data/b.txt", b"b"),
        ("data/c.txt", b"c"),
    ]
}

#[test]
fn merge_path_publishes_a_squash_commit_on_top_of_the_input() {
    let env = Env::start();
    let a = env.seed("merge-path", &seed_files());
    let uploads = env.count(harness::UPLOAD_OBJECT);
    let report = env.run(&writable(), ws_input("merge-path", &a, "edit"), &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    let output = report.result.output.clone().unwrap_or_default();
    let published = output["workspace"]["ref"].as_str().unwrap_or_default();
    assert_ne!(published, a);
    assert_eq!(env.head("merge-path"), published);
    assert_eq!(env.parents("merge-path", published), vec![a.clone()]);
    assert_eq!(output["workspace"]["repository"], "merge-path");
    assert_eq!(output["workspace"]["branch"], "main");
    assert_eq!(output["workspace"]["refType"], "commit");
    assert_eq!(output["result"]["files"], 3);
    assert_eq!(
        env.tree("merge-path", published),
        BTreeMap::from([
            ("data/a.txt".to_owned(), b"a".to_vec()),
            ("data/b.txt".to_owned(), b"changed b".to_vec()),
            ("out/new.txt".to_owned(), b"new file".to_vec()),
        ])
    );
    assert_eq!(
        env.count(harness::UPLOAD_OBJECT) - uploads,
        2,
        "new and changed only"
    );
    assert_eq!(env.count(harness::MERGE), 1);
    assert_eq!(env.count(harness::HARD_RESET_BRANCH), 0);
    assert_eq!(env.staging_branches("merge-path"), Vec::<String>::new());
    assert!(report.cleanup_errors.is_empty());
    assert_eq!(env.leftover_dirs(), 0);
}

#[test]
fn replacement_path_resets_over_an_abandoned_publication() {
    let env = Env::start();
    let a = env.seed("replace", &seed_files());
    // An earlier attempt published H on top of A but its result never reached Conductor.
    let h = env.commit_on_main("replace", &[("data/a.txt", b"abandoned")], &[]);
    assert_eq!(env.parents("replace", &h), vec![a.clone()]);
    let report = env.run(&writable(), ws_input("replace", &a, "edit"), &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    let published = report.result.output.clone().unwrap_or_default()["workspace"]["ref"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(env.head("replace"), published);
    let history = env.first_parent_history("replace");
    assert_eq!(&history[..2], [published.clone(), a.clone()], "A -> C");
    assert!(
        !history.contains(&h),
        "H must not be an ancestor of the new head"
    );
    assert_eq!(
        env.tree("replace", &published).get("data/a.txt"),
        Some(&b"a".to_vec()),
        "the abandoned content is gone"
    );
    assert_eq!(env.count(harness::MERGE), 0);
    assert_eq!(env.count(harness::HARD_RESET_BRANCH), 1);
    assert_eq!(env.staging_branches("replace"), Vec::<String>::new());
}

#[test]
fn any_other_head_fails_closed_and_leaves_the_target_untouched() {
    let env = Env::start();
    let a = env.seed("other-head", &seed_files());
    let x = env.commit_on_main("other-head", &[("data/a.txt", b"x")], &[]);
    let y = env.commit_on_main("other-head", &[("data/a.txt", b"y")], &[]);
    assert_eq!(env.parents("other-head", &y), vec![x]);
    for mode in ["edit", "nothing"] {
        let report = env.run(&writable(), ws_input("other-head", &a, mode), &NoFence);
        harness::assert_failed(&report, TaskStatus::Failed, Phase::Publish, "publish fence");
        assert_eq!(env.head("other-head"), y, "{mode}: target moved");
    }
    assert_eq!(env.count(harness::MERGE), 0);
    assert_eq!(env.count(harness::HARD_RESET_BRANCH), 0);
    assert_eq!(env.staging_branches("other-head"), Vec::<String>::new());
}

#[test]
fn noop_at_the_input_completes_with_it_and_writes_nothing() {
    let env = Env::start();
    let a = env.seed("noop", &seed_files());
    let before = env.write_requests();
    let report = env.run(&writable(), ws_input("noop", &a, "nothing"), &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(
        report.result.output.unwrap_or_default()["workspace"]["ref"],
        a.as_str()
    );
    assert_eq!(env.head("noop"), a);
    assert_eq!(env.write_requests(), before, "no empty commit, no branch");
}

#[test]
fn noop_over_an_abandoned_publication_relocates_the_target_to_the_input() {
    let env = Env::start();
    let a = env.seed("relocate", &seed_files());
    env.commit_on_main("relocate", &[("data/z.txt", b"abandoned")], &[]);
    let commits = env.count(harness::COMMIT);
    let report = env.run(&writable(), ws_input("relocate", &a, "nothing"), &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(
        report.result.output.unwrap_or_default()["workspace"]["ref"],
        a.as_str()
    );
    assert_eq!(env.head("relocate"), a);
    assert_eq!(env.count(harness::HARD_RESET_BRANCH), 1);
    assert_eq!(env.count(harness::COMMIT), commits, "never an empty commit");
}

#[test]
fn read_only_tasks_make_zero_write_requests() {
    let env = Env::start();
    let a = env.seed("read-only", &seed_files());
    let before = env.write_requests();
    let task = task_with(WorkspaceSpec::new("/").read_only(true), None);
    // The body writes into its workspace: still nothing may reach lakeFS, and no fence runs.
    let report = env.run(
        &task,
        ws_input("read-only", &a, "edit"),
        &FailAtFence::first(),
    );
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(
        report.result.output.unwrap_or_default()["workspace"]["ref"],
        a.as_str()
    );
    assert_eq!(env.write_requests(), before);
    assert!(env.count(harness::GET_OBJECT) >= 3);
}

#[test]
fn a_stale_attempt_fails_at_each_fence_and_publishes_nothing() {
    let env = Env::start();
    let a = env.seed("stale", &seed_files());
    for (fence, mode) in [
        (FailAtFence::first(), "edit"),
        (FailAtFence::second(), "edit"),
        (FailAtFence::first(), "nothing"),
    ] {
        let report = env.run(&writable(), ws_input("stale", &a, mode), &fence);
        harness::assert_failed(&report, TaskStatus::Failed, Phase::AttemptFence, "stale");
        assert_eq!(env.head("stale"), a, "nothing published");
        assert_eq!(env.staging_branches("stale"), Vec::<String>::new());
    }
    assert_eq!(
        env.count(harness::CREATE_BRANCH),
        1,
        "only the second-fence case staged"
    );
    assert_eq!(env.count(harness::MERGE), 0);
    assert_eq!(env.count(harness::HARD_RESET_BRANCH), 0);
}

#[test]
fn staging_cleanup_failure_keeps_the_original_result() {
    let env = Env::start();
    let a = env.seed("cleanup", &seed_files());
    env.fail_route(harness::DELETE_BRANCH, 500);
    let report = env.run(&writable(), ws_input("cleanup", &a, "edit"), &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(
        report.cleanup_errors.len(),
        1,
        "{:?}",
        report.cleanup_errors
    );
    assert!(report.cleanup_errors[0].contains("failed to clean staging workspace"));
    assert_ne!(env.head("cleanup"), a);
    // The branch is left: the attempt dir keeps only its marker, which names the branch, for
    // the GC that later deletes both.
    assert_eq!(env.leftover_dirs(), 1, "the marker stays for GC");
    assert_eq!(env.staging_branches("cleanup").len(), 1);
}

#[test]
fn an_existing_staging_branch_fails_closed() {
    let env = Env::start();
    let a = env.seed("exists", &seed_files());
    let branch = staging_branch_name(&identity());
    env.create_branch("exists", &branch, &a);
    let report = env.run(&writable(), ws_input("exists", &a, "edit"), &NoFence);
    harness::assert_failed(
        &report,
        TaskStatus::Failed,
        Phase::Stage,
        &format!("staging branch {branch} already exists"),
    );
    assert_eq!(env.head("exists"), a);
    assert_eq!(
        env.staging_branches("exists"),
        vec![branch],
        "not ours to delete"
    );
    assert_eq!(
        env.count(harness::UPLOAD_OBJECT),
        3,
        "only the seed uploads"
    );
}

#[test]
fn a_large_workspace_with_few_changes_uploads_only_the_changes() {
    let env = Env::start();
    let empty = env.create_repo("large");
    let files = 10_000;
    let mut input = ws_input("large", &empty, "generate");
    input["params"]["count"] = json!(files);
    let report = env.run(&writable(), input, &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    let a = report.result.output.unwrap_or_default()["workspace"]["ref"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(env.count(harness::UPLOAD_OBJECT), files as u64);

    let uploads = env.count(harness::UPLOAD_OBJECT);
    let deletes = env.count(harness::DELETE_OBJECTS) + env.count(harness::DELETE_OBJECT);
    let report = env.run(&writable(), ws_input("large", &a, "touch10"), &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(
        report.result.output.clone().unwrap_or_default()["result"]["files"],
        9_998
    );
    let changes = report.changes.unwrap_or_default();
    assert_eq!(
        (
            changes.modified.len(),
            changes.added.len(),
            changes.deleted.len()
        ),
        (7, 3, 5)
    );
    assert_eq!(
        env.count(harness::UPLOAD_OBJECT) - uploads,
        10,
        "exactly the 10 changes"
    );
    assert_eq!(
        env.count(harness::DELETE_OBJECTS) + env.count(harness::DELETE_OBJECT) - deletes,
        1,
        "one bulk delete"
    );
    let published = env.head("large");
    let keys = env.keys("large", &published);
    assert_eq!(keys.len(), 9_998);
    for i in 0..5 {
        assert!(
            !keys.contains(&numbered(i * 1000 + 500)),
            "removed file still there"
        );
    }
    assert!(keys.contains(&"added/2.bin".to_owned()));
    assert!(keys.contains(&numbered(9_999)));
}

#[test]
fn traversal_object_names_are_refused_before_anything_is_written() {
    let env = Env::start();
    let bad_keys = [
        "../escape.txt",
        "/abs.txt",
        "a/../../escape.txt",
        "a//b.txt",
        "./dot.txt",
        "a\\..\\escape.txt",
        "C:/escape.txt",
    ];
    for (index, key) in bad_keys.iter().enumerate() {
        let repo = format!("traversal-{index}");
        let a = env.seed(&repo, &[("ok.txt", b"fine"), (key, b"evil")]);
        let fetched = env.count(harness::GET_OBJECT);
        let report = env.run(&writable(), ws_input(&repo, &a, "nothing"), &NoFence);
        harness::assert_failed(
            &report,
            TaskStatus::Failed,
            Phase::Download,
            "refusing unsafe object path",
        );
        assert_eq!(
            env.count(harness::GET_OBJECT),
            fetched,
            "{key}: nothing fetched"
        );
        assert_eq!(env.head(&repo), a);
    }
    assert!(env.escaped_files().is_empty(), "{:?}", env.escaped_files());
    assert_eq!(env.leftover_dirs(), 0);
}

#[test]
fn keys_outside_the_prefix_and_the_marker_name_are_not_downloaded() {
    let env = Env::start();
    let a = env.seed(
        "prefix",
        &[
            ("in/a.txt", b"a"),
            ("in/.perago-attempt.json", b"{}"),
            ("inside.txt", b"not under in/"),
            ("other/b.txt", b"b"),
        ],
    );
    let task = task_with(WorkspaceSpec::new("/in").read_only(true), None);
    let report = env.run(&task, ws_input("prefix", &a, "nothing"), &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(
        report.result.output.unwrap_or_default()["result"]["files"],
        1
    );
    assert_eq!(env.count(harness::GET_OBJECT), 1);
}

#[test]
fn symlinks_refuse_publication() {
    let env = Env::start();
    let a = env.seed("symlink", &seed_files());
    let before = env.write_requests();
    let report = env.run(&writable(), ws_input("symlink", &a, "symlink"), &NoFence);
    harness::assert_failed(
        &report,
        TaskStatus::Failed,
        Phase::Stage,
        "workspace publication does not support symlinks: link",
    );
    assert_eq!(env.write_requests(), before);
    assert_eq!(env.head("symlink"), a);
}

#[test]
fn guardrail_failures_publish_nothing() {
    let env = Env::start();
    let a = env.seed("guardrails", &seed_files());
    let before = env.write_requests();
    let pre = task_with(
        WorkspaceSpec::new("/").pre([Guardrail::require_file("data/missing.csv")]),
        None,
    );
    let report = env.run(&pre, ws_input("guardrails", &a, "edit"), &NoFence);
    harness::assert_failed(
        &report,
        TaskStatus::FailedWithTerminalError,
        Phase::PreGuardrail,
        "data/missing.csv",
    );
    let post = task_with(
        WorkspaceSpec::new("/").post([Guardrail::forbid_glob("out/*")]),
        None,
    );
    let report = env.run(&post, ws_input("guardrails", &a, "edit"), &NoFence);
    harness::assert_failed(&report, TaskStatus::Failed, Phase::PostGuardrail, "out/*");
    assert_eq!(env.write_requests(), before);
    assert_eq!(env.head("guardrails"), a);
    assert_eq!(env.leftover_dirs(), 0);
}

#[test]
fn download_errors_fail_the_download_phase() {
    let env = Env::start();
    let a = env.seed("download-errors", &seed_files());
    let cases = [
        (
            ws_input("no-such-repo", &a, "nothing"),
            "failed to list objects",
        ),
        (
            ws_input("download-errors", &"0".repeat(64), "nothing"),
            "failed to list objects",
        ),
    ];
    for (input, needle) in cases {
        let report = env.run(&writable(), input, &NoFence);
        harness::assert_failed(&report, TaskStatus::Failed, Phase::Download, needle);
    }
    assert_eq!(env.leftover_dirs(), 0);
}

fn budget(merge_timeout_seconds: u64) -> TaskControls {
    TaskControls {
        publish_budget: Some(PublishBudget {
            observed_merge_p99_seconds: 0,
            safety_margin_seconds: 0,
            lakefs_merge_timeout_seconds: merge_timeout_seconds,
            conductor_completion_timeout_seconds: 1,
            worker_shutdown_grace_seconds: 1,
            heartbeat_interval_seconds: 1,
        }),
        ..TaskControls::default()
    }
}

#[test]
fn uncertain_merges_are_never_success_and_the_retry_repairs_the_target() {
    let env = Env::start();
    let a = env.seed("uncertain", &seed_files());
    let task = task_with(WorkspaceSpec::new("/"), Some(budget(1)));

    env.fail_route(harness::MERGE, 500);
    let report = env.run(&task, ws_input("uncertain", &a, "edit"), &NoFence);
    harness::assert_failed(&report, TaskStatus::Failed, Phase::Publish, "uncertain");
    env.clear_faults();

    // A merge slower than the merge timeout: the client gives up, the server may still
    // apply it later. Either way the attempt fails, and the retry converges on `A -> C`.
    env.delay_route(harness::MERGE, Duration::from_secs(3));
    let report = env.run(&task, ws_input("uncertain", &a, "edit"), &NoFence);
    harness::assert_failed(&report, TaskStatus::Failed, Phase::Publish, "uncertain");
    env.clear_faults();
    // The delayed merge is applied after the client gave up: wait for it to land.
    wait_until("the delayed merge to land", LONG, || {
        env.count(harness::MERGE) >= 1
    });

    let report = env.run(&task, ws_input("uncertain", &a, "edit"), &NoFence);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
    let head = env.head("uncertain");
    assert_eq!(env.first_parent_history("uncertain")[..2], [head, a]);
}

#[test]
fn cancellation_during_download_fails_the_attempt() {
    let env = Env::start();
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("d/{i:03}.bin"), vec![b'x'; 10]))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let a = env.seed("cancel", &borrowed);
    env.delay_route(harness::GET_OBJECT, Duration::from_millis(20));
    let source = CancelSource::new();
    let report = std::thread::scope(|scope| {
        let canceller = std::thread::Builder::new()
            .name("test-canceller".into())
            .spawn_scoped(scope, || {
                // Cancel once the download is under way; cancel even when the wait fails,
                // so the attempt ends and the failure surfaces at the join.
                let _cancel = CancelOnDrop(&source);
                wait_until("the first object download", LONG, || {
                    env.count(harness::GET_OBJECT) >= 1
                });
            });
        let report = env.run_with_cancel(
            &writable(),
            ws_input("cancel", &a, "nothing"),
            &NoFence,
            source.token(),
        );
        match canceller.map(|handle| handle.join()) {
            Ok(Ok(())) => {}
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(err) => panic!("spawn the canceller: {err}"),
        }
        report
    });
    assert_eq!(report.result.status, TaskStatus::Failed, "{report:?}");
    assert!(
        env.count(harness::GET_OBJECT) < 200,
        "download kept going after cancel"
    );
    assert_eq!(env.head("cancel"), a);
    assert_eq!(env.leftover_dirs(), 0);
}

#[test]
fn workspace_free_tasks_need_no_lakefs() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let task = match Task::builder("lakefs.free", "t@example.com")
        .handler(|_: &TaskContext, _: Params| Ok::<_, TaskError>(Output { files: 0 }))
    {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let owners = perago::__private::LiveOwners::new();
    let env = perago::__private::AttemptEnv {
        workspace_root: root.path(),
        store: None,
        fence: &NoFence,
        owners: &owners,
        failure_reason_max_length: 500,
        cancel: CancelToken::never(),
        task_log: None,
        previous_output: None,
    };
    let report =
        perago::__private::run_attempt(&task, &identity(), &json!({"params": {"mode": "x"}}), &env);
    assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
}

#[test]
fn the_secret_never_reaches_a_log() {
    let logs = harness::capture_logs();
    let env = Env::start();
    let a = env.seed("secret", &seed_files());
    let _ = env.run(&writable(), ws_input("secret", &a, "edit"), &NoFence);
    // Retries and failures log the most: force both.
    env.fail_route(harness::GET_BRANCH, 503);
    let _ = env.run(&writable(), ws_input("secret", &a, "edit"), &NoFence);
    env.clear_faults();
    let bad = env.client_with_secret("wrong-secret");
    let error = bad
        .get_branch("secret", "main", &CancelToken::never())
        .err()
        .map(|e| format!("{e} {e:?}"))
        .unwrap_or_default();
    assert!(error.contains("401"), "{error}");
    let text = format!("{} {error} {:?}", logs.text(), env.client());
    for needle in env.secret_renderings() {
        assert!(
            !text.contains(&needle),
            "secret rendering {needle:?} leaked"
        );
    }
    assert!(logs.text().contains("lakeFS call failed; retrying"));
}
