//! The `worker-N` threads: each runs one attempt at a time and reports its result.
//!
//! A worker announces a free slot to the poller, receives a task on the job channel, runs it
//! with [`run_attempt`] (which contains body panics, so nothing is caught here), reports the
//! result with retries, and — when update-v2 hands back the next task — runs that one at once
//! on the same slot. The loop ends when the job channel disconnects (the poller stopped), so
//! draining needs no extra signal.
//!
//! While draining, results go out without asking for a next task, so nothing new is taken on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, select};
use log::kv::{self, Key, Source, Value, VisitSource};

use parking_lot::Mutex;

use super::counters::Counters;
use super::fence::ConductorFence;
use super::health::{Dependency, Health, InFlight, InFlightGuard};
use super::identity::attempt_identity;
use super::lease::{Leases, lease_interval};
use super::observed::exception_kind;
use super::shutdown::{PanicGuard, Shutdown};
use crate::conductor::{ConductorApi, PolledTask, TaskUpdate};
use crate::execution::{
    AttemptEnv, AttemptObserver, AttemptReport, WorkspaceStore, run_attempt_observed,
    undecodable_task_report,
};
use crate::logging::repeat::{Repeat, RepeatLimiter};
use crate::metrics::{MetricRecorder, TaskMetrics, WorkspaceOp};
use crate::result::{Phase, TaskStatus};
use crate::task::{AttemptIdentity, Task};
use crate::util::backoff::RetryPolicy;
use crate::util::cancel_io::cancel_scope;
use crate::util::error_chain;
use crate::workspace::LiveOwners;

/// What every worker shares, behind one `Arc`.
pub(crate) struct Shared {
    pub(crate) task: Task,
    pub(crate) api: Arc<dyn ConductorApi>,
    pub(crate) store: Option<Arc<dyn WorkspaceStore>>,
    pub(crate) fence: ConductorFence,
    pub(crate) owners: LiveOwners,
    pub(crate) workspace_root: PathBuf,
    pub(crate) failure_reason_max_length: usize,
    pub(crate) worker_id: String,
    pub(crate) shutdown: Shutdown,
    pub(crate) counters: Arc<Counters>,
    pub(crate) update_retry: RetryPolicy,
    /// Ships `ctx.log()` lines to Conductor's task log.
    pub(crate) task_log: Option<Arc<super::task_log::Shipper>>,
    pub(crate) metrics: TaskMetrics,
    pub(crate) health: Arc<Health>,
    pub(crate) in_flight: Arc<InFlight>,
    /// Workers running an attempt now (`active_workers`, `runtime.busy_slots`).
    pub(crate) busy: std::sync::atomic::AtomicU64,
    /// Result update failures across workers, for the outage log rule.
    pub(crate) update_failures: Mutex<RepeatLimiter>,
}

/// Tells `/status` which phase an attempt is in and gives the body its recorder.
struct Observer<'a> {
    guard: &'a InFlightGuard<'a>,
    recorder: MetricRecorder,
}

impl AttemptObserver for Observer<'_> {
    fn phase(&self, phase: Phase) {
        self.guard.set_phase(phase.as_str());
    }

    fn recorder(&self) -> MetricRecorder {
        self.recorder.clone()
    }
}

/// Counts bytes written, to size an output without keeping it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One worker thread's state.
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) jobs: Receiver<PolledTask>,
    /// Where this worker announces that it is free.
    pub(crate) slots: Sender<()>,
    pub(crate) leases: Leases,
    /// Held until the thread ends: when every worker's copy is gone, the runtime knows the
    /// drain is over.
    pub(crate) _alive: Sender<()>,
    /// Turns a panic in this loop into a runtime shutdown.
    pub(crate) _panic: PanicGuard,
}

impl Worker {
    /// The worker's main loop.
    pub(crate) fn run(self) {
        // The poller may already be gone (startup failed or shutdown began): that is fine.
        let _ = self.slots.send(());
        for task in self.jobs.iter() {
            let mut next = Some(task);
            while let Some(task) = next.take() {
                next = self.execute(task);
            }
            let _ = self.slots.send(());
        }
    }

