//! The grammar of each configuration variable and the errors it reports.
//!
//! Every parser here is pure and takes an already trimmed, non-blank value: deciding that a
//! blank value means "not configured" happens once, in `non_blank`. Error texts are part of
//! the product interface (SPEC §2) and match it byte for byte; the CLI prints them after
//! `error: `.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Names of the environment variables perago reads, in SPEC §2 table order.
pub mod vars {
    /// Root directory for attempt workspaces.
    pub const PERAGO_WORKSPACE_ROOT: &str = "PERAGO_WORKSPACE_ROOT";
    /// Root directory for worker JSONL logs.
    pub const PERAGO_LOG_ROOT: &str = "PERAGO_LOG_ROOT";
    /// Log rotation threshold (`512KB`, `100MB`, `1.5GB`).
    pub const PERAGO_LOG_FILE_MAX_SIZE: &str = "PERAGO_LOG_FILE_MAX_SIZE";
    /// Log retention in days (`30d`).
    pub const PERAGO_LOG_RETENTION: &str = "PERAGO_LOG_RETENTION";
    /// ASCII alphanumeric prefix of supervised worker ids.
    pub const PERAGO_WORKER_ID_PREFIX: &str = "PERAGO_WORKER_ID_PREFIX";
    /// `process` or `thread`.
    pub const PERAGO_EXECUTION_MODE: &str = "PERAGO_EXECUTION_MODE";
    /// Minimum age before GC removes an abandoned attempt workspace.
    pub const PERAGO_WORKSPACE_GC_TTL: &str = "PERAGO_WORKSPACE_GC_TTL";
    /// Period of the workspace GC loop.
    pub const PERAGO_WORKSPACE_GC_INTERVAL: &str = "PERAGO_WORKSPACE_GC_INTERVAL";
    /// Optional shutdown drain deadline.
    pub const PERAGO_SHUTDOWN_FORCE_KILL_AFTER: &str = "PERAGO_SHUTDOWN_FORCE_KILL_AFTER";
    /// Maximum characters of a Conductor `reasonForIncompletion`.
    pub const PERAGO_FAILURE_REASON_MAX_LENGTH: &str = "PERAGO_FAILURE_REASON_MAX_LENGTH";
    /// Stack size of each worker thread (size grammar of `PERAGO_LOG_FILE_MAX_SIZE`).
    pub const PERAGO_WORKER_STACK_SIZE: &str = "PERAGO_WORKER_STACK_SIZE";
    /// Directory of the local object cache (SPEC §18); unset: no cache.
    pub const PERAGO_CACHE_DIR: &str = "PERAGO_CACHE_DIR";
    /// Size budget of the local object cache (`10GB`).
    pub const PERAGO_CACHE_MAX_SIZE: &str = "PERAGO_CACHE_MAX_SIZE";
    /// Conductor API endpoint.
    pub const CONDUCTOR_SERVER_URL: &str = "CONDUCTOR_SERVER_URL";
    /// Orkes-style auth key id.
    pub const CONDUCTOR_AUTH_KEY: &str = "CONDUCTOR_AUTH_KEY";
    /// Orkes-style auth key secret.
    pub const CONDUCTOR_AUTH_SECRET: &str = "CONDUCTOR_AUTH_SECRET";
    /// lakeFS endpoint.
    pub const LAKECTL_SERVER_ENDPOINT_URL: &str = "LAKECTL_SERVER_ENDPOINT_URL";
    /// lakeFS access key id.
    pub const LAKECTL_CREDENTIALS_ACCESS_KEY_ID: &str = "LAKECTL_CREDENTIALS_ACCESS_KEY_ID";
    /// lakeFS secret access key.
    pub const LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: &str = "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY";
    /// This process's worker id; set by the process supervisor for its children.
    pub const PERAGO_WORKER_ID: &str = "PERAGO_WORKER_ID";
    /// Base of the default roots when set and non-blank.
    pub const TMPDIR: &str = "TMPDIR";
    /// stderr log format (SPEC §15).
    pub const PERAGO_LOG_FORMAT: &str = "PERAGO_LOG_FORMAT";
    /// Log level of every output (SPEC §15).
    pub const PERAGO_LOG_LEVEL: &str = "PERAGO_LOG_LEVEL";
    /// Admin listener address (SPEC §15).
    pub const PERAGO_ADMIN_ADDR: &str = "PERAGO_ADMIN_ADDR";
    /// Bearer token of the admin control routes (SPEC §15).
    pub const PERAGO_ADMIN_TOKEN: &str = "PERAGO_ADMIN_TOKEN";
    /// The `perago_instance_id` metric label.
    pub const PERAGO_INSTANCE_ID: &str = "PERAGO_INSTANCE_ID";
    /// The OTLP/HTTP metrics endpoint (full URL, used as is).
    pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
    /// `gzip` or unset.
    pub const OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: &str =
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
    /// Export request timeout in ms.
    pub const OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
    /// Export interval in ms.
    pub const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
}

/// The smallest accepted `PERAGO_WORKER_STACK_SIZE`: below this perago's own attempt code
/// (schema validation, JSON) could overflow before any body runs.
pub const MIN_WORKER_STACK_SIZE: u64 = 256 * KIB;

/// Default log rotation threshold: 100MB.
pub const DEFAULT_LOG_FILE_MAX_SIZE: u64 = 100 * MIB;
/// Default object cache budget: 10GB.
pub const DEFAULT_CACHE_MAX_SIZE: u64 = 10 * GIB;
/// Default log retention: 30 days.
pub const DEFAULT_LOG_RETENTION: Duration = Duration::from_secs(30 * DAY_SECS);
/// Default workspace GC TTL: 24 hours.
pub const DEFAULT_WORKSPACE_GC_TTL: Duration = Duration::from_secs(24 * HOUR_SECS);
/// Default workspace GC interval: 1 hour.
pub const DEFAULT_WORKSPACE_GC_INTERVAL: Duration = Duration::from_secs(HOUR_SECS);
/// Default maximum length of a failure reason: 500 characters.
pub const DEFAULT_FAILURE_REASON_MAX_LENGTH: NonZeroUsize = NonZeroUsize::MIN.saturating_add(499);

