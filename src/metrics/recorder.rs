//! The task-author metrics API ([`MetricRecorder`], reached through
//! [`TaskContext`](crate::TaskContext)) and the label rules shared with the runtime series.
//!
//! As in the reference: application instruments are named `app.<name>`, runtime ones
//! `runtime.<name>`; every series carries `task_name`; a user label that clashes with a
//! perago label, or is one of the reserved attempt labels (`task_id`,
//! `workflow_instance_id`, `execution_id`, `worker_id`), is ignored with a warning naming the
//! metric, the label, perago's value (or `<reserved>`) and the ignored value.

use std::sync::Arc;
use std::time::Instant;

use super::series::{Labels, SeriesStore};

/// Labels that would make a series per attempt; never labels.
pub const RESERVED_ATTEMPT_LABELS: [&str; 4] = [
    "task_id",
    "workflow_instance_id",
    "execution_id",
    "worker_id",
];

/// The reference's `merge_metric_labels`: perago's labels first, then the user's minus
/// clashes and reserved names (each ignored one logged).
pub fn merge_labels(metric_name: &str, perago: Labels, user: &[(&str, &str)]) -> Labels {
    let mut merged = perago;
    for (key, value) in user {
        if let Some((_, existing)) = merged.iter().find(|(k, _)| k == key) {
            warn_ignored(metric_name, key, existing, value);
            continue;
        }
        if RESERVED_ATTEMPT_LABELS.contains(key) {
            warn_ignored(metric_name, key, "<reserved>", value);
            continue;
        }
        if !valid_label_key(key) {
            warn_ignored(metric_name, key, "<invalid name>", value);
            continue;
        }
        merged.push(((*key).to_owned(), (*value).to_owned()));
    }
    merged
}

fn warn_ignored(metric_name: &str, key: &str, perago_value: &str, ignored: &str) {
    log::warn!(
        metric_name, label_key = key, perago_label_value = perago_value,
        ignored_user_label_value = ignored;
        "metric label ignored"
    );
}

/// A label key both OTLP and Prometheus accept: `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_label_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An instrument name usable in both outputs: `[A-Za-z][A-Za-z0-9_]*` (dots are added by
/// perago's prefixes only, since Prometheus turns them into underscores).
fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 200
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Records application metrics for one attempt of a metrics-enabled task.
///
/// Recording is an in-memory update: it never blocks on export and never fails. A recorder
/// not bound to a runtime (a [`TaskContext`](crate::TaskContext) built by hand, or a task
/// without a metrics declaration) drops every sample.
///
/// # Threads and cloning
/// `Send + Sync`; clones share the process's store.
#[derive(Debug, Clone, Default)]
pub struct MetricRecorder {
    bound: Option<Bound>,
}

#[derive(Debug, Clone)]
struct Bound {
    store: Arc<SeriesStore>,
    task_name: String,
}

impl MetricRecorder {
    /// A recorder that drops every sample.
    pub fn disabled() -> MetricRecorder {
        MetricRecorder::default()
    }

    pub(crate) fn new(store: Arc<SeriesStore>, task_name: &str) -> MetricRecorder {
        MetricRecorder {
            bound: Some(Bound {
                store,
                task_name: task_name.to_owned(),
            }),
        }
    }

    /// Whether samples are kept.
    pub fn is_enabled(&self) -> bool {
        self.bound.is_some()
    }

    fn target(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<(&SeriesStore, String, Labels)> {
        let bound = self.bound.as_ref()?;
        let metric_name = format!("app.{name}");
        if !valid_metric_name(name) {
            log::warn!(
                metric_name = metric_name.as_str();
                "metric sample ignored: names must match [A-Za-z][A-Za-z0-9_]*"
            );
            return None;
        }
        let perago = vec![("task_name".to_owned(), bound.task_name.clone())];
        let merged = merge_labels(&metric_name, perago, labels);
        Some((&bound.store, metric_name, merged))
    }

    /// Records a distribution sample of `app.<name>`.
    pub fn histogram(&self, name: &str, value: f64, labels: &[(&str, &str)]) {
        if let Some((store, name, labels)) = self.target(name, labels) {
            store.record(&name, labels, value);
        }
    }

    /// Sets the current value of `app.<name>`.
    pub fn gauge(&self, name: &str, value: f64, labels: &[(&str, &str)]) {
        if let Some((store, name, labels)) = self.target(name, labels) {
            store.set(&name, labels, value);
        }
    }

    /// Starts timing; the elapsed seconds are recorded as a histogram sample of
    /// `app.<name>` when the returned guard is dropped (or [`MetricTimer::stop`]ped).
    pub fn timer(&self, name: &str, labels: &[(&str, &str)]) -> MetricTimer {
        MetricTimer {
            recorder: self.clone(),
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            started: Instant::now(),
            done: false,
        }
    }
}

/// Times a block; see [`MetricRecorder::timer`].
#[derive(Debug)]
#[must_use = "the time is recorded when the timer is dropped"]
pub struct MetricTimer {
    recorder: MetricRecorder,
    name: String,
    labels: Vec<(String, String)>,
    started: Instant,
    done: bool,
}

impl MetricTimer {
    /// Records now instead of at drop.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.recorder
            .histogram(&self.name, self.started.elapsed().as_secs_f64(), &labels);
    }
}

impl Drop for MetricTimer {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_clashing_labels_are_ignored() {
        let store = Arc::new(SeriesStore::default());
        let recorder = MetricRecorder::new(Arc::clone(&store), "features.build");
        recorder.histogram(
            "rows",
            3.0,
            &[
                ("task_name", "other"),
                ("task_id", "t-1"),
                ("worker_id", "w"),
                ("kind", "parquet"),
                ("bad-key", "x"),
            ],
        );
        recorder.gauge("bad name", 1.0, &[]);
        drop(recorder.timer("step", &[("stage", "a")]));
        let snapshot = store.snapshot();
        let names: Vec<&str> = snapshot.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["app.rows", "app.step"]);
        assert_eq!(
            snapshot[0].points[0].labels,
            vec![
                ("kind".to_owned(), "parquet".to_owned()),
                ("task_name".to_owned(), "features.build".to_owned()),
            ]
        );
        assert_eq!(snapshot[1].points[0].count, 1);
    }

    #[test]
    fn a_disabled_recorder_drops_samples() {
        let recorder = MetricRecorder::disabled();
        recorder.histogram("rows", 1.0, &[]);
        assert!(!recorder.is_enabled());
    }
}
