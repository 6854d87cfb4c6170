//! Data-scale benchmarks (SPEC §18) against the embedded dev server, side by side in one run:
//!
//! 1. one attempt's transfers (download, then stage of 10 changed files) over 1,000 objects
//!    of 16 KiB with 2 ms injected latency per lakeFS and object-store request: proxied vs
//!    pre-signed, each without a cache, with a cold cache and with a warm one; per phase;
//! 2. a 100,000-file workspace: listing (100 pages) and download, snapshot, diff, stage of
//!    10 changes, with the peak RSS of the process (`VmHWM`, dev server included).
//!
//! Run: `cargo bench --bench data_scale` (`PERAGO_BENCH_SKIP_100K=1` skips part 2).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use perago::__private::{
    LakefsClient, LakefsClientOptions as ClientOptions, LakefsStore, ObjectCache, Snapshot,
    StageRequest, WorkspaceRef, WorkspaceStore, diff, staging_branch_name,
};
use perago::{AttemptIdentity, CancelToken, Secret};
use perago_devserver::faults::FaultRule;
use perago_devserver::{DevServer, DevServerOptions};

const OBJECTS: usize = 1_000;
const OBJECT_SIZE: usize = 16 * 1024;
const LATENCY_MS: u64 = 2;
const CHANGED: usize = 10;
const RUNS: usize = 3;
const BIG_WORKSPACE: usize = 100_000;

#[path = "common/mod.rs"]
mod common;
use common::BenchResult;

fn identity(execution: &str) -> AttemptIdentity {
    AttemptIdentity {
        task_id: format!("bench-{execution}"),
        workflow_instance_id: "bench".into(),
        retry_count: 0,
        task_def_name: "bench".into(),
        reference_task_name: "bench".into(),
        seq: 0,
        iteration: 0,
        execution_id: execution.into(),
        worker_id: "bench".into(),
    }
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024)
}

/// Times of one attempt's phases.
#[derive(Clone, Copy, Default)]
struct Phases {
    download: Duration,
    /// Scan of the workspace after the body and diff against the downloaded snapshot.
    scan: Duration,
    stage: Duration,
}

impl Phases {
    fn total(&self) -> Duration {
        self.download + self.scan + self.stage
    }
}

/// One attempt's transfers: download the ref, change `CHANGED` files, stage them.
fn attempt(
    store: &LakefsStore,
    workspace: &WorkspaceRef,
    root: &Path,
    execution: &str,
) -> BenchResult<Phases> {
    let never = CancelToken::never();
    let dest = root.join(execution);
    std::fs::create_dir_all(&dest)?;
    let started = Instant::now();
    let mut before = store.download(workspace, "", &dest, &never)?;
    // As a writable attempt does: seal the download so the scan reads only touched files.
    before.seal(&dest);
    let download = started.elapsed();
    let mut keys: Vec<&String> = before.files().keys().collect();
    keys.sort();
    for key in keys.iter().step_by(keys.len() / CHANGED).take(CHANGED) {
        std::fs::write(dest.join(key), format!("changed by {execution}"))?;
    }
    let started = Instant::now();
    let after = Snapshot::rescan(&dest, &before)?;
    let changes = diff(&before, &after);
    let scan = started.elapsed();
    let identity = identity(execution);
    let branch = staging_branch_name(&identity);
    let request = StageRequest {
        workspace,
        staging_branch: &branch,
        object_prefix: "",
        source_dir: &dest,
        changes: &changes,
        identity: &identity,
    };
    let started = Instant::now();
    let mut created = false;
    store.stage(&request, &mut created, &never)?;
    let stage = started.elapsed();
    store.delete_staging_branch(workspace, &branch)?;
    // The attempt directory stays until the end of the run, as the runtime keeps it until
    // workspace GC (`PERAGO_WORKSPACE_GC_TTL`, 24 h): deleting 1,000 files right before the
    // next attempt creates its own 1,000 makes the next attempt's inode allocation slow on
    // some filesystems (ext4 without a journal skips recently deleted inodes one by one).
    Ok(Phases {
        download,
        scan,
        stage,
    })
}

fn median(mut runs: Vec<Phases>) -> Phases {
    runs.sort_by_key(Phases::total);
    runs[runs.len() / 2]
}