/// The placeholder shipped in example `.env` files; a connection value still equal to it
/// (after trimming, compared case-sensitively as the reference does) is rejected.
pub(crate) const PLACEHOLDER: &str = "replace-me";

/// Longest accepted duration, in days. It is the largest `timedelta` the reference can hold,
/// and keeps `Instant + duration` far from overflow everywhere downstream.
pub(crate) const MAX_DURATION_DAYS: u64 = 999_999_999;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const MINUTE_SECS: u64 = 60;
const HOUR_SECS: u64 = 60 * MINUTE_SECS;
const DAY_SECS: u64 = 24 * HOUR_SECS;
pub(crate) const MAX_DURATION_SECS: u64 = MAX_DURATION_DAYS * DAY_SECS;

/// Why runtime configuration could not be loaded.
///
/// `Display` is the exact user-facing text of SPEC §2 (the CLI prints `error: <Display>`), so
/// the underlying I/O error is part of the text and not repeated as a `source()`. Every
/// variant about a value names its variable; [`ConfigError::var`] returns it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The `.env` file exists but could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    DotenvUnreadable {
        /// The `.env` file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The `.env` file is not UTF-8.
    #[error("{} is not valid UTF-8 (line {line})", .path.display())]
    DotenvNotUtf8 {
        /// The `.env` file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
    },
    /// A root directory could not be created or written.
    #[error("{} is not writable: {error}", .path.display())]
    NotWritable {
        /// The root (workspace or log) or cache directory that failed the probe.
        path: PathBuf,
        /// Its variable (`PERAGO_WORKSPACE_ROOT`, `PERAGO_LOG_ROOT` or `PERAGO_CACHE_DIR`).
        var: &'static str,
        /// What the OS said.
        error: io::Error,
    },
    /// A worker-setting variable (`CONDUCTOR_WORKER_*`, `conductor.worker.*`) has a value
    /// its property does not accept.
    #[error("{var} {rule}")]
    WorkerSettingInvalid {
        /// The variable, as written.
        var: String,
        /// What the value must be.
        rule: &'static str,
    },
    /// A TLS certificate or key file could not be read.
    #[error("{var} names a file that cannot be read: {}", .path.display())]
    TlsFileUnreadable {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        error: io::Error,
    },
    /// A TLS file holds no usable PEM item of the kind needed.
    #[error("{var} must name a file holding {expected}: {}", .path.display())]
    TlsFileInvalid {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// What it must hold (`a PEM certificate`, `a PEM private key`).
        expected: &'static str,
    },
    /// Only one of a client certificate and its key is configured.
    #[error("TLS client certificate config is incomplete; missing {missing}")]
    TlsClientIncomplete {
        /// The variable that is missing.
        missing: &'static str,
    },
    /// A proxy variable is not a proxy URL.
    #[error("{var} must be a proxy URL such as 'http://proxy.example.com:3128'")]
    ProxyInvalid {
        /// The variable, as spelled in the environment.
        var: &'static str,
    },
    /// `PERAGO_LOG_FILE_MAX_SIZE` does not follow the size grammar.
    #[error(
        "PERAGO_LOG_FILE_MAX_SIZE must be a positive size such as '512KB', '100MB', or '1.5GB'"
    )]
    LogFileMaxSizeInvalid,
    /// `PERAGO_LOG_FILE_MAX_SIZE` has a zero amount.
    #[error("PERAGO_LOG_FILE_MAX_SIZE must be greater than zero")]
    LogFileMaxSizeZero,
    /// `PERAGO_WORKER_STACK_SIZE` does not follow the size grammar.
    #[error("PERAGO_WORKER_STACK_SIZE must be a positive size such as '512KB', '8MB', or '1.5GB'")]
    WorkerStackSizeInvalid,
    /// `PERAGO_WORKER_STACK_SIZE` is below 256 KiB.
    #[error("PERAGO_WORKER_STACK_SIZE must be at least 256KB")]
    WorkerStackSizeTooSmall,
    /// `PERAGO_CACHE_MAX_SIZE` does not follow the size grammar.
    #[error("PERAGO_CACHE_MAX_SIZE must be a positive size such as '512KB', '100MB', or '1.5GB'")]
    CacheMaxSizeInvalid,
    /// `PERAGO_CACHE_MAX_SIZE` has a zero amount.
    #[error("PERAGO_CACHE_MAX_SIZE must be greater than zero")]
    CacheMaxSizeZero,
    /// `PERAGO_LOG_RETENTION` is not `<positive int>d`.
    #[error("PERAGO_LOG_RETENTION must be a positive day count such as '7d' or '30d'")]
    LogRetentionInvalid,
    /// `PERAGO_WORKER_ID_PREFIX` (or the prefix derived from the target) is empty.
    #[error("PERAGO_WORKER_ID_PREFIX must not be empty")]
    WorkerIdPrefixEmpty,
    /// `PERAGO_WORKER_ID_PREFIX` contains something other than ASCII letters and digits.
    #[error("PERAGO_WORKER_ID_PREFIX must contain only ASCII letters and digits")]
    WorkerIdPrefixInvalid,
    /// `PERAGO_EXECUTION_MODE` is neither `process` nor `thread`.
    #[error("PERAGO_EXECUTION_MODE must be either 'process' or 'thread'")]
    ExecutionModeInvalid,
    /// A duration variable is not `<positive int>` + `s`/`m`/`h`/`d`.
    #[error("{var} must be a positive duration such as '30s', '5m', '1h', or '24h'")]
    DurationInvalid {
        /// The variable.
        var: &'static str,
    },
    /// `PERAGO_FAILURE_REASON_MAX_LENGTH` is not made of digits only.
    #[error("PERAGO_FAILURE_REASON_MAX_LENGTH must be a positive integer")]
    FailureReasonMaxLengthInvalid,
    /// `PERAGO_FAILURE_REASON_MAX_LENGTH` is zero.
    #[error("PERAGO_FAILURE_REASON_MAX_LENGTH must be greater than zero")]
    FailureReasonMaxLengthZero,
    /// A well-formed value beyond what perago can represent (beyond the reference, which has
    /// arbitrary-precision integers).
    #[error("{var} is too large; the maximum is {max}")]
    TooLarge {
        /// The variable.
        var: &'static str,
        /// The largest accepted value, in the variable's own notation.
        max: String,
    },
    /// A connection value is still the `replace-me` placeholder.
    #[error("{var} must be replaced with a real value")]
    Placeholder {
        /// The variable.
        var: &'static str,
    },
    /// Only one of `CONDUCTOR_AUTH_KEY` / `CONDUCTOR_AUTH_SECRET` is set.
    #[error("Conductor auth config is incomplete; missing {}", .missing.join(", "))]
    ConductorAuthIncomplete {
        /// The unset variables, in SPEC table order.
        missing: Vec<&'static str>,
    },
    /// Some but not all of the three lakeFS variables are set.
    #[error("LakeFS config is incomplete; missing {}", .missing.join(", "))]
    LakefsIncomplete {
        /// The unset variables, in SPEC table order.
        missing: Vec<&'static str>,
    },
    /// `perago start` needs Conductor and it is not configured.
    #[error("CONDUCTOR_SERVER_URL is required for perago start")]
    ConductorRequired,
    /// A workspace task needs lakeFS and it is not configured.
    #[error("LakeFS config is required for workspace tasks")]
    LakefsRequired,
    /// An OpenTelemetry variable the reference's metrics v1 refuses (SPEC §15).
    #[error("{var} is not supported by Perago metrics v1")]
    MetricsUnsupported {
        /// The variable.
        var: &'static str,
    },
    /// `OTEL_EXPORTER_OTLP_METRICS_COMPRESSION` is set to something other than `gzip`.
    #[error("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION must be 'gzip'")]
    MetricsCompressionInvalid,
    /// `PERAGO_INSTANCE_ID` has characters outside `[A-Za-z0-9._-]`.
    #[error(
        "PERAGO_INSTANCE_ID must contain only ASCII letters, digits, dots, underscores, or hyphens"
    )]
    InstanceIdInvalid,
    /// A millisecond variable is not made of digits only.
    #[error("{var} must be a positive integer number of milliseconds")]
    MillisInvalid {
        /// The variable.
        var: &'static str,
    },
    /// A millisecond variable is zero.
    #[error("{var} must be greater than zero")]
    MillisZero {
        /// The variable.
        var: &'static str,
    },
    /// `PERAGO_LOG_FORMAT` is neither `text` nor `json`.
    #[error("PERAGO_LOG_FORMAT must be either 'text' or 'json'")]
    LogFormatInvalid,
    /// `PERAGO_LOG_LEVEL` is not a level name.
    #[error("PERAGO_LOG_LEVEL must be one of 'error', 'warn', 'info', 'debug' or 'trace'")]
    LogLevelInvalid,
    /// `PERAGO_ADMIN_ADDR` is not `host:port`.
    #[error("PERAGO_ADMIN_ADDR must be an address such as '127.0.0.1:9464'")]
    AdminAddrInvalid,
    /// A metrics-enabled task has nowhere to send its metrics.
    #[error("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is required for metrics-enabled tasks")]
    MetricsEndpointRequired,
    /// `worker_capacity` metrics are exported without an instance id.
    #[error("PERAGO_INSTANCE_ID is required when worker_capacity metrics are enabled")]
    InstanceIdRequired,
    /// A service URL is not an absolute `http://` or `https://` URL with a host. The value
    /// is not repeated: it may hold a secret.
    #[error("{var} must be an http:// or https:// URL with a host, such as '{example}'")]
    UrlInvalid {
        /// The variable.
        var: &'static str,
        /// A well-formed value for this variable.
        example: &'static str,
    },
    /// A service URL carries `user:password@`; it is never echoed.
    #[error("{var} must not contain credentials (user:password@); set {instead} instead")]
    UrlCredentials {
        /// The variable.
        var: &'static str,
        /// Where the credentials belong.
        instead: &'static str,
    },
    /// A worker id (or the prefix it is built from) too long for a log directory name.
    #[error("{var} must be at most {max} characters (it names a log directory)")]
    WorkerIdTooLong {
        /// The variable (`PERAGO_WORKER_ID_PREFIX` also for a prefix derived from the
        /// target).
        var: &'static str,
        /// The longest accepted length.
        max: usize,
    },
}

