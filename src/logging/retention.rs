//! Log retention: deletes expired log files of one worker log directory.
//!
//! Runs once at [`init_logging`](super::init_logging) and then from the runtime's GC timer
//! thread, so a long-running worker keeps its log directory bounded without a separate job.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::path::{LogFileName, parse_log_file_name};
use crate::util::pid_is_alive;

/// Deletes the expired log files in one worker log directory and returns how many it deleted.
///
/// A file is deleted only if all of these hold:
/// - its name is one of perago's own log file names (see
///   [`parse_log_file_name`]); any other file is left alone;
/// - it is a regular file (symlinks and directories are never touched);
/// - its modification time is more than `retention` before `now`;
/// - it is a rotated file, or it is a live file whose process is no longer alive. The live
///   file of this process, and of any other running process, is never deleted, however long
///   that process has been idle.
///
/// A missing directory deletes nothing. Errors on single files do not stop the sweep; the
/// first one is returned after every other file was tried.
pub fn sweep_retention(dir: &Path, retention: Duration, now: SystemTime) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let own_pid = std::process::id();
    let mut deleted = 0;
    let mut first_error = None;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let name = entry.file_name();
        let Some(kind) = name.to_str().and_then(parse_log_file_name) else {
            continue;
        };
        let deletable_kind = match kind {
            LogFileName::Rotated { .. } => true,
            LogFileName::Live { pid } => pid != own_pid && !pid_is_alive(pid),
        };
        if !deletable_kind {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks.
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        if !metadata.is_file() {
            continue;
        }
        let Ok(modified) = metadata.modified() else {
            continue;
        };
        // A file from the future (clock step) has age zero and is kept.
        let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
        if age <= retention {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn touch(dir: &Path, name: &str, modified: SystemTime) {
        let path = dir.join(name);
        let file = match File::create(&path) {
            Ok(f) => f,
            Err(e) => panic!("create {}: {e}", path.display()),
        };
        if let Err(e) = file.set_modified(modified) {
            panic!("set mtime {}: {e}", path.display());
        }
    }

    fn dead_pid() -> u32 {
        let mut child = match std::process::Command::new("true").spawn() {
            Ok(c) => c,
            Err(e) => panic!("spawn true: {e}"),
        };
        let pid = child.id();
        if let Err(e) = child.wait() {
            panic!("wait: {e}");
        }
        pid
    }

    #[test]
    fn deletes_only_old_rotated_files_and_dead_live_files() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let dir = tmp.path();
        let now = SystemTime::now();
        let old = now - 10 * DAY;
        let young = now - DAY;
        let own = std::process::id();
        let dead = dead_pid();
        let ts = "20250304T050607+0800";

        let expected_deleted = [
            format!("pid={own}__started={ts}_r00001.jsonl"),
            format!("pid={dead}__started={ts}_r00002.jsonl"),
            format!("pid={dead}__started={ts}.jsonl"),
        ];
        let expected_kept = [
            // Young rotated file.
            format!("pid={own}__started={ts}_r00003.jsonl"),
            // Our own live file, however old.
            format!("pid={own}__started={ts}.jsonl"),
            // Not a perago log name.
            "notes.jsonl".to_owned(),
            format!("pid={own}__started={ts}_r00001.jsonl.gz"),
        ];
        for name in &expected_deleted {
            touch(dir, name, old);
        }
        touch(dir, &expected_kept[0], young);
        for name in &expected_kept[1..] {
            touch(dir, name, old);
        }
        // A directory with a log-file name is never touched.
        let dir_named_like_log = dir.join(format!("pid={dead}__started={ts}_r00009.jsonl"));
        if let Err(e) = fs::create_dir(&dir_named_like_log) {
            panic!("mkdir: {e}");
        }

        match sweep_retention(dir, 7 * DAY, now) {
            Ok(n) => assert_eq!(n, expected_deleted.len()),
            Err(e) => panic!("sweep failed: {e}"),
        }
        for name in &expected_deleted {
            assert!(!dir.join(name).exists(), "{name} should be deleted");
        }
        for name in &expected_kept {
            assert!(dir.join(name).exists(), "{name} should be kept");
        }
        assert!(dir_named_like_log.is_dir());
    }

    #[test]
    fn missing_directory_deletes_nothing() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let result = sweep_retention(&tmp.path().join("absent"), DAY, SystemTime::now());
        assert!(matches!(result, Ok(0)), "{result:?}");
    }
}
