//! The OpenTelemetry-shaped series: `runtime.*` (perago's, as the reference names them) and
//! `app.*` (task authors'), aggregated in memory for both outputs, OTLP export and
//! Prometheus `/metrics`.
//!
//! Aggregation follows the OpenTelemetry SDK defaults the reference gets from it: histograms
//! are cumulative with the SDK's default explicit bounds, gauges keep the last value. Each
//! instrument name has one kind; each instrument holds at most [`MAX_SERIES_PER_METRIC`]
//! label sets, so a task author who labels by id cannot grow memory without bound (further
//! label sets are dropped with one warning per instrument).

use std::collections::BTreeMap;
use std::time::SystemTime;

use parking_lot::Mutex;

/// The OpenTelemetry SDK's default explicit histogram bounds (what the reference uses).
pub const DEFAULT_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// Label sets kept per instrument.
pub const MAX_SERIES_PER_METRIC: usize = 256;

/// Sorted `(key, value)` label pairs.
pub type Labels = Vec<(String, String)>;

/// The kind of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A distribution: count, sum, min, max and bucket counts.
    Histogram,
    /// The last value set.
    Gauge,
}

/// One label set's aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Labels of this series.
    pub labels: Labels,
    /// Histogram: counts per bucket, `DEFAULT_BOUNDS.len() + 1` entries (the last is +Inf).
    pub bucket_counts: Vec<u64>,
    /// Histogram: number of samples.
    pub count: u64,
    /// Histogram: sum of samples.
    pub sum: f64,
    /// Histogram: smallest sample.
    pub min: f64,
    /// Histogram: largest sample.
    pub max: f64,
    /// Gauge: the last value.
    pub value: f64,
    /// When the series was first recorded (cumulative start time).
    pub start: SystemTime,
    /// When it was last recorded.
    pub updated: SystemTime,
}

/// One instrument and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Instrument {
    /// The OpenTelemetry name (`runtime.busy_slots`, `app.rows`).
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its series, in label order.
    pub points: Vec<Point>,
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    points: BTreeMap<Labels, Point>,
    warned_full: bool,
}

/// The store.
///
/// # Threads
/// One mutex over the whole map, held for one update or one snapshot copy; updates are a few
/// per attempt, so contention is negligible next to an attempt's HTTP calls.
#[derive(Debug, Default)]
pub struct SeriesStore {
    instruments: Mutex<BTreeMap<String, Entry>>,
}

impl SeriesStore {
    /// Records one histogram sample.
    pub fn record(&self, name: &str, labels: Labels, value: f64) {
        self.update(name, Kind::Histogram, labels, |point| observe(point, value));
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, labels: Labels, value: f64) {
        self.update(name, Kind::Gauge, labels, |point| point.value = value);
    }

    fn update(&self, name: &str, kind: Kind, mut labels: Labels, apply: impl FnOnce(&mut Point)) {
        labels.sort();
        self.update_sorted(name, kind, &labels, apply);
    }

    /// [`record`](Self::record) with labels already sorted by name (the runtime's own,
    /// built once per task): nothing is allocated once the series exists.
    pub(crate) fn record_sorted(&self, name: &str, labels: &Labels, value: f64) {
        self.update_sorted(name, Kind::Histogram, labels, |point| {
            observe(point, value);
        });
    }

    /// [`set`](Self::set) with labels already sorted by name.
    pub(crate) fn set_sorted(&self, name: &str, labels: &Labels, value: f64) {
        self.update_sorted(name, Kind::Gauge, labels, |point| point.value = value);
    }

