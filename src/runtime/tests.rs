//! Runtime behaviour over an in-process fake Conductor (no sockets): slot accounting,
//! update-v2 chaining, drain, force and startup failures. The same behaviours over real HTTP
//! against the dev server are in `tests/runtime.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

use super::*;
use crate::conductor::model::UpdateStatus;
use crate::conductor::{ConductorApi, ConductorError, PolledTask, TaskUpdate};
use crate::config::RuntimeConfig;
use crate::task::{Task, TaskContext, TaskError};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Params {
    #[serde(default)]
    #[expect(dead_code, reason = "read by serde only")]
    note: String,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
struct Output {
    done: bool,
}

/// A Conductor in memory: a queue of tasks, and every update received (also the no-op
/// Conductor of other runtime unit tests, as `FakeConductor::default()`).
#[derive(Default)]
pub(super) struct FakeConductor {
    queue: Mutex<VecDeque<PolledTask>>,
    updates: Mutex<Vec<(TaskUpdate, bool)>>,
    polls: Mutex<Vec<usize>>,
    /// Whether update-v2 semantics apply (hand back the next queued task).
    v2: bool,
}

impl FakeConductor {
    fn with_tasks(count: usize, input: serde_json::Value, v2: bool) -> FakeConductor {
        let queue = (0..count)
            .map(|i| {
                serde_json::from_value(json!({
                    "taskId": format!("t{i}"), "workflowInstanceId": format!("wf{i}"),
                    "taskType": "examples.echo", "inputData": input,
                    "status": "IN_PROGRESS", "responseTimeoutSeconds": 600
                }))
                .unwrap()
            })
            .collect();
        FakeConductor {
            queue: Mutex::new(queue),
            v2,
            ..FakeConductor::default()
        }
    }

    fn push(&self, input: serde_json::Value) {
        let mut queue = self.queue.lock();
        let id = format!("late{}", queue.len());
        queue.push_back(
            serde_json::from_value(json!({"taskId": id, "workflowInstanceId": "wf",
                                          "taskType": "examples.echo", "inputData": input}))
            .unwrap(),
        );
    }

    fn updates(&self) -> Vec<(TaskUpdate, bool)> {
        self.updates.lock().clone()
    }
}

impl ConductorApi for FakeConductor {
    fn poll_batch(
        &self,
        _: &str,
        _: Option<&str>,
        _: &str,
        count: usize,
        _: Duration,
    ) -> Result<Vec<PolledTask>, ConductorError> {
        self.polls.lock().push(count);
        let mut queue = self.queue.lock();
        let take = count.min(queue.len());
        Ok(queue.drain(..take).collect())
    }

    fn update(
        &self,
        update: &TaskUpdate,
        fetch_next: bool,
    ) -> Result<Option<PolledTask>, ConductorError> {
        self.updates.lock().push((update.clone(), fetch_next));
        if self.v2 && fetch_next && !update.extend_lease {
            return Ok(self.queue.lock().pop_front());
        }
        Ok(None)
    }

    fn get_task(&self, _: &str) -> Result<Option<PolledTask>, ConductorError> {
        Ok(None)
    }
}

fn config(root: &std::path::Path, extra: &[(&str, &str)]) -> RuntimeConfig {
    let mut env = BTreeMap::new();
    env.insert(
        "PERAGO_WORKSPACE_ROOT".to_owned(),
        root.display().to_string(),
    );
    for (key, value) in extra {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    RuntimeConfig::from_env_map("examples.echo", &env, &Default::default()).unwrap()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn every_task_runs_once_and_is_reported_with_the_worker_id() {
    for v2 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeConductor::with_tasks(
            200,
            json!({"params": {"message": "hi"}}),
            v2,
        ));
        let handle = Runtime::builder(config(dir.path(), &[]), crate::examples::echo().unwrap())
            .threads(4)
            .conductor(fake.clone())
            .start()
            .unwrap();
        let worker_id = format!("examplesecho-pid-{}", std::process::id());
        assert_eq!(handle.worker_id(), worker_id);
        wait_for("200 completions", || handle.counters().completed == 200);
        handle.shutdown();
        let exit = handle.join();
        assert!(exit.is_clean());
        assert_eq!(exit.counters.polled, 200);
        assert_eq!(exit.counters.in_flight, 0);
        let updates = fake.updates();
        let mut ids: Vec<_> = updates.iter().map(|(u, _)| u.task_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            200,
            "every task reported exactly once (v2: {v2})"
        );
        assert!(
            updates
                .iter()
                .all(|(u, _)| u.status == UpdateStatus::Completed
                    && u.worker_id == worker_id
                    && u.output_data == Some(json!({"result": {"message": "hi"}})))
        );
        assert!(
            fake.polls
                .lock()
                .iter()
                .all(|count| (1..=4).contains(count))
        );
    }
}

#[test]
fn draining_reports_without_taking_new_work() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeConductor::with_tasks(
        2,
        json!({"params": {"message": "slow", "sleep_ms": 300}}),
        true,
    ));
    let handle = Runtime::builder(config(dir.path(), &[]), crate::examples::echo().unwrap())
        .threads(2)
        .conductor(fake.clone())
        .start()
        .unwrap();
    wait_for("both tasks running", || handle.counters().in_flight == 2);
    handle.shutdown();
    fake.push(json!({"params": {"message": "too late"}}));
    let exit = handle.join();
    assert!(exit.is_clean() && !exit.forced);
    assert_eq!(exit.counters.completed, 2);
    let updates = fake.updates();
    assert_eq!(updates.len(), 2);
    assert!(
        updates.iter().all(|(_, fetch_next)| !fetch_next),
        "v1 while draining"
    );
    assert_eq!(fake.queue.lock().len(), 1, "the late task was never taken");
}