    /// Runs one attempt and reports it; returns the next task if update-v2 handed one back.
    fn execute(&self, task: PolledTask) -> Option<PolledTask> {
        let shared = &*self.shared;
        let started = Instant::now();
        let identity = attempt_identity(&task, &shared.worker_id);
        if let Some(reason) = &task.decode_error {
            // Nothing to run: report the decode error so Conductor fails (and retries) this
            // task instead of timing it out, and move on.
            let report = undecodable_task_report(reason, shared.failure_reason_max_length);
            return self.finish(&identity, &task, report, started, None);
        }
        let interval = lease_interval(task.response_timeout());
        if let Some(interval) = interval {
            self.leases.start(
                &task.task_id,
                &task.workflow_instance_id,
                interval,
                &shared.counters,
            );
        }
        let guard = shared.in_flight.start(
            shared.task.name(),
            &task.task_id,
            &task.workflow_instance_id,
        );
        let busy = shared
            .busy
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        shared.metrics.attempt_started(busy);
        let cancel = shared.shutdown.register_attempt();
        let env = AttemptEnv {
            workspace_root: &shared.workspace_root,
            store: shared.store.as_deref(),
            fence: &shared.fence,
            owners: &shared.owners,
            failure_reason_max_length: shared.failure_reason_max_length,
            cancel: cancel.token(),
            task_log: shared.task_log.as_ref().map(|s| s.sink(&task.task_id)),
            previous_output: Some(&task.output_data),
        };
        let observer = Observer {
            guard: &guard,
            recorder: shared.metrics.recorder(),
        };
        let report =
            run_attempt_observed(&shared.task, &identity, &task.input_data, &env, &observer);
        drop(cancel);
        let busy = shared
            .busy
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
            - 1;
        shared.metrics.set_busy(busy);
        // The lease must end before the result is sent, or a late heartbeat could race it.
        if interval.is_some() {
            self.leases.stop(&task.task_id);
        }
        self.finish(&identity, &task, report, started, Some(guard))
    }

    /// Counts, logs and reports a finished attempt; returns the next task if update-v2 handed
    /// one back.
    fn finish(
        &self,
        identity: &AttemptIdentity,
        task: &PolledTask,
        report: AttemptReport,
        started: Instant,
        guard: Option<InFlightGuard<'_>>,
    ) -> Option<PolledTask> {
        let shared = &*self.shared;
        let status = report.result.status;
        match status {
            TaskStatus::Completed => Counters::inc(&shared.counters.completed),
            TaskStatus::InProgress => Counters::inc(&shared.counters.in_progress),
            TaskStatus::Failed | TaskStatus::FailedWithTerminalError => {
                Counters::inc(&shared.counters.failed);
            }
        }
        log_summary(identity, task, &report, started.elapsed(), shared);
        record_metrics(&report, started.elapsed(), shared);

        if let Some(guard) = &guard {
            guard.set_phase("report");
        }
        let fetch_next = !shared.shutdown.is_requested();
        let update = TaskUpdate::result(task, &shared.worker_id, report.result);
        let next = self.report(identity, &update, fetch_next);
        drop(guard);
        if next.is_some() {
            Counters::inc(&shared.counters.polled);
        } else {
            Counters::dec(&shared.counters.in_flight);
        }
        next
    }

