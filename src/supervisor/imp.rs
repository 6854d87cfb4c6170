//! The supervisor's main loop: `Supervisor` owns every child and is the only code that
//! starts, signals, reaps or restarts one.
//!
//! **This is the main loop of process mode.** One thread (the caller's) owns the children. It
//! `select!`s over:
//!
//! - the child-exit channel, fed by one `wait-<worker id>` thread per child (see
//!   `waiter`); an exit is reaped here, its workspaces removed by a targeted
//!   GC, and the slot restarted after its [`RestartBackoff`] delay;
//! - the stop-request channel (signals, or the embedding code): the first request forwards
//!   the signal to every child and starts the force clock; the second kills every child now;
//! - the restart timer: `at(earliest pending restart)`, or `never()`;
//! - the GC `tick(workspace_gc_interval)`: a TTL sweep that keeps the workspaces of live
//!   children, and retention of the supervisor's and children's log files;
//! - the force deadline: `at(first request + PERAGO_SHUTDOWN_FORCE_KILL_AFTER)`, or
//!   `never()`; survivors are SIGKILLed (a zero deadline kills at once).
//!
//! The loop returns once a stop was requested and no child is left. Children are spawned
//! only from this thread: Linux sends the parent-death signal when the *thread* that spawned
//! a child exits, and this thread lives until every child is gone.
//!
//! ```text
//!  signal ──StopRequest──▶ ┌────────────────┐ ──spawn / SIGTERM / SIGKILL──▶ child 0001…N
//!                          │   supervisor   │
//!  wait-<id> ──ChildExited▶│   main loop    │ ◀── restart at(..), gc tick, force at(..)
//!                          └────────────────┘
//! ```

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, at, never, select, tick};

use super::backoff::RestartBackoff;
use super::child::child_worker_id;
use super::signals::StopRequest;
use super::unix::{ChildSignal, signal_child};
use super::waiter::{ChildExited, spawn_waiter};
use crate::execution::WorkspaceStore;
use crate::execution::staging::release_staging_branch;
use crate::logging::{sweep_retention, worker_log_dir};
use crate::util::backoff::Backoff;
use crate::util::error_chain;
use crate::workspace::{remove_for_owner, sweep_releasing};

/// Builds the command of one child from its worker id (the real one re-executes the current
/// binary, see [`ChildLauncher`](super::ChildLauncher); tests use small shell scripts).
pub(crate) type CommandFactory = Box<dyn Fn(&str) -> Command + Send>;

/// What the main loop needs to know; everything comes from the validated configuration.
pub(crate) struct SupervisorSettings {
    /// The workspace root the supervisor owns (its lock is held by the caller).
    pub(crate) workspace_root: PathBuf,
    /// Prefix of the children's worker ids.
    pub(crate) worker_id_prefix: String,
    /// Number of children (slots 1..=children).
    pub(crate) children: usize,
    /// `PERAGO_WORKSPACE_GC_TTL`.
    pub(crate) gc_ttl: Duration,
    /// `PERAGO_WORKSPACE_GC_INTERVAL`.
    pub(crate) gc_interval: Duration,
    /// `PERAGO_SHUTDOWN_FORCE_KILL_AFTER`.
    pub(crate) force_kill_after: Option<Duration>,
    /// Log directories to prune on each GC tick, when file logging is on.
    pub(crate) logs: Option<LogPruning>,
    /// Restart delays (the SPEC's by default).
    pub(crate) restart_delays: Backoff,
    /// A child that ran this long counts as healthy.
    pub(crate) healthy_run: Duration,
    /// Deletes the staging branches recorded in the markers of dead children's workspaces.
    pub(crate) store: Option<std::sync::Arc<dyn WorkspaceStore>>,
}

/// Where the GC tick prunes expired log files: the supervisor's own worker log directory and
/// every slot's.
pub(crate) struct LogPruning {
    pub(crate) log_root: PathBuf,
    /// The supervisor's own target (or target set name).
    pub(crate) target: String,
    /// The target each slot's child serves, by slot (a slot without one uses `target`).
    pub(crate) slot_targets: Vec<String>,
    pub(crate) retention: Duration,
}

