//! Dev server throughput: a keep-alive client doing batch poll + update in a tight loop.
//!
//! `cargo bench --bench devserver` prints operations per second (one poll or one update is
//! one operation) for update v1 and update-v2, side by side in one run.

use std::time::{Duration, Instant};

use perago_devserver::{DevServer, DevServerOptions};
use serde_json::{Value, json};

const WORKFLOWS: usize = 5_000;

fn run(update_path: &str) -> (usize, Duration) {
    let server = DevServer::start(DevServerOptions::default()).expect("dev server starts");
    let base = server.conductor_url();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .post(&format!("{base}/metadata/taskdefs"))
        .send_json(json!([{"name": "bench", "ownerEmail": "b@example.com", "retryCount": 0}]))
        .expect("register taskdef");
    agent
        .post(&format!("{base}/metadata/workflow"))
        .send_json(
            json!({"name": "bench_wf", "version": 1, "ownerEmail": "b@example.com",
            "tasks": [{"name": "bench", "taskReferenceName": "b", "type": "SIMPLE"}]}),
        )
        .expect("register workflow");
    for _ in 0..WORKFLOWS {
        agent
            .post(&format!("{base}/workflow/bench_wf"))
            .send_json(json!({}))
            .expect("start workflow");
    }
    let started = Instant::now();
    let mut ops = 0;
    let mut done = 0;
    let mut next: Option<Value> = None;
    while done < WORKFLOWS {
        let task = match next.take() {
            Some(task) => task,
            None => {
                let tasks: Vec<Value> = agent
                    .get(&format!(
                        "{base}/tasks/poll/batch/bench?workerid=b&count=1&timeout=100"
                    ))
                    .call()
                    .expect("poll")
                    .body_mut()
                    .read_json()
                    .expect("poll body");
                ops += 1;
                match tasks.into_iter().next() {
                    Some(task) => task,
                    None => continue,
                }
            }
        };
        let mut response = agent
            .post(&format!("{base}{update_path}"))
            .send_json(
                json!({"taskId": task["taskId"], "workflowInstanceId": task["workflowInstanceId"],
                "status": "COMPLETED", "outputData": {}, "workerId": "b"}),
            )
            .expect("update");
        ops += 1;
        done += 1;
        // update-v2 answers with the next task (200) or nothing (204).
        if response.status().as_u16() == 200 && update_path.ends_with("v2") {
            next = response.body_mut().read_json().ok();
        }
    }
    (ops, started.elapsed())
}

fn main() {
    println!("dev server keep-alive loop, {WORKFLOWS} tasks, one client thread");
    println!("{:<28} {:>10} {:>12}", "loop", "ops", "ops/s");
    for (label, path) in [
        ("poll + update v1", "/tasks"),
        ("poll + update-v2", "/tasks/update-v2"),
    ] {
        let (ops, elapsed) = run(path);
        println!(
            "{label:<28} {ops:>10} {:>12.0}",
            ops as f64 / elapsed.as_secs_f64()
        );
    }
}
