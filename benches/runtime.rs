//! Thread-runtime benchmarks, printed as a small table (run in release mode):
//!
//! ```sh
//! cargo bench --bench runtime                 # everything
//! cargo bench --bench runtime -- throughput   # or: overhead, startup
//! ```
//!
//! - **throughput**: echo tasks/s through the dev server (real HTTP on loopback, server in
//!   this process) at 1, 4, 16 and 64 threads, for the runtime and for a minimal raw client
//!   loop (batch poll + update-v2, no runtime) as the ceiling. Measured in steady state:
//!   between the first 10 % and the last 10 % of the batch.
//! - **overhead**: wall time per attempt of the runtime over an in-process fake Conductor
//!   (no network), next to `run_attempt` alone on the same task; the difference is what the
//!   runtime adds (poller/worker hand-off, lease registration, counters, summary, update).
//! - **observability**: echo tasks/s through the dev server with SPEC §15 off (no metrics
//!   declaration, no admin listener, no OTLP export) and on (the task declares metrics, an
//!   admin listener is scraped every 100 ms, OTLP export to the dev server every second),
//!   five rounds in the same run, the order flipping each round; medians.
//! - **startup**: `perago start examples.echo -j N --execution-mode thread` as a child: time
//!   from spawn to the first poll the dev server answers (one task is queued so the poll
//!   returns at once), and the child's RSS after a second of idling.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use parking_lot::Mutex;
use perago::__private::LiveOwners;
use perago::__private::{AttemptEnv, NoFence, run_attempt};
use perago::__private::{
    ConductorApi, ConductorClient, ConductorClientOptions as ClientOptions, ConductorError,
    PolledTask, TaskUpdate, UpdateStatus,
};
use perago::Runtime;
use perago::{AttemptIdentity, CancelToken};
use perago::{ConductorConfig, RuntimeConfig};
use perago_devserver::{DevServer, DevServerOptions};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

const TASK: &str = "examples.echo";

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| f == name);
    if wanted("overhead") {
        overhead();
    }
    if wanted("throughput") {
        throughput();
    }
    if wanted("startup") {
        startup();
    }
    if wanted("observability") {
        observability();
    }
}

// ---------------------------------------------------------------------------------------
// Shared set-up.

fn config(dir: &Path, url: &str) -> RuntimeConfig {
    let mut env = BTreeMap::new();
    env.insert("CONDUCTOR_SERVER_URL".to_owned(), url.to_owned());
    env.insert(
        "PERAGO_WORKSPACE_ROOT".to_owned(),
        dir.join("ws").display().to_string(),
    );
    env.insert(
        "PERAGO_LOG_ROOT".to_owned(),
        dir.join("logs").display().to_string(),
    );
    RuntimeConfig::from_env_map(TASK, &env, &Default::default()).expect("config")
}

fn echo_task() -> perago::Task {
    perago::examples::echo().expect("echo task")
}

fn input() -> Value {
    json!({"params": {"message": "hello"}})
}

fn dev_server() -> DevServer {
    let server = DevServer::start(DevServerOptions::default()).expect("dev server");
    let client = ConductorClient::for_url(&server.conductor_url());
    client
        .register_task_defs(&[json!({"name": TASK, "ownerEmail": "b@example.com",
                                     "retryCount": 0, "responseTimeoutSeconds": 600})])
        .expect("taskdef");
    client
        .register_workflow_def(
            &json!({"name": "bench_wf", "version": 1, "schemaVersion": 2,
                    "ownerEmail": "b@example.com",
                    "tasks": [{"name": TASK, "taskReferenceName": "echo", "type": "SIMPLE",
                               "inputParameters": {"params": "${workflow.input.params}"}}]}),
            true,
        )
        .expect("workflow def");
    server
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

// ---------------------------------------------------------------------------------------
// Overhead: the runtime over an in-process fake Conductor.

/// Hands out pre-built tasks and swallows updates; signals when `total` updates arrived.
struct FakeConductor {
    queue: Mutex<Vec<PolledTask>>,
    updates: AtomicU64,
    total: u64,
    v2: bool,
    done: Sender<()>,
}

impl ConductorApi for FakeConductor {
    fn poll_batch(
        &self,
        _: &str,
        _: Option<&str>,
        _: &str,
        count: usize,
        _: Duration,
    ) -> Result<Vec<PolledTask>, ConductorError> {
        let mut queue = self.queue.lock();
        let keep = queue.len().saturating_sub(count);
        Ok(queue.split_off(keep))
    }

    fn update(
        &self,
        update: &TaskUpdate,
        fetch_next: bool,
    ) -> Result<Option<PolledTask>, ConductorError> {
        if update.status == UpdateStatus::Completed
            && self.updates.fetch_add(1, Ordering::Relaxed) + 1 == self.total
        {
            let _ = self.done.send(());
        }
        Ok(if self.v2 && fetch_next {
            self.queue.lock().pop()
        } else {
            None
        })
    }

    fn get_task(&self, _: &str) -> Result<Option<PolledTask>, ConductorError> {
        Ok(None)
    }
}

fn fake_tasks(n: usize) -> Vec<PolledTask> {
    (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "taskId": format!("t{i}"), "workflowInstanceId": format!("w{i}"),
                "taskType": TASK, "inputData": input(), "status": "IN_PROGRESS",
                "responseTimeoutSeconds": 600, "pollCount": 1
            }))
            .expect("task")
        })
        .collect()
}