/// Why the supervisor SIGKILLed a child, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KillReason {
    /// Starting the other children failed, so the started ones were stopped.
    StartupAborted,
    /// Its exit could not be waited for; it is killed so it cannot linger unsupervised.
    WaitFailed,
    /// `PERAGO_SHUTDOWN_FORCE_KILL_AFTER` passed during the drain.
    ForceDeadline,
    /// A second SIGINT/SIGTERM (or stop request) arrived during the drain.
    SecondRequest,
}

impl KillReason {
    /// Snake-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            KillReason::StartupAborted => "startup_aborted",
            KillReason::WaitFailed => "wait_failed",
            KillReason::ForceDeadline => "force_deadline",
            KillReason::SecondRequest => "second_request",
        }
    }
}

/// One child the supervisor had to kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KilledChild {
    /// The child's worker id.
    pub worker_id: String,
    /// The child's pid.
    pub pid: u32,
    /// Why.
    pub reason: KillReason,
}

/// One child that ended with a failure status during the shutdown without being killed
/// (e.g. exit code 3: its runtime abandoned attempts that ignored cancellation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncleanExit {
    /// The child's worker id.
    pub worker_id: String,
    /// The child's pid.
    pub pid: u32,
    /// How it ended, as the platform describes it (`exit status: 3`).
    pub status: String,
}

/// How a supervisor run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupervisorExit {
    /// Children SIGKILLed by the supervisor.
    pub killed: Vec<KilledChild>,
    /// Children that did not drain cleanly on their own.
    pub unclean_exits: Vec<UncleanExit>,
    /// Children restarted after an exit.
    pub restarts: u64,
    /// Restarts that failed to spawn (retried with backoff).
    pub spawn_failures: u64,
}

impl SupervisorExit {
    /// Whether the shutdown was clean: every child drained and exited with status 0.
    pub fn is_clean(&self) -> bool {
        self.killed.is_empty() && self.unclean_exits.is_empty()
    }
}

/// A child process that has been spawned and not yet reaped.
struct RunningChild {
    child: Child,
    pid: u32,
    started: Instant,
    /// The `wait-<id>` thread; joined after it reported the exit.
    waiter: Option<JoinHandle<()>>,
    /// Set once the supervisor sent SIGKILL, so the exit is not counted as unclean twice.
    killed: bool,
}

enum SlotState {
    Running(RunningChild),
    RestartAt(Instant),
    Stopped,
}

struct Slot {
    worker_id: String,
    backoff: RestartBackoff,
    state: SlotState,
}

/// The shutdown's progress, once a stop was requested.
struct Stopping {
    requests: u32,
    /// The signal forwarded to the children on the first request.
    forward: ChildSignal,
    /// When survivors are killed; `None` once that happened or if there is no deadline.
    force_at: Option<Instant>,
}

/// The supervisor of one set of children. See the [module docs](self).
pub(crate) struct Supervisor {
    settings: SupervisorSettings,
    command: CommandFactory,
    slots: Vec<Slot>,
    exits_tx: Sender<ChildExited>,
    exits_rx: Receiver<ChildExited>,
    stopping: Option<Stopping>,
    exit: SupervisorExit,
    /// Called with the slot index after each restart (feeds `worker_restart_total`).
    on_restart: Option<Box<dyn FnMut(usize) + Send>>,
}

