//! `perago workflow <target> [--param KEY=VALUE]... [--timeout SECONDS]`: start one
//! workflow that runs the target's task once, wait for it, and print how it ended.
//!
//! The workflow definition is perago's own one-task wrapper, `perago.<task>` version 1
//! (one SIMPLE task whose `params` are the workflow's `params` input, whose output is the
//! task's `result`), registered with `overwrite=true` on every call, so there is nothing to
//! write by hand. Values of `--param` are JSON when they parse as JSON (`100`, `true`,
//! `"text"`), else strings (`message=hello`). Workspace tasks are not supported here: their
//! input names a lakeFS commit (start their workflows from your own definitions).
//!
//! Prints `workflow <id>: <STATUS>` and then the workflow output (or its failure reason);
//! exits 0 when it completed, [`WORKFLOW_NOT_COMPLETED`](super::exit_code::WORKFLOW_NOT_COMPLETED)
//! when it ended otherwise or did not end within the timeout.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{CliError, CommandResult, Globals, Outcome, load_config, resolve_task};
use crate::conductor::ConductorClient;
use crate::config::ConfigOverrides;
use crate::registry::Targets;

/// How often the workflow's status is read while waiting.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The name of perago's one-task workflow for `task`.
pub(crate) fn workflow_name(task: &str) -> String {
    format!("perago.{task}")
}

/// The one-task workflow definition for `task` owned by `owner_email`.
fn workflow_def(task: &str, owner_email: &str) -> Value {
    json!({
        "name": workflow_name(task), "version": 1, "schemaVersion": 2, "ownerEmail": owner_email,
        "description": format!("perago: runs {task} once"),
        "tasks": [{"name": task, "taskReferenceName": "task", "type": "SIMPLE",
                   "inputParameters": {"params": "${workflow.input.params}"}}],
        "outputParameters": {"result": "${task.output.result}"}
    })
}

/// `KEY=VALUE` pairs into a params object.
fn params(pairs: &[String]) -> Result<Map<String, Value>, CliError> {
    let mut params = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=').filter(|(key, _)| !key.is_empty()) else {
            return Err(CliError::ParamInvalid { pair: pair.clone() });
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        params.insert(key.to_owned(), value);
    }
    Ok(params)
}

pub(crate) fn run(
    globals: &Globals,
    targets: &Targets,
    target: &str,
    pairs: &[String],
    timeout: Duration,
) -> CommandResult {
    let config = load_config(globals, target, &ConfigOverrides::default())?;
    let conductor = config.require_conductor()?;
    let task = resolve_task(targets, target)?;
    if task.is_workspace_task() {
        return Err(CliError::WorkflowWorkspaceTask {
            task: task.name().to_owned(),
        });
    }
    let params = params(pairs)?;
    let client = ConductorClient::new(conductor);
    let fail = |what: &'static str| {
        move |source| CliError::Workflow {
            what,
            source: Box::new(source),
        }
    };
    client
        .register_workflow_def(&workflow_def(task.name(), task.owner_email()), true)
        .map_err(fail("register the workflow definition"))?;
    let id = client
        .start_workflow(&workflow_name(task.name()), &json!({ "params": params }))
        .map_err(fail("start the workflow"))?;
    let deadline = Instant::now() + timeout;
    let workflow = loop {
        let workflow = client
            .get_workflow(&id)
            .map_err(fail("read the workflow"))?;
        let status = workflow["status"].as_str().unwrap_or_default();
        if !matches!(status, "RUNNING" | "PAUSED" | "") || Instant::now() >= deadline {
            break workflow;
        }
        std::thread::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now())));
    };
    let status = workflow["status"].as_str().unwrap_or("UNKNOWN");
    println!("workflow {id}: {status}");
    if status == "COMPLETED" {
        println!("{}", workflow["output"]);
        return Ok(Outcome::Success);
    }
    match workflow["reasonForIncompletion"].as_str() {
        Some(reason) if !reason.is_empty() => println!("reason: {reason}"),
        _ if status == "RUNNING" => println!(
            "reason: still running after {} s (is `perago start {target}` running?)",
            timeout.as_secs()
        ),
        _ => {}
    }
    Ok(Outcome::WorkflowNotCompleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_json_when_they_parse_and_strings_otherwise() {
        let pairs = [
            "message=hello",
            "n=100",
            "flag=true",
            "quoted=\"7\"",
            "eq=a=b",
        ]
        .map(str::to_owned);
        assert_eq!(
            Value::Object(params(&pairs).unwrap()),
            json!({"message": "hello", "n": 100, "flag": true, "quoted": "7", "eq": "a=b"})
        );
        for bad in ["novalue", "=x"] {
            let error = params(&[bad.to_owned()]).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("--param {bad} must be KEY=VALUE")
            );
        }
    }
}
