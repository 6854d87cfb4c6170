//! `perago demo`: the one-command main job.
//!
//! Starts the dev server in-process, registers the example TaskDefs and two workflows,
//! creates a lakeFS repository with raw input files, runs the example workers in thread mode
//! through the embedding API, drives a batch of `examples.echo → metadata.validate`
//! workflows with a progress bar, then a few `features.build → catalog.read` workflows that
//! publish to lakeFS, and prints throughput, latency percentiles, failures and the commit
//! history of the target branch.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::conductor::ConductorClient;
use crate::config::{ConfigOverrides, RuntimeConfig};
use crate::lakefs::{LakefsClient, LakefsStore, UploadSource};
use crate::runtime::{Runtime, RuntimeHandle};
use crate::task::{CancelToken, Task};
use crate::taskdef::task_def;
use crate::workspace::LiveOwners;
use perago_devserver::{DevServer, DevServerOptions};

/// How big a demo to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Echo + metadata workflows in the throughput batch.
    pub workflows: usize,
    /// Worker threads of each workspace-free runtime.
    pub threads: usize,
    /// `features.build → catalog.read` workflows (each publishes one commit).
    pub publications: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            workflows: 300,
            threads: 8,
            publications: 3,
            progress: true,
        }
    }
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Workflows that completed.
    pub completed: usize,
    /// Workflows that did not complete.
    pub failed: usize,
}

/// A demo failure: the step that failed, and its cause when there is one.
#[derive(Debug, thiserror::Error)]
#[error("demo failed: {step}")]
pub struct DemoError {
    /// What the demo was doing (`register TaskDefs`, `start workflow`, …).
    step: String,
    /// The cause.
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl DemoError {
    /// A failure with no underlying error.
    fn new(step: impl Into<String>) -> DemoError {
        DemoError {
            step: step.into(),
            source: None,
        }
    }
}

/// Turns an error into the demo failure of `step`, keeping it as the cause.
fn fail<E: std::error::Error + Send + Sync + 'static>(
    step: impl Into<String>,
) -> impl FnOnce(E) -> DemoError {
    let step = step.into();
    move |source| DemoError {
        step,
        source: Some(Box::new(source)),
    }
}

const REPOSITORY: &str = "demo-audio";
const ECHO_WORKFLOW: &str = "perago_demo_echo";
const FEATURES_WORKFLOW: &str = "perago_demo_features";

fn workflow_defs() -> [Value; 2] {
    [
        json!({
            "name": ECHO_WORKFLOW, "version": 1, "schemaVersion": 2, "ownerEmail": "dev@example.com",
            "tasks": [
                {"name": "examples.echo", "taskReferenceName": "echo", "type": "SIMPLE",
                 "inputParameters": {"params": {"message": "${workflow.input.song_id}"}}},
                {"name": "metadata.validate", "taskReferenceName": "validate", "type": "SIMPLE",
                 "inputParameters": {"params": {
                     "song_id": "${echo.output.result.message}",
                     "min_duration_seconds": "${workflow.input.min_duration_seconds}"}}}
            ]
        }),
        json!({
            "name": FEATURES_WORKFLOW, "version": 1, "schemaVersion": 2, "ownerEmail": "data@example.com",
            "tasks": [
                {"name": "features.build", "taskReferenceName": "build", "type": "SIMPLE",
                 "inputParameters": {"workspace": "${workflow.input.workspace}",
                                     "params": "${workflow.input.params}"}},
                {"name": "catalog.read", "taskReferenceName": "read", "type": "SIMPLE",
                 "inputParameters": {"workspace": "${build.output.workspace}",
                                     "params": {"pattern": "audio/render/features/**/*.parquet"}}}
            ]
        }),
    ]
}

struct Workers {
    handles: Vec<RuntimeHandle>,
}

