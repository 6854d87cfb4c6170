//! A reproducible chaos run (release build, not part of the test suite): echo and workspace
//! workflows through the `perago` binary against the embedded dev server, with mixed faults on
//! Conductor and lakeFS routes and worker processes SIGKILLed and restarted throughout.
//!
//! - `examples.echo` workflows are started all at once and served by one
//!   `perago start examples.echo -j 4 --execution-mode thread` process.
//! - `features.build` workflows publish to one branch, so they run one after another (one
//!   writer per branch, SPEC §7), each from the branch head of its time, served by one
//!   `perago start examples.features_build --execution-mode thread` process.
//! - Faults (seeded): 5xx, latency and connections dropped before and after handling on the
//!   poll, update and task-read routes and on every lakeFS route a publication uses, and 20 %
//!   500 on staging-branch DELETE.
//! - Every 1–3 s (seeded) one worker process is SIGKILLed and restarted at once.
//!
//! At the end faults are cleared, the workers are stopped with SIGTERM, and the run prints:
//! tried / completed / lost (not COMPLETED by the deadline) / completed twice (a workflow with
//! more than one COMPLETED task attempt) / wrong publications (a commit on the branch that is
//! not the output of a completed workflow, a completed workflow whose output is not on the
//! branch or lacks its files) / staging branches left / attempt directories left.
//!
//! Run: `cargo bench --bench chaos` (`PERAGO_CHAOS_ECHO`, `PERAGO_CHAOS_WORKSPACE`,
//! `PERAGO_CHAOS_SEED` change the size and the seed). Exits non-zero if any figure but
//! "tried" and "completed" is not zero.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perago::__private::{LakefsClient, LakefsClientOptions, UploadSource};
use perago::CancelToken;
use perago_devserver::faults::FaultRule;
use perago_devserver::{DevServer, DevServerOptions};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

type ChaosResult<T> = Result<T, Box<dyn std::error::Error>>;

const REPOSITORY: &str = "chaos";
const ECHO_WORKFLOW: &str = "chaos_echo";
const FEATURES_WORKFLOW: &str = "chaos_features";
const STAGING_PREFIX: &str = "perago-staging-";
/// How long one workspace workflow may take, faults, kills and retries included.
const WORKSPACE_DEADLINE: Duration = Duration::from_secs(120);
/// How long the echo batch may take after the last workspace workflow.
const ECHO_DEADLINE: Duration = Duration::from_secs(120);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The dev server engine's errors are plain structs; this makes them `?`-able here.
fn engine<T>(result: Result<T, perago_devserver::conductor::EngineError>) -> ChaosResult<T> {
    result.map_err(|e| format!("dev server {}: {}", e.status, e.message).into())
}