    /// Sends the final update, retrying retryable failures with backoff; a result that cannot
    /// be delivered is logged with the attempt's full identity and counted as lost.
    fn report(
        &self,
        identity: &AttemptIdentity,
        update: &TaskUpdate,
        fetch_next: bool,
    ) -> Option<PolledTask> {
        let shared = &*self.shared;
        let halt = shared.shutdown.halt_token();
        let mut delays = shared.update_retry.delays();
        let mut tries = 0u32;
        let started = Instant::now();
        let error = loop {
            tries += 1;
            // A forced runtime stops waiting for Conductor once the grace is over.
            let sent = {
                let _scope = cancel_scope(halt.receiver());
                shared.api.update(update, fetch_next)
            };
            match sent {
                Ok(next) => {
                    shared.metrics.update_done(started.elapsed(), Ok(()));
                    if let Some(failed) = shared.update_failures.lock().success() {
                        log::info!(failed_updates = failed; "result updates recovered");
                    }
                    return next;
                }
                Err(error) if error.is_retryable() => {
                    let Some(delay) = delays.next() else {
                        break error;
                    };
                    Counters::inc(&shared.counters.update_retries);
                    let repeat = shared.update_failures.lock().failure(Instant::now());
                    match repeat {
                        Repeat::First => log::warn!(
                            task_id = identity.task_id.as_str(),
                            execution_id = identity.execution_id.as_str(),
                            error = error_chain(&error).as_str(),
                            retry_in_ms = delay.as_millis() as u64;
                            "result update failed; retrying"
                        ),
                        Repeat::Summary { suppressed, over } => log::warn!(
                            task_id = identity.task_id.as_str(),
                            execution_id = identity.execution_id.as_str(),
                            error = error_chain(&error).as_str(),
                            failures = suppressed,
                            over_s = over.as_secs(),
                            retry_in_ms = delay.as_millis() as u64;
                            "result updates still failing; retrying"
                        ),
                        Repeat::Quiet => {}
                    }
                    select! {
                        recv(halt.receiver()) -> _ => break error,
                        recv(after(delay)) -> _ => {}
                    }
                }
                Err(error) => break error,
            }
        };
        Counters::inc(&shared.counters.updates_lost);
        shared
            .metrics
            .update_done(started.elapsed(), Err(exception_kind(&error)));
        shared.metrics.update_lost();
        log::error!(
            task_id = identity.task_id.as_str(),
            workflow_instance_id = identity.workflow_instance_id.as_str(),
            execution_id = identity.execution_id.as_str(),
            task_def_name = identity.task_def_name.as_str(),
            reference_task_name = identity.reference_task_name.as_str(),
            retry_count = identity.retry_count,
            seq = identity.seq,
            iteration = identity.iteration,
            status = update.status.as_str(),
            tries,
            error = error_chain(&error).as_str();
            "result update lost; Conductor will time the attempt out and retry it"
        );
        None
    }
}

/// The `<phase>_ms` key of each phase.
fn phase_key(phase: Phase) -> &'static str {
    match phase {
        Phase::Input => "input_ms",
        Phase::Download => "download_ms",
        Phase::PreGuardrail => "pre_guardrail_ms",
        Phase::Body => "body_ms",
        Phase::PostGuardrail => "post_guardrail_ms",
        Phase::AttemptFence => "attempt_fence_ms",
        Phase::Stage => "stage_ms",
        Phase::Publish => "publish_ms",
        Phase::Cleanup => "cleanup_ms",
    }
}

/// The structured fields of the one `attempt finished` record per attempt.
struct AttemptSummary<'a> {
    identity: &'a AttemptIdentity,
    poll_count: u32,
    status: &'static str,
    failed_phase: Option<&'static str>,
    /// The reason sent to Conductor (already truncated), when not completed.
    reason: Option<&'a str>,
    /// Milliseconds per phase, in first-seen order (a phase that ran twice, like the attempt
    /// fence, is summed).
    phases: Vec<(&'static str, f64)>,
    duration_ms: f64,
    changed_files: Option<u64>,
}

impl Source for AttemptSummary<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), kv::Error> {
        let id = self.identity;
        visitor.visit_pair(Key::from_str("task_id"), Value::from(id.task_id.as_str()))?;
        visitor.visit_pair(
            Key::from_str("workflow_instance_id"),
            Value::from(id.workflow_instance_id.as_str()),
        )?;
        visitor.visit_pair(
            Key::from_str("execution_id"),
            Value::from(id.execution_id.as_str()),
        )?;
        visitor.visit_pair(
            Key::from_str("task_def_name"),
            Value::from(id.task_def_name.as_str()),
        )?;
        visitor.visit_pair(Key::from_str("retry_count"), Value::from(id.retry_count))?;
        visitor.visit_pair(Key::from_str("poll_count"), Value::from(self.poll_count))?;
        visitor.visit_pair(Key::from_str("status"), Value::from(self.status))?;
        if let Some(phase) = self.failed_phase {
            visitor.visit_pair(Key::from_str("phase"), Value::from(phase))?;
        }
        if let Some(reason) = self.reason {
            visitor.visit_pair(Key::from_str("reason"), Value::from(reason))?;
        }
        for (key, ms) in &self.phases {
            visitor.visit_pair(Key::from_str(key), Value::from(*ms))?;
        }
        if let Some(changed) = self.changed_files {
            visitor.visit_pair(Key::from_str("changed_files"), Value::from(changed))?;
        }
        visitor.visit_pair(Key::from_str("duration_ms"), Value::from(self.duration_ms))
    }
}