impl Workers {
    fn stop(self) -> bool {
        self.handles.iter().for_each(RuntimeHandle::shutdown);
        self.handles
            .into_iter()
            .map(RuntimeHandle::join)
            .all(|exit| exit.is_clean())
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn wait_for_workflow(
    client: &ConductorClient,
    id: &str,
    limit: Duration,
) -> Result<Value, DemoError> {
    let deadline = Instant::now() + limit;
    loop {
        let workflow = client
            .get_workflow(id)
            .map_err(fail(format!("get workflow {id}")))?;
        if workflow["status"] != "RUNNING" || Instant::now() >= deadline {
            return Ok(workflow);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the demo, writing the report to `out`.
pub fn run_demo(options: &DemoOptions, out: &mut dyn Write) -> Result<DemoReport, DemoError> {
    let scratch = std::env::temp_dir().join(format!("perago-demo-{}", std::process::id()));
    let result = run_in(options, &scratch, out);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn run_in(
    options: &DemoOptions,
    scratch: &std::path::Path,
    out: &mut dyn Write,
) -> Result<DemoReport, DemoError> {
    let server =
        DevServer::start(DevServerOptions::default()).map_err(fail("start the dev server"))?;
    let env: BTreeMap<String, String> = [
        ("PERAGO_WORKSPACE_ROOT", scratch.join("workspaces")),
        ("PERAGO_LOG_ROOT", scratch.join("logs")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.display().to_string()))
    .chain([
        ("CONDUCTOR_SERVER_URL".to_owned(), server.conductor_url()),
        (
            "LAKECTL_SERVER_ENDPOINT_URL".to_owned(),
            server.lakefs_endpoint(),
        ),
        (
            "LAKECTL_CREDENTIALS_ACCESS_KEY_ID".to_owned(),
            server.access_key_id().to_owned(),
        ),
        (
            "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY".to_owned(),
            server.secret_access_key().to_owned(),
        ),
    ])
    .collect();
    let config = |target: &str| {
        RuntimeConfig::from_env_map(target, &env, &ConfigOverrides::default())
            .and_then(|config| config.probe_roots().map(|()| config))
            .map_err(fail(format!("configure {target}")))
    };
    let base = config("demo")?;
    let lakefs_config = base
        .lakefs()
        .ok_or_else(|| DemoError::new("lakeFS config missing"))?;
    let conductor = ConductorClient::for_url(&server.conductor_url());

    // TaskDefs and workflows.
    let tasks: Vec<(&str, Task)> = [
        ("examples.echo", crate::examples::echo()),
        (
            "examples.metadata_validate",
            crate::examples::metadata_validate(),
        ),
        ("examples.features_build", crate::examples::features_build()),
        ("examples.catalog_read", crate::examples::catalog_read()),
    ]
    .into_iter()
    .map(|(target, task)| {
        task.map(|t| (target, t))
            .map_err(fail(format!("declare {target}")))
    })
    .collect::<Result<_, _>>()?;
    let defs: Vec<Value> = tasks.iter().map(|(_, task)| task_def(task)).collect();
    conductor
        .register_task_defs(&defs)
        .map_err(fail("register TaskDefs"))?;
    for def in workflow_defs() {
        conductor
            .register_workflow_def(&def, true)
            .map_err(fail("register workflow"))?;
    }

    // A lakeFS repository with raw input files, committed.
    let lakefs = LakefsClient::from_config(lakefs_config).map_err(fail("lakeFS"))?;
    let cancel = CancelToken::never();
    lakefs
        .create_repository(REPOSITORY, &format!("mem://{REPOSITORY}"), "main", &cancel)
        .map_err(fail("create repository"))?;
    for (path, bytes) in [
        (
            "audio/render/raw/2026-11-01/take1.parquet",
            b"PAR1-take-one".as_slice(),
        ),
        (
            "audio/render/raw/2026-11-01/take2.parquet",
            b"PAR1-take-two",
        ),
        (
            "audio/render/raw/2026-11-02/take3.parquet",
            b"PAR1-take-three",
        ),
        ("catalog/README.txt", b"demo catalog"),
    ] {
        lakefs
            .upload_object(
                REPOSITORY,
                "main",
                path,
                UploadSource::Bytes(bytes),
                &cancel,
            )
            .map_err(fail("upload"))?;
    }
    lakefs
        .commit(
            REPOSITORY,
            "main",
            "Add raw renders",
            &BTreeMap::new(),
            &cancel,
        )
        .map_err(fail("commit"))?;

    // Workers: one thread runtime per task, sharing the workspace root and its live owners.
    let owners = LiveOwners::new();
    let store: Arc<dyn crate::execution::WorkspaceStore> =
        Arc::new(LakefsStore::from_config(lakefs_config).map_err(fail("lakeFS store"))?);
    let mut workers = Workers {
        handles: Vec::new(),
    };
    for (target, task) in tasks {
        let threads = if task.is_workspace_task() {
            1
        } else {
            options.threads.max(1)
        };
        let handle = Runtime::builder(config(target)?, task)
            .threads(threads)
            .workspace_store(Arc::clone(&store))
            .live_owners(owners.clone())
            .lock_workspace_root(false)
            .signals(false)
            .start()
            .map_err(fail(target));
        match handle {
            Ok(handle) => workers.handles.push(handle),
            Err(error) => {
                workers.stop();
                return Err(error);
            }
        }
    }
    let outcome = drive(options, &conductor, &lakefs, out);
    let clean = workers.stop();
    let report = outcome?;
    if !clean {
        return Err(DemoError::new("a worker runtime did not stop cleanly"));
    }
    server.stop().map_err(fail("stop the dev server"))?;
    Ok(report)
}

fn drive(
    options: &DemoOptions,
    conductor: &ConductorClient,
    lakefs: &LakefsClient,
    out: &mut dyn Write,
) -> Result<DemoReport, DemoError> {
    let cancel = CancelToken::never();
    let bar = if options.progress {
        indicatif::ProgressBar::new(options.workflows as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} workflows {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut ids = Vec::with_capacity(options.workflows);
    for index in 0..options.workflows {
        let input = json!({"song_id": format!("song-{index:05}"), "min_duration_seconds": (index * 7) % 900});
        ids.push(
            conductor
                .start_workflow(ECHO_WORKFLOW, &input)
                .map_err(fail("start workflow"))?,
        );
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    let (mut first_start, mut last_end) = (i64::MAX, i64::MIN);
    for id in &ids {
        let workflow = wait_for_workflow(conductor, id, Duration::from_secs(120))?;
        bar.inc(1);
        if workflow["status"] != "COMPLETED" {
            failed += 1;
            continue;
        }
        let created = workflow["createTime"].as_i64().unwrap_or_default();
        let ended = workflow["tasks"]
            .as_array()
            .and_then(|tasks| tasks.iter().filter_map(|t| t["endTime"].as_i64()).max())
            .unwrap_or(created);
        latencies.push((ended - created).max(0) as u64);
        first_start = first_start.min(created);
        last_end = last_end.max(ended);
    }
    // Throughput over the server-side span from the first start to the last completion.
    let elapsed = if last_end > first_start {
        Duration::from_millis((last_end - first_start) as u64)
    } else {
        started.elapsed()
    };
    bar.finish_and_clear();

    // Publications: one writer per branch at a time, so run them one after another.
    let mut published = Vec::new();
    for index in 0..options.publications {
        let head = lakefs
            .get_branch(REPOSITORY, "main", &cancel)
            .map_err(fail("get branch"))?;
        let input = json!({
            "workspace": {"repository": REPOSITORY, "branch": "main", "refType": "commit", "ref": head.commit_id},
            "params": {"feature_set": format!("v{}", index + 1), "min_rows": 100},
        });
        let id = conductor
            .start_workflow(FEATURES_WORKFLOW, &input)
            .map_err(fail("start workflow"))?;
        let workflow = wait_for_workflow(conductor, &id, Duration::from_secs(120))?;
        if workflow["status"] != "COMPLETED" {
            failed += 1;
            let reason = workflow["reasonForIncompletion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            published.push(format!("{id}: {} {reason}", workflow["status"]));
            continue;
        }
        let matches = &workflow["tasks"][1]["outputData"]["result"]["matches"];
        published.push(format!(
            "{id}: COMPLETED, catalog.read matched {matches} feature files"
        ));
    }

    latencies.sort_unstable();
    let completed = options.workflows + options.publications - failed;
    let write =
        |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(fail("write report"));
    write(
        out,
        "perago demo — thread mode against the embedded dev server".into(),
    )?;
    write(
        out,
        format!(
            "echo → metadata.validate: {} workflows in {:.2} s = {:.0} workflows/s ({} worker threads per task)",
            options.workflows,
            elapsed.as_secs_f64(),
            options.workflows as f64 / elapsed.as_secs_f64().max(1e-9),
            options.threads
        ),
    )?;
    write(
        out,
        format!(
            "latency workflow start → last task completion: p50 {} ms, p95 {} ms, p99 {} ms",
            percentile(&latencies, 50.0),
            percentile(&latencies, 95.0),
            percentile(&latencies, 99.0)
        ),
    )?;
    write(out, "features.build → catalog.read publications:".into())?;
    for line in published {
        write(out, format!("  {line}"))?;
    }
    write(
        out,
        format!("lakeFS {REPOSITORY}/main commit history (newest first):"),
    )?;
    let log = lakefs
        .log_commits(REPOSITORY, "main", 20, &cancel)
        .map_err(fail("log"))?;
    for commit in log {
        let short: String = commit.id.chars().take(12).collect();
        write(out, format!("  {short}  {}", commit.message))?;
    }
    write(out, format!("completed: {completed}, failed: {failed}"))?;
    Ok(DemoReport { completed, failed })
}
