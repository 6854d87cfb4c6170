//! Metrics (SPEC §15): one [`Metrics`] registry per process, fed by the runtime threads and
//! by task bodies, read by the admin listener (`GET /metrics`, Prometheus text) and by the
//! OTLP exporter thread.
//!
//! - [`series`]: the `runtime.*` / `app.*` series in OpenTelemetry shape (reference parity).
//! - [`catalog`]: the canonical Conductor worker catalog and perago's `perago_*` families.
//! - [`recorder`]: [`MetricRecorder`], the task-author API, and the label rules.
//! - [`otlp`]: OTLP/HTTP protobuf encoding and the `metrics-export` thread.
//! - [`merge`]: merging children's Prometheus text in process mode.
//!
//! Recording never blocks on I/O: counters are atomics, series updates take one short lock,
//! and export reads a snapshot on its own thread.

pub mod catalog;
#[cfg(feature = "cli")]
pub mod merge;
pub mod otlp;
pub mod recorder;
pub mod series;

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use catalog::{Catalog, LabelSet};
pub use recorder::{MetricRecorder, MetricTimer};
pub use series::{Instrument, Kind, SeriesStore};

use crate::result::{Phase, TaskStatus};

/// Which runtime series a task records (the reference's `MetricSpec`; all on by default).
///
/// Declared with [`TaskBuilder::metrics`](crate::TaskBuilder::metrics). A task without a
/// declaration records no `runtime.*` series and its [`MetricRecorder`] drops samples; the
/// canonical worker catalog and `perago_*` series are recorded for every task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricSpec {
    /// `runtime.task_attempt_duration_seconds`.
    pub attempts: bool,
    /// `runtime.workspace_io_duration_seconds` and `runtime.workspace_io_bytes`.
    pub workspace_io: bool,
    /// `runtime.busy_slots` (labelled with `perago_instance_id`).
    pub worker_capacity: bool,
}

impl Default for MetricSpec {
    fn default() -> Self {
        MetricSpec {
            attempts: true,
            workspace_io: true,
            worker_capacity: true,
        }
    }
}

/// A workspace transfer, the `operation` label of the workspace I/O series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceOp {
    /// Input workspace download.
    Download,
    /// Staging upload.
    Upload,
    /// Publication (merge, reset or no-op completion).
    Publish,
}

impl WorkspaceOp {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceOp::Download => "download",
            WorkspaceOp::Upload => "upload",
            WorkspaceOp::Publish => "publish",
        }
    }
}

/// The process's metrics registry.
///
/// # Threads and cloning
/// Cheap to clone (one `Arc`); every method may be called from any thread.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    catalog: Catalog,
    series: Arc<SeriesStore>,
    instance_id: Option<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("instance_id", &self.inner.instance_id)
            .finish_non_exhaustive()
    }
}

/// One hosted task's view of the process's [`Metrics`]: every series it records carries the
/// task's name, and its declaration decides which `runtime.*` series it records.
#[derive(Debug, Clone)]
pub(crate) struct TaskMetrics {
    metrics: Metrics,
    task_name: Arc<str>,
    spec: Option<MetricSpec>,
    hot: Arc<Hot>,
}

/// The series every attempt of a task touches, looked up once and then kept: the hot path
/// neither builds label sets nor hashes them. Each is created on first use, so `/metrics`
/// shows exactly the series that were recorded.
#[derive(Debug, Default)]
struct Hot {
    poll: OnceLock<Counter>,
    poll_ok: OnceLock<Histogram>,
    started: OnceLock<Counter>,
    active: OnceLock<Gauge>,
    execute_completed: OnceLock<Histogram>,
    attempts_completed: OnceLock<Counter>,
    result_size: OnceLock<Histogram>,
    update_ok: OnceLock<Histogram>,
    /// Per [`Phase`], in declaration order.
    phases: [OnceLock<Histogram>; PHASES],
    /// `task_name` (sorted, as the series store keys points).
    runtime_labels: OnceLock<series::Labels>,
    /// `perago_instance_id` and `task_name`.
    capacity_labels: OnceLock<series::Labels>,
}

/// How many [`Phase`]s there are.
const PHASES: usize = 9;

fn phase_index(phase: Phase) -> usize {
    match phase {
        Phase::Input => 0,
        Phase::Download => 1,
        Phase::PreGuardrail => 2,
        Phase::Body => 3,
        Phase::PostGuardrail => 4,
        Phase::AttemptFence => 5,
        Phase::Stage => 6,
        Phase::Publish => 7,
        Phase::Cleanup => 8,
    }
}

