//! Installs the process-global `log` logger: JSON lines into the worker's log file, rotated by
//! size.
//!
//! flexi_logger owns the global installation and level filtering; the file itself is owned
//! by `JsonFileWriter`, a flexi_logger [`LogWriter`]. A custom writer is used instead of
//! flexi_logger's own file writer for two reasons: its format hook is a plain `fn` pointer, so
//! the per-process fields (`worker_id`, `target`, `role`) could only reach it through a global,
//! while a writer simply owns them; and the SPEC fixes the live file's exact name, which
//! flexi_logger's rotating writer would decorate with an infix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use flexi_logger::writers::LogWriter;
use flexi_logger::{DeferredNow, FlexiLoggerError, Logger, LoggerHandle};
use log::{LevelFilter, Record};
use parking_lot::Mutex;

use super::format::{LineContext, LogRole, text_line, write_json_line};
use super::path::{LOG_UTC_OFFSET, log_file_path, rotated_file_path};
use super::retention::sweep_retention;
use crate::config::LogFormat;

/// Everything [`init_logging`] needs, already validated by the runtime configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Root of all perago logs (`PERAGO_LOG_ROOT`).
    pub log_root: PathBuf,
    /// Size in bytes at which the live file is rotated (`PERAGO_LOG_FILE_MAX_SIZE`).
    pub max_size: u64,
    /// Rotated files older than this are deleted (`PERAGO_LOG_RETENTION`).
    pub retention: Duration,
    /// The perago target this process serves.
    pub target: String,
    /// This process's worker id.
    pub worker_id: String,
    /// Whether this process is a thread runner or the process-mode supervisor.
    pub role: LogRole,
    /// Records below this level are dropped (perago logs at `Info` by default).
    pub level: LevelFilter,
}

/// Failure to set up logging.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The worker log directory could not be created.
    #[error("failed to create log directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The live log file could not be opened.
    #[error("failed to open log file {}", path.display())]
    OpenFile {
        /// The live log file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The global logger could not be installed (usually: one is already installed).
    #[error("failed to install the process logger")]
    Install {
        /// The cause.
        #[source]
        source: FlexiLoggerError,
    },
}

/// Keeps logging alive; flushes the log file when dropped.
///
/// Hold it for the whole life of the process (typically in `main`). The `log` crate's global
/// logger cannot be uninstalled, so records logged after the guard is dropped may be lost.
#[must_use = "dropping the guard shuts logging down"]
pub struct LoggingGuard {
    handle: LoggerHandle,
    log_file: PathBuf,
}

impl LoggingGuard {
    /// The live log file (exactly the SPEC §11 path).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The worker log directory, to pass to [`sweep_retention`] from the GC timer.
    pub fn log_dir(&self) -> &Path {
        self.log_file.parent().unwrap_or(Path::new("."))
    }

    /// Flushes buffered records to the file.
    pub fn flush(&self) {
        self.handle.flush();
    }
}

impl Drop for LoggingGuard {
    fn drop(&mut self) {
        self.handle.flush();
    }
}

impl std::fmt::Debug for LoggingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggingGuard")
            .field("log_file", &self.log_file)
            .finish_non_exhaustive()
    }
}

/// Installs the process-global logger writing JSON lines to this process's log file, then
/// deletes expired rotated files of the same worker directory.
///
/// The file is `log_file_path(log_root, target, worker_id, <this pid>, <now in UTC+08:00>)`.
/// Each record becomes one line (see `record_to_json` in the `format` module). Before a
/// record would take the live file past `max_size` bytes, the live file is renamed to
/// `<name>_r<NNNNN>.jsonl` and a fresh live file is started under the same name, so no file
/// exceeds `max_size` unless a single record does.
///
/// Nothing is written to stdout or stderr for log records: stderr belongs to the CLI. Only if
/// the logger itself fails (for example the disk is full) does flexi_logger report that on
/// stderr, since there is nowhere else to say it.
///
/// Secrets: the logger formats only what callers pass; see the `format` module.
///
/// Can succeed once per process: a second call fails with [`LoggingError::Install`].
pub fn init_logging(settings: &LogSettings) -> Result<LoggingGuard, LoggingError> {
    init_logging_with_stderr(settings, None)
}

