//! [`ObservedConductor`]: a [`ConductorApi`] decorator that times every request into
//! `http_api_client_request_seconds{method, uri, status}` (the route template, never the raw
//! URL) and tells [`Health`] whether Conductor was reached; and [`exception_kind`], the
//! bounded `exception` label of a Conductor error.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;

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
    /// Per [`Route`]: the series of its `200` answers, kept after first use.
    ok: [OnceLock<Histogram>; ROUTES.len()],
}

/// The routes timed, by index into [`ROUTES`].
#[derive(Debug, Clone, Copy)]
enum Route {
    Poll = 0,
    Log = 1,
    Update = 2,
    GetTask = 3,
}

/// `(method, route template)` of each [`Route`].
const ROUTES: [(&str, &str); 4] = [
    ("GET", "/tasks/poll/batch/{taskType}"),
    ("POST", "/tasks/{taskId}/log"),
    ("POST", "/tasks/update-v2"),
    ("GET", "/tasks/{taskId}"),
];

impl ObservedConductor {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ConductorApi>, metrics: Metrics, health: Arc<Health>) -> Self {
        ObservedConductor {
            inner,
            metrics,
            health,
            ok: Default::default(),
        }
    }

    fn observe<T>(
        &self,
        route: Route,
        call: impl FnOnce() -> Result<T, ConductorError>,
    ) -> Result<T, ConductorError> {
        let started = Instant::now();
        let result = call();
        let elapsed: Duration = started.elapsed();
        let (method, uri) = ROUTES[route as usize];
        match &result {
            Ok(_) => self.ok[route as usize]
                .get_or_init(|| self.metrics.http_request(method, uri, "200"))
                .observe(elapsed.as_secs_f64()),
            Err(error) => {
                let status = match error.status() {
                    Some(code) => code.to_string(),
                    None => exception_kind(error).to_owned(),
                };
                self.metrics
                    .http_request(method, uri, &status)
                    .observe(elapsed.as_secs_f64());
            }
        }
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
        self.observe(Route::Poll, || {
            self.inner
                .poll_batch(task_type, domain, worker_id, count, wait)
        })
    }

    fn add_task_log(&self, task_id: &str, line: &str) -> Result<(), ConductorError> {
        self.observe(Route::Log, || self.inner.add_task_log(task_id, line))
    }

    fn update(
        &self,
        update: &TaskUpdate,
        fetch_next: bool,
    ) -> Result<Option<PolledTask>, ConductorError> {
        self.observe(Route::Update, || self.inner.update(update, fetch_next))
    }

    fn extend_lease(
        &self,
        task_id: &str,
        workflow_instance_id: &str,
        worker_id: &str,
    ) -> Result<(), ConductorError> {
        // Only the lease thread extends leases: this is its liveness stamp.
        self.health.begin(Activity::Lease);
        let result = self.observe(Route::Update, || {
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
        self.observe(Route::GetTask, || self.inner.get_task(task_id))
    }
}
