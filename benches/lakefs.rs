//! lakeFS transfer benchmarks against the embedded dev server (release mode), printed as a
//! table:
//!
//! 1. download of 1,000 objects of 64 KiB with 2 ms injected latency per object request:
//!    the bounded parallel pool (8 threads, and 16, the default) against one thread;
//! 2. stage of a 10,000-file workspace with 10 changed files: the diff-based stage against a
//!    stage that re-uploads every file (what the reference implementation does).
//!
//! Run: `cargo bench --bench lakefs`. Downloads are measured onto the disk (the system temp
//! dir) and onto a tmpfs (`/dev/shm`, or `PERAGO_BENCH_TMPFS`) in the same run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use perago::__private::{ChangeSet, Snapshot, diff};
use perago::__private::{DEFAULT_DOWNLOAD_PARALLELISM, DEFAULT_UPLOAD_PARALLELISM};
use perago::__private::{
    LakefsClient, LakefsClientOptions as ClientOptions, download_prefix, stage_changes,
};
use perago::__private::{StageRequest, WorkspaceRef};
use perago::Secret;
use perago::{AttemptIdentity, CancelToken};
use perago_devserver::faults::FaultRule;
use perago_devserver::{DevServer, DevServerOptions};

const DOWNLOAD_OBJECTS: usize = 1_000;
const OBJECT_SIZE: usize = 64 * 1024;
const LATENCY: Duration = Duration::from_millis(2);
const WORKSPACE_FILES: usize = 10_000;
const CHANGED_FILES: usize = 10;
const RUNS: usize = 3;

#[path = "common/mod.rs"]
mod common;
use common::BenchResult;

