//! Every task is completed exactly once, whatever the server does.

use std::num::NonZeroU32;
use std::time::Duration;

use perago::__private::ConductorClient;
use perago::{
    __private::{Backoff, RetryPolicy},
    Runtime,
};
use perago::{ConductorAuth, ConductorConfig, Secret};
use perago_devserver::DevServerOptions;
use perago_devserver::conductor::{ConductorOptions, EmptyPoll, UpdateV2};
use perago_devserver::faults::FaultRule;
use serde_json::json;

use super::support::*;
use crate::support::{LONG, wait_until};

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: NonZeroU32::new(12).unwrap(),
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
    }
}

/// Four workers with quick poll-error backoff and update retries, for the fault rows.
fn faulty_runtime(
    server: &perago_devserver::DevServer,
    dir: &std::path::Path,
    target: &str,
    name: &str,
) -> perago::RuntimeHandle {
    Runtime::builder(config(server, dir, target, &[]), sleepy(name))
        .conductor(api(server))
        .threads(4)
        .poll_error_backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(100),
        ))
        .update_retry(fast_retries())
        .start()
        .unwrap()
}

#[test]
fn a_few_thousand_tasks_complete_exactly_once_with_several_threads() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "rt_echo", 30, 0);
    let ids: Vec<String> = (0..2000)
        .map(|i| start(&server, "rt_echo", json!({"message": format!("m{i}")})))
        .collect();
    let handle = Runtime::builder(
        config(&server, dir.path(), "rt.echo", &[]),
        sleepy("rt_echo"),
    )
    .conductor(api(&server))
    .threads(8)
    .start()
    .unwrap();
    eprintln!("DEBUG started {:?}", std::time::SystemTime::now());
    wait_until("1000 completions", LONG, || {
        handle.counters().completed >= 1000
    });
    eprintln!(
        "DEBUG half {:?} {:?}",
        std::time::SystemTime::now(),
        handle.counters()
    );
    wait_until("2000 completions", LONG, || {
        handle.counters().completed == 2000
    });
    handle.shutdown();
    let exit = handle.join();
    assert!(exit.is_clean(), "{exit:?}");
    assert_eq!(exit.counters.polled, 2000);
    assert_eq!((exit.counters.failed, exit.counters.updates_lost), (0, 0));
    for (i, id) in ids.iter().enumerate() {
        let tasks = tasks(&server, id);
        assert_eq!(tasks.len(), 1, "one attempt only for {id}");
        assert_eq!(tasks[0]["status"], "COMPLETED");
        assert_eq!(tasks[0]["pollCount"], 1);
        assert_eq!(
            tasks[0]["workerId"],
            format!("rtecho-pid-{}", std::process::id())
        );
        assert_eq!(
            tasks[0]["outputData"],
            json!({"result": {"message": format!("m{i}")}})
        );
    }
    let stats = server.stats();
    // One update per task, all through update-v2, plus at most the retries after transport
    // errors (a retried update of a finished task is accepted and ignored by the server).
    let v2 = stats.count("conductor", "POST /tasks/update-v2");
    assert!(
        (2000..=2000 + exit.counters.update_retries).contains(&v2),
        "{v2} update-v2 calls: {exit:?}"
    );
    assert_eq!(stats.count("conductor", "POST /tasks"), 0);
}

#[test]
fn update_v2_refusal_falls_back_to_v1_for_good() {
    for (mode, empty) in [
        (UpdateV2::Disabled404, EmptyPoll::EmptyArray),
        (UpdateV2::Disabled405, EmptyPoll::NoContent),
    ] {
        let server = dev_server_with(DevServerOptions {
            conductor: ConductorOptions {
                update_v2: mode,
                empty_poll: empty,
                ..ConductorOptions::default()
            },
            ..DevServerOptions::default()
        });
        let dir = tempfile::tempdir().unwrap();
        register(&server, "rt_v1", 30, 0);
        let ids: Vec<String> = (0..50)
            .map(|i| start(&server, "rt_v1", json!({"message": format!("m{i}")})))
            .collect();
        let handle = Runtime::builder(config(&server, dir.path(), "rt.v1", &[]), sleepy("rt_v1"))
            .conductor(api(&server))
            .threads(4)
            .start()
            .unwrap();
        wait_until("50 completions", LONG, || handle.counters().completed == 50);
        handle.shutdown();
        assert!(handle.join().is_clean());
        for id in &ids {
            assert_eq!(workflow(&server, id)["status"], "COMPLETED", "{mode:?}");
        }
        let stats = server.stats();
        // Workers racing the first refusal may each try v2 once; never more.
        let v2 = stats.count("conductor", "POST /tasks/update-v2");
        assert!((1..=4).contains(&v2), "{mode:?}: {v2} update-v2 calls");
        assert_eq!(stats.count("conductor", "POST /tasks"), 50, "{mode:?}");
    }
}

