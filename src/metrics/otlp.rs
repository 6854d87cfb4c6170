//! OTLP/HTTP protobuf export of the `runtime.*` and `app.*` series.
//!
//! The message types are `opentelemetry-proto`'s prost types (no hand-written protobuf);
//! gzip is `flate2`; the request goes out over ureq, the project's HTTP client, from the
//! `metrics-export` thread, so an attempt never waits for export. Every
//! `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s) the thread sends a cumulative snapshot, and
//! once more when the runtime stops, each request bounded by
//! `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT` (default 10 s). Failures are logged with the repeat
//! rule (first, then a summary at most every 30 s) and never stop the runtime.

use std::io::Write as _;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{after, select};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::Metrics;
use super::series::{DEFAULT_BOUNDS, Instrument, Kind};
use crate::config::MetricsConfig;
use crate::logging::repeat::{Repeat, RepeatLimiter};
use crate::task::CancelToken;
use crate::util::error_chain;

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The request for one snapshot: one resource (`service.name=perago`, the SDK's
/// `telemetry.sdk.*` attributes), one scope `perago`, cumulative histograms with the SDK's
/// default bounds, gauges with their last value. Units are `1`, as the reference declares.
pub fn encode_request(instruments: &[Instrument], now: SystemTime) -> ExportMetricsServiceRequest {
    let time_unix_nano = nanos(now);
    let metrics = instruments
        .iter()
        .map(|instrument| {
            let attributes =
                |labels: &[(String, String)]| labels.iter().map(|(k, v)| string_kv(k, v)).collect();
            let data = match instrument.kind {
                Kind::Histogram => metric::Data::Histogram(Histogram {
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    data_points: instrument
                        .points
                        .iter()
                        .map(|p| HistogramDataPoint {
                            attributes: attributes(&p.labels),
                            start_time_unix_nano: nanos(p.start),
                            time_unix_nano,
                            count: p.count,
                            sum: Some(p.sum),
                            bucket_counts: p.bucket_counts.clone(),
                            explicit_bounds: DEFAULT_BOUNDS.to_vec(),
                            min: Some(p.min),
                            max: Some(p.max),
                            ..Default::default()
                        })
                        .collect(),
                }),
                Kind::Gauge => metric::Data::Gauge(Gauge {
                    data_points: instrument
                        .points
                        .iter()
                        .map(|p| NumberDataPoint {
                            attributes: attributes(&p.labels),
                            start_time_unix_nano: nanos(p.start),
                            time_unix_nano: nanos(p.updated),
                            value: Some(number_data_point::Value::AsDouble(p.value)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            };
            Metric {
                name: instrument.name.clone(),
                unit: "1".to_owned(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name", "perago"),
                    string_kv("telemetry.sdk.language", "rust"),
                    string_kv("telemetry.sdk.name", "perago"),
                    string_kv("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "perago".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Why one export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The request could not be sent or no response came back in time.
    #[error("failed to send metrics to {endpoint}")]
    Send {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        #[source]
        source: ureq::Error,
    },
    /// The collector answered with an error status.
    #[error("metrics endpoint {endpoint} answered HTTP {status}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// The status.
        status: u16,
    },
    /// gzip failed (in memory; only on allocation trouble).
    #[error("failed to compress the metrics request")]
    Compress {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Sends snapshots of one registry to one endpoint.
pub struct Exporter {
    config: MetricsConfig,
    agent: ureq::Agent,
    metrics: Metrics,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("endpoint", &crate::util::redact_url(&self.config.endpoint))
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// An exporter for `metrics` to `config.endpoint`.
    pub fn new(config: MetricsConfig, metrics: Metrics) -> Exporter {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout_or_default()))
            .build()
            .into();
        Exporter {
            config,
            agent,
            metrics,
        }
    }

    /// Sends one snapshot now.
    pub fn export_once(&self) -> Result<(), ExportError> {
        let request = encode_request(&self.metrics.series(), SystemTime::now());
        let body = request.encode_to_vec();
        let endpoint = &self.config.endpoint;
        let mut call = self
            .agent
            .post(endpoint)
            .header("Content-Type", "application/x-protobuf");
        let body = if self.config.gzip {
            call = call.header("Content-Encoding", "gzip");
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(&body)
                .and_then(|()| encoder.finish())
                .map_err(|source| ExportError::Compress { source })?
        } else {
            body
        };
        let response = call
            .send(body.as_slice())
            .map_err(|source| ExportError::Send {
                endpoint: crate::util::redact_url(endpoint),
                source,
            })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ExportError::Status {
                endpoint: crate::util::redact_url(endpoint),
                status,
            })
        }
    }

    /// Starts the `metrics-export` thread; it exports every interval and once more when
    /// `stop` fires, then ends.
    pub fn spawn(self, stop: CancelToken) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("metrics-export".to_owned())
            .spawn(move || self.run(&stop))
    }

    fn run(&self, stop: &CancelToken) {
        let interval = self.config.export_interval_or_default();
        let mut failures = RepeatLimiter::default();
        loop {
            let last = select! {
                recv(stop.receiver()) -> _ => true,
                recv(after(interval)) -> _ => false,
            };
            match self.export_once() {
                Ok(()) => {
                    if let Some(failed) = failures.success() {
                        log::info!(failed_exports = failed; "metrics export recovered");
                    }
                }
                Err(error) => match failures.failure(Instant::now()) {
                    Repeat::First => log::warn!(
                        error = error_chain(&error).as_str();
                        "metrics export failed"
                    ),
                    Repeat::Summary { suppressed, over } => log::warn!(
                        error = error_chain(&error).as_str(), failures = suppressed,
                        over_s = over.as_secs();
                        "metrics export still failing"
                    ),
                    Repeat::Quiet => {}
                },
            }
            if last {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricSpec;
    use std::time::Duration;

    #[test]
    fn the_request_round_trips_through_prost() {
        let registry = Metrics::new(Some("i".into()));
        let metrics = registry.task("echo", Some(MetricSpec::default()));
        metrics.set_busy(2);
        metrics.attempt_finished(
            crate::result::TaskStatus::Completed,
            None,
            &[],
            Duration::from_millis(7),
            None,
        );
        let bytes = encode_request(&registry.series(), SystemTime::now()).encode_to_vec();
        let decoded = match ExportMetricsServiceRequest::decode(bytes.as_slice()) {
            Ok(decoded) => decoded,
            Err(e) => panic!("decode: {e}"),
        };
        let metrics = &decoded.resource_metrics[0].scope_metrics[0].metrics;
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "runtime.busy_slots",
                "runtime.task_attempt_duration_seconds"
            ]
        );
        match &metrics[1].data {
            Some(metric::Data::Histogram(h)) => {
                assert_eq!(h.data_points[0].count, 1);
                assert_eq!(h.data_points[0].explicit_bounds.len(), 15);
            }
            other => panic!("expected a histogram, got {other:?}"),
        }
    }
}