/// One `perago start` process, restarted after each SIGKILL.
struct Worker {
    target: &'static str,
    jobs: usize,
    root: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Worker {
    fn spawn(&mut self) -> ChaosResult<()> {
        let child = Command::new(env!("CARGO_BIN_EXE_perago"))
            .args([
                "start",
                self.target,
                "-j",
                &self.jobs.to_string(),
                "--execution-mode",
                "thread",
            ])
            .current_dir(&self.root)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn signal(&mut self, signal: Signal) {
        if let Some(child) = &self.child
            && let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw)
        {
            let _ = kill_process(pid, signal);
        }
    }

    /// SIGKILL, reap, start again.
    fn kill_and_restart(&mut self) -> ChaosResult<()> {
        self.signal(Signal::KILL);
        if let Some(mut child) = self.child.take() {
            child.wait()?;
        }
        self.spawn()
    }

    /// SIGTERM, then SIGKILL if it has not drained within `limit`.
    fn stop(&mut self, limit: Duration) -> ChaosResult<Option<i32>> {
        self.signal(Signal::TERM);
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                child.wait()?;
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn set_faults(server: &DevServer) -> ChaosResult<()> {
    let faults = server.faults();
    let rule = |method: &str, path: &str| FaultRule {
        method: method.into(),
        path: path.into(),
        ..FaultRule::default()
    };
    let rules = [
        // Conductor: polls, result updates, attempt-fence reads.
        FaultRule {
            error_status: Some(500),
            error_rate: 0.05,
            drop_rate: 0.03,
            latency_ms: 2,
            ..rule("GET", "/api/tasks/poll/batch/*")
        },
        FaultRule {
            error_status: Some(503),
            error_rate: 0.05,
            drop_rate: 0.03,
            drop_after_handling: true,
            latency_ms: 2,
            ..rule("POST", "/api/tasks/update-v2")
        },
        FaultRule {
            drop_rate: 0.02,
            ..rule("POST", "/api/tasks/update-v2")
        },
        FaultRule {
            error_status: Some(500),
            error_rate: 0.03,
            drop_rate: 0.02,
            ..rule("GET", "/api/tasks/*")
        },
        // lakeFS: staging-branch DELETE fails a fifth of the time.
        FaultRule {
            error_status: Some(500),
            error_rate: 0.2,
            ..rule("DELETE", "/api/v1/repositories/*/branches/perago-staging-*")
        },
        // Branch creation, uploads, commits, merges, resets, reads.
        FaultRule {
            error_status: Some(500),
            error_rate: 0.03,
            drop_rate: 0.02,
            drop_after_handling: true,
            latency_ms: 3,
            ..rule("POST", "/api/v1/repositories/**")
        },
        FaultRule {
            drop_rate: 0.02,
            ..rule("POST", "/api/v1/repositories/**")
        },
        FaultRule {
            error_status: Some(503),
            error_rate: 0.03,
            drop_rate: 0.02,
            latency_ms: 1,
            ..rule("GET", "/api/v1/repositories/**")
        },
        FaultRule {
            error_status: Some(500),
            error_rate: 0.05,
            drop_rate: 0.03,
            drop_after_handling: true,
            ..rule("PUT", "/api/v1/repositories/*/branches/*")
        },
    ];
    for rule in rules {
        faults.set(rule)?;
    }
    Ok(())
}

fn register(server: &DevServer) -> ChaosResult<()> {
    let mut defs = Vec::new();
    for task in [
        perago::examples::echo()?,
        perago::examples::features_build()?,
    ] {
        let mut def = perago::task_def(&task);
        // Short response timeouts: an attempt lost with a killed worker is retried quickly.
        def["responseTimeoutSeconds"] = json!(6);
        def["retryCount"] = json!(10);
        def["retryDelaySeconds"] = json!(0);
        defs.push(def);
    }
    let client = perago::__private::ConductorClient::for_url(&server.conductor_url());
    client.register_task_defs(&defs)?;
    for (name, task, inputs) in [
        (
            ECHO_WORKFLOW,
            "examples.echo",
            json!({"params": "${workflow.input.params}"}),
        ),
        (
            FEATURES_WORKFLOW,
            "features.build",
            json!({"workspace": "${workflow.input.workspace}", "params": "${workflow.input.params}"}),
        ),
    ] {
        client.register_workflow_def(
            &json!({
                "name": name, "version": 1, "schemaVersion": 2,
                "ownerEmail": "chaos@example.com", "timeoutSeconds": 0,
                "tasks": [{"name": task, "taskReferenceName": "only", "type": "SIMPLE",
                           "inputParameters": inputs}]
            }),
            true,
        )?;
    }
    Ok(())
}

fn lakefs_client(server: &DevServer) -> ChaosResult<LakefsClient> {
    Ok(LakefsClient::new(
        &server.lakefs_endpoint(),
        server.access_key_id(),
        &perago::Secret::new(server.secret_access_key().to_owned()),
        LakefsClientOptions::default(),
    )?)
}

fn seed_repository(lakefs: &LakefsClient) -> ChaosResult<String> {
    let cancel = CancelToken::never();
    lakefs.create_repository(REPOSITORY, "local://chaos", "main", &cancel)?;
    for (path, bytes) in [
        ("audio/render/raw/a.parquet", &b"PAR1-a"[..]),
        ("audio/render/raw/b.parquet", &b"PAR1-b"[..]),
    ] {
        lakefs.upload_object(
            REPOSITORY,
            "main",
            path,
            UploadSource::Bytes(bytes),
            &cancel,
        )?;
    }
    let commit = lakefs.commit(REPOSITORY, "main", "seed", &BTreeMap::new(), &cancel)?;
    Ok(commit.id)
}

/// Waits for a workflow to end; `None` when it is still running at `deadline`.
fn wait_terminal(server: &DevServer, id: &str, deadline: Instant) -> ChaosResult<Option<Value>> {
    loop {
        let workflow = engine(server.conductor().engine().workflow(id))?;
        match workflow["status"].as_str() {
            Some("RUNNING") | Some("PAUSED") | None => {}
            Some(_) => return Ok(Some(workflow)),
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn completed_attempts(workflow: &Value) -> usize {
    workflow["tasks"].as_array().map_or(0, |tasks| {
        tasks.iter().filter(|t| t["status"] == "COMPLETED").count()
    })
}

fn attempt_dirs_left(roots: &[PathBuf]) -> usize {
    roots
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flat_map(|entries| entries.filter_map(Result::ok))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .count()
}

fn main() -> ChaosResult<()> {
    // `cargo bench` passes `--bench`; nothing to parse.
    let echo_count = env_number("PERAGO_CHAOS_ECHO", 600) as usize;
    let workspace_count = env_number("PERAGO_CHAOS_WORKSPACE", 20) as usize;
    let seed = env_number("PERAGO_CHAOS_SEED", 13);
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();

    let server = DevServer::start(DevServerOptions {
        fault_seed: seed,
        ..DevServerOptions::default()
    })?;
    register(&server)?;
    let lakefs = lakefs_client(&server)?;
    let seed_commit = seed_repository(&lakefs)?;

    let dir = tempfile::tempdir()?;
    let env = |root: &Path| -> Vec<(String, String)> {
        vec![
            ("TMPDIR".into(), dir.path().display().to_string()),
            ("PERAGO_WORKSPACE_ROOT".into(), root.display().to_string()),
            (
                "PERAGO_LOG_ROOT".into(),
                dir.path().join("logs").display().to_string(),
            ),
            ("PERAGO_SHUTDOWN_FORCE_KILL_AFTER".into(), "10s".into()),
            ("CONDUCTOR_SERVER_URL".into(), server.conductor_url()),
            (
                "LAKECTL_SERVER_ENDPOINT_URL".into(),
                server.lakefs_endpoint(),
            ),
            (
                "LAKECTL_CREDENTIALS_ACCESS_KEY_ID".into(),
                server.access_key_id().to_owned(),
            ),
            (
                "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY".into(),
                server.secret_access_key().to_owned(),
            ),
        ]
    };
    let roots = [dir.path().join("ws-echo"), dir.path().join("ws-features")];
    let mut workers = [
        Worker {
            target: "examples.echo",
            jobs: 4,
            root: dir.path().to_path_buf(),
            env: env(&roots[0]),
            child: None,
        },
        Worker {
            target: "examples.features_build",
            jobs: 1,
            root: dir.path().to_path_buf(),
            env: env(&roots[1]),
            child: None,
        },
    ];
    for worker in &mut workers {
        worker.spawn()?;
    }
    set_faults(&server)?;

    // Echo workflows all at once; a few sleep so that kills find them in flight.
    let mut echo_ids = Vec::with_capacity(echo_count);
    for index in 0..echo_count {
        let params = json!({"message": format!("m{index}"), "sleep_ms": rng.u64(0..40)});
        echo_ids.push(engine(server.conductor().engine().start_workflow(
            ECHO_WORKFLOW,
            None,
            json!({ "params": params }),
        ))?);
    }

    // Workspace workflows one after another, with kills in between and during them.
    let mut kills = 0usize;
    let mut next_kill = Instant::now() + Duration::from_millis(rng.u64(1000..3000));
    let mut maybe_kill = |workers: &mut [Worker; 2], rng: &mut fastrand::Rng| -> ChaosResult<()> {
        if Instant::now() >= next_kill {
            let victim = rng.usize(0..workers.len());
            workers[victim].kill_and_restart()?;
            kills += 1;
            next_kill = Instant::now() + Duration::from_millis(rng.u64(1000..3000));
        }
        Ok(())
    };
    let mut workspace = Vec::with_capacity(workspace_count);
    for index in 0..workspace_count {
        let head = lakefs.get_branch(REPOSITORY, "main", &CancelToken::never())?;
        let input = json!({
            "workspace": {"repository": REPOSITORY, "branch": "main", "refType": "commit",
                          "ref": head.commit_id},
            "params": {"feature_set": format!("fs{index}"), "min_rows": 10},
        });
        let id = engine(server.conductor().engine().start_workflow(
            FEATURES_WORKFLOW,
            None,
            input,
        ))?;
        let deadline = Instant::now() + WORKSPACE_DEADLINE;
        let outcome = loop {
            maybe_kill(&mut workers, &mut rng)?;
            let workflow = engine(server.conductor().engine().workflow(&id))?;
            let status = workflow["status"].as_str().unwrap_or_default().to_owned();
            if status != "RUNNING" && status != "PAUSED" {
                break Some(workflow);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        workspace.push((index, id, outcome));
    }
    // Keep killing while the echo batch finishes.
    let echo_deadline = Instant::now() + ECHO_DEADLINE;
    loop {
        let open = echo_ids.iter().try_fold(0usize, |open, id| {
            let workflow = engine(server.conductor().engine().workflow(id))?;
            Ok::<_, Box<dyn std::error::Error>>(open + usize::from(workflow["status"] == "RUNNING"))
        })?;
        if open == 0 || Instant::now() >= echo_deadline {
            break;
        }
        maybe_kill(&mut workers, &mut rng)?;
        std::thread::sleep(Duration::from_millis(100));
    }

    // Quiet down and stop the workers the polite way (their final sweeps run).
    server.faults().clear();
    let mut exit_codes = Vec::new();
    for worker in &mut workers {
        exit_codes.push(worker.stop(Duration::from_secs(30))?);
    }

    // The figures.
    let mut completed = 0usize;
    let mut lost = 0usize;
    let mut twice = 0usize;
    for id in &echo_ids {
        match wait_terminal(&server, id, Instant::now())? {
            Some(workflow) if workflow["status"] == "COMPLETED" => {
                completed += 1;
                twice += usize::from(completed_attempts(&workflow) > 1);
            }
            _ => lost += 1,
        }
    }
    let log = server.lakefs().first_parent_log(REPOSITORY, "main");
    let on_main: Vec<String> = log
        .iter()
        .take_while(|commit| commit.id != seed_commit)
        .map(|commit| commit.id.clone())
        .collect();
    let mut outputs = Vec::new();
    let mut wrong = 0usize;
    for (index, _id, outcome) in &workspace {
        let Some(workflow) = outcome.as_ref().filter(|w| w["status"] == "COMPLETED") else {
            lost += 1;
            continue;
        };
        completed += 1;
        twice += usize::from(completed_attempts(workflow) > 1);
        let output = workflow["tasks"]
            .as_array()
            .and_then(|tasks| tasks.iter().find(|t| t["status"] == "COMPLETED"))
            .and_then(|task| task["outputData"]["workspace"]["ref"].as_str())
            .unwrap_or_default()
            .to_owned();
        let has_files = server
            .lakefs()
            .object_content(
                REPOSITORY,
                &output,
                &format!("audio/render/features/fs{index}/a.parquet"),
            )
            .is_some();
        if !on_main.contains(&output) || !has_files {
            wrong += 1;
        }
        outputs.push(output);
    }
    wrong += on_main.iter().filter(|id| !outputs.contains(id)).count();
    let staging_left = lakefs
        .list_branches(REPOSITORY, &CancelToken::never())?
        .iter()
        .filter(|branch| branch.id.starts_with(STAGING_PREFIX))
        .count();
    let dirs_left = attempt_dirs_left(&roots);
    let stats = server.stats();

    println!(
        "perago chaos run — seed {seed}, {echo_count} echo + {workspace_count} workspace workflows, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "faults: 5xx/latency/drops before and after handling on poll, update-v2, task reads and lakeFS routes; \
         20 % 500 on staging-branch DELETE; {kills} worker SIGKILLs (+ restart)"
    );
    println!(
        "requests: {} polls, {} update-v2, {} staging-branch DELETEs",
        stats.count("conductor", "GET /tasks/poll/batch/{taskType}"),
        stats.count("conductor", "POST /tasks/update-v2"),
        stats.count(
            "lakefs",
            "DELETE /repositories/{repository}/branches/{branch}"
        )
    );
    println!("worker exit codes after SIGTERM: {exit_codes:?}");
    println!("tried:                   {}", echo_count + workspace_count);
    println!("completed:               {completed}");
    println!("lost:                    {lost}");
    println!("completed twice:         {twice}");
    println!("wrong publications:      {wrong}");
    println!("staging branches left:   {staging_left}");
    println!("attempt directories left: {dirs_left}");
    drop(workers);
    if lost + twice + wrong + staging_left + dirs_left > 0 {
        std::process::exit(1);
    }
    Ok(())
}
