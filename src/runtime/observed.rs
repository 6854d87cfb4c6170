//! [`ObservedConductor`]: a [`ConductorApi`] decorator that times every request into
//! `http_api_client_request_seconds{method, uri, status}` (the route template, never the raw
//! URL) and tells [`Health`] whether Conductor was reached; and [`exception_kind`], the
//! bounded `exception` label of a Conductor error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::health::{Activity, Dependency, Health};
use crate::conductor::{ConductorApi, ConductorError, PolledTask, TaskUpdate};
use crate::metrics::Metrics;

/// The `exception` label of a Conductor error: a fixed word per failure class.
pub fn exception_kind(error: &ConductorError) -> &'static str {
    match error {
        ConductorError::Timeout { .. } => "timeout",
        ConductorError::Transport { .. } => "transport",
        ConductorError::Status { .. } => "http_status",
        ConductorError::Decode { .. } => "decode",
        ConductorError::Cancelled { .. } => "cancelled",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

/// Whether an error means the server could not be reached (or is down), as readiness counts.
fn unreachable(error: &ConductorError) -> bool {
    match error {
        ConductorError::Timeout { .. } | ConductorError::Transport { .. } => true,
        ConductorError::Status { status, .. } => *status >= 500,
        _ => false,
    }
}

/// See the [module docs](self).
pub struct ObservedConductor {
    inner: Arc<dyn ConductorApi>,
    metrics: Metrics,
    health: Arc<Health>,
}

impl ObservedConductor {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ConductorApi>, metrics: Metrics, health: Arc<Health>) -> Self {
        ObservedConductor {
            inner,
            metrics,
            health,
        }
    }

    fn observe<T>(
        &self,
        method: &str,
        uri: &str,
        call: impl FnOnce() -> Result<T, ConductorError>,
    ) -> Result<T, ConductorError> {
        let started = Instant::now();
        let result = call();
        let elapsed: Duration = started.elapsed();
        let status = match &result {
            Ok(_) => "200".to_owned(),
            Err(error) => match error.status() {
                Some(code) => code.to_string(),
                None => exception_kind(error).to_owned(),
            },
        };
        self.metrics.http_request(method, uri, &status, elapsed);
        let reached = result.as_ref().err().is_none_or(|e| !unreachable(e));
        self.health.record(Dependency::Conductor, reached);
        result
    }
}

impl ConductorApi for ObservedConductor {
    fn poll_batch(
        &self,
        task_type: &str,
        domain: Option<&str>,
        worker_id: &str,
        count: usize,
        wait: Duration,
    ) -> Result<Vec<PolledTask>, ConductorError> {
        self.observe("GET", "/tasks/poll/batch/{taskType}", || {
            self.inner
                .poll_batch(task_type, domain, worker_id, count, wait)
        })
    }

    fn add_task_log(&self, task_id: &str, line: &str) -> Result<(), ConductorError> {
        self.observe("POST", "/tasks/{taskId}/log", || {
            self.inner.add_task_log(task_id, line)
        })
    }

    fn update(
        &self,
        update: &TaskUpdate,
        fetch_next: bool,
    ) -> Result<Option<PolledTask>, ConductorError> {
        self.observe("POST", "/tasks/update-v2", || {
            self.inner.update(update, fetch_next)
        })
    }

    fn extend_lease(
        &self,
        task_id: &str,
        workflow_instance_id: &str,
        worker_id: &str,
    ) -> Result<(), ConductorError> {
        // Only the lease thread extends leases: this is its liveness stamp.
        self.health.begin(Activity::Lease);
        let result = self.observe("POST", "/tasks/update-v2", || {
            self.inner
                .extend_lease(task_id, workflow_instance_id, worker_id)
        });
        self.health.end(Activity::Lease);
        if result.is_ok() {
            self.metrics.lease_extended();
        }
        result
    }

    fn get_task(&self, task_id: &str) -> Result<Option<PolledTask>, ConductorError> {
        self.observe("GET", "/tasks/{taskId}", || self.inner.get_task(task_id))
    }
}