/// [`init_logging`], also writing every record that passes the level filter to stderr in
/// `stderr` format (SPEC §15: `perago start` in every role). The file keeps its path,
/// rotation and fields either way.
pub fn init_logging_with_stderr(
    settings: &LogSettings,
    stderr: Option<LogFormat>,
) -> Result<LoggingGuard, LoggingError> {
    let started = Utc::now().with_timezone(&LOG_UTC_OFFSET).fixed_offset();
    let log_file = log_file_path(
        &settings.log_root,
        &settings.target,
        &settings.worker_id,
        std::process::id(),
        started,
    );
    let ctx = LineContext {
        worker_id: settings.worker_id.clone(),
        target: settings.target.clone(),
        role: settings.role,
    };
    let existed = log_file.exists();
    let mut writer = JsonFileWriter::open(log_file.clone(), ctx, settings.max_size)?;
    writer.stderr = stderr;
    let handle = match Logger::with(settings.level)
        .log_to_writer(Box::new(writer))
        .start()
    {
        Ok(handle) => handle,
        Err(source) => {
            // Another logger is installed: leave no empty live file of ours behind.
            if !existed {
                let _ = fs::remove_file(&log_file);
            }
            return Err(LoggingError::Install { source });
        }
    };
    let guard = LoggingGuard { handle, log_file };
    // From here on a panic is a log record, not raw text on stderr.
    super::panic::install_panic_hook();

    match sweep_retention(guard.log_dir(), settings.retention, SystemTime::now()) {
        Ok(0) => {}
        Ok(deleted) => log::info!(deleted; "deleted expired log files"),
        Err(e) => log::warn!(
            error:% = e, log_dir:% = guard.log_dir().display();
            "log retention sweep failed"
        ),
    }
    Ok(guard)
}

/// A flexi_logger writer that formats each record as one JSON line and appends it to a
/// size-rotated file.
///
/// # Threads
///
/// `write` is called on the logging thread. The live file and its byte count sit behind one
/// mutex, held only for the rotate-and-append of a single, pre-formatted line, so lines from
/// different threads never interleave and two threads never both rotate.
pub(crate) struct JsonFileWriter {
    ctx: LineContext,
    /// Also write each record to stderr, in this format.
    stderr: Option<LogFormat>,
    max_size: u64,
    live_path: PathBuf,
    live: Mutex<LiveFile>,
}

/// The file currently written and what rotation needs to know about it.
struct LiveFile {
    file: File,
    /// Bytes in the live file; decides rotation without a `stat` per record.
    bytes: u64,
    /// Number of the next rotated file.
    next_seq: u32,
}

