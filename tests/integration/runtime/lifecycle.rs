//! Leases, drain, force deadline and workspace housekeeping.

use std::path::{Path, PathBuf};

use chrono::Utc;
use perago::__private::{LiveOwners, Marker, create_attempt_dir};
use perago::{Runtime, ShutdownReason};
use serde_json::json;

use super::support::*;
use crate::support::{LONG, wait_until};

#[test]
fn lease_extension_keeps_a_task_alive_past_its_response_timeout() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    // Response timeout 2 s: heartbeats every 1.6 s; the body runs 4 s.
    register(&server, "rt_leased", 2, 1);
    let id = start(
        &server,
        "rt_leased",
        json!({"message": "long", "sleep_ms": 4000}),
    );
    let handle = Runtime::builder(
        config(&server, dir.path(), "rt.leased", &[]),
        sleepy("rt_leased"),
    )
    .conductor(api(&server))
    .start()
    .unwrap();
    wait_until("the completion", LONG, || handle.counters().finished() == 1);
    handle.shutdown();
    let exit = handle.join();
    assert!(exit.counters.lease_extensions >= 1, "{exit:?}");
    let tasks = tasks(&server, &id);
    assert_eq!(tasks.len(), 1, "never timed out, never retried: {tasks:?}");
    assert_eq!(tasks[0]["status"], "COMPLETED");
    assert_eq!(workflow(&server, &id)["status"], "COMPLETED");
}

#[test]
fn without_a_lease_the_server_times_the_attempt_out_and_retries_it() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    // Response timeout 1 s: an interval of 0.8 s is under the 1 s minimum, so no lease.
    register(&server, "rt_unleased", 1, 1);
    let id = start(
        &server,
        "rt_unleased",
        json!({"message": "long", "sleep_ms": 2500}),
    );
    let handle = Runtime::builder(
        config(&server, dir.path(), "rt.unleased", &[]),
        sleepy("rt_unleased"),
    )
    .conductor(api(&server))
    .threads(2)
    .start()
    .unwrap();
    wait_until("the retry to be polled", LONG, || {
        let tasks = tasks(&server, &id);
        tasks.len() == 2 && tasks[1]["pollCount"] == 1
    });
    handle.shutdown();
    let exit = handle.join();
    assert_eq!(exit.counters.lease_extensions, 0);
    let tasks = tasks(&server, &id);
    assert_eq!(tasks[0]["status"], "TIMED_OUT");
    assert_eq!(tasks[1]["retryCount"], 1);
}

#[test]
fn drain_finishes_in_flight_attempts_and_polls_nothing_new() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "rt_drain", 30, 0);
    let running: Vec<String> = (0..2)
        .map(|_| {
            start(
                &server,
                "rt_drain",
                json!({"message": "m", "sleep_ms": 500}),
            )
        })
        .collect();
    let handle = Runtime::builder(
        config(&server, dir.path(), "rt.drain", &[]),
        sleepy("rt_drain"),
    )
    .conductor(api(&server))
    .threads(2)
    .start()
    .unwrap();
    wait_until("both tasks in flight", LONG, || {
        handle.counters().in_flight == 2
    });
    handle.shutdown();
    let late: Vec<String> = (0..3)
        .map(|_| start(&server, "rt_drain", json!({"message": "late"})))
        .collect();
    let exit = handle.join();
    assert!(exit.is_clean() && !exit.forced, "{exit:?}");
    assert_eq!(exit.reason, Some(ShutdownReason::Requested));
    assert_eq!((exit.counters.polled, exit.counters.completed), (2, 2));
    for id in &running {
        assert_eq!(workflow(&server, id)["status"], "COMPLETED");
    }
    for id in &late {
        let tasks = tasks(&server, id);
        assert_eq!(tasks[0]["status"], "SCHEDULED");
        assert_eq!(tasks[0]["pollCount"], 0);
    }
}

#[test]
fn force_deadline_fails_a_cooperative_attempt_and_reports_it() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "rt_force", 30, 0);
    let id = start(
        &server,
        "rt_force",
        json!({"message": "m", "sleep_ms": 600_000}),
    );
    let handle = Runtime::builder(
        config(
            &server,
            dir.path(),
            "rt.force",
            &[("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "1s")],
        ),
        sleepy("rt_force"),
    )
    .conductor(api(&server))
    .start()
    .unwrap();
    wait_until("the task in flight", LONG, || {
        handle.counters().in_flight == 1
    });
    handle.shutdown();
    let exit = handle.join();
    assert_eq!(exit.reason, Some(ShutdownReason::ForceDeadline));
    assert!(exit.forced && exit.is_clean(), "{exit:?}");
    let tasks = tasks(&server, &id);
    assert_eq!(tasks[0]["status"], "FAILED");
    assert_eq!(
        tasks[0]["reasonForIncompletion"],
        "cancelled while sleeping"
    );
    // Nothing is left in the workspace root but the released lock's absence.
    let root = dir.path().join("workspaces");
    assert_eq!(std::fs::read_dir(root).unwrap().count(), 0);
}

fn marked_dir(root: &Path, name: &str, age: chrono::Duration, token: &str) -> PathBuf {
    let marker = Marker {
        workflow_instance_id: "wf".into(),
        task_id: name.into(),
        execution_id: "exec".into(),
        retry_count: 0,
        task_def_name: "rt_gc".into(),
        owner_worker_id: "other0001".into(),
        owner_pid: std::process::id(),
        owner_token: token.into(),
        started_at: (Utc::now() - age).fixed_offset(),
        staging: None,
    };
    create_attempt_dir(root, &marker)
        .unwrap()
        .path()
        .to_path_buf()
}

#[test]
fn gc_timer_removes_only_expired_unowned_marked_workspaces() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "rt_gc", 30, 0);
    let owners = LiveOwners::new();
    let handle = Runtime::builder(
        config(
            &server,
            dir.path(),
            "rt.gc",
            &[
                ("PERAGO_WORKSPACE_GC_INTERVAL", "1s"),
                ("PERAGO_WORKSPACE_GC_TTL", "1h"),
            ],
        ),
        sleepy("rt_gc"),
    )
    .conductor(api(&server))
    .live_owners(owners.clone())
    .start()
    .unwrap();
    let root = dir.path().join("workspaces");
    let two_hours = chrono::Duration::hours(2);
    let expired = marked_dir(&root, "expired", two_hours, "dead-token");
    let fresh = marked_dir(&root, "fresh", chrono::Duration::zero(), "dead-token");
    let _live = owners.register("live-token");
    let owned = marked_dir(&root, "owned", two_hours, "live-token");
    let unmarked = root.join("unmarked");
    std::fs::create_dir(&unmarked).unwrap();

    let before = handle.counters().gc_sweeps;
    wait_until("two GC sweeps", LONG, || {
        handle.counters().gc_sweeps >= before + 2
    });
    assert!(!expired.exists(), "expired and unowned: removed");
    assert!(fresh.exists(), "younger than the TTL: kept");
    assert!(owned.exists(), "owner token live: kept");
    assert!(unmarked.exists(), "no marker: never touched");
    handle.shutdown();
    handle.join();
    // The shutdown sweep (TTL 0) takes the fresh one too, but never the live or unmarked.
    assert!(!fresh.exists());
    assert!(owned.exists() && unmarked.exists());
}