/// Renders the `runtime.*` / `app.*` series into the Prometheus registry on each scrape.
#[derive(Debug)]
struct SeriesCollector(Arc<SeriesStore>);

impl Collector for SeriesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for instrument in self.0.snapshot() {
            let name = instrument.name.replace('.', "_");
            match instrument.kind {
                Kind::Histogram => {
                    let mut family = encoder.encode_descriptor(
                        &name,
                        "OpenTelemetry histogram (SDK default bounds).",
                        None,
                        MetricType::Histogram,
                    )?;
                    for point in &instrument.points {
                        let buckets: Vec<(f64, u64)> = series::DEFAULT_BOUNDS
                            .iter()
                            .copied()
                            .chain(std::iter::once(f64::INFINITY))
                            .zip(point.bucket_counts.iter().copied())
                            .collect();
                        let labels: Vec<(&str, &str)> = point
                            .labels
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        family
                            .encode_family(&labels)?
                            .encode_histogram::<NoLabelSet>(
                                point.sum,
                                point.count,
                                &buckets,
                                None,
                            )?;
                    }
                }
                Kind::Gauge => {
                    let mut family = encoder.encode_descriptor(
                        &name,
                        "OpenTelemetry gauge (last value).",
                        None,
                        MetricType::Gauge,
                    )?;
                    for point in &instrument.points {
                        let labels: Vec<(&str, &str)> = point
                            .labels
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        ConstGauge::new(point.value).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn labels1(task_type: &str) -> LabelSet {
    vec![("taskType", task_type.to_owned())]
}

fn labels2(task_type: &str, key: &'static str, value: &str) -> LabelSet {
    vec![("taskType", task_type.to_owned()), (key, value.to_owned())]
}

impl Metrics {
    /// A registry for one process, labelling capacity series with `instance_id`
    /// (`PERAGO_INSTANCE_ID`). Every task the process hosts records into it.
    pub fn new(instance_id: Option<String>) -> Metrics {
        let mut registry = Registry::default();
        let catalog = Catalog::register(&mut registry);
        let series = Arc::new(SeriesStore::default());
        registry.register_collector(Box::new(SeriesCollector(Arc::clone(&series))));
        Metrics {
            inner: Arc::new(Inner {
                registry,
                catalog,
                series,
                instance_id,
            }),
        }
    }

    /// Everything in the Prometheus text exposition format (OpenMetrics 1.0 text, as
    /// `prometheus-client` writes it, ending in `# EOF`).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            // Writing to a String cannot fail; keep the output well-formed anyway.
            let _ = writeln!(out, "# EOF");
        }
        out
    }

    /// A snapshot of the `runtime.*` and `app.*` series (what OTLP export sends).
    pub fn series(&self) -> Vec<Instrument> {
        self.inner.series.snapshot()
    }

    /// The view a hosted task records through.
    pub(crate) fn task(&self, task_name: &str, spec: Option<MetricSpec>) -> TaskMetrics {
        TaskMetrics {
            metrics: self.clone(),
            task_name: Arc::from(task_name),
            spec,
            hot: Arc::default(),
        }
    }

    /// A lease was extended (the lease thread serves every hosted task: no task label).
    pub(crate) fn lease_extended(&self) {
        self.inner
            .catalog
            .perago_lease_extensions
            .get_or_create(&Vec::new())
            .inc();
    }

    /// The supervisor restarted a child serving `task_type`.
    #[cfg(feature = "cli")]
    pub(crate) fn worker_restarted(&self, task_type: &str) {
        self.inner
            .catalog
            .worker_restart
            .get_or_create(&labels1(task_type))
            .inc();
    }

    /// The series of Conductor requests to `method` and route template `uri` that ended
    /// with `status` (HTTP code or error kind); callers keep it for the common status.
    pub(crate) fn http_request(&self, method: &str, uri: &str, status: &str) -> Histogram {
        self.inner
            .catalog
            .http_api_client_request
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("uri", uri.to_owned()),
                ("status", status.to_owned()),
            ])
            .clone()
    }
}

impl TaskMetrics {
    /// The task-author recorder of this task (disabled without a declaration).
    pub(crate) fn recorder(&self) -> MetricRecorder {
        match self.spec {
            Some(_) => MetricRecorder::new(Arc::clone(&self.metrics.inner.series), &self.task_name),
            None => MetricRecorder::disabled(),
        }
    }

