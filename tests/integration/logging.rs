//! End-to-end test of the process-global JSONL logger.
//!
//! The `log` crate allows one global logger per process, so this module holds exactly one
//! test, and it needs its own process: cargo nextest runs every test in a process of its own.
//! Under `cargo test` another test of the binary may have installed a logger first; the test
//! then fails saying so rather than testing someone else's logger.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use log::LevelFilter;
use perago::__private::{
    LogFileName, LogRole, LogSettings, LoggingError, init_logging, parse_log_file_name,
    worker_log_dir,
};
use serde_json::Value;

const MAX_SIZE: u64 = 2 * 1024;
const RECORDS: usize = 60;
const DAY: Duration = Duration::from_secs(24 * 3600);

fn read_lines(path: &Path) -> Vec<Value> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    assert!(
        text.len() as u64 <= MAX_SIZE,
        "{} has {} bytes, more than the rotation size",
        path.display(),
        text.len()
    );
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => panic!("invalid JSON line in {}: {e}: {line}", path.display()),
        })
        .collect()
}

#[test]
fn global_logger_writes_rotated_jsonl_with_structured_fields() {
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => panic!("tempdir: {e}"),
    };
    let settings = LogSettings {
        log_root: tmp.path().to_path_buf(),
        max_size: MAX_SIZE,
        retention: 7 * DAY,
        target: "app.workers.features_build".to_owned(),
        worker_id: "featuresBuild0001".to_owned(),
        role: LogRole::ThreadRunner,
        level: LevelFilter::Info,
    };

    // An expired rotated file from an earlier run: retention at startup deletes it.
    let dir = worker_log_dir(&settings.log_root, &settings.target, &settings.worker_id);
    if let Err(e) = fs::create_dir_all(&dir) {
        panic!("mkdir: {e}");
    }
    let expired = dir.join("pid=1__started=20200101T000000+0800_r00001.jsonl");
    match fs::File::create(&expired) {
        Ok(f) => {
            if let Err(e) = f.set_modified(SystemTime::now() - 30 * DAY) {
                panic!("set mtime: {e}");
            }
        }
        Err(e) => panic!("create: {e}"),
    }

    let guard = match init_logging(&settings) {
        Ok(g) => g,
        Err(LoggingError::Install { .. }) => panic!(
            "a global logger is already installed in this test process; \
             run the integration tests with cargo nextest (one process per test)"
        ),
        Err(e) => panic!("init_logging: {e}"),
    };
    assert_eq!(guard.log_dir(), dir);
    let live_name = guard
        .log_file()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(
        parse_log_file_name(&live_name),
        Some(LogFileName::Live {
            pid: std::process::id()
        }),
        "live file name {live_name}"
    );
    assert!(!expired.exists(), "expired rotated file deleted at init");

    log::info!(log_file:% = guard.log_file().display(); "{}", LogRole::ThreadRunner.startup_message());
    log::debug!("below the level: dropped");
    let worker = std::thread::Builder::new()
        .name("worker-1".to_owned())
        .spawn(|| {
            for i in 0..RECORDS {
                let task_id = format!("task-{i}");
                log::info!(
                    task_id = task_id.as_str(),
                    phase = "download",
                    duration_ms = 12_u64,
                    retry_count = i,
                    ok = true;
                    "attempt finished"
                );
            }
        });
    match worker {
        Ok(handle) => {
            if handle.join().is_err() {
                panic!("worker thread panicked");
            }
        }
        Err(e) => panic!("spawn: {e}"),
    }
    guard.flush();

    // A second installation in the same process is refused, and leaves no live file behind
    // even when the clock has moved to another second (another file name) meanwhile.
    let refused_from = SystemTime::now();
    loop {
        assert!(matches!(
            init_logging(&settings),
            Err(LoggingError::Install { .. })
        ));
        if refused_from
            .elapsed()
            .is_ok_and(|e| e > Duration::from_millis(1100))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Oldest first: rotated files by number, then the live file.
    let mut files: Vec<_> = match fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) => panic!("read_dir: {e}"),
    };
    files.sort_by_key(|p| (p.as_path() == guard.log_file(), p.clone()));
    assert!(
        files.len() >= 3,
        "expected rotation at {MAX_SIZE} bytes: {files:?}"
    );
    assert_eq!(files.last().map(|p| p.as_path()), Some(guard.log_file()));
    for file in &files[..files.len() - 1] {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            matches!(
                parse_log_file_name(&name),
                Some(LogFileName::Rotated { .. })
            ),
            "{name} is a rotated file"
        );
        assert!(name.starts_with(live_name.trim_end_matches(".jsonl")));
    }

    let lines: Vec<Value> = files.iter().flat_map(|f| read_lines(f)).collect();
    for line in &lines {
        for key in ["time", "level", "message", "thread", "worker_id", "target"] {
            assert!(line.get(key).is_some(), "missing {key}: {line}");
        }
        assert_eq!(line["worker_id"], "featuresBuild0001");
        assert_eq!(line["target"], "app.workers.features_build");
        assert_eq!(line["role"], "thread_runner");
        let time = line["time"].as_str().unwrap_or_default();
        assert!(time.ends_with("+08:00"), "time {time}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok(),
            "time {time} is RFC 3339"
        );
        assert_ne!(line["message"], "below the level: dropped");
    }

    let retention = &lines[0];
    assert_eq!(retention["message"], "deleted expired log files");
    assert_eq!(retention["deleted"], 1);

    let startup = &lines[1];
    assert_eq!(startup["message"], "thread runner started");
    assert_eq!(startup["level"], "INFO");
    assert!(startup["thread"].is_string());
    assert_eq!(startup["log_file"], guard.log_file().display().to_string());

    let attempts: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "attempt finished")
        .collect();
    assert_eq!(attempts.len(), RECORDS, "every record written exactly once");
    for (i, line) in attempts.iter().enumerate() {
        assert_eq!(line["task_id"], format!("task-{i}"));
        assert_eq!(line["phase"], "download");
        assert_eq!(line["duration_ms"], 12);
        assert_eq!(line["retry_count"], i);
        assert_eq!(line["ok"], true);
        assert_eq!(line["thread"], "worker-1");
    }
    assert_eq!(lines.len(), RECORDS + 2);
}
