//! A stderr-only logger for commands without a log file (`perago run`): the same records in
//! the same `text` or `json` format as `perago start`'s stderr, so task-body `ctx.log()`
//! lines are visible there too (SPEC §15).

use chrono::Utc;
use log::{LevelFilter, Log, Metadata, Record};

use super::format::{LineContext, text_line, write_json_line};
use super::init::write_stderr;
use super::path::LOG_UTC_OFFSET;
use crate::config::LogFormat;

struct StderrLogger {
    ctx: LineContext,
    format: LogFormat,
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let time = Utc::now().with_timezone(&LOG_UTC_OFFSET).fixed_offset();
        let current = std::thread::current();
        let thread = current.name().unwrap_or("unnamed");
        let mut json = Vec::with_capacity(256);
        if write_json_line(&mut json, &self.ctx, time, thread, record).is_err() {
            return;
        }
        write_stderr(self.format, &json, || {
            text_line(&self.ctx, time, thread, record)
        });
    }

    fn flush(&self) {}
}

/// Installs the stderr logger as the process logger. Returns `false` if a logger was
/// already installed (then nothing changes).
pub fn init_stderr_logging(ctx: LineContext, format: LogFormat, level: LevelFilter) -> bool {
    let logger = StderrLogger { ctx, format, level };
    if log::set_boxed_logger(Box::new(logger)).is_err() {
        return false;
    }
    log::set_max_level(level);
    true
}
