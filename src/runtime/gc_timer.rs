//! The `gc` thread: sweeps the workspace root every `workspace_gc_interval`, removing attempt
//! workspaces older than `workspace_gc_ttl` whose owner token is not live in this process
//! (SPEC §8), and, when the runtime writes a log directory, rotated log files older than the
//! retention.
//!
//! The loop is a `select!` over `tick(interval)` and the drain signal: GC stops as soon as
//! shutdown starts; the runtime does a final TTL-0 sweep itself once attempts have drained.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{select, tick};

use super::counters::Counters;
use super::health::{Activity, Health};
use crate::execution::WorkspaceStore;
use crate::execution::staging::release_staging_branch;
use crate::logging::sweep_retention;
use crate::task::CancelToken;
use crate::workspace::{LiveOwners, sweep_releasing};

/// Where rotated logs are pruned, and after how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogPruning {
    pub(crate) dir: PathBuf,
    pub(crate) retention: Duration,
}

/// The GC thread's state.
pub(crate) struct GcTimer {
    pub(crate) workspace_root: PathBuf,
    pub(crate) ttl: Duration,
    pub(crate) interval: Duration,
    pub(crate) owners: LiveOwners,
    /// Deletes the staging branches recorded in removed workspaces' markers.
    pub(crate) store: Option<Arc<dyn WorkspaceStore>>,
    pub(crate) logs: Option<LogPruning>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) drain: CancelToken,
    /// Liveness stamps around each sweep.
    pub(crate) health: Arc<Health>,
}

impl GcTimer {
    /// The GC thread's main loop.
    pub(crate) fn run(self) {
        let ticks = tick(self.interval);
        loop {
            select! {
                recv(ticks) -> _ => {
                    self.health.begin(Activity::Gc);
                    sweep_workspaces(
                        &self.workspace_root,
                        self.ttl,
                        &self.owners,
                        self.store.as_deref(),
                        "interval",
                    );
                    if let Some(logs) = &self.logs {
                        prune_logs(logs);
                    }
                    self.health.end(Activity::Gc);
                    Counters::inc(&self.counters.gc_sweeps);
                }
                recv(self.drain.receiver()) -> _ => return,
            }
        }
    }
}

/// One sweep of `root`, keeping every workspace whose owner token is live and deleting the
/// staging branch a removed workspace's marker records (through `store`); logs what it did.
pub(crate) fn sweep_workspaces(
    root: &Path,
    ttl: Duration,
    owners: &LiveOwners,
    store: Option<&dyn WorkspaceStore>,
    kind: &str,
) {
    sweep_releasing(
        root,
        ttl,
        SystemTime::now(),
        &|marker| owners.is_live(&marker.owner_token),
        &|staging| release_staging_branch(store, staging),
    )
    .log(kind);
}

fn prune_logs(logs: &LogPruning) {
    match sweep_retention(&logs.dir, logs.retention, SystemTime::now()) {
        Ok(0) => {}
        Ok(deleted) => log::info!(deleted; "deleted expired log files"),
        Err(error) => log::warn!(
            error:% = error, log_dir:% = logs.dir.display();
            "log retention sweep failed"
        ),
    }
}
