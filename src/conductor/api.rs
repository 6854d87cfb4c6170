//! [`ConductorApi`]: the calls the runtime makes, as a trait so the runtime can run over the
//! HTTP [`ConductorClient`](super::ConductorClient) in production and over an in-process fake
//! in benchmarks and unit tests.

use std::time::Duration;

use super::error::ConductorError;
use super::model::{PolledTask, TaskUpdate};

/// What a worker runtime needs from Conductor.
///
/// # Threads
/// One instance is shared (`Arc<dyn ConductorApi>`) by the poller, every worker, the lease
/// thread and the attempt fences, so every method takes `&self` and may run concurrently.
/// Implementations must bound every call with a timeout.
pub trait ConductorApi: Send + Sync {
    /// Takes up to `count` (≥ 1) tasks of `task_type` for `worker_id`, waiting up to `wait`
    /// for the first one (`GET /api/tasks/poll/batch/{taskType}`), from the queue of `domain`
    /// when given (sent as `domain=`; omitted otherwise). An empty vector means no task was
    /// available.
    fn poll_batch(
        &self,
        task_type: &str,
        domain: Option<&str>,
        worker_id: &str,
        count: usize,
        wait: Duration,
    ) -> Result<Vec<PolledTask>, ConductorError>;

    /// Reports `update`. With `fetch_next`, the implementation may also hand back the next
    /// task of the same type for the same worker (update-v2); the returned task is already
    /// `IN_PROGRESS` for this worker and must be run. Without it, no task is ever returned
    /// (used while draining, so nothing new is taken on).
    fn update(
        &self,
        update: &TaskUpdate,
        fetch_next: bool,
    ) -> Result<Option<PolledTask>, ConductorError>;

    /// Restarts the response-timeout clock of a running attempt: `IN_PROGRESS` with
    /// `extendLease: true`.
    fn extend_lease(
        &self,
        task_id: &str,
        workflow_instance_id: &str,
        worker_id: &str,
    ) -> Result<(), ConductorError> {
        self.update(
            &TaskUpdate::heartbeat(task_id, workflow_instance_id, worker_id),
            false,
        )
        .map(drop)
    }

    /// Appends one line to the task's execution log (`POST /api/tasks/{taskId}/log`), shown
    /// by the Conductor UI next to the task. The default does nothing (fakes without logs).
    fn add_task_log(&self, task_id: &str, line: &str) -> Result<(), ConductorError> {
        let _ = (task_id, line);
        Ok(())
    }

    /// Reads a task by id (`GET /api/tasks/{taskId}`); `None` when the server does not know it.
    fn get_task(&self, task_id: &str) -> Result<Option<PolledTask>, ConductorError>;
}
