//! Per-worker JSONL logging (SPEC §11): where log files live, what a line looks like, how the
//! process-global logger is installed, and how old files are deleted.
//!
//! - [`path`]: the safe path-component rule and the log file layout
//!   `<log_root>/<safe target>/worker_id=<safe worker id>/pid=<pid>__started=<YYYYMMDDTHHMMSS+0800>.jsonl`.
//! - [`format`](mod@format): one `log::Record` → one JSON object per line, with structured key-values.
//! - [`init`]: [`init_logging`] installs the global logger with size rotation.
//! - [`panic`]: the panic hook that logs panics as records (with the attempt's identity).
//! - [`repeat`]: [`RepeatLimiter`](repeat::RepeatLimiter), the outage log rule.
//! - [`stderr`](mod@stderr): the stderr-only logger of `perago run`.
//! - [`retention`]: [`sweep_retention`] deletes expired rotated files.
//!
//! Callers log with the `log` macros and structured fields, e.g.
//! `log::info!(task_id = id, phase = "download", duration_ms = 12; "attempt finished")`.
//! The logger never formats secrets on its own; callers pass redacted values only (see
//! [`format`](mod@format)).

pub mod format;
pub mod init;
pub mod panic;
pub mod path;
pub mod repeat;
pub mod retention;
#[cfg(feature = "cli")]
pub mod stderr;

pub use format::LogRole;
#[cfg(feature = "cli")]
pub use init::init_logging_with_stderr;
pub use init::{LogSettings, LoggingError, init_logging};
pub use path::{parse_log_file_name, worker_log_dir};
pub use retention::sweep_retention;