#[test]
fn update_v2_hands_the_next_task_straight_back() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "rt_chain", 30, 0);
    for i in 0..100 {
        start(&server, "rt_chain", json!({"message": format!("m{i}")}));
    }
    let handle = Runtime::builder(
        config(&server, dir.path(), "rt.chain", &[]),
        sleepy("rt_chain"),
    )
    .conductor(api(&server))
    .start()
    .unwrap();
    wait_until("100 completions", LONG, || {
        handle.counters().completed == 100
    });
    handle.shutdown();
    let exit = handle.join();
    assert_eq!(exit.counters.polled, 100);
    let polls = server
        .stats()
        .count("conductor", "GET /tasks/poll/batch/{taskType}");
    assert!(
        polls < 100,
        "one worker chained tasks through update-v2 instead of polling each ({polls} polls)"
    );
}

#[test]
fn dropped_connections_lose_answers_yet_every_task_completes_once() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    // A lost update-v2 answer can strand the task it handed out; the server's response
    // timeout (2 s) and a retry recover it.
    register(&server, "rt_dropped", 2, 3);
    let ids: Vec<String> = (0..100)
        .map(|i| start(&server, "rt_dropped", json!({"message": format!("m{i}")})))
        .collect();
    let faults = server.faults();
    for rule in [
        FaultRule {
            method: "GET".into(),
            path: "/api/tasks/poll/batch/*".into(),
            drop_rate: 0.2,
            ..FaultRule::default()
        },
        FaultRule {
            method: "POST".into(),
            path: "/api/tasks/update-v2".into(),
            drop_rate: 0.2,
            drop_after_handling: true,
            ..FaultRule::default()
        },
    ] {
        faults.set(rule).unwrap();
    }
    let handle = faulty_runtime(&server, dir.path(), "rt.dropped", "rt_dropped");
    wait_until("every workflow to complete", LONG, || {
        ids.iter()
            .all(|id| workflow(&server, id)["status"] == "COMPLETED")
    });
    let during = handle.counters();
    handle.shutdown();
    let exit = handle.join();
    assert!(
        exit.is_clean() && !exit.runtime_failure,
        "no thread died: {exit:?}"
    );
    assert!(during.poll_errors > 0, "polls were dropped: {during:?}");
    assert!(
        during.update_retries > 0,
        "dropped updates were retried: {during:?}"
    );
    assert_eq!(during.updates_lost, 0);
    for id in &ids {
        let completed = tasks(&server, id)
            .iter()
            .filter(|task| task["status"] == "COMPLETED")
            .count();
        assert_eq!(completed, 1, "workflow {id} completed exactly one task");
    }
}

