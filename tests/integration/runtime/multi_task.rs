//! Several tasks in one runtime (SPEC §17, issue 14) against the dev server: per-task slots
//! and counters, and fairness — a task whose attempts are slow never holds up another task's
//! polling.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use perago::{RuntimeBuilder, RuntimeError, Task, TaskContext, TaskError};
use serde_json::json;

use super::support::*;
use crate::support::{LONG, wait_until};

/// A slow task: each attempt waits in 2 s steps until `gate` is closed (its sender dropped),
/// so while the gate is up its one slot stays busy for as long as the test needs, without
/// the test depending on how fast the machine is.
fn slow_task(gate: crossbeam_channel::Receiver<()>) -> Task {
    Task::builder("multi.slow", "test@example.com")
        .handler(
            move |ctx: &TaskContext, params: SleepyParams| -> Result<SleepyResult, TaskError> {
                loop {
                    match gate.recv_timeout(Duration::from_secs(2)) {
                        Err(RecvTimeoutError::Disconnected) => break,
                        _ if ctx.is_cancelled() => {
                            return Err(TaskError::failed("cancelled while slow"));
                        }
                        _ => {}
                    }
                }
                Ok(SleepyResult {
                    message: params.message,
                })
            },
        )
        .expect("valid task")
}

#[test]
fn a_slow_task_never_starves_another_tasks_polling() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "multi.slow", 600, 0);
    register(&server, "multi.fast", 600, 0);
    let (gate, gate_rx) = crossbeam_channel::unbounded::<()>();
    let slow_ids: Vec<String> = (0..2)
        .map(|i| {
            start(
                &server,
                "multi.slow",
                json!({"message": format!("slow {i}")}),
            )
        })
        .collect();
    let fast_ids: Vec<String> = (0..20)
        .map(|i| {
            start(
                &server,
                "multi.fast",
                json!({"message": format!("fast {i}")}),
            )
        })
        .collect();

    let handle = RuntimeBuilder::new(config(&server, dir.path(), "multi", &[]))
        .task_with_threads(slow_task(gate_rx), 1)
        .task_with_threads(sleepy("multi.fast"), 1)
        .conductor(api(&server))
        .start()
        .expect("runtime starts");
    let slow = || handle.task_counters("multi.slow").expect("hosted");
    let fast = || handle.task_counters("multi.fast").expect("hosted");

    wait_until("the slow task's only slot to be busy", LONG, || {
        slow().in_flight == 1
    });
    wait_until("every fast workflow to complete", LONG, || {
        fast().completed == 20
    });
    // The gate is still up: the slow task's slot has been busy all along, and the fast task
    // got through its whole queue at its own rate anyway.
    let while_slow = slow();
    assert_eq!(while_slow.completed, 0, "{while_slow:?}");
    assert_eq!(
        while_slow.polled, 1,
        "one slot, one task taken: {while_slow:?}"
    );
    for id in &fast_ids {
        assert_eq!(workflow(&server, id)["status"], "COMPLETED", "{id}");
    }

    drop(gate);
    wait_until("both slow workflows to complete", LONG, || {
        slow().completed == 2
    });
    handle.shutdown();
    let exit = handle.join();
    assert!(exit.is_clean(), "{exit:?}");
    let per_task: Vec<(String, u64, u64)> = exit
        .tasks
        .iter()
        .map(|t| (t.task.clone(), t.counters.completed, t.counters.failed))
        .collect();
    assert_eq!(
        per_task,
        [
            ("multi.slow".to_owned(), 2, 0),
            ("multi.fast".to_owned(), 20, 0)
        ]
    );
    assert_eq!(exit.counters.completed, 22, "the total is the sum");
    for id in slow_ids.iter().chain(&fast_ids) {
        assert_eq!(workflow(&server, id)["status"], "COMPLETED", "{id}");
    }
}

#[test]
fn each_task_fills_exactly_its_own_thread_budget() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "multi.a", 600, 0);
    register(&server, "multi.b", 600, 0);
    // Long enough that every slot fills before any attempt ends (they are released by the
    // shutdown's cancellation at the end, not by time).
    let params = json!({"message": "hold", "sleep_ms": 600_000});
    for _ in 0..6 {
        start(&server, "multi.a", params.clone());
        start(&server, "multi.b", params.clone());
    }
    let handle = RuntimeBuilder::new(config(&server, dir.path(), "multi", &[]))
        .task_with_threads(sleepy("multi.a"), 3)
        .task(sleepy("multi.b"))
        .threads(2)
        .conductor(api(&server))
        .start()
        .expect("runtime starts");
    wait_until("3 + 2 attempts running", LONG, || {
        handle.counters().in_flight == 5
    });
    let budgets: Vec<(String, usize, u64)> = handle
        .tasks()
        .into_iter()
        .map(|t| (t.task, t.threads, t.counters.in_flight))
        .collect();
    assert_eq!(
        budgets,
        [("multi.a".to_owned(), 3, 3), ("multi.b".to_owned(), 2, 2)],
        "each task fills exactly its own slots"
    );
    assert_eq!(
        handle.worker_id(),
        format!("multi-pid-{}", std::process::id()),
        "one worker id for the whole runtime"
    );
    handle.force();
    let exit = handle.join();
    assert!(exit.is_clean(), "{exit:?}");
    assert_eq!(exit.counters.failed, 5, "{exit:?}");
}

#[test]
fn the_builder_refuses_no_task_a_repeated_task_and_zero_threads() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let config = || config(&server, dir.path(), "multi", &[]);
    let api: Arc<dyn perago::__private::ConductorApi> = api(&server);
    let cases: Vec<(RuntimeBuilder, &str)> = vec![
        (
            RuntimeBuilder::new(config()),
            "a runtime needs at least one task",
        ),
        (
            RuntimeBuilder::new(config())
                .task(sleepy("multi.a"))
                .task_with_threads(sleepy("multi.a"), 2),
            "task 'multi.a' is added to the runtime more than once",
        ),
        (
            RuntimeBuilder::new(config())
                .task(sleepy("multi.a"))
                .task_with_threads(sleepy("multi.b"), 0),
            "worker thread count must be at least 1",
        ),
    ];
    for (builder, message) in cases {
        match builder.conductor(Arc::clone(&api)).start() {
            Err(
                error @ (RuntimeError::NoTasks
                | RuntimeError::DuplicateTask { .. }
                | RuntimeError::NoThreads),
            ) => assert_eq!(error.to_string(), message),
            Err(other) => panic!("{message}: unexpected {other}"),
            Ok(_) => panic!("{message}: started"),
        }
    }
}