    fn runtime_labels(&self, with_instance: bool) -> &series::Labels {
        let cell = if with_instance {
            &self.hot.capacity_labels
        } else {
            &self.hot.runtime_labels
        };
        cell.get_or_init(|| {
            let mut labels = vec![("task_name".to_owned(), self.task_name.to_string())];
            if with_instance && let Some(instance) = &self.metrics.inner.instance_id {
                labels.push(("perago_instance_id".to_owned(), instance.clone()));
            }
            labels.sort();
            labels
        })
    }

    fn catalog(&self) -> &Catalog {
        &self.metrics.inner.catalog
    }

    // --- Recording hooks used by the runtime threads. ---

    /// A poll returned (`Ok(n)` tasks) or failed with an error of `exception` kind.
    pub(crate) fn poll_done(&self, elapsed: Duration, result: Result<usize, &str>) {
        let c = self.catalog();
        let task = &self.task_name;
        self.hot
            .poll
            .get_or_init(|| c.task_poll.get_or_create(&labels1(task)).clone())
            .inc();
        match result {
            Ok(_) => self
                .hot
                .poll_ok
                .get_or_init(|| {
                    c.task_poll_time
                        .get_or_create(&labels2(task, "status", "SUCCESS"))
                        .clone()
                })
                .observe(elapsed.as_secs_f64()),
            Err(exception) => {
                c.task_poll_error
                    .get_or_create(&labels2(task, "exception", exception))
                    .inc();
                c.task_poll_time
                    .get_or_create(&labels2(task, "status", "FAILURE"))
                    .observe(elapsed.as_secs_f64());
            }
        }
    }

    /// The poller skipped a poll because the worker is paused.
    pub(crate) fn poll_paused(&self) {
        self.catalog()
            .task_paused
            .get_or_create(&labels1(&self.task_name))
            .inc();
    }

    /// An attempt is starting on a worker slot; `busy` slots are now running.
    pub(crate) fn attempt_started(&self, busy: u64) {
        let c = self.catalog();
        self.hot
            .started
            .get_or_init(|| {
                c.task_execution_started
                    .get_or_create(&labels1(&self.task_name))
                    .clone()
            })
            .inc();
        self.set_busy(busy);
    }

    /// Sets `active_workers` and (when declared) `runtime.busy_slots`.
    pub(crate) fn set_busy(&self, busy: u64) {
        let c = self.catalog();
        self.hot
            .active
            .get_or_init(|| {
                c.active_workers
                    .get_or_create(&labels1(&self.task_name))
                    .clone()
            })
            .set(i64::try_from(busy).unwrap_or(i64::MAX));
        if self.spec.is_some_and(|s| s.worker_capacity) {
            self.metrics.inner.series.set_sorted(
                "runtime.busy_slots",
                self.runtime_labels(true),
                busy as f64,
            );
        }
    }

    /// An attempt finished with `status`, failing in `failed_phase`, after `elapsed`.
    pub(crate) fn attempt_finished(
        &self,
        status: TaskStatus,
        failed_phase: Option<Phase>,
        timings: &[(Phase, Duration)],
        elapsed: Duration,
        output_bytes: Option<usize>,
    ) {
        let c = self.catalog();
        let task = &self.task_name;
        if status == TaskStatus::Completed {
            self.hot
                .execute_completed
                .get_or_init(|| {
                    c.task_execute_time
                        .get_or_create(&labels2(task, "status", status.as_str()))
                        .clone()
                })
                .observe(elapsed.as_secs_f64());
            self.hot
                .attempts_completed
                .get_or_init(|| {
                    c.perago_attempts
                        .get_or_create(&labels2(task, "status", status.as_str()))
                        .clone()
                })
                .inc();
        } else {
            c.task_execute_time
                .get_or_create(&labels2(task, "status", status.as_str()))
                .observe(elapsed.as_secs_f64());
            c.perago_attempts
                .get_or_create(&labels2(task, "status", status.as_str()))
                .inc();
        }
        if matches!(
            status,
            TaskStatus::Failed | TaskStatus::FailedWithTerminalError
        ) {
            let exception = failed_phase.map_or("unknown", Phase::as_str);
            c.task_execute_error
                .get_or_create(&labels2(task, "exception", exception))
                .inc();
            if failed_phase == Some(Phase::AttemptFence) {
                c.perago_fence_failures
                    .get_or_create(&labels2(task, "fence", "attempt"))
                    .inc();
            }
        }
        if let Some(bytes) = output_bytes {
            self.hot
                .result_size
                .get_or_init(|| c.task_result_size.get_or_create(&labels1(task)).clone())
                .observe(bytes as f64);
        }
        for (phase, duration) in timings {
            self.hot.phases[phase_index(*phase)]
                .get_or_init(|| {
                    c.perago_attempt_phase_duration
                        .get_or_create(&labels2(task, "phase", phase.as_str()))
                        .clone()
                })
                .observe(duration.as_secs_f64());
        }
        if self.spec.is_some_and(|s| s.attempts) {
            self.metrics.inner.series.record_sorted(
                "runtime.task_attempt_duration_seconds",
                self.runtime_labels(false),
                elapsed.as_secs_f64(),
            );
        }
    }

