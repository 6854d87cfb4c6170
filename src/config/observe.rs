//! Observability settings (SPEC §15): the stderr log format and level, OTLP metrics export
//! and the admin listener.
//!
//! The metrics rules and messages are those of the reference's `parse_metrics_config`
//! (Python perago 0.6.1): four OpenTelemetry variables are refused outright, metrics are off
//! unless `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set, and then `PERAGO_INSTANCE_ID`,
//! `OTEL_EXPORTER_OTLP_METRICS_COMPRESSION`, `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT` and
//! `OTEL_METRIC_EXPORT_INTERVAL` are validated. Blank values mean "not configured".

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use log::LevelFilter;

use super::parse::{ConfigError, vars};
use super::secret::Secret;

/// How `start` writes log records to stderr (`PERAGO_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per record: time, level, message, key fields.
    #[default]
    Text,
    /// The JSONL record, exactly as in the log file.
    Json,
}

impl LogFormat {
    /// The lowercase name used in the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// OTLP/HTTP metrics export settings (the reference's `MetricsConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The full OTLP/HTTP metrics URL (`…/v1/metrics`), used as is.
    pub endpoint: String,
    /// Whether requests are gzip-compressed.
    pub gzip: bool,
    /// Export request timeout (`None`: the OpenTelemetry default, 10 s).
    pub timeout: Option<Duration>,
    /// Export interval (`None`: the OpenTelemetry default, 60 s).
    pub export_interval: Option<Duration>,
}

impl MetricsConfig {
    /// The OpenTelemetry default export timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The OpenTelemetry default export interval.
    pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

    /// The export request timeout in force.
    pub fn timeout_or_default(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }

    /// The export interval in force.
    pub fn export_interval_or_default(&self) -> Duration {
        self.export_interval
            .unwrap_or(Self::DEFAULT_EXPORT_INTERVAL)
    }
}

/// The admin listener (`PERAGO_ADMIN_ADDR`, `PERAGO_ADMIN_TOKEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Bearer token the control routes require; without one, control routes are refused
    /// on a non-loopback address.
    pub token: Option<Secret>,
}

/// Everything SPEC §15 adds to the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservabilityConfig {
    /// The stderr format of `start`.
    pub log_format: LogFormat,
    /// The level filter of every log output.
    pub log_level: LevelFilter,
    /// OTLP export, when `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set.
    pub metrics: Option<MetricsConfig>,
    /// The `perago_instance_id` label (`PERAGO_INSTANCE_ID`), read when metrics are exported
    /// or the admin listener is on.
    pub instance_id: Option<String>,
    /// The admin listener, when `PERAGO_ADMIN_ADDR` is set.
    pub admin: Option<AdminConfig>,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            log_format: LogFormat::Text,
            log_level: LevelFilter::Info,
            metrics: None,
            instance_id: None,
            admin: None,
        }
    }
}

/// The reference's `_env_optional`: trimmed, blank = unset, `replace-me` refused.
fn optional<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    var: &'static str,
) -> Result<Option<&'a str>, ConfigError> {
    match get(var).map(str::trim) {
        None | Some("") => Ok(None),
        Some("replace-me") => Err(ConfigError::Placeholder { var }),
        Some(value) => Ok(Some(value)),
    }
}

fn blank_or<'a>(get: &impl Fn(&str) -> Option<&'a str>, var: &str) -> Option<&'a str> {
    get(var).map(str::trim).filter(|value| !value.is_empty())
}

fn millis(value: Option<&str>, var: &'static str) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::MillisInvalid { var });
    }
    // Digits only: an overflow is a value too large, which saturates to "forever".
    let parsed: u64 = value.parse().unwrap_or(u64::MAX);
    if parsed == 0 {
        return Err(ConfigError::MillisZero { var });
    }
    Ok(Some(Duration::from_millis(parsed)))
}

fn instance_id(value: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let valid = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(Some(value.to_owned()))
    } else {
        Err(ConfigError::InstanceIdInvalid)
    }
}

/// Parses the metrics variables exactly as the reference's `parse_metrics_config`.
pub fn parse_metrics_config<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<(MetricsConfig, Option<String>)>, ConfigError> {
    for var in [
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        if optional(get, var)?.is_some() {
            return Err(ConfigError::MetricsUnsupported { var });
        }
    }
    let Some(endpoint) = optional(get, vars::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)? else {
        return Ok(None);
    };
    let instance = instance_id(blank_or(get, vars::PERAGO_INSTANCE_ID))?;
    let gzip = match blank_or(get, vars::OTEL_EXPORTER_OTLP_METRICS_COMPRESSION) {
        None => false,
        Some(value) if value.eq_ignore_ascii_case("gzip") => true,
        Some(_) => return Err(ConfigError::MetricsCompressionInvalid),
    };
    let timeout = millis(
        blank_or(get, vars::OTEL_EXPORTER_OTLP_METRICS_TIMEOUT),
        vars::OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    )?;
    let export_interval = millis(
        blank_or(get, vars::OTEL_METRIC_EXPORT_INTERVAL),
        vars::OTEL_METRIC_EXPORT_INTERVAL,
    )?;
    Ok(Some((
        MetricsConfig {
            endpoint: endpoint.to_owned(),
            gzip,
            timeout,
            export_interval,
        },
        instance,
    )))
}

/// `host:port` with an IP host, or `localhost:port`.
fn admin_addr(value: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match value.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => port
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| ConfigError::AdminAddrInvalid),
        _ => Err(ConfigError::AdminAddrInvalid),
    }
}

