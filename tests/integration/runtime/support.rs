//! Shared set-up for the runtime tests (dev server, TaskDefs and workflows, a sleepy task).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use perago::__private::{ConductorApi, ConductorClient, ConductorClientOptions as ClientOptions};
use perago::{ConductorConfig, RuntimeConfig};
use perago::{Task, TaskContext, TaskError};
use perago_devserver::{DevServer, DevServerOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Starts a dev server with default options.
pub fn dev_server() -> DevServer {
    dev_server_with(DevServerOptions::default())
}

/// Starts a dev server with `options`.
pub fn dev_server_with(options: DevServerOptions) -> DevServer {
    DevServer::start(options).expect("dev server starts")
}

/// A runtime config for `target` talking to `server`, with roots under `dir` and `extra`
/// variables; never reads the real environment.
pub fn config(
    server: &DevServer,
    dir: &Path,
    target: &str,
    extra: &[(&str, &str)],
) -> RuntimeConfig {
    let mut env = BTreeMap::new();
    env.insert("CONDUCTOR_SERVER_URL".to_owned(), server.conductor_url());
    env.insert(
        "PERAGO_WORKSPACE_ROOT".to_owned(),
        dir.join("workspaces").display().to_string(),
    );
    env.insert(
        "PERAGO_LOG_ROOT".to_owned(),
        dir.join("logs").display().to_string(),
    );
    for (key, value) in extra {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    RuntimeConfig::from_env_map(target, &env, &Default::default()).expect("valid config")
}

/// The client the runtimes under test use (keep-alive, deadlines that fit a test's budget).
pub fn api(server: &DevServer) -> Arc<dyn ConductorApi> {
    Arc::new(ConductorClient::with_options(
        &ConductorConfig::new(server.conductor_url(), None),
        fast_options(),
    ))
}

/// Short deadlines for tests.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        poll_slack: Duration::from_secs(1),
        ..ClientOptions::default()
    }
}

/// A client for test set-up.
pub fn client(server: &DevServer) -> ConductorClient {
    ConductorClient::for_url(&server.conductor_url())
}

/// Registers the generated TaskDef of `name` (response timeout and retry count replaced)
/// and a one-task workflow `<name>_wf` feeding
/// `workflow.input.params` to it.
pub fn register(server: &DevServer, name: &str, response_timeout: u64, retry_count: u64) {
    let client = client(server);
    client
        .register_task_defs(&[crate::support::generated_task_def(
            name,
            json!({
                "retryCount": retry_count, "retryLogic": "FIXED", "retryDelaySeconds": 0,
                "timeoutSeconds": 0, "responseTimeoutSeconds": response_timeout,
                "timeoutPolicy": "TIME_OUT_WF"
            }),
        )])
        .expect("task def registered");
    client
        .register_workflow_def(
            &json!({
                "name": format!("{name}_wf"), "version": 1, "schemaVersion": 2,
                "ownerEmail": "test@example.com", "timeoutSeconds": 0,
                "tasks": [{"name": name, "taskReferenceName": "only", "type": "SIMPLE",
                           "inputParameters": {"params": "${workflow.input.params}"}}]
            }),
            true,
        )
        .expect("workflow def registered");
}

/// Starts `<name>_wf` with these params; returns the workflow id.
pub fn start(server: &DevServer, name: &str, params: Value) -> String {
    server
        .conductor()
        .engine()
        .start_workflow(&format!("{name}_wf"), None, json!({ "params": params }))
        .expect("workflow started")
}

/// The workflow as the server reports it.
pub fn workflow(server: &DevServer, id: &str) -> Value {
    server
        .conductor()
        .engine()
        .workflow(id)
        .expect("workflow exists")
}

/// The tasks (attempts) of a workflow.
pub fn tasks(server: &DevServer, id: &str) -> Vec<Value> {
    workflow(server, id)["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Params of [`sleepy`].
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepyParams {
    /// Echoed back.
    pub message: String,
    /// Cooperative sleep before answering.
    #[serde(default)]
    pub sleep_ms: u64,
}

/// Result of [`sleepy`].
#[derive(Debug, Serialize, JsonSchema)]
pub struct SleepyResult {
    /// The message.
    pub message: String,
}

/// A workspace-free task named `name` that sleeps cooperatively, then echoes.
pub fn sleepy(name: &str) -> Task {
    Task::builder(name, "test@example.com")
        .handler(
            |ctx: &TaskContext, params: SleepyParams| -> Result<SleepyResult, TaskError> {
                if params.sleep_ms > 0 {
                    ctx.sleep(Duration::from_millis(params.sleep_ms))
                        .map_err(|_| TaskError::failed("cancelled while sleeping"))?;
                }
                Ok(SleepyResult {
                    message: params.message,
                })
            },
        )
        .expect("valid task")
}
