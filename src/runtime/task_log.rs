//! The `task-log` thread: ships the lines task bodies log through `ctx.log()` to Conductor's
//! task execution log (`POST /api/tasks/{taskId}/log`), where the Conductor UI shows them
//! next to the task.
//!
//! Shipping never delays an attempt or its result: a body's log call only formats the line,
//! redacts configured secret values and offers it to a bounded queue (a full queue drops the
//! line and counts it). The thread sends queued lines one request each over the client's
//! keep-alive pool, in batches as they arrive, with one try per line (a log line is not worth
//! a retry storm). Every line also stays in the worker's own JSONL log.
//!
//! Bounds: at most [`MAX_LINES_PER_ATTEMPT`] lines per attempt (then one notice line), at most
//! [`MAX_LINE_CHARS`] characters per line, at most [`QUEUE_CAPACITY`] lines queued. The thread
//! ends when every worker is gone (after sending what is queued) or, at the halt signal, after
//! at most [`HALT_FLUSH`] more of sending.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, select};

use super::counters::Counters;
use crate::conductor::ConductorApi;
use crate::config::{RuntimeConfig, Secret};
use crate::task::{CancelToken, TaskLogSink};
use crate::util::error_chain;

/// Lines shipped per attempt; later lines stay in the local log only.
pub const MAX_LINES_PER_ATTEMPT: usize = 200;
/// Characters kept of one line.
pub const MAX_LINE_CHARS: usize = 4096;
/// Lines waiting to be sent, for the whole runtime.
pub const QUEUE_CAPACITY: usize = 4096;
/// How long queued lines are still sent after the halt signal.
pub const HALT_FLUSH: Duration = Duration::from_secs(2);

/// What replaces a configured secret value inside a shipped line.
const REDACTED: &str = "**********";

/// One line to ship.
pub(crate) struct LogLine {
    task_id: String,
    text: String,
}

/// The sending side, shared by every attempt of a runtime.
pub(crate) struct Shipper {
    lines: Sender<LogLine>,
    secrets: Vec<Secret>,
    counters: Arc<Counters>,
}

impl Shipper {
    /// A shipper whose lines go to the returned receiver; secrets are the configured secret
    /// values of `config` (lakeFS secret key, Conductor auth secret).
    pub(crate) fn new(
        config: &RuntimeConfig,
        counters: Arc<Counters>,
    ) -> (Arc<Shipper>, Receiver<LogLine>) {
        let (lines, receiver) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let mut secrets = Vec::new();
        if let Some(auth) = config.conductor().and_then(|c| c.auth()) {
            secrets.push(auth.key_secret().clone());
        }
        if let Some(lakefs) = config.lakefs() {
            secrets.push(lakefs.secret_access_key().clone());
        }
        secrets.retain(|secret| !secret.expose().is_empty());
        (
            Arc::new(Shipper {
                lines,
                secrets,
                counters,
            }),
            receiver,
        )
    }

    /// The sink of one attempt.
    pub(crate) fn sink(self: &Arc<Self>, task_id: &str) -> TaskLogSink {
        let shipper = Arc::clone(self);
        let task_id = task_id.to_owned();
        let sent = AtomicUsize::new(0);
        TaskLogSink::new(move |line: &str| {
            let index = sent.fetch_add(1, Ordering::Relaxed);
            let text = match index {
                i if i < MAX_LINES_PER_ATTEMPT => shipper.prepare(line),
                i if i == MAX_LINES_PER_ATTEMPT => format!(
                    "perago: {MAX_LINES_PER_ATTEMPT} log lines sent for this attempt; later lines are in the worker log only"
                ),
                _ => return,
            };
            shipper.offer(LogLine {
                task_id: task_id.clone(),
                text,
            });
        })
    }

    /// Redacts secret values and cuts the line to [`MAX_LINE_CHARS`].
    fn prepare(&self, line: &str) -> String {
        let mut text = line.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.expose()) {
                text = text.replace(secret.expose(), REDACTED);
            }
        }
        if text.chars().count() > MAX_LINE_CHARS {
            text = text.chars().take(MAX_LINE_CHARS).collect();
            text.push('…');
        }
        text
    }

    fn offer(&self, line: LogLine) {
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                Counters::inc(&self.counters.task_logs_dropped);
            }
        }
    }
}

/// The thread's state.
pub(crate) struct LogSender {
    pub(crate) api: Arc<dyn ConductorApi>,
    pub(crate) lines: Receiver<LogLine>,
    pub(crate) halt: CancelToken,
    pub(crate) counters: Arc<Counters>,
}

impl LogSender {
    /// Sends lines until every sender is gone, or until shortly after the halt signal.
    pub(crate) fn run(self) {
        loop {
            select! {
                recv(self.lines) -> line => match line {
                    Ok(line) => self.send(&line),
                    Err(_) => return,
                },
                recv(self.halt.receiver()) -> _ => break,
            }
        }
        let deadline = Instant::now() + HALT_FLUSH;
        while Instant::now() < deadline {
            match self.lines.try_recv() {
                Ok(line) => self.send(&line),
                Err(_) => return,
            }
        }
        let left = self.lines.try_iter().count() as u64;
        Counters::add(&self.counters.task_logs_dropped, left);
    }

    fn send(&self, line: &LogLine) {
        match self.api.add_task_log(&line.task_id, &line.text) {
            Ok(()) => Counters::inc(&self.counters.task_logs_sent),
            Err(error) => {
                Counters::inc(&self.counters.task_logs_dropped);
                log::debug!(
                    task_id = line.task_id.as_str(),
                    error = error_chain(&error).as_str();
                    "task log line not sent"
                );
            }
        }
    }
}