    /// A publication ended: `outcome` is `published`, `noop`, `failed` or `fenced`.
    pub(crate) fn publication(&self, outcome: &str) {
        self.catalog()
            .perago_publications
            .get_or_create(&labels2(&self.task_name, "outcome", outcome))
            .inc();
    }

    /// One workspace transfer took `elapsed` and moved `bytes` (when known).
    pub(crate) fn workspace_io(&self, op: WorkspaceOp, elapsed: Duration, bytes: Option<u64>) {
        if !self.spec.is_some_and(|s| s.workspace_io) {
            return;
        }
        let mut labels = self.runtime_labels(false).clone();
        labels.push(("operation".to_owned(), op.as_str().to_owned()));
        labels.sort();
        let series = &self.metrics.inner.series;
        series.record_sorted(
            "runtime.workspace_io_duration_seconds",
            &labels,
            elapsed.as_secs_f64(),
        );
        if let Some(bytes) = bytes {
            series.record_sorted("runtime.workspace_io_bytes", &labels, bytes as f64);
        }
    }

    /// A result update ended after `elapsed`: `Ok` or an error of `exception` kind.
    pub(crate) fn update_done(&self, elapsed: Duration, result: Result<(), &str>) {
        let c = self.catalog();
        let task = &self.task_name;
        match result {
            Ok(()) => self
                .hot
                .update_ok
                .get_or_init(|| {
                    c.task_update_time
                        .get_or_create(&labels2(task, "status", "SUCCESS"))
                        .clone()
                })
                .observe(elapsed.as_secs_f64()),
            Err(exception) => {
                c.task_update_error
                    .get_or_create(&labels2(task, "exception", exception))
                    .inc();
                c.task_update_time
                    .get_or_create(&labels2(task, "status", "FAILURE"))
                    .observe(elapsed.as_secs_f64());
            }
        }
    }

    /// A result was lost after every retry.
    pub(crate) fn update_lost(&self) {
        self.catalog()
            .perago_updates_lost
            .get_or_create(&labels1(&self.task_name))
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_the_canonical_names_and_the_runtime_series() {
        let registry = Metrics::new(Some("i-1".into()));
        let metrics = registry.task("echo", Some(MetricSpec::default()));
        metrics.poll_done(Duration::from_millis(3), Ok(1));
        metrics.poll_done(Duration::from_millis(3), Err("transport"));
        metrics.attempt_started(1);
        metrics.attempt_finished(
            TaskStatus::Failed,
            Some(Phase::Download),
            &[(Phase::Download, Duration::from_millis(2))],
            Duration::from_millis(5),
            None,
        );
        metrics.set_busy(0);
        metrics
            .recorder()
            .gauge("queue_depth", 4.0, &[("queue", "a")]);
        let text = registry.render_prometheus();
        for needle in [
            "task_poll_total{taskType=\"echo\"} 2",
            "task_poll_error_total{taskType=\"echo\",exception=\"transport\"} 1",
            "task_poll_time_seconds_count{taskType=\"echo\",status=\"SUCCESS\"} 1",
            "task_execute_error_total{taskType=\"echo\",exception=\"download\"} 1",
            "active_workers{taskType=\"echo\"} 0",
            "runtime_task_attempt_duration_seconds_count{task_name=\"echo\"} 1",
            "runtime_busy_slots{perago_instance_id=\"i-1\",task_name=\"echo\"} 0.0",
            "app_queue_depth{queue=\"a\",task_name=\"echo\"} 4.0",
            "perago_attempt_phase_duration_seconds_count{taskType=\"echo\",phase=\"download\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn without_a_declaration_no_runtime_series_are_recorded() {
        let registry = Metrics::new(None);
        let metrics = registry.task("echo", None);
        metrics.attempt_started(1);
        metrics.attempt_finished(TaskStatus::Completed, None, &[], Duration::ZERO, Some(10));
        metrics.recorder().histogram("rows", 1.0, &[]);
        assert!(registry.series().is_empty());
        assert!(
            registry
                .render_prometheus()
                .contains("task_execution_started_total")
        );
    }
}