impl ConfigError {
    /// The environment variable this error is about, when it is about exactly one.
    pub fn var(&self) -> Option<&'static str> {
        match self {
            Self::LogFileMaxSizeInvalid | Self::LogFileMaxSizeZero => {
                Some(vars::PERAGO_LOG_FILE_MAX_SIZE)
            }
            Self::CacheMaxSizeInvalid | Self::CacheMaxSizeZero => Some(vars::PERAGO_CACHE_MAX_SIZE),
            Self::LogRetentionInvalid => Some(vars::PERAGO_LOG_RETENTION),
            Self::WorkerStackSizeInvalid | Self::WorkerStackSizeTooSmall => {
                Some(vars::PERAGO_WORKER_STACK_SIZE)
            }
            Self::WorkerIdPrefixEmpty | Self::WorkerIdPrefixInvalid => {
                Some(vars::PERAGO_WORKER_ID_PREFIX)
            }
            Self::ExecutionModeInvalid => Some(vars::PERAGO_EXECUTION_MODE),
            Self::FailureReasonMaxLengthInvalid | Self::FailureReasonMaxLengthZero => {
                Some(vars::PERAGO_FAILURE_REASON_MAX_LENGTH)
            }
            Self::DurationInvalid { var }
            | Self::TooLarge { var, .. }
            | Self::Placeholder { var }
            | Self::TlsFileUnreadable { var, .. }
            | Self::TlsFileInvalid { var, .. }
            | Self::ProxyInvalid { var }
            | Self::MetricsUnsupported { var }
            | Self::MillisInvalid { var }
            | Self::MillisZero { var }
            | Self::UrlInvalid { var, .. }
            | Self::UrlCredentials { var, .. }
            | Self::WorkerIdTooLong { var, .. }
            | Self::NotWritable { var, .. } => Some(var),
            Self::TlsClientIncomplete { missing } => Some(missing),
            Self::MetricsCompressionInvalid => Some(vars::OTEL_EXPORTER_OTLP_METRICS_COMPRESSION),
            Self::InstanceIdInvalid | Self::InstanceIdRequired => Some(vars::PERAGO_INSTANCE_ID),
            Self::LogFormatInvalid => Some(vars::PERAGO_LOG_FORMAT),
            Self::LogLevelInvalid => Some(vars::PERAGO_LOG_LEVEL),
            Self::AdminAddrInvalid => Some(vars::PERAGO_ADMIN_ADDR),
            Self::MetricsEndpointRequired => Some(vars::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT),
            Self::ConductorRequired => Some(vars::CONDUCTOR_SERVER_URL),
            Self::ConductorAuthIncomplete { missing } | Self::LakefsIncomplete { missing } => {
                missing.first().copied()
            }
            Self::DotenvUnreadable { .. }
            | Self::DotenvNotUtf8 { .. }
            // Worker-setting variables are named by the operator (`conductor.worker.<task>…`):
            // the message carries the name.
            | Self::WorkerSettingInvalid { .. }
            | Self::LakefsRequired => None,
        }
    }
}