fn main() -> BenchResult<()> {
    let server = DevServer::start(DevServerOptions {
        presign_ttl: Some(Duration::from_secs(900)),
        ..DevServerOptions::default()
    })?;
    let client = LakefsClient::new(
        &server.lakefs_endpoint(),
        server.access_key_id(),
        &Secret::new(server.secret_access_key().to_owned()),
        ClientOptions::default(),
    )?;
    let objects: Vec<(String, Vec<u8>)> = (0..OBJECTS)
        .map(|i| {
            let mut bytes = vec![(i % 251) as u8; OBJECT_SIZE];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            (format!("data/{:02}/{i:04}.bin", i / 100), bytes)
        })
        .collect();
    let reference = common::seed(&client, "bench-attempt", &objects, 16)?;
    let workspace = WorkspaceRef {
        repository: "bench-attempt".into(),
        branch: "main".into(),
        reference,
    };
    for path in ["/api/v1/**", "/_storage/**"] {
        server.faults().set(FaultRule {
            method: "*".into(),
            path: path.into(),
            latency_ms: LATENCY_MS,
            ..FaultRule::default()
        })?;
    }
    let root = tempfile::tempdir()?;
    println!(
        "perago data-scale benchmarks (dev server on loopback; {OBJECTS} x 16 KiB, {LATENCY_MS} ms \
         per request, {CHANGED} files staged; median of {RUNS})\n"
    );
    println!(
        "{:<44} {:>12} {:>8} {:>10} {:>10}",
        "attempt", "download ms", "scan ms", "stage ms", "total ms"
    );
    let mut rows: Vec<(String, Phases)> = Vec::new();
    for presign in [false, true] {
        let mode = if presign { "pre-signed" } else { "proxied" };
        let plain = LakefsStore::new(client.clone()).with_presign(presign);
        let runs = (0..RUNS)
            .map(|run| {
                attempt(
                    &plain,
                    &workspace,
                    root.path(),
                    &format!("{mode}-plain-{run}"),
                )
            })
            .collect::<BenchResult<Vec<_>>>()?;
        let plain = median(runs);
        print_row(&format!("{mode}, no cache"), plain);
        rows.push((format!("{mode}, no cache"), plain));
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for run in 0..RUNS {
            let cache_dir = tempfile::tempdir()?;
            let cache = Arc::new(ObjectCache::open(cache_dir.path(), 10 << 30)?);
            let store = LakefsStore::new(client.clone())
                .with_presign(presign)
                .with_cache(cache);
            cold.push(attempt(
                &store,
                &workspace,
                root.path(),
                &format!("{mode}-cold-{run}"),
            )?);
            warm.push(attempt(
                &store,
                &workspace,
                root.path(),
                &format!("{mode}-warm-{run}"),
            )?);
        }
        let (cold, warm) = (median(cold), median(warm));
        print_row(&format!("{mode}, cold cache (fills it)"), cold);
        print_row(&format!("{mode}, warm cache"), warm);
        rows.push((format!("{mode}, cold cache"), cold));
        rows.push((format!("{mode}, warm cache"), warm));
        println!(
            "{:<44} download {:.1}x, attempt {:.1}x faster warm than cold",
            "",
            cold.download.as_secs_f64() / warm.download.as_secs_f64().max(1e-9),
            cold.total().as_secs_f64() / warm.total().as_secs_f64().max(1e-9)
        );
    }
    if let Some(python) = std::env::var_os("PERAGO_BENCH_PYTHON") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_perago_attempt.py");
        let mut runs = Vec::new();
        for run in 0..RUNS {
            let output = std::process::Command::new(&python)
                .arg(&script)
                .args([
                    &server.lakefs_endpoint(),
                    server.access_key_id(),
                    server.secret_access_key(),
                    &workspace.repository,
                    &workspace.reference,
                ])
                .arg(root.path())
                .arg(format!("python-{run}"))
                .output()?;
            if !output.status.success() {
                return Err(format!(
                    "python perago driver failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
                .into());
            }
            let line: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            let ms = |key: &str| Duration::from_secs_f64(line[key].as_f64().unwrap_or(0.0) / 1e3);
            runs.push(Phases {
                download: ms("download_ms"),
                // Python perago scans and diffs inside its stage call.
                scan: Duration::ZERO,
                stage: ms("stage_ms"),
            });
        }
        let python = median(runs);
        print_row("Python perago 0.6.1 (proxied, no cache)", python);
        for (label, phases) in &rows {
            println!(
                "{:<44} perago {label}: {:.1}x faster than Python perago",
                "",
                python.total().as_secs_f64() / phases.total().as_secs_f64().max(1e-9)
            );
        }
    }
    server.faults().clear();

    if std::env::var_os("PERAGO_BENCH_SKIP_100K").is_some() {
        return Ok(());
    }
    println!("\n100,000-file workspace (no injected latency, no cache):");
    let files: Vec<(String, Vec<u8>)> = (0..BIG_WORKSPACE)
        .map(|i| {
            (
                format!("f/{:03}/{i:06}.txt", i / 1000),
                format!("file {i}").into_bytes(),
            )
        })
        .collect();
    let started = Instant::now();
    let reference = common::seed(&client, "bench-100k", &files, 16)?;
    drop(files);
    println!(
        "  seed (100,000 uploads + commit): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let seeded_rss = peak_rss_mib();
    println!("  peak RSS after the seed (dev server holding 100,000 objects): {seeded_rss} MiB");
    let workspace = WorkspaceRef {
        repository: "bench-100k".into(),
        branch: "main".into(),
        reference,
    };
    let never = CancelToken::never();
    let store = LakefsStore::new(client.clone());
    let dest = root.path().join("big");
    std::fs::create_dir_all(&dest)?;
    let started = Instant::now();
    let listed = client.list_all_objects("bench-100k", &workspace.reference, "", &never)?;
    println!(
        "  list (100 pages of 1,000): {} ms, {} objects",
        started.elapsed().as_millis(),
        listed.len()
    );
    drop(listed);
    let started = Instant::now();
    let mut before = store.download(&workspace, "", &dest, &never)?;
    println!(
        "  download (list + 100,000 GETs): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    before.seal(&dest);
    println!(
        "  seal (stat 100,000 files): {} ms",
        started.elapsed().as_millis()
    );
    for i in 0..CHANGED {
        std::fs::write(
            dest.join(format!("f/{:03}/{:06}.txt", i * 9, i * 9000)),
            b"changed",
        )?;
    }
    let started = Instant::now();
    let after = Snapshot::scan(&dest)?;
    println!(
        "  snapshot (scan + hash 100,000 files): {} ms",
        started.elapsed().as_millis()
    );
    let started = Instant::now();
    let rescanned = Snapshot::rescan(&dest, &before)?;
    println!(
        "  sealed rescan (stat 100,000, hash the 10 changed): {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(
        rescanned, after,
        "a sealed rescan sees what a full scan sees"
    );
    let started = Instant::now();
    let changes = diff(&before, &after);
    println!(
        "  diff: {} ms, {} changes",
        started.elapsed().as_millis(),
        changes.len()
    );
    let identity = identity("big");
    let branch = staging_branch_name(&identity);
    let request = StageRequest {
        workspace: &workspace,
        staging_branch: &branch,
        object_prefix: "",
        source_dir: &dest,
        changes: &changes,
        identity: &identity,
    };
    let started = Instant::now();
    let mut created = false;
    store.stage(&request, &mut created, &never)?;
    println!(
        "  stage of {CHANGED} changes: {} ms",
        started.elapsed().as_millis()
    );
    let peak = peak_rss_mib();
    println!(
        "  peak RSS of the process (perago + dev server holding 100,000 objects): {peak} MiB \
         (+{} MiB over the seed)",
        peak.saturating_sub(seeded_rss)
    );
    Ok(())
}

fn print_row(label: &str, phases: Phases) {
    println!(
        "{:<44} {:>12.1} {:>8.1} {:>10.1} {:>10.1}",
        label,
        phases.download.as_secs_f64() * 1e3,
        phases.scan.as_secs_f64() * 1e3,
        phases.stage.as_secs_f64() * 1e3,
        phases.total().as_secs_f64() * 1e3
    );
}
