//! Process mode against thread mode (release build), with the `perago` binary serving
//! `examples.echo` against the embedded dev server started in this process:
//!
//! 1. idle RSS: the sum of `VmRSS` of every process of the set (the supervisor and its 8
//!    children; the one process in thread mode), a few seconds after all are polling;
//! 2. echo throughput: workflows completed per second, from the first workflow created to the
//!    last one completed, with 8 children (`-j 8 --execution-mode process`) and with 8
//!    worker threads (`-j 8 --execution-mode thread`).
//!
//! Run: `cargo bench --bench process_mode` (`PERAGO_BENCH_WORKFLOWS=N` to change the batch).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perago_devserver::{DevServer, DevServerOptions};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::json;

const WORKERS: usize = 8;
const DEFAULT_WORKFLOWS: usize = 3_000;
const RUNS: usize = 3;
/// How long the processes idle before their RSS is read.
const IDLE: Duration = Duration::from_secs(3);
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
const RUN_LIMIT: Duration = Duration::from_secs(300);

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The dev server engine's errors are plain structs; this makes them `?`-able here.
fn engine<T>(result: Result<T, perago_devserver::conductor::EngineError>) -> BenchResult<T> {
    result.map_err(|e| format!("dev server {}: {}", e.status, e.message).into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Process,
    Thread,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Process => "process",
            Mode::Thread => "thread",
        }
    }
}

/// One `perago start` process tree; killed (and reaped) on drop if still running.
struct Workers {
    child: Child,
}

impl Workers {
    fn start(server: &DevServer, dir: &Path, mode: Mode) -> BenchResult<Workers> {
        let child = Command::new(env!("CARGO_BIN_EXE_perago"))
            .args([
                "start",
                "examples.echo",
                "-j",
                &WORKERS.to_string(),
                "--execution-mode",
                mode.flag(),
            ])
            .current_dir(dir)
            .env_clear()
            .env("TMPDIR", dir)
            .env("PERAGO_WORKSPACE_ROOT", dir.join("workspaces"))
            .env("PERAGO_LOG_ROOT", dir.join("logs"))
            .env("CONDUCTOR_SERVER_URL", server.conductor_url())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Workers { child })
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        pids.extend(children_of(self.child.id()));
        pids
    }

    fn stop(mut self) -> BenchResult<()> {
        let pid = Pid::from_raw(self.child.id() as i32).ok_or("bad pid")?;
        kill_process(pid, Signal::TERM)?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("perago exited with {status}").into());
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut pids = BTreeSet::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                pids.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    pids.into_iter().collect()
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> BenchResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

/// Waits until `expected` worker log files contain `thread runner started`.
fn wait_ready(dir: &Path, expected: usize) -> BenchResult<()> {
    let deadline = Instant::now() + STARTUP_LIMIT;
    loop {
        let ready = walkdir::WalkDir::new(dir.join("logs"))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .filter(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|text| text.contains("\"thread runner started\""))
            })
            .count();
        if ready >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("only {ready} of {expected} runners started").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Figures {
    idle_rss_kib: u64,
    processes: usize,
    throughput: f64,
}

fn run(server: &DevServer, mode: Mode, workflows: usize) -> BenchResult<Figures> {
    let dir = tempfile::tempdir()?;
    let workers = Workers::start(server, dir.path(), mode)?;
    let runners = if mode == Mode::Process { WORKERS } else { 1 };
    wait_ready(dir.path(), runners)?;
    std::thread::sleep(IDLE);
    let pids = workers.pids();
    let idle_rss_kib = pids
        .iter()
        .map(|pid| rss_kib(*pid))
        .sum::<BenchResult<u64>>()?;

    let conductor = server.conductor().engine();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(workflows);
    for index in 0..workflows {
        ids.push(engine(conductor.start_workflow(
            "echo_bench_wf",
            None,
            json!({"params": {"message": format!("m{index}")}}),
        ))?);
    }
    let deadline = started + RUN_LIMIT;
    for id in &ids {
        loop {
            let status = engine(conductor.workflow(id))?["status"].clone();
            if status == "COMPLETED" {
                break;
            }
            if status != "RUNNING" {
                return Err(format!("workflow {id} ended {status}").into());
            }
            if Instant::now() > deadline {
                return Err("workflows did not complete in time".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let elapsed = started.elapsed();
    workers.stop()?;
    Ok(Figures {
        idle_rss_kib,
        processes: pids.len(),
        throughput: workflows as f64 / elapsed.as_secs_f64(),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> BenchResult<()> {
    let workflows = std::env::var("PERAGO_BENCH_WORKFLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_WORKFLOWS);
    let server = DevServer::start(DevServerOptions::default())?;
    let conductor = server.conductor().engine();
    engine(conductor.register_task_defs(vec![json!({
        "name": "examples.echo", "ownerEmail": "bench@example.com", "retryCount": 0,
        "timeoutSeconds": 0, "responseTimeoutSeconds": 60
    })]))?;
    engine(conductor.register_workflow_def(
        json!({
            "name": "echo_bench_wf", "version": 1, "schemaVersion": 2,
            "ownerEmail": "bench@example.com", "timeoutSeconds": 0,
            "tasks": [{"name": "examples.echo", "taskReferenceName": "echo", "type": "SIMPLE",
                       "inputParameters": {"params": "${workflow.input.params}"}}]
        }),
        true,
    ))?;

    println!(
        "perago start examples.echo -j {WORKERS}: {workflows} echo workflows, median of {RUNS} runs"
    );
    println!(
        "{:<34} {:>10} {:>16} {:>16}",
        "mode", "processes", "idle RSS (MiB)", "workflows/s"
    );
    for mode in [Mode::Thread, Mode::Process] {
        let mut rss = Vec::new();
        let mut throughput = Vec::new();
        let mut processes = 0;
        for _ in 0..RUNS {
            let figures = run(&server, mode, workflows)?;
            rss.push(figures.idle_rss_kib as f64 / 1024.0);
            throughput.push(figures.throughput);
            processes = figures.processes;
        }
        let label = match mode {
            Mode::Thread => format!("thread, {WORKERS} worker threads"),
            Mode::Process => format!("process, {WORKERS} children"),
        };
        println!(
            "{label:<34} {processes:>10} {:>16.1} {:>16.0}",
            median(rss),
            median(throughput)
        );
    }
    Ok(())
}