/// How a worker runs task attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// A supervisor re-executes the binary as N child processes, each a thread runtime. The
    /// configured default, as in the reference.
    #[default]
    Process,
    /// One process whose worker threads are fed over a channel: the first-class path.
    Thread,
}

impl ExecutionMode {
    /// The lowercase name used in the environment, on the CLI and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Thread => "thread",
        }
    }
}

impl fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionMode {
    type Err = ConfigError;

    /// Trimmed and ASCII case-insensitive: ` Thread ` is `thread`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("process") {
            Ok(Self::Process)
        } else if value.eq_ignore_ascii_case("thread") {
            Ok(Self::Thread)
        } else {
            Err(ConfigError::ExecutionModeInvalid)
        }
    }
}

/// The trimmed value, or `None` when unset or blank: blank means "not configured".
pub(crate) fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// A connection value (URL, key, secret): trimmed, blank = not configured, and the
/// [`PLACEHOLDER`] rejected.
pub(crate) fn connection_value(
    var: &'static str,
    value: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    match non_blank(value) {
        None => Ok(None),
        Some(PLACEHOLDER) => Err(ConfigError::Placeholder { var }),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// Longest worker id: a file name is at most 255 bytes; the log file names under a worker's
/// directory add a suffix, so ids stay well below.
pub(crate) const MAX_WORKER_ID_LEN: usize = 200;
/// Longest `PERAGO_WORKER_ID_PREFIX`: the supervisor appends a four-digit slot.
pub(crate) const MAX_WORKER_ID_PREFIX_LEN: usize = MAX_WORKER_ID_LEN - 4;

/// Checks a service URL (already trimmed and non-blank): `http`/`https` with a host, and no
/// userinfo. Errors never contain the value.
pub(crate) fn validate_service_url(
    var: &'static str,
    value: &str,
    example: &'static str,
    credentials_instead: &'static str,
) -> Result<(), ConfigError> {
    let invalid = || ConfigError::UrlInvalid { var, example };
    let url = url::Url::parse(value).map_err(|_| invalid())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::UrlCredentials {
            var,
            instead: credentials_instead,
        });
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid());
    }
    Ok(())
}

/// `<int>[.<digits>]` + optional whitespace + `KB`/`MB`/`GB` (ASCII case-insensitive,
/// binary units), rounded up to whole bytes. The integer part has no leading zeros
/// (`0.5MB` is fine, `01MB` is not), as in the reference.
pub(crate) fn parse_log_file_max_size(value: &str) -> Result<u64, ConfigError> {
    parse_size(
        vars::PERAGO_LOG_FILE_MAX_SIZE,
        value,
        || ConfigError::LogFileMaxSizeInvalid,
        || ConfigError::LogFileMaxSizeZero,
    )
}

/// `PERAGO_WORKER_STACK_SIZE`: the size grammar of [`parse_log_file_max_size`], at least
/// [`MIN_WORKER_STACK_SIZE`].
pub(crate) fn parse_worker_stack_size(value: &str) -> Result<u64, ConfigError> {
    let bytes = parse_size(
        vars::PERAGO_WORKER_STACK_SIZE,
        value,
        || ConfigError::WorkerStackSizeInvalid,
        || ConfigError::WorkerStackSizeTooSmall,
    )?;
    if bytes < MIN_WORKER_STACK_SIZE {
        return Err(ConfigError::WorkerStackSizeTooSmall);
    }
    Ok(bytes)
}

/// `PERAGO_CACHE_MAX_SIZE`: the grammar of [`parse_log_file_max_size`], its own messages.
pub(crate) fn parse_cache_max_size(value: &str) -> Result<u64, ConfigError> {
    parse_size(
        vars::PERAGO_CACHE_MAX_SIZE,
        value,
        || ConfigError::CacheMaxSizeInvalid,
        || ConfigError::CacheMaxSizeZero,
    )
}

/// The size grammar of `var`; `invalid` and `zero` make its two errors.
fn parse_size(
    var: &'static str,
    value: &str,
    invalid: fn() -> ConfigError,
    zero: fn() -> ConfigError,
) -> Result<u64, ConfigError> {
    let value = value.trim();
    let split = value
        .len()
        .checked_sub(2)
        .filter(|&at| value.is_char_boundary(at));
    let Some(split) = split else {
        return Err(invalid());
    };
    let (amount, unit) = value.split_at(split);
    let unit_bytes = if unit.eq_ignore_ascii_case("KB") {
        KIB
    } else if unit.eq_ignore_ascii_case("MB") {
        MIB
    } else if unit.eq_ignore_ascii_case("GB") {
        GIB
    } else {
        return Err(invalid());
    };
    let amount = amount.trim_end();
    let (int_part, frac_part) = match amount.split_once('.') {
        Some((int_part, frac_part)) => (int_part, frac_part),
        None => (amount, ""),
    };
    let int_ok = is_digits(int_part) && (int_part == "0" || !int_part.starts_with('0'));
    let frac_ok = !amount.contains('.') || is_digits(frac_part);
    if !int_ok || !frac_ok {
        return Err(invalid());
    }
    if int_part == "0" && frac_part.bytes().all(|b| b == b'0') {
        return Err(zero());
    }
    let too_large = || ConfigError::TooLarge {
        var,
        max: format!("{} bytes", u64::MAX),
    };
    let whole = int_part
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes))
        .ok_or_else(too_large)?;
    whole
        .checked_add(fraction_bytes_ceil(frac_part, unit_bytes))
        .ok_or_else(too_large)
}