fn runtime_per_attempt(n: usize, v2: bool) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let (done_tx, done_rx) = bounded(1);
    let fake = Arc::new(FakeConductor {
        queue: Mutex::new(fake_tasks(n)),
        updates: AtomicU64::new(0),
        total: n as u64,
        v2,
        done: done_tx,
    });
    let started = Instant::now();
    let handle = Runtime::builder(config(dir.path(), "http://unused/api"), echo_task())
        .conductor(fake)
        .lock_workspace_root(false)
        .start()
        .expect("runtime");
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("all attempts reported");
    let elapsed = started.elapsed();
    handle.shutdown();
    handle.join();
    elapsed / n as u32
}

fn run_attempt_alone(n: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let task = echo_task();
    let owners = LiveOwners::new();
    let input = input();
    let env = AttemptEnv {
        workspace_root: dir.path(),
        store: None,
        fence: &NoFence,
        owners: &owners,
        failure_reason_max_length: 500,
        cancel: CancelToken::never(),
        task_log: None,
        previous_output: None,
    };
    let started = Instant::now();
    for i in 0..n {
        let identity = AttemptIdentity {
            task_id: format!("t{i}"),
            workflow_instance_id: "w".into(),
            retry_count: 0,
            task_def_name: TASK.into(),
            reference_task_name: "echo".into(),
            seq: 1,
            iteration: 0,
            execution_id: perago::__private::new_execution_id(),
            worker_id: "w0001".into(),
        };
        let report = run_attempt(&task, &identity, &input, &env);
        std::hint::black_box(report);
    }
    started.elapsed() / n as u32
}

/// Round trip between two threads over crossbeam channels: the floor of any hand-off from a
/// worker to the poller and back.
fn channel_round_trip(n: usize) -> Duration {
    let (to_peer, peer_rx) = bounded::<()>(1);
    let (to_main, main_rx) = bounded::<()>(1);
    let peer = std::thread::Builder::new()
        .name("pong".into())
        .spawn(move || {
            while peer_rx.recv().is_ok() {
                if to_main.send(()).is_err() {
                    return;
                }
            }
        })
        .expect("pong thread");
    let started = Instant::now();
    for _ in 0..n {
        to_peer.send(()).expect("send");
        main_rx.recv().expect("recv");
    }
    let elapsed = started.elapsed();
    drop(to_peer);
    let _ = peer.join();
    elapsed / n as u32
}

