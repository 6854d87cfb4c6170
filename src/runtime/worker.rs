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

use super::counters::Counters;
use super::fence::ConductorFence;
use super::identity::attempt_identity;
use super::lease::{Leases, lease_interval};
use super::shutdown::{PanicGuard, Shutdown};
use crate::conductor::{ConductorApi, PolledTask, TaskUpdate};
use crate::execution::{
    AttemptEnv, AttemptReport, WorkspaceStore, run_attempt, undecodable_task_report,
};
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
            return self.finish(&identity, &task, report, started);
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
        let report = run_attempt(&shared.task, &identity, &task.input_data, &env);
        drop(cancel);
        // The lease must end before the result is sent, or a late heartbeat could race it.
        if interval.is_some() {
            self.leases.stop(&task.task_id);
        }
        self.finish(&identity, &task, report, started)
    }

    /// Counts, logs and reports a finished attempt; returns the next task if update-v2 handed
    /// one back.
    fn finish(
        &self,
        identity: &AttemptIdentity,
        task: &PolledTask,
        report: AttemptReport,
        started: Instant,
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

        let fetch_next = !shared.shutdown.is_requested();
        let update = TaskUpdate::result(task, &shared.worker_id, report.result);
        let next = self.report(identity, &update, fetch_next);
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
        let error = loop {
            tries += 1;
            // A forced runtime stops waiting for Conductor once the grace is over.
            let sent = {
                let _scope = cancel_scope(halt.receiver());
                shared.api.update(update, fetch_next)
            };
            match sent {
                Ok(next) => return next,
                Err(error) if error.is_retryable() => {
                    let Some(delay) = delays.next() else {
                        break error;
                    };
                    Counters::inc(&shared.counters.update_retries);
                    log::warn!(
                        task_id = identity.task_id.as_str(),
                        execution_id = identity.execution_id.as_str(),
                        error = error_chain(&error).as_str(),
                        retry_in_ms = delay.as_millis() as u64;
                        "result update failed; retrying"
                    );
                    select! {
                        recv(halt.receiver()) -> _ => break error,
                        recv(after(delay)) -> _ => {}
                    }
                }
                Err(error) => break error,
            }
        };
        Counters::inc(&shared.counters.updates_lost);
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