fn main() -> BenchResult<()> {
    let server = DevServer::start(DevServerOptions::default())?;
    let client = LakefsClient::new(
        &server.lakefs_endpoint(),
        server.access_key_id(),
        &Secret::new(server.secret_access_key().to_owned()),
        ClientOptions::default(),
    )?;
    let total = || -> u64 {
        server
            .stats()
            .all()
            .iter()
            .filter(|(key, _)| key.starts_with("lakefs "))
            .map(|(_, count)| count)
            .sum()
    };
    let never = CancelToken::never();
    println!("perago lakeFS benchmarks (dev server on loopback, median of {RUNS} runs)\n");
    println!(
        "{:<72} {:>10} {:>10} {:>9}",
        "case", "wall ms", "requests", "speedup"
    );

    // 1. Download.
    let objects: Vec<(String, Vec<u8>)> = (0..DOWNLOAD_OBJECTS)
        .map(|i| {
            (
                format!("blobs/{i:04}.bin"),
                vec![(i % 251) as u8; OBJECT_SIZE],
            )
        })
        .collect();
    let download_ref = common::seed(&client, "bench-download", &objects, 8)?;
    server.faults().set(FaultRule {
        method: "GET".into(),
        path: "/api/v1/repositories/*/refs/*/objects".into(),
        error_status: None,
        error_rate: 0.0,
        latency_ms: LATENCY.as_millis() as u64,
        ..FaultRule::default()
    })?;
    // Side by side in one run: onto the disk (the system temp dir) and onto a tmpfs, which
    // takes the disk out and leaves transfer, hashing and file creation.
    let mut destinations = vec![("disk", std::env::temp_dir())];
    if let Some(tmpfs) = tmpfs_dir() {
        destinations.push(("tmpfs", tmpfs));
    }
    let mut download_rows = Vec::new();
    for (place, root) in &destinations {
        for (label, threads) in [
            ("sequential (1 thread)", 1),
            ("parallel (8 threads)", 8),
            (
                "parallel (16 threads, default)",
                DEFAULT_DOWNLOAD_PARALLELISM,
            ),
        ] {
            let mut times = Vec::new();
            let mut requests = 0;
            for _ in 0..RUNS {
                let dest = tempfile::tempdir_in(root)?;
                let before = total();
                let started = Instant::now();
                let snapshot = download_prefix(
                    &client,
                    "bench-download",
                    &download_ref,
                    "",
                    dest.path(),
                    threads,
                    &never,
                )?;
                times.push(started.elapsed());
                requests = total() - before;
                assert_eq!(snapshot.len(), DOWNLOAD_OBJECTS);
            }
            download_rows.push((*place, label, median(&mut times), requests));
        }
    }
    server.faults().clear();
    for (place, label, time, requests) in &download_rows {
        let baseline = download_rows
            .iter()
            .find(|row| row.0 == *place)
            .map_or(*time, |row| row.2);
        row(
            &format!("download 1,000 x 64 KiB, 2 ms latency, {place}: {label}"),
            *time,
            *requests,
            baseline,
        );
    }

    // 2. Stage.
    let files: Vec<(String, Vec<u8>)> = (0..WORKSPACE_FILES)
        .map(|i| {
            (
                format!("f/{:03}/{i:05}.bin", i / 100),
                format!("file {i}").into_bytes(),
            )
        })
        .collect();
    let stage_ref = common::seed(&client, "bench-stage", &files, 8)?;
    let workspace = tempfile::tempdir()?;
    let before = download_prefix(
        &client,
        "bench-stage",
        &stage_ref,
        "",
        workspace.path(),
        8,
        &never,
    )?;
    for i in 0..CHANGED_FILES {
        std::fs::write(workspace.path().join(&files[i * 997].0), b"changed")?;
    }
    let after = Snapshot::scan(workspace.path())?;
    let changes = diff(&before, &after);
    assert_eq!(changes.len(), CHANGED_FILES);
    let everything = ChangeSet {
        added: Vec::new(),
        modified: after.files().keys().cloned().collect(),
        deleted: Vec::new(),
    };
    let target = WorkspaceRef {
        repository: "bench-stage".into(),
        branch: "main".into(),
        reference: stage_ref.clone(),
    };
    let mut stage_rows = Vec::new();
    for (label, set) in [
        ("re-upload every file (reference)", &everything),
        ("upload only the diff (perago)", &changes),
    ] {
        let mut times = Vec::new();
        let mut requests = 0;
        for run in 0..RUNS {
            let mut identity = identity();
            identity.execution_id = format!("{}-{run}", set.len());
            let branch = perago::__private::staging_branch_name(&identity);
            let request = StageRequest {
                workspace: &target,
                staging_branch: &branch,
                object_prefix: "",
                source_dir: workspace.path(),
                changes: set,
                identity: &identity,
            };
            let mut created = false;
            let before = total();
            let started = Instant::now();
            stage_changes(
                &client,
                &request,
                &mut created,
                DEFAULT_UPLOAD_PARALLELISM,
                &never,
            )?;
            times.push(started.elapsed());
            requests = total() - before;
            client.delete_branch("bench-stage", &branch, &never)?;
        }
        stage_rows.push((label, median(&mut times), requests));
    }
    let baseline = stage_rows[0].1;
    for (label, time, requests) in &stage_rows {
        row(
            &format!("stage 10,000 files / 10 changed: {label}"),
            *time,
            *requests,
            baseline,
        );
    }
    Ok(())
}

fn identity() -> AttemptIdentity {
    AttemptIdentity {
        task_id: "bench".into(),
        workflow_instance_id: "bench".into(),
        retry_count: 0,
        task_def_name: "bench".into(),
        reference_task_name: "bench".into(),
        seq: 0,
        iteration: 0,
        execution_id: "bench".into(),
        worker_id: "bench".into(),
    }
}

fn row(label: &str, time: Duration, requests: u64, baseline: Duration) {
    println!(
        "{label:<72} {:>10.1} {requests:>10} {:>8.1}x",
        time.as_secs_f64() * 1000.0,
        baseline.as_secs_f64() / time.as_secs_f64().max(1e-9)
    );
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// The tmpfs for the second download table: `PERAGO_BENCH_TMPFS` if set, else `/dev/shm`
/// when it exists.
fn tmpfs_dir() -> Option<PathBuf> {
    match std::env::var_os("PERAGO_BENCH_TMPFS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(PathBuf::from("/dev/shm")).filter(|dir| dir.is_dir()),
    }
}
