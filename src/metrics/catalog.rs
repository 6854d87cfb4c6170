//! The Prometheus families: the Conductor SDKs' canonical worker catalog (conductor-python's
//! `WORKER_CANONICAL_METRICS`, so one dashboard serves workers in every language) and perago's
//! own `perago_*` series, built with `prometheus-client`.
//!
//! Labels are bounded by construction: `taskType` is the served task name, `status` a result
//! or HTTP status, `exception` an error kind, `method` and `uri` a route template. No task
//! id, workflow id or raw URL ever becomes a label.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One label set: `(name, value)` pairs in a fixed order per family.
pub type LabelSet = Vec<(&'static str, String)>;

type Counters = Family<LabelSet, Counter>;
type Histograms = Family<LabelSet, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn bytes_histogram() -> Histogram {
    // 64 B … 64 MiB.
    Histogram::new(exponential_buckets(64.0, 4.0, 11))
}

/// Every family, registered once per process.
#[derive(Debug)]
pub struct Catalog {
    pub(crate) task_poll: Counters,
    pub(crate) task_poll_error: Counters,
    pub(crate) task_execution_started: Counters,
    pub(crate) task_execute_error: Counters,
    pub(crate) task_update_error: Counters,
    pub(crate) task_paused: Counters,
    pub(crate) worker_restart: Counters,
    pub(crate) task_poll_time: Histograms,
    pub(crate) task_execute_time: Histograms,
    pub(crate) task_update_time: Histograms,
    pub(crate) http_api_client_request: Histograms,
    pub(crate) task_result_size: Histograms,
    pub(crate) active_workers: Family<LabelSet, Gauge>,
    pub(crate) perago_attempts: Counters,
    pub(crate) perago_lease_extensions: Counters,
    pub(crate) perago_updates_lost: Counters,
    pub(crate) perago_publications: Counters,
    pub(crate) perago_fence_failures: Counters,
    pub(crate) perago_attempt_phase_duration: Histograms,
}

impl Catalog {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Catalog {
        let histograms = || Histograms::new_with_constructor(seconds_histogram);
        let catalog = Catalog {
            task_poll: Counters::default(),
            task_poll_error: Counters::default(),
            task_execution_started: Counters::default(),
            task_execute_error: Counters::default(),
            task_update_error: Counters::default(),
            task_paused: Counters::default(),
            worker_restart: Counters::default(),
            task_poll_time: histograms(),
            task_execute_time: histograms(),
            task_update_time: histograms(),
            http_api_client_request: histograms(),
            task_result_size: Histograms::new_with_constructor(bytes_histogram),
            active_workers: Family::default(),
            perago_attempts: Counters::default(),
            perago_lease_extensions: Counters::default(),
            perago_updates_lost: Counters::default(),
            perago_publications: Counters::default(),
            perago_fence_failures: Counters::default(),
            perago_attempt_phase_duration: histograms(),
        };
        // prometheus-client appends `_total` to counters.
        let c = &catalog;
        let counters: [(&str, &str, &Counters); 12] = [
            ("task_poll", "Polls sent to Conductor.", &c.task_poll),
            ("task_poll_error", "Polls that failed.", &c.task_poll_error),
            (
                "task_execution_started",
                "Attempts started.",
                &c.task_execution_started,
            ),
            (
                "task_execute_error",
                "Attempts that did not complete.",
                &c.task_execute_error,
            ),
            (
                "task_update_error",
                "Result updates that failed.",
                &c.task_update_error,
            ),
            (
                "task_paused",
                "Polls skipped while the worker was paused.",
                &c.task_paused,
            ),
            (
                "worker_restart",
                "Worker restarts (process mode children).",
                &c.worker_restart,
            ),
            (
                "perago_attempts",
                "Attempts finished, by status.",
                &c.perago_attempts,
            ),
            (
                "perago_lease_extensions",
                "Successful lease extensions (heartbeats).",
                &c.perago_lease_extensions,
            ),
            (
                "perago_updates_lost",
                "Results that could not be reported after all retries.",
                &c.perago_updates_lost,
            ),
            (
                "perago_publications",
                "Workspace publications, by outcome.",
                &c.perago_publications,
            ),
            (
                "perago_fence_failures",
                "Attempts stopped by a fence (attempt or publish).",
                &c.perago_fence_failures,
            ),
        ];
        for (name, help, family) in counters {
            registry.register(name, help, family.clone());
        }
        let histograms: [(&str, &str, &Histograms); 6] = [
            (
                "task_poll_time_seconds",
                "Duration of polls.",
                &c.task_poll_time,
            ),
            (
                "task_execute_time_seconds",
                "Duration of attempts.",
                &c.task_execute_time,
            ),
            (
                "task_update_time_seconds",
                "Duration of result updates, retries included.",
                &c.task_update_time,
            ),
            (
                "http_api_client_request_seconds",
                "Duration of Conductor API requests by route template.",
                &c.http_api_client_request,
            ),
            (
                "task_result_size_bytes",
                "Size of reported task output JSON.",
                &c.task_result_size,
            ),
            (
                "perago_attempt_phase_duration_seconds",
                "Duration of attempt phases.",
                &c.perago_attempt_phase_duration,
            ),
        ];
        for (name, help, family) in histograms {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "active_workers",
            "Worker slots running an attempt.",
            c.active_workers.clone(),
        );
        catalog
    }
}
