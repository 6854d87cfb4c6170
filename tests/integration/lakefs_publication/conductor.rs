//! Rows that need Conductor: the real attempt fence (`ConductorFence` over the dev server's
//! Conductor) and a two-task workflow run by thread runtimes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use perago::__private::{
    ConductorApi, ConductorClient, ConductorClientOptions as ClientOptions, PolledTask,
};
use perago::__private::{LiveOwners, Snapshot};
use perago::__private::{StageRequest, StoreError, WorkspaceRef, WorkspaceStore};
use perago::{__private::ConductorFence, Runtime};
use perago::{AttemptIdentity, CancelToken};
use perago::{ConductorConfig, RuntimeConfig};
use perago::{Phase, TaskStatus};
use serde_json::{Value, json};

use super::harness::{self, Env};
use crate::support::{LONG, wait_until};

/// Conductor client options with short deadlines: the dev server's listener can strand a
/// new keep-alive connection (see the harness), and a short deadline retries it quickly.
fn conductor_api(env: &Env) -> Arc<dyn ConductorApi> {
    Arc::new(ConductorClient::with_options(
        &ConductorConfig::new(env.dev().conductor_url(), None),
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            poll_slack: Duration::from_secs(1),
            ..ClientOptions::default()
        },
    ))
}

fn register(env: &Env, defs: &[Value], workflow: Value) {
    let engine = env.dev().conductor().engine();
    if let Err(e) = engine.register_task_defs(defs.to_vec()) {
        panic!("task defs: {e:?}");
    }
    if let Err(e) = engine.register_workflow_def(workflow, true) {
        panic!("workflow def: {e:?}");
    }
}

fn task_def(name: &str) -> Value {
    json!({"name": name, "ownerEmail": "t@example.com", "retryCount": 0,
           "timeoutSeconds": 0, "responseTimeoutSeconds": 600})
}

fn identity_of(task: &PolledTask) -> AttemptIdentity {
    perago::__private::attempt_identity(task, "w0001")
}

/// A store that lets Conductor move on (terminates the workflow) right after staging, as a
/// response timeout would while the attempt is between its two fences.
struct StaleAfterStage<'a> {
    inner: &'a dyn WorkspaceStore,
    env: &'a Env,
    workflow_id: String,
}

impl WorkspaceStore for StaleAfterStage<'_> {
    fn download(
        &self,
        workspace: &WorkspaceRef,
        prefix: &str,
        dest: &Path,
        cancel: &CancelToken,
    ) -> Result<Snapshot, StoreError> {
        self.inner.download(workspace, prefix, dest, cancel)
    }

    fn stage(
        &self,
        request: &StageRequest<'_>,
        created: &mut bool,
        cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        let staged = self.inner.stage(request, created, cancel);
        let engine = self.env.dev().conductor().engine();
        if let Err(e) = engine.terminate(&self.workflow_id, Some("timed out".into())) {
            panic!("terminate: {e:?}");
        }
        staged
    }

    fn publish(
        &self,
        workspace: &WorkspaceRef,
        branch: &str,
        staged: &str,
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        self.inner
            .publish(workspace, branch, staged, timeout, cancel)
    }

    fn publish_noop(
        &self,
        workspace: &WorkspaceRef,
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<String, StoreError> {
        self.inner.publish_noop(workspace, timeout, cancel)
    }

    fn delete_staging_branch(
        &self,
        workspace: &WorkspaceRef,
        branch: &str,
    ) -> Result<(), StoreError> {
        self.inner.delete_staging_branch(workspace, branch)
    }
}

#[test]
fn the_conductor_fence_passes_current_attempts_and_stops_stale_ones() {
    let env = Env::start();
    let a = env.seed("fenced", &super::seed_files());
    register(
        &env,
        &[task_def("lakefs.test")],
        json!({"name": "fenced_wf", "version": 1, "schemaVersion": 2,
               "ownerEmail": "t@example.com",
               "tasks": [{"name": "lakefs.test", "taskReferenceName": "only", "type": "SIMPLE",
                          "inputParameters": {"workspace": "${workflow.input.workspace}",
                                              "params": "${workflow.input.params}"}}]}),
    );
    let api = conductor_api(&env);
    let fence = ConductorFence::new(Arc::clone(&api));
    let engine = env.dev().conductor().engine();
    // `stale` = which fence finds the attempt stale: 0 = none, 1 = before stage, 2 = after.
    for stale in [1, 2, 0] {
        let input = harness::ws_input("fenced", &a, "edit");
        let id = match engine.start_workflow("fenced_wf", None, input.clone()) {
            Ok(id) => id,
            Err(e) => panic!("start: {e:?}"),
        };
        let polled = match api.poll_batch("lakefs.test", None, "w0001", 1, Duration::from_secs(1)) {
            Ok(mut tasks) if tasks.len() == 1 => tasks.remove(0),
            other => panic!("poll: {other:?}"),
        };
        let identity = identity_of(&polled);
        if stale == 1
            && let Err(e) = engine.terminate(&id, Some("timed out".into()))
        {
            panic!("terminate: {e:?}");
        }
        let staling = StaleAfterStage {
            inner: env.store(),
            env: &env,
            workflow_id: id.clone(),
        };
        let store: &dyn WorkspaceStore = if stale == 2 { &staling } else { env.store() };
        let report = env.run_as(
            &super::writable(),
            &identity,
            polled.input_data.clone(),
            store,
            &fence,
        );
        if stale == 0 {
            assert_eq!(report.result.status, TaskStatus::Completed, "{report:?}");
            assert_ne!(env.head("fenced"), a, "the current attempt publishes");
        } else {
            harness::assert_failed(
                &report,
                TaskStatus::Failed,
                Phase::AttemptFence,
                "is CANCELED, not IN_PROGRESS",
            );
            assert_eq!(
                env.head("fenced"),
                a,
                "stale attempt published (fence {stale})"
            );
        }
        assert_eq!(env.staging_branches("fenced"), Vec::<String>::new());
    }
    assert_eq!(
        env.count(harness::CREATE_BRANCH),
        2,
        "fence 2 and the current one staged"
    );
    assert_eq!(env.count(harness::MERGE), 1);
}

