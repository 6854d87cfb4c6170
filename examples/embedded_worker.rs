//! An existing program that embeds perago workers for two of its own tasks in one runtime.
//!
//! The host keeps control of its process: it builds one runtime hosting both tasks with
//! [`RuntimeBuilder`] (each task with its own threads, poller and counters; one workspace
//! root, one lease thread, one shutdown), reads the live counters while it does its own work,
//! and stops the workers when it decides to (here: when the batch it submitted is done).
//! Signals and logging stay with the host.
//!
//! ```sh
//! # Against a Conductor you run (TaskDefs `greeting.make` and `greeting.measure` registered):
//! CONDUCTOR_SERVER_URL=http://localhost:8080/api cargo run --example embedded_worker
//! # Self-contained: with no CONDUCTOR_SERVER_URL it starts perago's dev server in-process,
//! # registers the TaskDefs and two workflows, and submits a few of each.
//! cargo run --example embedded_worker
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use perago::__private::ConductorClient;
use perago::RuntimeBuilder;
use perago::task_def;
use perago::{__private::load_env, ConfigOverrides, RuntimeConfig};
use perago::{DeclarationError, Task, TaskContext, TaskError};
use perago_devserver::{DevServer, DevServerOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Params: who to greet.
#[derive(Deserialize, JsonSchema)]
struct GreetingParams {
    #[schemars(length(min = 1))]
    name: String,
}

/// Result: the greeting.
#[derive(Serialize, JsonSchema)]
struct Greeting {
    text: String,
}

/// The host's own task.
fn greeting() -> Result<Task, DeclarationError> {
    Task::builder("greeting.make", "host@example.com")
        .description("Make a greeting.")
        .handler(
            |ctx: &TaskContext, params: GreetingParams| -> Result<Greeting, TaskError> {
                ctx.log().info("making a greeting");
                Ok(Greeting {
                    text: format!("hello, {}", params.name),
                })
            },
        )
}

/// Params: the text to measure.
#[derive(Deserialize, JsonSchema)]
struct MeasureParams {
    text: String,
}

/// Result: its length in characters.
#[derive(Serialize, JsonSchema)]
struct Measure {
    chars: usize,
}

/// The host's second task.
fn measure() -> Result<Task, DeclarationError> {
    Task::builder("greeting.measure", "host@example.com")
        .description("Measure a text.")
        .handler(
            |_ctx: &TaskContext, params: MeasureParams| -> Result<Measure, TaskError> {
                Ok(Measure {
                    chars: params.text.chars().count(),
                })
            },
        )
}

/// A one-task workflow `<task>_wf` feeding `workflow.input.params` to `task`.
fn one_task_workflow(task: &str) -> serde_json::Value {
    json!({"name": format!("{task}_wf"), "version": 1, "schemaVersion": 2,
           "ownerEmail": "host@example.com",
           "tasks": [{"name": task, "taskReferenceName": "only", "type": "SIMPLE",
                      "inputParameters": {"params": "${workflow.input.params}"}}]})
}

fn main() -> Result<(), Box<dyn Error>> {
    let task = greeting()?;
    let second = measure()?;
    let cwd = std::env::current_dir()?;
    let mut env = load_env(&cwd, std::env::vars_os())?;

    // Only for the self-contained run: a local dev server standing in for Conductor.
    let dev_server = if env
        .get("CONDUCTOR_SERVER_URL")
        .is_none_or(|url| url.trim().is_empty())
    {
        let server = DevServer::start(DevServerOptions::default())?;
        env.insert("CONDUCTOR_SERVER_URL".into(), server.conductor_url());
        Some(server)
    } else {
        None
    };
    let config = RuntimeConfig::from_env_map("host.greeting", &env, &ConfigOverrides::default())?;
    config.probe_roots()?;

    let mut workflows = Vec::new();
    if let Some(server) = &dev_server {
        let client = ConductorClient::for_url(&server.conductor_url());
        client.register_task_defs(&[task_def(&task), task_def(&second)])?;
        for name in ["greeting.make", "greeting.measure"] {
            client.register_workflow_def(&one_task_workflow(name), true)?;
        }
        for name in ["ada", "grace", "edsger", "barbara"] {
            workflows.push(
                client.start_workflow("greeting.make_wf", &json!({"params": {"name": name}}))?,
            );
            workflows.push(
                client.start_workflow("greeting.measure_wf", &json!({"params": {"text": name}}))?,
            );
        }
    }

    // The embedding: one builder hosting both tasks, a handle, and the host's own loop.
    let worker = RuntimeBuilder::new(config)
        .task_with_threads(task, 2)
        .task_with_threads(second, 1)
        .start()?;
    println!("worker {} started", worker.worker_id());

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // ... the host program does its own work here ...
        let counters = worker.counters();
        if dev_server.is_some() && counters.finished() as usize >= workflows.len() {
            break;
        }
        if dev_server.is_none() && Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    worker.shutdown();
    let exit = worker.join();
    println!(
        "worker stopped: completed {}, failed {}, clean {}",
        exit.counters.completed,
        exit.counters.failed,
        exit.is_clean()
    );
    for task in &exit.tasks {
        println!(
            "  {}: {} threads, completed {}, failed {}",
            task.task, task.threads, task.counters.completed, task.counters.failed
        );
    }
    if let Some(server) = &dev_server {
        let client = ConductorClient::for_url(&server.conductor_url());
        for id in &workflows {
            let workflow = client.get_workflow(id)?;
            println!("{id}: {} {}", workflow["status"], workflow["output"]);
        }
    }
    Ok(())
}