/// Parses every SPEC §15 variable.
pub fn parse_observability<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<ObservabilityConfig, ConfigError> {
    let log_format = match blank_or(get, vars::PERAGO_LOG_FORMAT) {
        None => LogFormat::Text,
        Some(value) if value.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(value) if value.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(_) => return Err(ConfigError::LogFormatInvalid),
    };
    let log_level = match blank_or(get, vars::PERAGO_LOG_LEVEL) {
        None => LevelFilter::Info,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "error" => LevelFilter::Error,
            "warn" => LevelFilter::Warn,
            "info" => LevelFilter::Info,
            "debug" => LevelFilter::Debug,
            "trace" => LevelFilter::Trace,
            _ => return Err(ConfigError::LogLevelInvalid),
        },
    };
    let metrics = parse_metrics_config(get)?;
    let admin = match blank_or(get, vars::PERAGO_ADMIN_ADDR) {
        None => None,
        Some(value) => Some(AdminConfig {
            addr: admin_addr(value)?,
            token: blank_or(get, vars::PERAGO_ADMIN_TOKEN).map(|t| Secret::new(t.to_owned())),
        }),
    };
    let (metrics, instance_id) = match metrics {
        Some((metrics, instance)) => (Some(metrics), instance),
        None if admin.is_some() => (None, instance_id(blank_or(get, vars::PERAGO_INSTANCE_ID))?),
        // Not validated here, as in the reference; a valid value still labels the series an
        // embedding program serves itself.
        None => (
            None,
            instance_id(blank_or(get, vars::PERAGO_INSTANCE_ID))
                .ok()
                .flatten(),
        ),
    };
    Ok(ObservabilityConfig {
        log_format,
        log_level,
        metrics,
        instance_id,
        admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ObservabilityConfig, String> {
        let get = |var: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == var)
                .map(|(_, value)| *value)
        };
        parse_observability(&get).map_err(|e| e.to_string())
    }

    const E: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";

    #[test]
    fn metrics_messages_match_the_reference() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("OTEL_SERVICE_NAME", "x")],
                "OTEL_SERVICE_NAME is not supported by Perago metrics v1",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=b")],
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS is not supported by Perago metrics v1",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "a=b"), (E, "http://x")],
                "OTEL_RESOURCE_ATTRIBUTES is not supported by Perago metrics v1",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x")],
                "OTEL_EXPORTER_OTLP_ENDPOINT is not supported by Perago metrics v1",
            ),
            (
                &[("OTEL_SERVICE_NAME", "replace-me")],
                "OTEL_SERVICE_NAME must be replaced with a real value",
            ),
            (
                &[(E, " replace-me ")],
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT must be replaced with a real value",
            ),
            (
                &[(E, "http://x"), ("PERAGO_INSTANCE_ID", "a b")],
                "PERAGO_INSTANCE_ID must contain only ASCII letters, digits, dots, underscores, or hyphens",
            ),
            (
                &[
                    (E, "http://x"),
                    ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd"),
                ],
                "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION must be 'gzip'",
            ),
            (
                &[
                    (E, "http://x"),
                    ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1.5"),
                ],
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT must be a positive integer number of milliseconds",
            ),
            (
                &[(E, "http://x"), ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "0")],
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT must be greater than zero",
            ),
            (
                &[(E, "http://x"), ("OTEL_METRIC_EXPORT_INTERVAL", "-5")],
                "OTEL_METRIC_EXPORT_INTERVAL must be a positive integer number of milliseconds",
            ),
            (
                &[(E, "http://x"), ("OTEL_METRIC_EXPORT_INTERVAL", "000")],
                "OTEL_METRIC_EXPORT_INTERVAL must be greater than zero",
            ),
            (
                &[("PERAGO_LOG_FORMAT", "xml")],
                "PERAGO_LOG_FORMAT must be either 'text' or 'json'",
            ),
            (
                &[("PERAGO_LOG_LEVEL", "loud")],
                "PERAGO_LOG_LEVEL must be one of 'error', 'warn', 'info', 'debug' or 'trace'",
            ),
            (
                &[("PERAGO_ADMIN_ADDR", "nowhere")],
                "PERAGO_ADMIN_ADDR must be an address such as '127.0.0.1:9464'",
            ),
        ];
        for (env, message) in cases {
            assert_eq!(parse(env).err().as_deref(), Some(*message), "{env:?}");
        }
    }

    #[test]
    fn without_an_endpoint_the_other_metrics_variables_are_not_read() {
        // As in the reference: nothing but the unsupported names is checked.
        let config = parse(&[
            ("PERAGO_INSTANCE_ID", "bad id"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd"),
        ]);
        assert_eq!(config.map(|c| (c.metrics, c.instance_id)), Ok((None, None)));
    }

    #[test]
    fn a_full_metrics_configuration_parses() {
        let config = match parse(&[
            (E, " http://127.0.0.1:4318/v1/metrics "),
            ("PERAGO_INSTANCE_ID", "prod-a.1"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", " GZIP "),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
            ("PERAGO_LOG_FORMAT", "JSON"),
            ("PERAGO_LOG_LEVEL", "debug"),
            ("PERAGO_ADMIN_ADDR", "localhost:9464"),
        ]) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            config.metrics,
            Some(MetricsConfig {
                endpoint: "http://127.0.0.1:4318/v1/metrics".into(),
                gzip: true,
                timeout: Some(Duration::from_millis(2500)),
                export_interval: Some(Duration::from_secs(1)),
            })
        );
        assert_eq!(config.instance_id.as_deref(), Some("prod-a.1"));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.log_level, LevelFilter::Debug);
        assert_eq!(
            config.admin.map(|a| a.addr),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9464)))
        );
    }

    #[test]
    fn defaults_are_text_info_and_nothing_on() {
        assert_eq!(parse(&[]), Ok(ObservabilityConfig::default()));
    }
}