    fn update_sorted(
        &self,
        name: &str,
        kind: Kind,
        labels: &Labels,
        apply: impl FnOnce(&mut Point),
    ) {
        let now = SystemTime::now();
        let mut instruments = self.instruments.lock();
        // Look up before inserting: the hot path must not allocate the key.
        if !instruments.contains_key(name) {
            instruments.insert(
                name.to_owned(),
                Entry {
                    kind,
                    points: BTreeMap::new(),
                    warned_full: false,
                },
            );
        }
        let Some(entry) = instruments.get_mut(name) else {
            return;
        };
        if entry.kind != kind {
            drop(instruments);
            log::warn!(
                metric_name = name;
                "metric sample ignored: the name is already used by an instrument of another kind"
            );
            return;
        }
        if let Some(point) = entry.points.get_mut(labels) {
            point.updated = now;
            apply(point);
            return;
        }
        if entry.points.len() >= MAX_SERIES_PER_METRIC {
            let first = !entry.warned_full;
            entry.warned_full = true;
            drop(instruments);
            if first {
                log::warn!(
                    metric_name = name, max_series = MAX_SERIES_PER_METRIC;
                    "metric has too many label sets; new label sets are dropped"
                );
            }
            return;
        }
        let point = entry.points.entry(labels.clone()).or_insert_with(|| Point {
            labels: labels.clone(),
            bucket_counts: vec![0; DEFAULT_BOUNDS.len() + 1],
            count: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
            value: 0.0,
            start: now,
            updated: now,
        });
        point.updated = now;
        apply(point);
    }

    /// A copy of every instrument, in name order.
    pub fn snapshot(&self) -> Vec<Instrument> {
        self.instruments
            .lock()
            .iter()
            .map(|(name, entry)| Instrument {
                name: name.clone(),
                kind: entry.kind,
                points: entry.points.values().cloned().collect(),
            })
            .collect()
    }
}

/// Adds one histogram sample to `point`.
fn observe(point: &mut Point, value: f64) {
    let index = DEFAULT_BOUNDS
        .iter()
        .position(|bound| value <= *bound)
        .unwrap_or(DEFAULT_BOUNDS.len());
    point.bucket_counts[index] += 1;
    point.min = if point.count == 0 {
        value
    } else {
        point.min.min(value)
    };
    point.max = if point.count == 0 {
        value
    } else {
        point.max.max(value)
    };
    point.count += 1;
    point.sum += value;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn histograms_bucket_by_the_sdk_bounds_and_gauges_keep_the_last_value() {
        let store = SeriesStore::default();
        store.record("runtime.x", labels(&[("task_name", "t")]), 3.0);
        store.record("runtime.x", labels(&[("task_name", "t")]), 12.0);
        store.record("runtime.x", labels(&[("task_name", "t")]), 1e9);
        store.set("runtime.g", labels(&[("task_name", "t")]), 2.0);
        store.set("runtime.g", labels(&[("task_name", "t")]), 1.0);
        let snapshot = store.snapshot();
        assert_eq!(snapshot.len(), 2);
        let g = &snapshot[0];
        assert_eq!((g.name.as_str(), g.kind), ("runtime.g", Kind::Gauge));
        assert_eq!(g.points[0].value, 1.0);
        let x = &snapshot[1].points[0];
        assert_eq!(x.count, 3);
        assert_eq!(x.sum, 3.0 + 12.0 + 1e9);
        assert_eq!((x.min, x.max), (3.0, 1e9));
        assert_eq!(x.bucket_counts[1], 1, "3 <= 5");
        assert_eq!(x.bucket_counts[3], 1, "12 <= 25");
        assert_eq!(x.bucket_counts[15], 1, "+Inf");
    }

    #[test]
    fn label_sets_per_instrument_are_capped_and_kinds_do_not_mix() {
        let store = SeriesStore::default();
        for i in 0..(MAX_SERIES_PER_METRIC + 10) {
            store.record("app.by_id", labels(&[("id", &i.to_string())]), 1.0);
        }
        store.set("app.by_id", labels(&[]), 1.0);
        let snapshot = store.snapshot();
        assert_eq!(snapshot[0].points.len(), MAX_SERIES_PER_METRIC);
        assert_eq!(snapshot[0].kind, Kind::Histogram);
    }
}