fn runtime_config(env: &Env, dir: &Path, target: &str) -> RuntimeConfig {
    let (key, secret) = env.credentials();
    let pairs = [
        ("CONDUCTOR_SERVER_URL", env.dev().conductor_url()),
        ("LAKECTL_SERVER_ENDPOINT_URL", env.dev().lakefs_endpoint()),
        ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", key.to_owned()),
        ("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", secret.to_owned()),
        (
            "PERAGO_WORKSPACE_ROOT",
            env.workspace_root().display().to_string(),
        ),
        ("PERAGO_LOG_ROOT", dir.join("logs").display().to_string()),
    ];
    let map: BTreeMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    match RuntimeConfig::from_env_map(target, &map, &Default::default()) {
        Ok(config) => config,
        Err(e) => panic!("config: {e}"),
    }
}

#[test]
fn a_features_build_workflow_chains_its_output_workspace_into_catalog_read() {
    let env = Env::start();
    let a = env.seed(
        "chain",
        &[
            ("audio/render/raw/d1/take1.parquet", b"PAR1-one"),
            ("audio/render/raw/d1/take2.parquet", b"PAR1-two"),
            ("audio/render/raw/d2/take3.parquet", b"PAR1-three"),
            ("catalog/README.txt", b"catalog"),
        ],
    );
    let build = perago::examples::features_build().unwrap_or_else(|e| panic!("{e}"));
    let read = perago::examples::catalog_read().unwrap_or_else(|e| panic!("{e}"));
    register(
        &env,
        &[perago::task_def(&build), perago::task_def(&read)],
        json!({"name": "chain_wf", "version": 1, "schemaVersion": 2,
        "ownerEmail": "t@example.com",
        "tasks": [
          {"name": "features.build", "taskReferenceName": "build", "type": "SIMPLE",
           "inputParameters": {"workspace": "${workflow.input.workspace}",
                               "params": "${workflow.input.params}"}},
          {"name": "catalog.read", "taskReferenceName": "read", "type": "SIMPLE",
           "inputParameters": {"workspace": "${build.output.workspace}",
                               "params": {"pattern": "audio/render/features/**/*.parquet"}}}
        ]}),
    );
    let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let owners = LiveOwners::new();
    let store: Arc<dyn WorkspaceStore> = Arc::new(env.store().clone());
    let handles: Vec<_> = [
        ("examples.features_build", build),
        ("examples.catalog_read", read),
    ]
    .into_iter()
    .map(|(target, task)| {
        Runtime::builder(runtime_config(&env, logs.path(), target), task)
            .threads(1)
            .workspace_store(Arc::clone(&store))
            .conductor(conductor_api(&env))
            .live_owners(owners.clone())
            .lock_workspace_root(false)
            .signals(false)
            .poll_wait(Duration::from_millis(100))
            .start()
            .unwrap_or_else(|e| panic!("runtime {target}: {e}"))
    })
    .collect();
    let engine = env.dev().conductor().engine();
    let input = json!({
        "workspace": {"repository": "chain", "branch": "main", "refType": "commit", "ref": a},
        "params": {"feature_set": "v1", "min_rows": 10}
    });
    let id = engine
        .start_workflow("chain_wf", None, input)
        .unwrap_or_else(|e| panic!("start: {e:?}"));
    let mut workflow = Value::Null;
    wait_until("the chained workflow to finish", LONG, || {
        workflow = engine.workflow(&id).unwrap_or_else(|e| panic!("{e:?}"));
        workflow["status"] != "RUNNING"
    });
    for handle in &handles {
        handle.shutdown();
    }
    for handle in handles {
        assert!(handle.join().is_clean());
    }
    assert_eq!(workflow["status"], "COMPLETED", "{workflow:#}");
    let tasks = workflow["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 2, "{workflow:#}");
    let built = tasks[0]["outputData"]["workspace"]["ref"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(built, a);
    assert_eq!(env.head("chain"), built);
    assert_eq!(env.parents("chain", &built), vec![a]);
    assert_eq!(tasks[0]["outputData"]["result"]["feature_count"], 3);
    assert_eq!(tasks[1]["inputData"]["workspace"]["ref"], built.as_str());
    assert_eq!(tasks[1]["outputData"]["workspace"]["ref"], built.as_str());
    assert_eq!(tasks[1]["outputData"]["result"]["matches"], 3);
    assert_eq!(env.staging_branches("chain"), Vec::<String>::new());
}