/// A child could not be started.
#[derive(Debug, thiserror::Error)]
#[error("failed to start child process {worker_id}")]
pub struct SpawnError {
    /// The child's worker id.
    pub worker_id: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl Supervisor {
    /// A supervisor with no child started yet.
    pub(crate) fn new(settings: SupervisorSettings, command: CommandFactory) -> Supervisor {
        let (exits_tx, exits_rx) = crossbeam_channel::unbounded();
        let slots = (1..=settings.children)
            .map(|slot| Slot {
                worker_id: child_worker_id(&settings.worker_id_prefix, slot),
                backoff: RestartBackoff::with_policy(settings.restart_delays, settings.healthy_run),
                state: SlotState::Stopped,
            })
            .collect();
        Supervisor {
            settings,
            command,
            slots,
            exits_tx,
            exits_rx,
            stopping: None,
            exit: SupervisorExit::default(),
            on_restart: None,
        }
    }

    /// Calls `hook` with the slot index (0-based) each time a child is restarted.
    pub(crate) fn on_restart(&mut self, hook: Box<dyn FnMut(usize) + Send>) {
        self.on_restart = Some(hook);
    }

    /// Starts every child, transactionally: if one cannot be started, the ones already
    /// started are killed and reaped (and their workspaces removed) before the error returns.
    ///
    /// Must run on the thread that then calls [`run`](Self::run) (parent-death signal).
    pub(crate) fn start_all(&mut self) -> Result<(), SpawnError> {
        for index in 0..self.slots.len() {
            if let Err(source) = self.spawn(index) {
                let worker_id = self.slots[index].worker_id.clone();
                self.kill_all(KillReason::StartupAborted);
                self.reap_all_blocking();
                return Err(SpawnError { worker_id, source });
            }
        }
        Ok(())
    }

    /// The PIDs of the running children, by slot (for logs and tests).
    pub(crate) fn child_pids(&self) -> Vec<(String, u32)> {
        self.slots
            .iter()
            .filter_map(|slot| match &slot.state {
                SlotState::Running(child) => Some((slot.worker_id.clone(), child.pid)),
                _ => None,
            })
            .collect()
    }

    /// The main loop: supervises until a stop was requested on `requests` and every child has
    /// exited. A disconnected `requests` channel means no more requests, not a stop.
    pub(crate) fn run(mut self, requests: Receiver<StopRequest>) -> SupervisorExit {
        let mut requests = requests;
        let gc_ticks = tick(self.settings.gc_interval);
        let no_gc = never();
        loop {
            if self.stopping.is_some() && !self.any_running() {
                break;
            }
            let restart = self.next_restart().map_or_else(never, at);
            let force = self
                .stopping
                .as_ref()
                .and_then(|s| s.force_at)
                .map_or_else(never, at);
            // GC stops with the drain; the caller sweeps once more after the loop.
            let gc = if self.stopping.is_some() {
                &no_gc
            } else {
                &gc_ticks
            };
            select! {
                recv(self.exits_rx) -> exited => {
                    // The loop holds a sender itself, so the channel never disconnects.
                    if let Ok(exited) = exited {
                        self.on_exit(exited);
                    }
                }
                recv(requests) -> request => match request {
                    Ok(request) => self.on_stop_request(request),
                    Err(_) => requests = never(),
                },
                recv(restart) -> _ => self.restart_due(),
                recv(gc) -> _ => self.gc_tick(),
                recv(force) -> _ => {
                    if let Some(stopping) = &mut self.stopping {
                        stopping.force_at = None;
                    }
                    self.kill_all(KillReason::ForceDeadline);
                }
            }
        }
        // Every waiter has reported and been joined by now.
        self.exit
    }

    fn any_running(&self) -> bool {
        self.slots
            .iter()
            .any(|slot| matches!(slot.state, SlotState::Running(_)))
    }

    fn next_restart(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| match slot.state {
                SlotState::RestartAt(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// Spawns slot `index`'s child and its waiter.
    fn spawn(&mut self, index: usize) -> std::io::Result<()> {
        let slot = &mut self.slots[index];
        let mut child = (self.command)(&slot.worker_id).spawn()?;
        let pid = child.id();
        let waiter = match spawn_waiter(&slot.worker_id, pid, self.exits_tx.clone()) {
            Ok(waiter) => waiter,
            Err(error) => {
                // Without a waiter the exit would never be noticed: do not keep the child.
                let _ = signal_child(pid, ChildSignal::Kill);
                let _ = child.wait();
                return Err(error);
            }
        };
        let now = Instant::now();
        slot.backoff.started(now);
        slot.state = SlotState::Running(RunningChild {
            child,
            pid,
            started: now,
            waiter: Some(waiter),
            killed: false,
        });
        log::info!(
            child_worker_id = slot.worker_id.as_str(),
            child_pid = pid,
            slot = index + 1;
            "child started"
        );
        Ok(())
    }

    fn restart_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.slots.len() {
            if !matches!(self.slots[index].state, SlotState::RestartAt(at) if at <= now) {
                continue;
            }
            match self.spawn(index) {
                Ok(()) => {
                    self.exit.restarts += 1;
                    if let Some(hook) = &mut self.on_restart {
                        hook(index);
                    }
                }
                Err(error) => {
                    self.exit.spawn_failures += 1;
                    let slot = &mut self.slots[index];
                    let delay = slot.backoff.exited(Instant::now());
                    slot.state = SlotState::RestartAt(Instant::now() + delay);
                    log::error!(
                        child_worker_id = slot.worker_id.as_str(),
                        error = error_chain(&error).as_str(),
                        delay_ms = millis(delay);
                        "failed to restart child; retrying after a delay"
                    );
                }
            }
        }
    }

    fn on_exit(&mut self, exited: ChildExited) {
        let Some(index) = self.slots.iter().position(
            |slot| matches!(&slot.state, SlotState::Running(child) if child.pid == exited.pid),
        ) else {
            return;
        };
        let state = std::mem::replace(&mut self.slots[index].state, SlotState::Stopped);
        let SlotState::Running(running) = state else {
            return;
        };
        let worker_id = self.slots[index].worker_id.clone();
        if let Some(error) = &exited.wait_error {
            log::warn!(
                child_worker_id = worker_id.as_str(),
                child_pid = running.pid,
                error = error_chain(error).as_str();
                "waiting for a child failed; killing it"
            );
        }
        let killed_for_wait = exited.wait_error.is_some() && !running.killed;
        if killed_for_wait {
            self.record_kill(&worker_id, running.pid, KillReason::WaitFailed);
        }
        let (status, ran) = reap(running, killed_for_wait);
        let status_text = status
            .as_ref()
            .map_or_else(|e| format!("unknown ({e})"), ToString::to_string);
        log::info!(
            child_worker_id = worker_id.as_str(),
            child_pid = exited.pid,
            status = status_text.as_str(),
            ran_ms = millis(ran.run_time);
            "child exited"
        );
        self.remove_workspaces_of(&worker_id, exited.pid);

        if let Some(stopping) = &self.stopping {
            let clean = match &status {
                Ok(status) if status.success() => true,
                // Ended by the very signal it was forwarded: it had not installed its
                // handlers yet, i.e. it was still starting and had no attempt to drain.
                Ok(status) => status.signal() == Some(stopping.forward.number()),
                Err(_) => false,
            };
            if !clean && !ran.killed {
                self.exit.unclean_exits.push(UncleanExit {
                    worker_id,
                    pid: exited.pid,
                    status: status_text,
                });
            }
            return;
        }
        let slot = &mut self.slots[index];
        let now = Instant::now();
        let delay = slot.backoff.exited(now);
        slot.state = SlotState::RestartAt(now + delay);
        log::warn!(
            child_worker_id = worker_id.as_str(),
            child_pid = exited.pid,
            delay_ms = millis(delay);
            "child restart scheduled"
        );
    }

    /// Targeted GC after a child died: its attempts can no longer be running.
    fn remove_workspaces_of(&self, worker_id: &str, pid: u32) {
        let store = self.settings.store.as_deref();
        let report = remove_for_owner(&self.settings.workspace_root, worker_id, pid, &|staging| {
            release_staging_branch(store, staging)
        });
        report.log("child_exit");
        if !report.removed.is_empty() {
            log::info!(
                child_worker_id = worker_id,
                child_pid = pid,
                removed = report.removed.len();
                "removed attempt workspaces of an exited child"
            );
        }
    }

    fn on_stop_request(&mut self, request: StopRequest) {
        let now = Instant::now();
        match &mut self.stopping {
            Some(stopping) => {
                stopping.requests += 1;
                stopping.force_at = None;
                log::warn!(
                    requests = stopping.requests;
                    "stop requested again; killing every child now"
                );
                self.kill_all(KillReason::SecondRequest);
            }
            None => {
                let force_after = self.settings.force_kill_after;
                self.stopping = Some(Stopping {
                    requests: 1,
                    forward: request.forward,
                    // A deadline too far to represent is no deadline.
                    force_at: force_after.and_then(|d| now.checked_add(d)),
                });
                // Pending restarts are dropped: nothing starts during a shutdown.
                for slot in &mut self.slots {
                    if matches!(slot.state, SlotState::RestartAt(_)) {
                        slot.state = SlotState::Stopped;
                    }
                }
                log::info!(
                    signal = request.forward.as_str(),
                    children = self.child_pids().len(),
                    deadline = deadline_text(force_after).as_str();
                    "stopping: children drain"
                );
                if force_after == Some(Duration::ZERO) {
                    if let Some(stopping) = &mut self.stopping {
                        stopping.force_at = None;
                    }
                    self.kill_all(KillReason::ForceDeadline);
                    return;
                }
                for (worker_id, pid) in self.child_pids() {
                    if let Err(error) = signal_child(pid, request.forward) {
                        log::error!(
                            child_worker_id = worker_id.as_str(),
                            child_pid = pid,
                            error = error_chain(&error).as_str();
                            "failed to forward the stop signal to a child"
                        );
                    }
                }
            }
        }
    }

    /// SIGKILLs every running child not yet killed, logging each kill.
    fn kill_all(&mut self, reason: KillReason) {
        let mut kills = Vec::new();
        for slot in &mut self.slots {
            if let SlotState::Running(child) = &mut slot.state
                && !child.killed
            {
                child.killed = true;
                kills.push((slot.worker_id.clone(), child.pid));
            }
        }
        for (worker_id, pid) in kills {
            self.record_kill(&worker_id, pid, reason);
        }
    }

    fn record_kill(&mut self, worker_id: &str, pid: u32, reason: KillReason) {
        let phase = match reason {
            KillReason::StartupAborted => "startup",
            KillReason::WaitFailed => "running",
            KillReason::ForceDeadline | KillReason::SecondRequest => "drain",
        };
        log::warn!(
            child_worker_id = worker_id,
            child_pid = pid,
            phase = phase,
            reason = reason.as_str(),
            deadline = deadline_text(self.settings.force_kill_after).as_str();
            "child killed"
        );
        if let Err(error) = signal_child(pid, ChildSignal::Kill) {
            log::error!(
                child_worker_id = worker_id,
                child_pid = pid,
                error = error_chain(&error).as_str();
                "failed to kill a child"
            );
        }
        self.exit.killed.push(KilledChild {
            worker_id: worker_id.to_owned(),
            pid,
            reason,
        });
    }

    /// Waits for and reaps every running child (after [`kill_all`](Self::kill_all), so it
    /// cannot block for long). Used only when startup is aborted.
    fn reap_all_blocking(&mut self) {
        for index in 0..self.slots.len() {
            let state = std::mem::replace(&mut self.slots[index].state, SlotState::Stopped);
            if let SlotState::Running(running) = state {
                let worker_id = self.slots[index].worker_id.clone();
                let pid = running.pid;
                let _ = reap(running, false);
                self.remove_workspaces_of(&worker_id, pid);
            }
        }
    }

    /// The periodic GC: a TTL sweep keeping the workspaces of live children, then log
    /// retention.
    fn gc_tick(&self) {
        let live = self.child_pids();
        let store = self.settings.store.as_deref();
        let report = sweep_releasing(
            &self.settings.workspace_root,
            self.settings.gc_ttl,
            SystemTime::now(),
            &|marker| {
                live.iter()
                    .any(|(id, pid)| marker.owner_worker_id == *id && marker.owner_pid == *pid)
            },
            &|staging| release_staging_branch(store, staging),
        );
        report.log("interval");
        if let Some(logs) = &self.settings.logs {
            let own = worker_log_dir(
                &logs.log_root,
                &logs.target,
                &self.settings.worker_id_prefix,
            );
            let dirs =
                std::iter::once(own).chain(self.slots.iter().enumerate().map(|(index, slot)| {
                    let target = logs.slot_targets.get(index).unwrap_or(&logs.target);
                    worker_log_dir(&logs.log_root, target, &slot.worker_id)
                }));
            for dir in dirs {
                match sweep_retention(&dir, logs.retention, SystemTime::now()) {
                    Ok(0) => {}
                    Ok(deleted) => {
                        log::info!(deleted, log_dir:% = dir.display(); "deleted expired log files");
                    }
                    Err(error) => log::warn!(
                        error:% = error, log_dir:% = dir.display();
                        "log retention sweep failed"
                    ),
                }
            }
        }
    }
}

/// What reaping found out besides the status.
struct Reaped {
    run_time: Duration,
    killed: bool,
}

/// Reaps a child that has exited or was killed, and joins its waiter.
///
/// First SIGKILLs the child's process group: the leader has exited (or must not linger) and
/// is not reaped yet, so the group id is still ours, and anything the child started and left
/// behind goes with it. `killed` says the supervisor killed it (for the exit report).
fn reap(mut running: RunningChild, killed: bool) -> (std::io::Result<ExitStatus>, Reaped) {
    let _ = signal_child(running.pid, ChildSignal::Kill);
    let killed = running.killed || killed;
    let status = running.child.wait();
    if let Some(waiter) = running.waiter.take() {
        // It has sent its report (or is about to, now that the child is gone).
        let _ = waiter.join();
    }
    (
        status,
        Reaped {
            run_time: running.started.elapsed(),
            killed,
        },
    )
}

fn deadline_text(deadline: Option<Duration>) -> String {
    deadline.map_or_else(
        || "none".to_owned(),
        |d| humantime::format_duration(d).to_string(),
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    //! The main loop with small `sh` scripts as children: each appends its pid to
    //! `<dir>/<worker id>.pids`, so the tests can tell restarts apart.

    use std::sync::mpsc;

    use super::*;
    use crate::workspace::create_attempt_dir;
    use crate::workspace::marker::tests::sample;

    const LONG: Duration = Duration::from_secs(20);

    /// Drains on SIGTERM (exit 0).
    const DRAINS: &str = "trap 'exit 0' TERM; echo $$ >> \"$T/$PERAGO_WORKER_ID.pids\"; \
                          while :; do sleep 5 & wait $!; done";
    /// Ignores SIGTERM.
    const STUBBORN: &str = "trap '' TERM; echo $$ >> \"$T/$PERAGO_WORKER_ID.pids\"; \
                            while :; do sleep 5 & wait $!; done";
    /// Has no handler: the forwarded SIGTERM ends it (like a child still starting).
    const NO_HANDLER: &str = "echo $$ >> \"$T/$PERAGO_WORKER_ID.pids\"; exec sleep 30";
    /// Fails its drain (exit 3).
    const FAILS_DRAIN: &str = "trap 'exit 3' TERM; echo $$ >> \"$T/$PERAGO_WORKER_ID.pids\"; \
                               while :; do sleep 5 & wait $!; done";

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            match tempfile::tempdir() {
                Ok(dir) => Fixture { dir },
                Err(e) => panic!("tempdir: {e}"),
            }
        }

        fn root(&self) -> PathBuf {
            self.dir.path().join("workspaces")
        }

        fn settings(&self, children: usize, force: Option<Duration>) -> SupervisorSettings {
            SupervisorSettings {
                workspace_root: self.root(),
                worker_id_prefix: "w".to_owned(),
                children,
                gc_ttl: Duration::from_secs(24 * 3600),
                gc_interval: Duration::from_secs(3600),
                force_kill_after: force,
                logs: None,
                restart_delays: Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
                healthy_run: Duration::from_secs(3600),
                store: None,
            }
        }

        fn factory(&self, script: &'static str) -> CommandFactory {
            let dir = self.dir.path().to_path_buf();
            Box::new(move |worker_id| {
                let mut command = Command::new("sh");
                command
                    .args(["-c", script])
                    .env("T", &dir)
                    .env("PERAGO_WORKER_ID", worker_id)
                    .stdin(std::process::Stdio::null());
                std::os::unix::process::CommandExt::process_group(&mut command, 0);
                command
            })
        }

        /// The pids slot `worker_id` has had so far, once it has had at least `count`.
        fn pids(&self, worker_id: &str, count: usize) -> Vec<u32> {
            let path = self.dir.path().join(format!("{worker_id}.pids"));
            let deadline = Instant::now() + LONG;
            loop {
                let pids: Vec<u32> = std::fs::read_to_string(&path)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
                if pids.len() >= count {
                    return pids;
                }
                assert!(
                    Instant::now() < deadline,
                    "{worker_id} never had {count} pids"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }

        /// An attempt workspace owned by `(worker_id, pid)`, created now.
        fn plant(&self, worker_id: &str, pid: u32) -> PathBuf {
            let mut marker = sample(&format!("{worker_id}-{pid}"), "e");
            marker.owner_worker_id = worker_id.to_owned();
            marker.owner_pid = pid;
            marker.started_at = chrono::Utc::now().fixed_offset();
            match create_attempt_dir(&self.root(), &marker) {
                Ok(dir) => dir.path().to_path_buf(),
                Err(e) => panic!("plant: {e}"),
            }
        }
    }

    /// A supervisor running on its own thread, stopped through `requests`.
    struct Running {
        requests: Sender<StopRequest>,
        exit: mpsc::Receiver<SupervisorExit>,
    }

    impl Running {
        fn start(settings: SupervisorSettings, command: CommandFactory) -> Running {
            let (requests, requests_rx) = crossbeam_channel::unbounded();
            let (exit_tx, exit) = mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("supervisor".into())
                .spawn(move || {
                    let mut supervisor = Supervisor::new(settings, command);
                    if let Err(e) = supervisor.start_all() {
                        panic!("start: {e}");
                    }
                    let _ = exit_tx.send(supervisor.run(requests_rx));
                });
            if let Err(e) = spawned {
                panic!("spawn supervisor thread: {e}");
            }
            Running { requests, exit }
        }

        fn request_stop(&self) {
            if self.requests.send(StopRequest::TERMINATE).is_err() {
                panic!("supervisor gone");
            }
        }

        fn join(self) -> SupervisorExit {
            match self.exit.recv_timeout(LONG) {
                Ok(exit) => exit,
                Err(e) => panic!("supervisor did not stop: {e}"),
            }
        }
    }

    fn kill(pid: u32) {
        if let Err(e) = signal_child(pid, ChildSignal::Kill) {
            panic!("kill {pid}: {e}");
        }
    }

    fn alive(pid: u32) -> bool {
        // Zombies count as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    }

    #[test]
    fn a_dead_child_is_restarted_on_its_slot_after_a_targeted_gc() {
        let fx = Fixture::new();
        let running = Running::start(fx.settings(2, None), fx.factory(DRAINS));
        let first = fx.pids("w0001", 1)[0];
        let other = fx.pids("w0002", 1)[0];
        let dead_dir = fx.plant("w0001", first);
        let live_dir = fx.plant("w0002", other);

        kill(first);
        let pids = fx.pids("w0001", 2);
        assert_ne!(pids[1], first, "a new process on the same slot");
        // The restart happens after the targeted GC.
        assert!(!dead_dir.exists(), "the dead child's workspace is removed");
        assert!(live_dir.is_dir(), "the other child's workspace is kept");

        running.request_stop();
        let exit = running.join();
        assert!(exit.is_clean(), "{exit:?}");
        assert_eq!(exit.restarts, 1);
        assert!(!alive(pids[1]) && !alive(other));
    }

    #[test]
    fn force_deadline_kills_children_that_ignore_the_signal() {
        let fx = Fixture::new();
        let running = Running::start(
            fx.settings(2, Some(Duration::from_millis(200))),
            fx.factory(STUBBORN),
        );
        let a = fx.pids("w0001", 1)[0];
        let b = fx.pids("w0002", 1)[0];
        let dir = fx.plant("w0002", b);
        running.request_stop();
        let exit = running.join();
        let mut killed: Vec<_> = exit
            .killed
            .iter()
            .map(|k| (k.worker_id.as_str(), k.pid, k.reason))
            .collect();
        killed.sort();
        assert_eq!(
            killed,
            [
                ("w0001", a, KillReason::ForceDeadline),
                ("w0002", b, KillReason::ForceDeadline)
            ]
        );
        assert!(exit.unclean_exits.is_empty(), "a kill is not counted twice");
        assert!(!exit.is_clean());
        assert!(!dir.exists(), "a killed child's workspace is removed");
        assert!(!alive(a) && !alive(b));
    }

    #[test]
    fn escalation_a_second_request_or_a_zero_deadline_kills_at_once() {
        // (force deadline, stop requests, expected reason)
        let table = [
            (None, 2, KillReason::SecondRequest),
            (
                Some(Duration::from_secs(3600)),
                2,
                KillReason::SecondRequest,
            ),
            (Some(Duration::ZERO), 1, KillReason::ForceDeadline),
        ];
        for (force, requests, reason) in table {
            let fx = Fixture::new();
            let running = Running::start(fx.settings(1, force), fx.factory(STUBBORN));
            let pid = fx.pids("w0001", 1)[0];
            for _ in 0..requests {
                running.request_stop();
            }
            let exit = running.join();
            assert_eq!(
                exit.killed,
                [KilledChild {
                    worker_id: "w0001".into(),
                    pid,
                    reason
                }],
                "{force:?} x{requests}"
            );
        }
    }

    #[test]
    fn a_child_failing_its_drain_makes_the_exit_unclean() {
        let fx = Fixture::new();
        let running = Running::start(fx.settings(1, None), fx.factory(FAILS_DRAIN));
        let pid = fx.pids("w0001", 1)[0];
        running.request_stop();
        let exit = running.join();
        assert!(exit.killed.is_empty());
        assert_eq!(exit.unclean_exits.len(), 1, "{exit:?}");
        assert_eq!(exit.unclean_exits[0].pid, pid);
        assert!(exit.unclean_exits[0].status.contains('3'), "{exit:?}");
    }

    #[test]
    fn a_child_ended_by_the_forwarded_signal_counts_as_drained() {
        let fx = Fixture::new();
        let running = Running::start(fx.settings(1, None), fx.factory(NO_HANDLER));
        let pid = fx.pids("w0001", 1)[0];
        running.request_stop();
        let exit = running.join();
        assert!(exit.is_clean(), "{exit:?}");
        assert!(!alive(pid));
    }

    #[test]
    fn startup_is_transactional() {
        let fx = Fixture::new();
        let good = fx.factory(DRAINS);
        let factory: CommandFactory = Box::new(move |worker_id| {
            if worker_id == "w0002" {
                Command::new("/nonexistent/perago-child")
            } else {
                good(worker_id)
            }
        });
        let mut supervisor = Supervisor::new(fx.settings(3, None), factory);
        match supervisor.start_all() {
            Err(e) => assert_eq!(e.worker_id, "w0002"),
            Ok(()) => panic!("start must fail"),
        }
        assert!(
            supervisor.child_pids().is_empty(),
            "every started child is reaped"
        );
        let killed: Vec<_> = supervisor
            .exit
            .killed
            .iter()
            .map(|k| (k.worker_id.as_str(), k.reason))
            .collect();
        assert_eq!(killed, [("w0001", KillReason::StartupAborted)]);
        assert!(!alive(supervisor.exit.killed[0].pid));
        assert!(
            !fx.dir.path().join("w0003.pids").exists(),
            "nothing after the failure"
        );
    }

    #[test]
    fn the_gc_tick_keeps_live_children_and_removes_the_rest() {
        let fx = Fixture::new();
        let mut settings = fx.settings(1, None);
        settings.gc_ttl = Duration::ZERO;
        settings.gc_interval = Duration::from_millis(20);
        let running = Running::start(settings, fx.factory(DRAINS));
        let pid = fx.pids("w0001", 1)[0];
        let live = fx.plant("w0001", pid);
        let stale = fx.plant("w0001", pid.wrapping_add(100_000));
        let deadline = Instant::now() + LONG;
        while stale.exists() {
            assert!(Instant::now() < deadline, "stale workspace never collected");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(live.is_dir());
        running.request_stop();
        assert!(running.join().is_clean());
    }
}