#[test]
fn force_cancels_cooperative_bodies_and_reports_them_failed() {
    let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
    let cooperative = Task::builder("examples.echo", "dev@example.com")
        .handler(
            move |ctx: &TaskContext, _: Params| -> Result<Output, TaskError> {
                let _ = started_tx.try_send(());
                ctx.sleep(Duration::from_secs(600))
                    .map_err(|_| TaskError::failed("cancelled while sleeping"))?;
                Ok(Output { done: true })
            },
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeConductor::with_tasks(1, json!({"params": {}}), false));
    let handle = Runtime::builder(config(dir.path(), &[]), cooperative)
        .conductor(fake.clone())
        .start()
        .unwrap();
    started_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the body started");
    handle.force();
    let exit = handle.join();
    assert!(exit.forced && exit.is_clean());
    assert_eq!(exit.reason, Some(ShutdownReason::Escalated));
    let (update, _) = fake.updates().remove(0);
    assert_eq!(update.status, UpdateStatus::Failed);
    // The force can land before the body starts (perago's own phase check reports it) or
    // while it sleeps (the body's cancellable sleep reports it); both are the same outcome.
    let reason = update.reason_for_incompletion.unwrap_or_default();
    assert!(
        reason == "cancelled while sleeping"
            || reason.starts_with("worker shutdown deadline exceeded"),
        "{reason}"
    );
}

#[test]
fn forcing_an_idle_runtime_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeConductor::default());
    let handle = Runtime::builder(config(dir.path(), &[]), crate::examples::echo().unwrap())
        .threads(3)
        .conductor(fake)
        .start()
        .unwrap();
    handle.force();
    let exit = handle.join();
    assert!(exit.forced && exit.is_clean(), "{exit:?}");
    assert_eq!(exit.abandoned_attempts, 0);
}

#[test]
fn force_deadline_abandons_a_body_that_ignores_its_token() {
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let stubborn = Task::builder("examples.echo", "dev@example.com")
        .handler(
            move |_: &TaskContext, _: Params| -> Result<Output, TaskError> {
                // Ignores cancellation; only the test releases it (or 30 s pass).
                let _ = release_rx.recv_timeout(Duration::from_secs(30));
                Ok(Output { done: true })
            },
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeConductor::with_tasks(1, json!({"params": {}}), false));
    let handle = Runtime::builder(
        config(dir.path(), &[("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "1s")]),
        stubborn,
    )
    .conductor(fake.clone())
    .force_grace(Duration::from_millis(100))
    .start()
    .unwrap();
    wait_for("the task running", || handle.counters().in_flight == 1);
    handle.shutdown();
    let exit = handle.join();
    assert_eq!(exit.reason, Some(ShutdownReason::ForceDeadline));
    assert_eq!(exit.abandoned_attempts, 1);
    assert!(!exit.is_clean());
    drop(release_tx);
}

#[test]
fn panicking_bodies_fail_the_attempt_not_the_worker() {
    let task = Task::builder("examples.echo", "dev@example.com")
        .handler(|_: &TaskContext, _: Params| -> Result<Output, TaskError> { panic!("boom") })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeConductor::with_tasks(5, json!({"params": {}}), false));
    let handle = Runtime::builder(config(dir.path(), &[]), task)
        .conductor(fake.clone())
        .start()
        .unwrap();
    wait_for("5 failures", || handle.counters().failed == 5);
    handle.shutdown();
    assert!(handle.join().is_clean());
    assert!(fake.updates().iter().all(|(u, _)| {
        u.reason_for_incompletion.as_deref() == Some("task body panicked: boom")
    }));
}

#[test]
fn startup_errors_leave_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let task = crate::examples::echo().unwrap();
    let error = Runtime::builder(config(dir.path(), &[]), task.clone())
        .start()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "CONDUCTOR_SERVER_URL is required for perago start"
    );
    let fake: Arc<dyn ConductorApi> = Arc::new(FakeConductor::default());
    let error = Runtime::builder(config(dir.path(), &[]), task.clone())
        .threads(0)
        .conductor(fake.clone())
        .start()
        .unwrap_err();
    assert_eq!(error.to_string(), "worker thread count must be at least 1");

    let first = Runtime::builder(config(dir.path(), &[]), task.clone())
        .conductor(fake.clone())
        .start()
        .unwrap();
    let error = Runtime::builder(config(dir.path(), &[]), task.clone())
        .conductor(fake.clone())
        .start()
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is already locked by thread runner pid"),
        "{error}"
    );
    first.shutdown();
    assert!(first.join().is_clean());
    // Released: a new runtime can take the root.
    let again = Runtime::builder(config(dir.path(), &[]), task)
        .conductor(fake)
        .start()
        .unwrap();
    drop(again);
}