#[test]
fn injected_errors_and_latency_slow_things_down_but_everything_completes() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "rt_faulty", 30, 0);
    let ids: Vec<String> = (0..300)
        .map(|i| start(&server, "rt_faulty", json!({"message": format!("m{i}")})))
        .collect();
    let faults = server.faults();
    for rule in [
        FaultRule {
            method: "GET".into(),
            path: "/api/tasks/poll/batch/*".into(),
            error_status: Some(500),
            error_rate: 0.3,
            latency_ms: 5,
            ..FaultRule::default()
        },
        FaultRule {
            method: "POST".into(),
            path: "/api/tasks/update-v2".into(),
            error_status: Some(503),
            error_rate: 0.2,
            latency_ms: 5,
            ..FaultRule::default()
        },
    ] {
        faults.set(rule).unwrap();
    }
    let handle = faulty_runtime(&server, dir.path(), "rt.faulty", "rt_faulty");
    // Most tasks arrive through update-v2, so poll errors show up in the empty polls that
    // keep going after the work is done.
    wait_until("300 completions and some poll errors", LONG, || {
        let counters = handle.counters();
        counters.completed == 300 && counters.poll_errors > 0
    });
    let during = handle.counters();
    handle.shutdown();
    let exit = handle.join();
    assert!(
        exit.is_clean() && !exit.runtime_failure,
        "no thread died: {exit:?}"
    );
    assert!(
        during.poll_errors > 0,
        "poll errors were injected: {during:?}"
    );
    assert!(
        during.update_retries > 0,
        "update errors were retried: {during:?}"
    );
    assert_eq!(during.updates_lost, 0);
    for id in &ids {
        assert_eq!(workflow(&server, id)["status"], "COMPLETED");
    }
}

#[test]
fn a_refused_update_is_counted_as_lost_not_retried() {
    let server = dev_server();
    let dir = tempfile::tempdir().unwrap();
    register(&server, "rt_lost", 30, 0);
    let id = start(&server, "rt_lost", json!({"message": "m"}));
    server
        .faults()
        .set(FaultRule {
            method: "POST".into(),
            path: "/api/tasks/update-v2".into(),
            error_status: Some(400),
            error_rate: 1.0,
            latency_ms: 0,
            ..FaultRule::default()
        })
        .unwrap();
    let handle = Runtime::builder(
        config(&server, dir.path(), "rt.lost", &[]),
        sleepy("rt_lost"),
    )
    .conductor(api(&server))
    .update_retry(fast_retries())
    .start()
    .unwrap();
    wait_until("the lost update", LONG, || {
        handle.counters().updates_lost == 1
    });
    handle.shutdown();
    let exit = handle.join();
    assert_eq!(exit.counters.update_retries, 0, "a 400 is not retried");
    assert_eq!(tasks(&server, &id)[0]["status"], "IN_PROGRESS");
}

#[test]
fn orkes_token_auth_against_a_server_that_requires_it() {
    let server = dev_server_with(DevServerOptions {
        conductor: ConductorOptions {
            auth: Some(("key".into(), "s3cret".into())),
            ..ConductorOptions::default()
        },
        ..DevServerOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &server,
        dir.path(),
        "rt.auth",
        &[
            ("CONDUCTOR_AUTH_KEY", "key"),
            ("CONDUCTOR_AUTH_SECRET", "s3cret"),
        ],
    );
    let authed = ConductorClient::with_options(
        &ConductorConfig::new(
            server.conductor_url(),
            Some(ConductorAuth::new(
                "key".into(),
                Secret::new("s3cret".into()),
            )),
        ),
        fast_options(),
    );
    authed
        .register_task_defs(&[json!({"name": "rt_auth", "ownerEmail": "t@example.com",
                                     "responseTimeoutSeconds": 30})])
        .unwrap();
    let unauthenticated = client(&server).get_task_def("rt_auth").unwrap_err();
    assert_eq!(unauthenticated.status(), Some(401));
    server
        .conductor()
        .engine()
        .register_workflow_def(
            json!({"name": "rt_auth_wf", "version": 1, "schemaVersion": 2,
                   "ownerEmail": "t@example.com",
                   "tasks": [{"name": "rt_auth", "taskReferenceName": "only", "type": "SIMPLE",
                              "inputParameters": {"params": "${workflow.input.params}"}}]}),
            true,
        )
        .unwrap();
    let id = start(&server, "rt_auth", json!({"message": "hi"}));
    let handle = Runtime::builder(config, sleepy("rt_auth")).start().unwrap();
    wait_until("the completion", LONG, || handle.counters().completed == 1);
    handle.shutdown();
    assert!(handle.join().is_clean());
    assert_eq!(workflow(&server, &id)["status"], "COMPLETED");
    // One token for the set-up client, one for the runtime's client, none refreshed.
    assert_eq!(server.stats().count("conductor", "POST /token"), 2);
    // The client never shows the secret.
    assert!(!format!("{authed:?}").contains("s3cret"));
}