fn overhead() {
    const N: usize = 100_000;
    // Warm-up (allocator, schema caches).
    run_attempt_alone(2_000);
    runtime_per_attempt(2_000, true);
    let alone = median((0..3).map(|_| micros(run_attempt_alone(N))).collect());
    let chained = median(
        (0..3)
            .map(|_| micros(runtime_per_attempt(N, true)))
            .collect(),
    );
    let polled = median(
        (0..3)
            .map(|_| micros(runtime_per_attempt(N, false)))
            .collect(),
    );
    let round_trip = median((0..3).map(|_| micros(channel_round_trip(N))).collect());
    println!(
        "\noverhead per attempt, 1 worker thread, in-process fake Conductor ({N} attempts, median of 3)"
    );
    println!("  {:<44} {:>10}", "path", "µs/attempt");
    println!("  {:<44} {:>10.2}", "run_attempt alone (echo task)", alone);
    println!(
        "  {:<44} {:>10.2}",
        "runtime, update-v2 hands back the next task", chained
    );
    println!(
        "  {:<44} {:>10.2}",
        "runtime, v1 update + poll per task", polled
    );
    println!(
        "  {:<44} {:>10.2}",
        "baseline: channel round trip between 2 threads", round_trip
    );
    println!(
        "  runtime overhead: {:.2} µs (v2 chain), {:.2} µs (poll path); target < 20 µs",
        chained - alone,
        polled - alone
    );
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

// ---------------------------------------------------------------------------------------
// Throughput through the dev server.

fn client_options(threads: usize) -> ClientOptions {
    ClientOptions {
        max_idle_connections: threads + 8,
        ..ClientOptions::default()
    }
}

fn start_batch(server: &DevServer, n: usize) {
    let engine = server.conductor().engine();
    for _ in 0..n {
        engine
            .start_workflow("bench_wf", None, json!({"params": {"message": "hello"}}))
            .expect("workflow");
    }
}

/// Tasks/s between 10 % and 90 % of `n` completions, read from `completed`.
fn steady_rate(n: u64, completed: impl Fn() -> u64) -> f64 {
    let wait_until = |target: u64| {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let done = completed();
            if done >= target || Instant::now() > deadline {
                return (Instant::now(), done);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let (t0, c0) = wait_until(n / 10);
    let (t1, c1) = wait_until(n - n / 10);
    (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
}

fn runtime_rate(threads: usize, n: usize) -> f64 {
    let server = dev_server();
    let dir = tempfile::tempdir().expect("tempdir");
    start_batch(&server, n);
    let url = server.conductor_url();
    let api = Arc::new(ConductorClient::with_options(
        &ConductorConfig::new(url.clone(), None),
        client_options(threads),
    ));
    let handle = Runtime::builder(config(dir.path(), &url), echo_task())
        .threads(threads)
        .conductor(api)
        .start()
        .expect("runtime");
    let rate = steady_rate(n as u64, || handle.counters().completed);
    handle.shutdown();
    handle.join();
    rate
}

fn raw_rate(threads: usize, n: usize) -> f64 {
    let server = dev_server();
    start_batch(&server, n);
    let client = Arc::new(ConductorClient::with_options(
        &ConductorConfig::new(server.conductor_url(), None),
        client_options(threads),
    ));
    let completed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let client = Arc::clone(&client);
            let completed = Arc::clone(&completed);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("raw-{i}"))
                .spawn(move || {
                    let mut next: Option<PolledTask> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let task = match next.take() {
                            Some(task) => task,
                            None => match client.poll_batch(
                                TASK,
                                None,
                                "raw0001",
                                1,
                                Duration::from_millis(100),
                            ) {
                                Ok(mut tasks) if !tasks.is_empty() => tasks.remove(0),
                                _ => continue,
                            },
                        };
                        let output =
                            json!({"result": {"message": task.input_data["params"]["message"]}});
                        let update = TaskUpdate {
                            workflow_instance_id: task.workflow_instance_id.clone(),
                            task_id: task.task_id.clone(),
                            status: UpdateStatus::Completed,
                            output_data: Some(output),
                            reason_for_incompletion: None,
                            worker_id: "raw0001".into(),
                            extend_lease: false,
                            callback_after_seconds: None,
                        };
                        if let Ok(handed_back) = client.update(&update, true) {
                            completed.fetch_add(1, Ordering::Relaxed);
                            next = handed_back;
                        }
                    }
                })
                .expect("raw worker")
        })
        .collect();
    let rate = steady_rate(n as u64, || completed.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    rate
}

fn throughput() {
    println!(
        "\necho throughput through the dev server (loopback HTTP, server in-process), tasks/s"
    );
    println!(
        "  {:>7} {:>12} {:>12} {:>9}",
        "threads", "raw loop", "runtime", "runtime %"
    );
    for threads in [1, 4, 16, 64] {
        let n = if threads == 1 { 4_000 } else { 12_000 };
        let raw = raw_rate(threads, n);
        let runtime = runtime_rate(threads, n);
        println!(
            "  {:>7} {:>12.0} {:>12.0} {:>8.0}%",
            threads,
            raw,
            runtime,
            runtime / raw * 100.0
        );
    }
}

// ---------------------------------------------------------------------------------------
// Startup time and idle RSS of `perago start` as a child process.

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn spawn_perago(dir: &Path, url: &str, jobs: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_perago"))
        .args([
            "start",
            TASK,
            "-j",
            &jobs.to_string(),
            "--execution-mode",
            "thread",
        ])
        .current_dir(dir)
        .env_clear()
        .env("TMPDIR", dir)
        .env("CONDUCTOR_SERVER_URL", url)
        .env("PERAGO_WORKSPACE_ROOT", dir.join("ws"))
        .env("PERAGO_LOG_ROOT", dir.join("logs"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perago start")
}

fn stop_child(mut child: Child) {
    let _ = kill_process(Pid::from_child(&child), Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn startup() {
    println!(
        "\nperago start examples.echo --execution-mode thread (child process, idle dev server)"
    );
    println!(
        "  {:>4} {:>22} {:>16}",
        "-j", "spawn → first poll ms", "idle RSS MiB"
    );
    for jobs in [1, 64] {
        let mut to_first_poll = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..5 {
            let server = dev_server();
            // One queued task, so the first poll is answered (and counted) at once rather
            // than after its 100 ms long-poll wait.
            start_batch(&server, 1);
            let dir = tempfile::tempdir().expect("tempdir");
            let route = "GET /tasks/poll/batch/{taskType}";
            let started = Instant::now();
            let child = spawn_perago(dir.path(), &server.conductor_url(), jobs);
            while server.stats().count("conductor", route) == 0 {
                if started.elapsed() > Duration::from_secs(20) {
                    panic!("no poll within 20 s");
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            to_first_poll.push(started.elapsed().as_secs_f64() * 1000.0);
            // Idle: the one task is done; the poller long-polls and backs off.
            std::thread::sleep(Duration::from_secs(1));
            rss.push(rss_kib(child.id()).unwrap_or(0) as f64 / 1024.0);
            stop_child(child);
        }
        println!(
            "  {:>4} {:>22.1} {:>16.1}",
            jobs,
            median(to_first_poll),
            median(rss)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Observability on vs off.

fn metered_echo_task() -> perago::Task {
    perago::Task::builder(TASK, "dev@example.com")
        .metrics(perago::MetricSpec::default())
        .handler(
            |ctx: &perago::TaskContext,
             params: perago::examples::EchoParams|
             -> Result<perago::examples::EchoResult, perago::TaskError> {
                ctx.histogram("message_bytes", params.message.len() as f64, &[]);
                Ok(perago::examples::EchoResult {
                    message: params.message,
                })
            },
        )
        .expect("metered echo task")
}

fn observed_rate(threads: usize, n: usize, on: bool) -> f64 {
    let server = dev_server();
    let dir = tempfile::tempdir().expect("tempdir");
    start_batch(&server, n);
    let url = server.conductor_url();
    let api = Arc::new(ConductorClient::with_options(
        &ConductorConfig::new(url.clone(), None),
        client_options(threads),
    ));
    let mut env = BTreeMap::new();
    env.insert("CONDUCTOR_SERVER_URL".to_owned(), url.clone());
    env.insert(
        "PERAGO_WORKSPACE_ROOT".to_owned(),
        dir.path().join("ws").display().to_string(),
    );
    env.insert(
        "PERAGO_LOG_ROOT".to_owned(),
        dir.path().join("logs").display().to_string(),
    );
    if on {
        env.insert(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT".to_owned(),
            format!("http://{}/v1/metrics", server.addr()),
        );
        env.insert("OTEL_METRIC_EXPORT_INTERVAL".to_owned(), "1000".to_owned());
        env.insert("PERAGO_INSTANCE_ID".to_owned(), "bench".to_owned());
    }
    let config = RuntimeConfig::from_env_map(TASK, &env, &Default::default()).expect("config");
    let task = if on { metered_echo_task() } else { echo_task() };
    let handle = Runtime::builder(config, task)
        .threads(threads)
        .conductor(api)
        .start()
        .expect("runtime");
    let admin = on.then(|| {
        perago::AdminServer::for_runtime(
            &perago::AdminConfig {
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                token: None,
            },
            &handle,
        )
        .expect("admin listener")
    });
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = admin.as_ref().map(|admin| {
        let url = format!("http://{}/metrics", admin.addr());
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("scraper".into())
            .spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                while !stop.load(Ordering::Relaxed) {
                    let _ = agent
                        .get(&url)
                        .call()
                        .map(|mut r| r.body_mut().read_to_string());
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .expect("scraper thread")
    });
    let rate = steady_rate(n as u64, || handle.counters().completed);
    stop.store(true, Ordering::Relaxed);
    if let Some(scraper) = scraper {
        let _ = scraper.join();
    }
    handle.shutdown();
    handle.join();
    drop(admin);
    rate
}

fn observability() {
    println!(
        "\necho throughput with SPEC §15 off vs on (same run, median of 5 alternating), tasks/s"
    );
    println!(
        "  {:>7} {:>12} {:>12} {:>9}",
        "threads", "off", "on", "on %"
    );
    for threads in [4, 16] {
        let n = 12_000;
        let (mut off, mut on) = (Vec::new(), Vec::new());
        // Five rounds, the order flipping each round so that neither side always runs
        // right after the other's teardown.
        for round in 0..5 {
            if round % 2 == 0 {
                off.push(observed_rate(threads, n, false));
                on.push(observed_rate(threads, n, true));
            } else {
                on.push(observed_rate(threads, n, true));
                off.push(observed_rate(threads, n, false));
            }
        }
        let (off, on) = (median(off), median(on));
        println!(
            "  {:>7} {:>12.0} {:>12.0} {:>8.0}%",
            threads,
            off,
            on,
            on / off * 100.0
        );
    }
}