/// `ceil(0.<digits> × unit)` computed exactly: the digits are multiplied by `unit` as a long
/// decimal number, least significant digit first; what carries out of the last digit is the
/// whole-byte part and any non-zero digit left behind means rounding up.
fn fraction_bytes_ceil(digits: &str, unit: u64) -> u64 {
    let mut carry = 0u64;
    let mut remainder = false;
    for digit in digits.bytes().rev() {
        let product = u64::from(digit - b'0') * unit + carry;
        remainder |= !product.is_multiple_of(10);
        carry = product / 10;
    }
    carry + u64::from(remainder)
}

/// `<positive int>d`, ASCII case-insensitive; no leading zeros, as in the reference.
pub(crate) fn parse_log_retention(value: &str) -> Result<Duration, ConfigError> {
    let value = value.trim();
    let days = value
        .strip_suffix(['d', 'D'])
        .filter(|n| is_positive_int(n))
        .ok_or(ConfigError::LogRetentionInvalid)?;
    seconds(vars::PERAGO_LOG_RETENTION, days, DAY_SECS)
}

/// `<positive int>` + `s`/`m`/`h`/`d`, ASCII case-insensitive; no leading zeros, as in the
/// reference.
pub(crate) fn parse_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let value = value.trim();
    let invalid = ConfigError::DurationInvalid { var };
    let Some(unit) = value.chars().last() else {
        return Err(invalid);
    };
    let unit_secs = match unit.to_ascii_lowercase() {
        's' => 1,
        'm' => MINUTE_SECS,
        'h' => HOUR_SECS,
        'd' => DAY_SECS,
        _ => return Err(invalid),
    };
    let amount = &value[..value.len() - unit.len_utf8()];
    if !is_positive_int(amount) {
        return Err(invalid);
    }
    seconds(var, amount, unit_secs)
}

fn seconds(var: &'static str, amount: &str, unit_secs: u64) -> Result<Duration, ConfigError> {
    amount
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .filter(|&secs| secs <= MAX_DURATION_SECS)
        .map(Duration::from_secs)
        .ok_or_else(|| ConfigError::TooLarge {
            var,
            max: format!("{MAX_DURATION_DAYS}d"),
        })
}

/// Digits only (leading zeros allowed, as in the reference); zero has its own message.
pub(crate) fn parse_failure_reason_max_length(value: &str) -> Result<NonZeroUsize, ConfigError> {
    let value = value.trim();
    if !is_digits(value) {
        return Err(ConfigError::FailureReasonMaxLengthInvalid);
    }
    if value.bytes().all(|b| b == b'0') {
        return Err(ConfigError::FailureReasonMaxLengthZero);
    }
    value
        .parse::<NonZeroUsize>()
        .map_err(|_| ConfigError::TooLarge {
            var: vars::PERAGO_FAILURE_REASON_MAX_LENGTH,
            max: usize::MAX.to_string(),
        })
}

/// Checks a worker id prefix (already trimmed); never corrects it.
pub(crate) fn validate_worker_id_prefix(value: &str) -> Result<&str, ConfigError> {
    if value.is_empty() {
        Err(ConfigError::WorkerIdPrefixEmpty)
    } else if !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Err(ConfigError::WorkerIdPrefixInvalid)
    } else {
        Ok(value)
    }
}

/// The worker id prefix derived from a target: every character outside `[A-Za-z0-9]` removed
/// (`app.workers.features_build` → `appworkersfeaturesbuild`). It may be empty; loading
/// then reports `PERAGO_WORKER_ID_PREFIX must not be empty`.
pub fn default_worker_id_prefix(target: &str) -> String {
    target.chars().filter(char::is_ascii_alphanumeric).collect()
}

fn is_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