fn millis(duration: Duration) -> f64 {
    // Three decimals: microsecond resolution without float noise in the logs.
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn log_summary(
    identity: &AttemptIdentity,
    task: &PolledTask,
    report: &AttemptReport,
    elapsed: Duration,
    shared: &Shared,
) {
    if let Some(original) = report.reason_original_chars {
        log::warn!(
            task_id = identity.task_id.as_str(),
            execution_id = identity.execution_id.as_str(),
            original_chars = original as u64,
            limit = shared.failure_reason_max_length as u64;
            "failure reason truncated"
        );
    }
    let level = if matches!(
        report.result.status,
        TaskStatus::Completed | TaskStatus::InProgress
    ) {
        log::Level::Info
    } else {
        log::Level::Warn
    };
    if level > log::max_level() {
        return;
    }
    let mut phases: Vec<(&'static str, Duration)> = Vec::with_capacity(report.timings.len());
    for (phase, duration) in &report.timings {
        let key = phase_key(*phase);
        match phases.iter_mut().find(|(seen, _)| *seen == key) {
            Some((_, total)) => *total += *duration,
            None => phases.push((key, *duration)),
        }
    }
    let summary = AttemptSummary {
        identity,
        poll_count: task.poll_count,
        status: report.result.status.as_str(),
        failed_phase: report.failed_phase.map(Phase::as_str),
        reason: report.result.reason.as_deref(),
        phases: phases
            .into_iter()
            .map(|(key, d)| (key, millis(d)))
            .collect(),
        duration_ms: millis(elapsed),
        changed_files: report
            .changes
            .as_ref()
            .map(|c| (c.added.len() + c.modified.len() + c.deleted.len()) as u64),
    };
    log::logger().log(
        &log::Record::builder()
            .level(level)
            .target(module_path!())
            .module_path_static(Some(module_path!()))
            .file_static(Some(file!()))
            .line(Some(line!()))
            .key_values(&summary)
            .args(format_args!("attempt finished"))
            .build(),
    );
}

/// Feeds one finished attempt into the metrics registry and the readiness state.
fn record_metrics(report: &AttemptReport, elapsed: Duration, shared: &Shared) {
    let metrics = &shared.metrics;
    let output_bytes = report.result.output.as_ref().map(|output| {
        let mut count = ByteCount(0);
        let _ = serde_json::to_writer(&mut count, output);
        count.0
    });
    metrics.attempt_finished(
        report.result.status,
        report.failed_phase,
        &report.timings,
        elapsed,
        output_bytes,
    );
    let mut touched_lakefs = false;
    for (phase, duration) in &report.timings {
        let (op, bytes) = match phase {
            Phase::Download => (WorkspaceOp::Download, report.download_bytes),
            Phase::Stage => (WorkspaceOp::Upload, report.upload_bytes),
            Phase::Publish => (WorkspaceOp::Publish, None),
            _ => continue,
        };
        touched_lakefs = true;
        let failed_here = report.failed_phase == Some(*phase);
        metrics.workspace_io(op, *duration, if failed_here { None } else { bytes });
    }
    let store_failure = matches!(
        report.failed_phase,
        Some(Phase::Download | Phase::Stage | Phase::Publish)
    );
    if shared.task.is_workspace_task() && touched_lakefs {
        shared.health.record(Dependency::Lakefs, !store_failure);
    }
    let writable = shared
        .task
        .workspace()
        .is_some_and(|spec| !spec.is_read_only());
    if writable {
        let outcome = match (report.result.status, report.failed_phase) {
            (TaskStatus::Completed, _) => match &report.changes {
                Some(changes) if !changes.is_empty() => Some("published"),
                _ => Some("noop"),
            },
            (_, Some(Phase::Stage | Phase::Publish)) => Some("failed"),
            (_, Some(Phase::AttemptFence)) => Some("fenced"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            metrics.publication(outcome);
        }
    }
}