impl JsonFileWriter {
    /// Creates the directory and opens (appending, so nothing is ever truncated) the live
    /// file, so that an unwritable log root fails startup instead of the first record.
    pub(crate) fn open(
        live_path: PathBuf,
        ctx: LineContext,
        max_size: u64,
    ) -> Result<Self, LoggingError> {
        if let Some(dir) = live_path.parent() {
            fs::create_dir_all(dir).map_err(|source| LoggingError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_error = |source| LoggingError::OpenFile {
            path: live_path.clone(),
            source,
        };
        let file = open_append(&live_path).map_err(open_error)?;
        let bytes = file.metadata().map_err(open_error)?.len();
        Ok(Self {
            ctx,
            stderr: None,
            max_size,
            live: Mutex::new(LiveFile {
                file,
                bytes,
                next_seq: 1,
            }),
            live_path,
        })
    }

    /// Appends one complete line, rotating first if the line would overflow the live file.
    fn append_line(&self, line: &[u8]) -> io::Result<()> {
        let mut live = self.live.lock();
        let len = line.len() as u64;
        // An empty live file always takes the line, so an oversized record cannot cause a
        // rotation loop of empty files.
        let rotation = if live.bytes > 0 && live.bytes.saturating_add(len) > self.max_size {
            self.rotate(&mut live)
        } else {
            Ok(())
        };
        // Even if rotation failed the record is kept, in the old file.
        live.file.write_all(line)?;
        live.bytes = live.bytes.saturating_add(len);
        rotation
    }

    /// Renames the live file to the next free rotated name and opens a fresh live file.
    fn rotate(&self, live: &mut LiveFile) -> io::Result<()> {
        let mut rotated = rotated_file_path(&self.live_path, live.next_seq);
        // Names are unique per process (pid and start second), so a taken name only happens
        // if files were restored by hand; skip past them rather than overwrite.
        while fs::symlink_metadata(&rotated).is_ok() {
            live.next_seq = live.next_seq.saturating_add(1);
            rotated = rotated_file_path(&self.live_path, live.next_seq);
        }
        match fs::rename(&self.live_path, &rotated) {
            Ok(()) => live.next_seq = live.next_seq.saturating_add(1),
            // The live file vanished (deleted by hand, or an earlier rotation renamed it but
            // could not open its successor): just start a new one.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Until the new file is open, writes keep going to the renamed file: nothing is lost.
        live.file = open_append(&self.live_path)?;
        live.bytes = 0;
        Ok(())
    }
}

/// Writes one record to stderr in one `write` call (lines from threads and from children
/// sharing the stream never interleave mid-line). A failed stderr write is ignored: the file
/// still has the record.
pub(crate) fn write_stderr(format: LogFormat, json_line: &[u8], text: impl FnOnce() -> String) {
    let mut stderr = io::stderr().lock();
    let _ = match format {
        LogFormat::Json => stderr.write_all(json_line),
        LogFormat::Text => stderr.write_all(text().as_bytes()),
    };
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogWriter for JsonFileWriter {
    fn write(&self, now: &mut DeferredNow, record: &Record<'_>) -> io::Result<()> {
        let time = now.now().with_timezone(&LOG_UTC_OFFSET).fixed_offset();
        let current = std::thread::current();
        let thread = current.name().unwrap_or("unnamed");
        let mut line = Vec::with_capacity(256);
        write_json_line(&mut line, &self.ctx, time, thread, record)?;
        if let Some(format) = self.stderr {
            write_stderr(format, &line, || text_line(&self.ctx, time, thread, record));
        }
        self.append_line(&line)
    }

    fn flush(&self) -> io::Result<()> {
        self.live.lock().file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    fn writer(dir: &Path, max_size: u64) -> (JsonFileWriter, PathBuf) {
        let live = dir.join("t/worker_id=w/pid=42__started=20250304T050607+0800.jsonl");
        let ctx = LineContext {
            worker_id: "w".to_owned(),
            target: "t".to_owned(),
            role: LogRole::ThreadRunner,
        };
        match JsonFileWriter::open(live.clone(), ctx, max_size) {
            Ok(w) => (w, live),
            Err(e) => panic!("open: {e}"),
        }
    }

    fn log_n(w: &JsonFileWriter, n: usize) {
        for i in 0..n {
            let kvs = [("seq", i)];
            let result = w.write(
                &mut DeferredNow::new(),
                &Record::builder()
                    .level(Level::Info)
                    .args(format_args!("record number {i} with some padding text"))
                    .key_values(&kvs)
                    .build(),
            );
            if let Err(e) = result {
                panic!("write {i}: {e}");
            }
        }
    }

    fn read(path: &Path) -> String {
        match fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => panic!("read {}: {e}", path.display()),
        }
    }

    #[test]
    fn rotates_before_a_record_would_exceed_max_size() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let max_size = 1024;
        let (w, live) = writer(tmp.path(), max_size);
        log_n(&w, 40);

        let dir = live.parent().unwrap_or(tmp.path());
        let mut names: Vec<String> = match fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) => panic!("read_dir: {e}"),
        };
        // Oldest first: rotated files by number, then the live file.
        names.sort_by_key(|n| (!n.contains("_r"), n.clone()));
        assert!(names.len() >= 3, "expected several rotations: {names:?}");
        assert_eq!(
            names.last().map(String::as_str),
            Some("pid=42__started=20250304T050607+0800.jsonl"),
            "the live file keeps its exact name"
        );
        assert_eq!(
            names[0],
            "pid=42__started=20250304T050607+0800_r00001.jsonl"
        );

        let mut seqs = Vec::new();
        for name in &names {
            let text = read(&dir.join(name));
            assert!(
                text.len() as u64 <= max_size,
                "{name} is {} bytes",
                text.len()
            );
            for line in text.lines() {
                let value: serde_json::Value = match serde_json::from_str(line) {
                    Ok(v) => v,
                    Err(e) => panic!("bad line in {name}: {e}: {line}"),
                };
                seqs.push(value["seq"].as_u64());
            }
        }
        // Every record is present exactly once, in order across the files.
        let expected: Vec<Option<u64>> = (0..40).map(Some).collect();
        assert_eq!(seqs, expected);
    }

    #[test]
    fn an_oversized_record_gets_a_file_of_its_own() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let (w, live) = writer(tmp.path(), 10);
        log_n(&w, 3);
        let text = read(&live);
        assert_eq!(text.lines().count(), 1);
        assert!(rotated_file_path(&live, 1).is_file());
        assert!(rotated_file_path(&live, 2).is_file());
        assert!(!rotated_file_path(&live, 3).exists());
    }

    #[test]
    fn reopening_appends_instead_of_truncating() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let (w, live) = writer(tmp.path(), 1 << 20);
        log_n(&w, 2);
        drop(w);
        let (w, _) = writer(tmp.path(), 1 << 20);
        log_n(&w, 1);
        assert_eq!(read(&live).lines().count(), 3);
    }

    #[test]
    fn unwritable_log_root_fails_at_open() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let blocker = tmp.path().join("file");
        if let Err(e) = fs::write(&blocker, b"x") {
            panic!("write: {e}");
        }
        let result = JsonFileWriter::open(
            blocker.join("sub/x.jsonl"),
            LineContext {
                worker_id: "w".to_owned(),
                target: "t".to_owned(),
                role: LogRole::Supervisor,
            },
            100,
        );
        match result {
            Err(LoggingError::CreateDir { path, .. }) => assert_eq!(path, blocker.join("sub")),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("expected an error"),
        }
    }
}