fn is_positive_int(value: &str) -> bool {
    is_digits(value) && !value.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE_GRAMMAR: &str =
        "PERAGO_LOG_FILE_MAX_SIZE must be a positive size such as '512KB', '100MB', or '1.5GB'";
    const SIZE_ZERO: &str = "PERAGO_LOG_FILE_MAX_SIZE must be greater than zero";

    fn message<T: fmt::Debug>(result: Result<T, ConfigError>) -> String {
        match result {
            Ok(value) => format!("ok {value:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn worker_stack_size_uses_the_size_grammar_with_a_floor() {
        let invalid =
            "PERAGO_WORKER_STACK_SIZE must be a positive size such as '512KB', '8MB', or '1.5GB'";
        let small = "PERAGO_WORKER_STACK_SIZE must be at least 256KB";
        for (input, expected) in [
            ("8MB", "ok 8388608".to_owned()),
            ("256kb", "ok 262144".to_owned()),
            ("1.5 GB", "ok 1610612736".to_owned()),
            ("255KB", small.to_owned()),
            ("0MB", small.to_owned()),
            ("8", invalid.to_owned()),
            ("8TB", invalid.to_owned()),
            ("-1MB", invalid.to_owned()),
        ] {
            assert_eq!(message(parse_worker_stack_size(input)), expected, "{input}");
        }
    }

    #[test]
    fn log_file_max_size_valid() {
        let cases: &[(&str, u64)] = &[
            ("512KB", 524_288),
            ("100MB", 104_857_600),
            ("1.5GB", 1_610_612_736),
            ("1GB", GIB),
            ("1.0001KB", 1025),
            ("1.001KB", 1026),
            ("0.5KB", 512),
            ("0.0001KB", 1),
            ("1.00000000000000000000000000000001KB", 1025),
            ("1.000000KB", 1024),
            (" 100 mb ", 104_857_600),
            ("100\tMb", 104_857_600),
            ("100mB", 104_857_600),
            ("2kb", 2048),
            ("17179869183GB", 17_179_869_183 * GIB),
            ("17179869183.999999999GB", u64::MAX),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                message(parse_log_file_max_size(input)),
                format!("ok {expected}"),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn log_file_max_size_invalid() {
        let cases: &[(&str, &str)] = &[
            ("100", SIZE_GRAMMAR),
            ("10TB", SIZE_GRAMMAR),
            ("100B", SIZE_GRAMMAR),
            ("100 M", SIZE_GRAMMAR),
            ("100MiB", SIZE_GRAMMAR),
            ("-1MB", SIZE_GRAMMAR),
            ("+1MB", SIZE_GRAMMAR),
            ("1e3MB", SIZE_GRAMMAR),
            ("01MB", SIZE_GRAMMAR),
            ("00MB", SIZE_GRAMMAR),
            (".5MB", SIZE_GRAMMAR),
            ("5.MB", SIZE_GRAMMAR),
            ("1.2.3MB", SIZE_GRAMMAR),
            ("1,5GB", SIZE_GRAMMAR),
            ("1 000KB", SIZE_GRAMMAR),
            ("MB", SIZE_GRAMMAR),
            ("B", SIZE_GRAMMAR),
            ("", SIZE_GRAMMAR),
            ("１MB", SIZE_GRAMMAR),
            ("1\u{212A}B", SIZE_GRAMMAR),
            ("1é", SIZE_GRAMMAR),
            ("0MB", SIZE_ZERO),
            ("0KB", SIZE_ZERO),
            ("0.0KB", SIZE_ZERO),
            ("0.000 gb", SIZE_ZERO),
            (
                "17179869184GB",
                "PERAGO_LOG_FILE_MAX_SIZE is too large; the maximum is 18446744073709551615 bytes",
            ),
            (
                "99999999999999999999999KB",
                "PERAGO_LOG_FILE_MAX_SIZE is too large; the maximum is 18446744073709551615 bytes",
            ),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                message(parse_log_file_max_size(input)),
                expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn log_retention() {
        const BAD: &str = "PERAGO_LOG_RETENTION must be a positive day count such as '7d' or '30d'";
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("7d", Ok(7 * DAY_SECS)),
            ("7D", Ok(7 * DAY_SECS)),
            (" 30d ", Ok(30 * DAY_SECS)),
            ("999999999d", Ok(MAX_DURATION_SECS)),
            ("0d", Err(BAD)),
            ("01d", Err(BAD)),
            ("7", Err(BAD)),
            ("7h", Err(BAD)),
            ("7 d", Err(BAD)),
            ("-7d", Err(BAD)),
            ("1.5d", Err(BAD)),
            ("d", Err(BAD)),
            ("7days", Err(BAD)),
            ("", Err(BAD)),
            (
                "1000000000d",
                Err("PERAGO_LOG_RETENTION is too large; the maximum is 999999999d"),
            ),
            (
                "99999999999999999999999d",
                Err("PERAGO_LOG_RETENTION is too large; the maximum is 999999999d"),
            ),
        ];
        for (input, expected) in cases {
            let expected = match expected {
                Ok(secs) => format!("ok {:?}", Duration::from_secs(*secs)),
                Err(text) => (*text).to_owned(),
            };
            assert_eq!(
                message(parse_log_retention(input)),
                expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn durations() {
        for var in [
            vars::PERAGO_WORKSPACE_GC_TTL,
            vars::PERAGO_WORKSPACE_GC_INTERVAL,
            vars::PERAGO_SHUTDOWN_FORCE_KILL_AFTER,
        ] {
            let bad =
                format!("{var} must be a positive duration such as '30s', '5m', '1h', or '24h'");
            let cases: &[(&str, Option<u64>)] = &[
                ("30s", Some(30)),
                ("30S", Some(30)),
                ("5m", Some(300)),
                ("5M", Some(300)),
                ("1h", Some(3600)),
                ("24H", Some(86_400)),
                ("2d", Some(172_800)),
                (" 1h ", Some(3600)),
                ("0s", None),
                ("0h", None),
                ("00h", None),
                ("01h", None),
                ("1.5h", None),
                ("-1h", None),
                ("+1h", None),
                ("1", None),
                ("h", None),
                ("1 h", None),
                ("1w", None),
                ("1ms", None),
                ("1hr", None),
                ("1é", None),
                ("é", None),
                ("", None),
            ];
            for &(input, expected) in cases {
                let expected = match expected {
                    Some(secs) => format!("ok {:?}", Duration::from_secs(secs)),
                    None => bad.clone(),
                };
                assert_eq!(
                    message(parse_duration(var, input)),
                    expected,
                    "{var}={input:?}"
                );
            }
            assert_eq!(
                message(parse_duration(var, "1000000000d")),
                format!("{var} is too large; the maximum is 999999999d")
            );
            assert_eq!(
                message(parse_duration(var, "86399999913600s")),
                format!("ok {:?}", Duration::from_secs(MAX_DURATION_SECS))
            );
        }
    }

    #[test]
    fn failure_reason_max_length() {
        const BAD: &str = "PERAGO_FAILURE_REASON_MAX_LENGTH must be a positive integer";
        const ZERO: &str = "PERAGO_FAILURE_REASON_MAX_LENGTH must be greater than zero";
        let cases: &[(&str, Result<usize, &str>)] = &[
            ("500", Ok(500)),
            ("1", Ok(1)),
            ("01", Ok(1)),
            (" 5 ", Ok(5)),
            ("0", Err(ZERO)),
            ("000", Err(ZERO)),
            ("-5", Err(BAD)),
            ("+5", Err(BAD)),
            ("5.0", Err(BAD)),
            ("1e3", Err(BAD)),
            ("five", Err(BAD)),
            ("5 0", Err(BAD)),
            ("٥", Err(BAD)),
            ("", Err(BAD)),
        ];
        for (input, expected) in cases {
            let expected = match expected {
                Ok(n) => format!("ok {n}"),
                Err(text) => (*text).to_owned(),
            };
            assert_eq!(
                message(parse_failure_reason_max_length(input)),
                expected,
                "input {input:?}"
            );
        }
        assert_eq!(
            message(parse_failure_reason_max_length("99999999999999999999999")),
            format!(
                "PERAGO_FAILURE_REASON_MAX_LENGTH is too large; the maximum is {}",
                usize::MAX
            )
        );
    }

    #[test]
    fn execution_mode() {
        const BAD: &str = "PERAGO_EXECUTION_MODE must be either 'process' or 'thread'";
        let cases: &[(&str, Result<ExecutionMode, &str>)] = &[
            ("process", Ok(ExecutionMode::Process)),
            ("thread", Ok(ExecutionMode::Thread)),
            ("THREAD", Ok(ExecutionMode::Thread)),
            (" Process\t", Ok(ExecutionMode::Process)),
            ("threads", Err(BAD)),
            ("proc", Err(BAD)),
            ("", Err(BAD)),
            ("thread process", Err(BAD)),
        ];
        for &(input, expected) in cases {
            let got = input.parse::<ExecutionMode>().map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "input {input:?}");
        }
        assert_eq!(ExecutionMode::Process.to_string(), "process");
        assert_eq!(ExecutionMode::Thread.to_string(), "thread");
        assert_eq!(ExecutionMode::default(), ExecutionMode::Process);
        assert_eq!(
            serde_json::to_string(&ExecutionMode::Thread)
                .ok()
                .as_deref(),
            Some("\"thread\"")
        );
    }

    #[test]
    fn worker_id_prefix() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("prodA1", Ok("prodA1")),
            ("", Err("PERAGO_WORKER_ID_PREFIX must not be empty")),
            (
                "prod-a",
                Err("PERAGO_WORKER_ID_PREFIX must contain only ASCII letters and digits"),
            ),
            (
                "prod_a",
                Err("PERAGO_WORKER_ID_PREFIX must contain only ASCII letters and digits"),
            ),
            (
                "prod a",
                Err("PERAGO_WORKER_ID_PREFIX must contain only ASCII letters and digits"),
            ),
            (
                "prodé",
                Err("PERAGO_WORKER_ID_PREFIX must contain only ASCII letters and digits"),
            ),
        ];
        for &(input, expected) in cases {
            let got = validate_worker_id_prefix(input).map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "input {input:?}");
        }
    }

    #[test]
    fn default_prefix_strips_everything_but_ascii_alphanumerics() {
        let cases = [
            ("app.workers.features_build", "appworkersfeaturesbuild"),
            ("prod-a/features::build", "prodafeaturesbuild"),
            ("Déjà.vu2", "Djvu2"),
            ("...", ""),
            ("", ""),
        ];
        for (target, expected) in cases {
            assert_eq!(
                default_worker_id_prefix(target),
                expected,
                "target {target:?}"
            );
        }
    }

    #[test]
    fn connection_values() {
        let var = vars::CONDUCTOR_SERVER_URL;
        let placeholder = "CONDUCTOR_SERVER_URL must be replaced with a real value";
        type Case<'a> = (Option<&'a str>, Result<Option<&'a str>, &'a str>);
        let cases: &[Case] = &[
            (None, Ok(None)),
            (Some(""), Ok(None)),
            (Some("  \t"), Ok(None)),
            (Some(" http://h:8080/api "), Ok(Some("http://h:8080/api"))),
            (Some("replace-me"), Err(placeholder)),
            (Some(" replace-me\t"), Err(placeholder)),
            // Case-sensitive, as in the reference.
            (Some("REPLACE-ME"), Ok(Some("REPLACE-ME"))),
            (Some("Replace-Me"), Ok(Some("Replace-Me"))),
            (Some("replace-me-too"), Ok(Some("replace-me-too"))),
        ];
        for &(input, expected) in cases {
            let got = connection_value(var, input).map_err(|e| e.to_string());
            let expected = expected
                .map(|v| v.map(str::to_owned))
                .map_err(str::to_owned);
            assert_eq!(got, expected, "input {input:?}");
        }
    }

    #[test]
    fn errors_name_their_variable() {
        let cases = [
            (
                ConfigError::LogFileMaxSizeInvalid,
                Some(vars::PERAGO_LOG_FILE_MAX_SIZE),
            ),
            (
                ConfigError::LogFileMaxSizeZero,
                Some(vars::PERAGO_LOG_FILE_MAX_SIZE),
            ),
            (
                ConfigError::LogRetentionInvalid,
                Some(vars::PERAGO_LOG_RETENTION),
            ),
            (
                ConfigError::WorkerIdPrefixEmpty,
                Some(vars::PERAGO_WORKER_ID_PREFIX),
            ),
            (
                ConfigError::WorkerIdPrefixInvalid,
                Some(vars::PERAGO_WORKER_ID_PREFIX),
            ),
            (
                ConfigError::ExecutionModeInvalid,
                Some(vars::PERAGO_EXECUTION_MODE),
            ),
            (
                ConfigError::FailureReasonMaxLengthZero,
                Some(vars::PERAGO_FAILURE_REASON_MAX_LENGTH),
            ),
            (
                ConfigError::DurationInvalid {
                    var: vars::PERAGO_WORKSPACE_GC_TTL,
                },
                Some(vars::PERAGO_WORKSPACE_GC_TTL),
            ),
            (
                ConfigError::LakefsIncomplete {
                    missing: vec![vars::LAKECTL_CREDENTIALS_ACCESS_KEY_ID],
                },
                Some(vars::LAKECTL_CREDENTIALS_ACCESS_KEY_ID),
            ),
            (
                ConfigError::ConductorRequired,
                Some(vars::CONDUCTOR_SERVER_URL),
            ),
            (ConfigError::LakefsRequired, None),
        ];
        for (error, var) in cases {
            assert_eq!(error.var(), var, "{error}");
            if let Some(var) = var {
                assert!(
                    error.to_string().contains(var),
                    "{error} does not name {var}"
                );
            }
        }
    }

    #[test]
    fn requirement_messages() {
        assert_eq!(
            ConfigError::ConductorRequired.to_string(),
            "CONDUCTOR_SERVER_URL is required for perago start"
        );
        assert_eq!(
            ConfigError::LakefsRequired.to_string(),
            "LakeFS config is required for workspace tasks"
        );
    }
}

/// Property tests of the size and duration grammars (SPEC §2): round trips, rounding up,
/// never a panic, and nothing outside the grammar accepted.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    const UNITS: [(&str, u64); 3] = [("KB", KIB), ("MB", MIB), ("GB", GIB)];
    const DURATION_UNITS: [(char, u64); 4] = [
        ('s', 1),
        ('m', MINUTE_SECS),
        ('h', HOUR_SECS),
        ('d', DAY_SECS),
    ];

    /// `unit` in a random ASCII case.
    fn cased(unit: &str, upper: &[bool]) -> String {
        unit.chars()
            .zip(upper.iter().chain(std::iter::repeat(&false)))
            .map(|(c, &up)| {
                if up {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    fn blanks() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(""), Just(" "), Just("\t"), Just("  ")]
    }

    /// The size grammar, written from SPEC §2 independently of the parser: optional outer
    /// whitespace, `0` or an integer without leading zeros, optionally `.` and digits,
    /// optional whitespace, then `KB`/`MB`/`GB` in any ASCII case.
    fn in_size_grammar(value: &str) -> bool {
        let value = value.trim();
        let Some(unit) = value.get(value.len().saturating_sub(2)..) else {
            return false;
        };
        if !UNITS.iter().any(|(u, _)| unit.eq_ignore_ascii_case(u)) {
            return false;
        }
        let amount = value[..value.len() - 2].trim_end();
        let (int, frac) = amount.split_once('.').unwrap_or((amount, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(int) && digits(frac) && (int == "0" || !int.starts_with('0'))
    }

    /// The duration grammar: optional outer whitespace, a positive integer without leading
    /// zeros, then one of `units` in any ASCII case.
    fn in_duration_grammar(value: &str, units: &[char]) -> bool {
        let value = value.trim();
        let Some(last) = value.chars().last() else {
            return false;
        };
        let amount = &value[..value.len() - last.len_utf8()];
        units.contains(&last.to_ascii_lowercase())
            && !amount.is_empty()
            && amount.bytes().all(|b| b.is_ascii_digit())
            && !amount.starts_with('0')
    }

    /// Near-misses of both grammars: digits, dots, signs, unit letters, whitespace, Unicode
    /// look-alikes.
    fn near_miss() -> impl Strategy<Value = String> {
        "[0-9.+\\-eEkKmMgGbBsShHdDwWi \t１\u{212A}é,_]{0,10}"
    }

    proptest! {
        #[test]
        fn whole_sizes_round_trip(
            amount in 1u64..=1_000_000,
            unit in 0usize..3,
            upper in proptest::collection::vec(any::<bool>(), 2),
            pads in (blanks(), blanks(), blanks()),
        ) {
            let (name, bytes) = UNITS[unit];
            let text = format!("{}{amount}{}{}{}", pads.0, pads.1, cased(name, &upper), pads.2);
            prop_assert_eq!(parse_log_file_max_size(&text).ok(), Some(amount * bytes), "{:?}", text);
        }

        #[test]
        fn fractional_sizes_round_up_to_the_next_whole_byte(
            int in 0u64..=100_000,
            frac in "[0-9]{1,12}",
            unit in 0usize..3,
        ) {
            let (name, bytes) = UNITS[unit];
            let text = format!("{int}.{frac}{name}");
            let result = parse_log_file_max_size(&text);
            let numerator: u128 = frac.parse().expect("digits");
            let scale = 10u128.pow(frac.len() as u32);
            if int == 0 && numerator == 0 {
                prop_assert!(result.is_err(), "{text}: zero is refused");
            } else {
                // The smallest whole byte count at or above (int + frac) × unit.
                let exact_scaled = (u128::from(int) * scale + numerator) * u128::from(bytes);
                let expected = exact_scaled.div_ceil(scale);
                prop_assert_eq!(result.ok().map(u128::from), Some(expected), "{}", text);
            }
        }

        #[test]
        fn sizes_never_panic_and_accept_only_the_grammar(text in prop_oneof![near_miss(), any::<String>()]) {
            match parse_log_file_max_size(&text) {
                Ok(bytes) => {
                    prop_assert!(bytes > 0);
                    prop_assert!(in_size_grammar(&text), "{text:?} accepted outside the grammar");
                }
                Err(_) => {
                    // Inside the grammar only zero and what overflows u64 are refused.
                    if in_size_grammar(&text) {
                        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
                        let zero = digits.bytes().all(|b| b == b'0');
                        prop_assert!(zero || digits.len() > 10, "{text:?} refused");
                    }
                }
            }
        }

        #[test]
        fn durations_round_trip_up_to_the_maximum(
            amount in 1u64..=2_000_000_000,
            unit in 0usize..4,
            upper in any::<bool>(),
            pads in (blanks(), blanks()),
        ) {
            let (name, secs) = DURATION_UNITS[unit];
            let name = if upper { name.to_ascii_uppercase() } else { name };
            let text = format!("{}{amount}{name}{}", pads.0, pads.1);
            let result = parse_duration(vars::PERAGO_WORKSPACE_GC_TTL, &text);
            let total = amount * secs;
            if total <= MAX_DURATION_SECS {
                prop_assert_eq!(result.ok(), Some(Duration::from_secs(total)), "{}", text);
                // What the parser accepts renders back to itself in seconds.
                let again = parse_duration(vars::PERAGO_WORKSPACE_GC_TTL, &format!("{total}s"));
                prop_assert_eq!(again.ok(), Some(Duration::from_secs(total)));
            } else {
                prop_assert!(result.is_err(), "{text} is above the maximum");
            }
        }

        #[test]
        fn durations_never_panic_and_accept_only_the_grammar(text in prop_oneof![near_miss(), any::<String>()]) {
            let var = vars::PERAGO_SHUTDOWN_FORCE_KILL_AFTER;
            if let Ok(duration) = parse_duration(var, &text) {
                prop_assert!(duration > Duration::ZERO);
                prop_assert!(duration.as_secs() <= MAX_DURATION_SECS);
                prop_assert!(in_duration_grammar(&text, &['s', 'm', 'h', 'd']), "{text:?} accepted");
            }
            if let Ok(duration) = parse_log_retention(&text) {
                prop_assert!(duration > Duration::ZERO);
                prop_assert!(duration.as_secs().is_multiple_of(DAY_SECS));
                prop_assert!(in_duration_grammar(&text, &['d']), "{text:?} accepted as days");
            }
        }

        #[test]
        fn retention_in_days_round_trips(days in 1u64..=MAX_DURATION_DAYS, upper in any::<bool>()) {
            let text = format!("{days}{}", if upper { 'D' } else { 'd' });
            prop_assert_eq!(parse_log_retention(&text).ok(), Some(Duration::from_secs(days * DAY_SECS)));
        }
    }
}
