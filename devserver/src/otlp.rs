//! An OTLP/HTTP metrics receiver: `POST /v1/metrics` (protobuf, optionally gzip) decoded with
//! `opentelemetry-proto`'s prost types, and `GET /_dev/metrics`, what was decoded, as JSON —
//! so tests assert on the series a worker really exported. `DELETE /_dev/metrics` forgets.
//!
//! Exports are cumulative, so the receiver keeps the latest point per metric name and
//! attribute set, plus request counts.

use std::collections::BTreeMap;
use std::io::Read;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};
use parking_lot::Mutex;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::http::Response;

#[derive(Debug, Default)]
struct State {
    requests: u64,
    gzip_requests: u64,
    resource: Map<String, Value>,
    /// (metric name, attributes as JSON text) → the metric's JSON with that one point.
    latest: BTreeMap<(String, String), Value>,
}

/// The receiver's state.
#[derive(Debug, Default)]
pub struct OtlpSink {
    state: Mutex<State>,
}

fn any_value_json(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(other) => json!(format!("{other:?}")),
        None => Value::Null,
    }
}

/// Gauge or sum points as `(attributes, kind, {"value": …})`.
fn number_points(
    points: &[NumberDataPoint],
    kind: &'static str,
) -> Vec<(Map<String, Value>, &'static str, Value)> {
    points
        .iter()
        .map(|p| {
            let value = match p.value {
                Some(number_data_point::Value::AsDouble(d)) => json!(d),
                Some(number_data_point::Value::AsInt(i)) => json!(i),
                None => Value::Null,
            };
            (attributes(&p.attributes), kind, json!({"value": value}))
        })
        .collect()
}

fn attributes(attrs: &[KeyValue]) -> Map<String, Value> {
    attrs
        .iter()
        .map(|kv| (kv.key.clone(), any_value_json(kv.value.as_ref())))
        .collect()
}

impl OtlpSink {
    /// `POST /v1/metrics`.
    pub fn receive(&self, headers: &[(String, String)], body: &[u8]) -> Response {
        let gzip = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-encoding") && v.trim().eq_ignore_ascii_case("gzip")
        });
        let mut raw = Vec::new();
        let bytes: &[u8] = if gzip {
            if let Err(err) = flate2::read::GzDecoder::new(body).read_to_end(&mut raw) {
                return Response::json(400, &json!({"message": format!("bad gzip body: {err}")}));
            }
            &raw
        } else {
            body
        };
        let request = match ExportMetricsServiceRequest::decode(bytes) {
            Ok(request) => request,
            Err(err) => {
                return Response::json(
                    400,
                    &json!({"message": format!("not an OTLP metrics request: {err}")}),
                );
            }
        };
        let mut state = self.state.lock();
        state.requests += 1;
        if gzip {
            state.gzip_requests += 1;
        }
        for resource_metrics in &request.resource_metrics {
            if let Some(resource) = &resource_metrics.resource {
                state.resource = attributes(&resource.attributes);
            }
            for scope in &resource_metrics.scope_metrics {
                let scope_name = scope
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for m in &scope.metrics {
                    let points: Vec<(Map<String, Value>, &'static str, Value)> = match &m.data {
                        Some(metric::Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| {
                                (
                                    attributes(&p.attributes),
                                    "histogram",
                                    json!({
                                        "count": p.count,
                                        "sum": p.sum,
                                        "min": p.min,
                                        "max": p.max,
                                        "bucket_counts": p.bucket_counts,
                                        "explicit_bounds": p.explicit_bounds,
                                    }),
                                )
                            })
                            .collect(),
                        Some(metric::Data::Gauge(g)) => number_points(&g.data_points, "gauge"),
                        Some(metric::Data::Sum(s)) => number_points(&s.data_points, "sum"),
                        _ => Vec::new(),
                    };
                    for (attrs, kind, point) in points {
                        let key = (m.name.clone(), Value::Object(attrs.clone()).to_string());
                        state.latest.insert(
                            key,
                            json!({
                                "name": m.name,
                                "unit": m.unit,
                                "scope": scope_name,
                                "kind": kind,
                                "attributes": attrs,
                                "point": point,
                            }),
                        );
                    }
                }
            }
        }
        // An empty ExportMetricsServiceResponse: full success.
        Response::bytes(200, "application/x-protobuf", Vec::new())
    }

    /// `GET /_dev/metrics`.
    pub fn decoded(&self) -> Value {
        let state = self.state.lock();
        json!({
            "requests": state.requests,
            "gzip_requests": state.gzip_requests,
            "resource": state.resource,
            "metrics": state.latest.values().cloned().collect::<Vec<_>>(),
        })
    }

    /// `DELETE /_dev/metrics`.
    pub fn reset(&self) {
        *self.state.lock() = State::default();
    }
}
