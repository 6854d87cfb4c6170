//! Log file layout: the safe path-component rule and the per-process log file path.
//!
//! The layout is part of the product contract (SPEC §11) so operators can find a worker's logs
//! without asking the process: `<log_root>/<safe target>/worker_id=<safe worker id>/
//! pid=<pid>__started=<YYYYMMDDTHHMMSS+0800>.jsonl`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};

use crate::util::safe_path_component;

/// The fixed UTC+08:00 offset every perago log timestamp and log file name uses.
///
/// The reference implementation writes all log times in this offset regardless of the host's
/// time zone, so logs from hosts in different zones sort and compare as plain strings.
pub const LOG_UTC_OFFSET: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    // Evaluated at compile time: an out-of-range constant would fail the build, not a run.
    None => panic!("UTC+08:00 is a valid offset"),
};

/// Suffix of every perago log file, live or rotated.
pub const LOG_FILE_SUFFIX: &str = "jsonl";

/// Formats a process start time the way log file names carry it: `YYYYMMDDTHHMMSS+0800`.
///
/// The time is first converted to [`LOG_UTC_OFFSET`], so the same instant always yields the
/// same name whatever offset the caller's value has.
pub fn format_started(started: DateTime<FixedOffset>) -> String {
    started
        .with_timezone(&LOG_UTC_OFFSET)
        .format("%Y%m%dT%H%M%S%z")
        .to_string()
}

/// The directory holding all log files of one worker id of one target:
/// `<log_root>/<safe target>/worker_id=<safe worker id>`.
pub fn worker_log_dir(log_root: &Path, target: &str, worker_id: &str) -> PathBuf {
    log_root
        .join(safe_path_component(target))
        .join(format!("worker_id={}", safe_path_component(worker_id)))
}

/// The live log file of one worker process (SPEC §11):
/// `<log_root>/<safe target>/worker_id=<safe worker id>/pid=<pid>__started=<YYYYMMDDTHHMMSS+0800>.jsonl`.
///
/// Rotated files live next to it and keep its name as a prefix (see
/// [`init_logging`](super::init_logging)).
pub fn log_file_path(
    log_root: &Path,
    target: &str,
    worker_id: &str,
    pid: u32,
    started: DateTime<FixedOffset>,
) -> PathBuf {
    worker_log_dir(log_root, target, worker_id).join(format!(
        "pid={pid}__started={}.{LOG_FILE_SUFFIX}",
        format_started(started)
    ))
}

/// The name of rotated file number `seq` of a live log file: the live file's name with
/// `_r<seq>` (at least five digits) inserted before `.jsonl`, e.g.
/// `pid=42__started=20250304T050607+0800_r00001.jsonl`.
pub fn rotated_file_path(live_file: &Path, seq: u32) -> PathBuf {
    let stem = live_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    live_file.with_file_name(format!("{stem}_r{seq:05}.{LOG_FILE_SUFFIX}"))
}

/// What a file name in a worker log directory is, as far as perago's own layout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFileName {
    /// `pid=<pid>__started=<ts>.jsonl`: the file a process writes to while it runs.
    Live {
        /// The writing process.
        pid: u32,
    },
    /// `pid=<pid>__started=<ts>_r<digits>.jsonl`: a file rotated away by that process.
    Rotated {
        /// The process that wrote it.
        pid: u32,
    },
}

/// Recognises perago's live and rotated log file names; anything else is `None` (and is never
/// touched by retention).
pub fn parse_log_file_name(name: &str) -> Option<LogFileName> {
    let stem = name.strip_suffix(".jsonl")?;
    let rest = stem.strip_prefix("pid=")?;
    let (pid, rest) = rest.split_once("__started=")?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: u32 = pid.parse().ok()?;
    // `YYYYMMDDTHHMMSS+HHMM`: 20 ASCII characters.
    let (started, suffix) = (rest.get(..20)?, rest.get(20..)?);
    let shape_ok = started.bytes().enumerate().all(|(i, b)| match i {
        8 => b == b'T',
        15 => b == b'+' || b == b'-',
        _ => b.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    if suffix.is_empty() {
        return Some(LogFileName::Live { pid });
    }
    let seq = suffix.strip_prefix("_r")?;
    if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) {
        Some(LogFileName::Rotated { pid })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn log_file_path_layout() {
        let started = LOG_UTC_OFFSET
            .with_ymd_and_hms(2025, 3, 4, 5, 6, 7)
            .single()
            .map(|t| t.fixed_offset());
        let Some(started) = started else {
            panic!("valid test time");
        };
        let path = log_file_path(
            Path::new("/var/log/perago"),
            "app.workers/features build",
            "featuresBuild0001",
            4242,
            started,
        );
        assert_eq!(
            path,
            Path::new(
                "/var/log/perago/app.workers_features_build/worker_id=featuresBuild0001/\
                 pid=4242__started=20250304T050607+0800.jsonl"
            )
        );
    }

    #[test]
    fn started_time_is_converted_to_utc_plus_8() {
        let Some(utc) = FixedOffset::east_opt(0) else {
            panic!("valid offset");
        };
        let Some(started) = utc.with_ymd_and_hms(2025, 12, 31, 20, 0, 0).single() else {
            panic!("valid test time");
        };
        assert_eq!(format_started(started), "20260101T040000+0800");
    }

    #[test]
    fn rotated_names_and_parsing() {
        let live = Path::new("/l/t/worker_id=w/pid=42__started=20250304T050607+0800.jsonl");
        let rotated = rotated_file_path(live, 1);
        assert_eq!(
            rotated,
            Path::new("/l/t/worker_id=w/pid=42__started=20250304T050607+0800_r00001.jsonl")
        );
        assert_eq!(
            rotated_file_path(live, 123_456)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            Some("pid=42__started=20250304T050607+0800_r123456.jsonl".to_owned())
        );

        let cases = [
            (
                "pid=42__started=20250304T050607+0800.jsonl",
                Some(LogFileName::Live { pid: 42 }),
            ),
            (
                "pid=42__started=20250304T050607+0800_r00001.jsonl",
                Some(LogFileName::Rotated { pid: 42 }),
            ),
            (
                "pid=7__started=20250304T050607-0130_r9.jsonl",
                Some(LogFileName::Rotated { pid: 7 }),
            ),
            ("pid=42__started=20250304T050607+0800_r.jsonl", None),
            ("pid=42__started=20250304T050607+0800_rx1.jsonl", None),
            ("pid=42__started=20250304T050607+0800.log", None),
            ("pid=__started=20250304T050607+0800.jsonl", None),
            ("pid=-1__started=20250304T050607+0800.jsonl", None),
            ("pid=99999999999__started=20250304T050607+0800.jsonl", None),
            ("pid=42__started=2025030XT050607+0800.jsonl", None),
            ("pid=42__started=short.jsonl", None),
            ("notes.jsonl", None),
            ("pid=42__started=20250304T050607+0800_r00001.jsonl.gz", None),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_log_file_name(name), expected, "name {name:?}");
        }
    }
}
