//! Per-task worker settings (task domain, poll interval, poll timeout, batch size) looked up
//! the way the official Conductor SDKs look them up, so an operator moving a worker from
//! conductor-python keeps the same variables.
//!
//! For task `<name>` and property `<prop>`, the first of these that is set and non-blank wins:
//!
//! 1. `conductor.worker.<name>.<prop>`
//! 2. `conductor_worker_<name>_<prop>`
//! 3. `CONDUCTOR_WORKER_<NAME>_<PROP>` (the name upper-cased), then the name as written
//! 4. `CONDUCTOR_WORKER_<NAME>_<PROP>` with every character of the name other than an ASCII
//!    letter or digit as `_` (shell-friendly, the Rust SDK's style: `features.build` →
//!    `CONDUCTOR_WORKER_FEATURES_BUILD_DOMAIN`)
//! 5. `conductor.worker.all.<prop>`
//! 6. `CONDUCTOR_WORKER_ALL_<PROP>`
//! 7. `conductor_worker_<prop>`
//! 8. `CONDUCTOR_WORKER_<PROP>`
//! 9. the default
//!
//! Every variable that names a known property is validated when the configuration loads,
//! whichever task it names, so a typo in a value surfaces at startup with the variable's name.
//! Variables naming other SDK properties (`paused`, `worker_id`, …) are ignored.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde_json::{Map, Value};

use super::parse::{ConfigError, non_blank};

/// The default cap of the empty-poll backoff (every SDK uses 100 ms).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The default long-poll wait sent with each poll (every SDK uses 100 ms).
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// The largest poll interval accepted: one hour.
pub const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;
/// The largest long-poll wait Conductor accepts (it answers 400 above 5 s).
pub const MAX_POLL_TIMEOUT_MS: u64 = 5_000;

/// One worker property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkerProperty {
    /// `domain`: the task domain polled.
    Domain,
    /// `poll_interval` (alias `polling_interval`), milliseconds.
    PollInterval,
    /// `poll_timeout`, milliseconds.
    PollTimeout,
    /// `batch_size`: the most tasks asked for in one poll.
    BatchSize,
    /// `thread_count`: attempts run at once when `perago start` gets no `-j`.
    ThreadCount,
}

impl WorkerProperty {
    const ALL: [WorkerProperty; 5] = [
        WorkerProperty::Domain,
        WorkerProperty::PollInterval,
        WorkerProperty::PollTimeout,
        WorkerProperty::BatchSize,
        WorkerProperty::ThreadCount,
    ];

    /// The property names (lower case) that spell this property, preferred first.
    fn names(self) -> &'static [&'static str] {
        match self {
            WorkerProperty::Domain => &["domain"],
            WorkerProperty::PollInterval => &["poll_interval", "polling_interval"],
            WorkerProperty::PollTimeout => &["poll_timeout"],
            WorkerProperty::BatchSize => &["batch_size"],
            WorkerProperty::ThreadCount => &["thread_count"],
        }
    }

    /// The property's canonical name.
    pub fn name(self) -> &'static str {
        self.names()[0]
    }
}

/// A validated property value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PropertyValue {
    Text(String),
    Millis(u64),
    Count(NonZeroUsize),
}

/// Every worker-setting variable found in the environment, validated.
///
/// Resolve one task's settings with [`WorkerSettingsSource::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSettingsSource {
    values: BTreeMap<String, (WorkerProperty, PropertyValue)>,
}

/// Which property a variable name sets, if it is a worker-setting variable at all.
fn property_of(var: &str) -> Option<WorkerProperty> {
    let lower = var.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("conductor.worker.")
        .or_else(|| lower.strip_prefix("conductor_worker_"))?;
    // Longest names first, so `polling_interval` is not read as `..._interval`.
    let mut candidates: Vec<(WorkerProperty, &str)> = WorkerProperty::ALL
        .iter()
        .flat_map(|p| p.names().iter().map(move |n| (*p, *n)))
        .collect();
    candidates.sort_by_key(|(_, name)| std::cmp::Reverse(name.len()));
    candidates.into_iter().find_map(|(property, name)| {
        let head = rest.strip_suffix(name)?;
        (head.is_empty() || head.ends_with('.') || head.ends_with('_')).then_some(property)
    })
}

fn parse_value(
    var: &str,
    property: WorkerProperty,
    raw: &str,
) -> Result<PropertyValue, ConfigError> {
    let value = raw.trim();
    let invalid = |rule: &'static str| ConfigError::WorkerSettingInvalid {
        var: var.to_owned(),
        rule,
    };
    match property {
        WorkerProperty::Domain => {
            if value
                .chars()
                .any(|c| c.is_whitespace() || c == ',' || c == ':')
            {
                Err(invalid(
                    "must be a task domain name without spaces, commas or colons",
                ))
            } else {
                Ok(PropertyValue::Text(value.to_owned()))
            }
        }
        WorkerProperty::PollInterval => match value.parse::<u64>() {
            Ok(ms) if (1..=MAX_POLL_INTERVAL_MS).contains(&ms) => Ok(PropertyValue::Millis(ms)),
            _ => Err(invalid(
                "must be a whole number of milliseconds from 1 to 3600000",
            )),
        },
        WorkerProperty::PollTimeout => match value.parse::<u64>() {
            Ok(ms) if ms <= MAX_POLL_TIMEOUT_MS => Ok(PropertyValue::Millis(ms)),
            _ => Err(invalid(
                "must be a whole number of milliseconds from 0 to 5000",
            )),
        },
        WorkerProperty::BatchSize | WorkerProperty::ThreadCount => {
            match value.parse::<usize>().ok().and_then(NonZeroUsize::new) {
                Some(count) => Ok(PropertyValue::Count(count)),
                None => Err(invalid("must be a positive integer")),
            }
        }
    }
}

impl WorkerSettingsSource {
    /// Collects and validates every worker-setting variable of `env`; blank values are "not
    /// set". When several are invalid, the first in name order is reported.
    pub fn from_env_map(env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for (var, raw) in env {
            let Some(property) = property_of(var) else {
                continue;
            };
            let Some(raw) = non_blank(Some(raw)) else {
                continue;
            };
            let value = parse_value(var, property, raw)?;
            values.insert(var.clone(), (property, value));
        }
        Ok(WorkerSettingsSource { values })
    }

    /// The variable names looked up for `property` of `task_name`, in lookup order.
    pub fn lookup_order(task_name: &str, property: WorkerProperty) -> Vec<String> {
        let upper = task_name.to_ascii_uppercase();
        let shell: String = upper
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut order = Vec::new();
        for prop in property.names() {
            let up = prop.to_ascii_uppercase();
            order.extend([
                format!("conductor.worker.{task_name}.{prop}"),
                format!("conductor_worker_{task_name}_{prop}"),
                format!("CONDUCTOR_WORKER_{upper}_{up}"),
                format!("CONDUCTOR_WORKER_{task_name}_{up}"),
                format!("CONDUCTOR_WORKER_{shell}_{up}"),
            ]);
        }
        for prop in property.names() {
            let up = prop.to_ascii_uppercase();
            order.extend([
                format!("conductor.worker.all.{prop}"),
                format!("CONDUCTOR_WORKER_ALL_{up}"),
                format!("conductor_worker_{prop}"),
                format!("CONDUCTOR_WORKER_{up}"),
            ]);
        }
        let mut seen = std::collections::BTreeSet::new();
        order.retain(|var| seen.insert(var.clone()));
        order
    }

    fn find(&self, task_name: &str, property: WorkerProperty) -> Option<(&str, &PropertyValue)> {
        Self::lookup_order(task_name, property)
            .into_iter()
            .find_map(|var| {
                self.values
                    .get_key_value(&var)
                    .filter(|(_, (p, _))| *p == property)
                    .map(|(var, (_, value))| (var.as_str(), value))
            })
    }

    /// The settings of the worker serving task `task_name`.
    pub fn resolve(&self, task_name: &str) -> WorkerSettings {
        let source = |property| {
            self.find(task_name, property)
                .map(|(var, value)| (var.to_owned(), value.clone()))
        };
        let mut settings = WorkerSettings {
            task_name: task_name.to_owned(),
            ..WorkerSettings::default()
        };
        if let Some((var, PropertyValue::Text(domain))) = source(WorkerProperty::Domain) {
            settings.domain = Some(domain);
            settings.sources.insert(WorkerProperty::Domain, var);
        }
        if let Some((var, PropertyValue::Millis(ms))) = source(WorkerProperty::PollInterval) {
            settings.poll_interval = Duration::from_millis(ms);
            settings.sources.insert(WorkerProperty::PollInterval, var);
        }
        if let Some((var, PropertyValue::Millis(ms))) = source(WorkerProperty::PollTimeout) {
            settings.poll_timeout = Duration::from_millis(ms);
            settings.sources.insert(WorkerProperty::PollTimeout, var);
        }
        if let Some((var, PropertyValue::Count(count))) = source(WorkerProperty::BatchSize) {
            settings.batch_size = Some(count);
            settings.sources.insert(WorkerProperty::BatchSize, var);
        }
        if let Some((var, PropertyValue::Count(count))) = source(WorkerProperty::ThreadCount) {
            settings.thread_count = Some(count);
            settings.sources.insert(WorkerProperty::ThreadCount, var);
        }
        settings
    }
}

/// The resolved settings of one task's worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    task_name: String,
    domain: Option<String>,
    poll_interval: Duration,
    poll_timeout: Duration,
    batch_size: Option<NonZeroUsize>,
    thread_count: Option<NonZeroUsize>,
    sources: BTreeMap<WorkerProperty, String>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            task_name: String::new(),
            domain: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            batch_size: None,
            thread_count: None,
            sources: BTreeMap::new(),
        }
    }
}

impl WorkerSettings {
    /// The task these settings are for.
    pub fn task_name(&self) -> &str {
        &self.task_name
    }

    /// The task domain sent as `domain=` on every poll; `None` polls the default queue.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Cap of the empty-poll backoff (default 100 ms).
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Long-poll wait sent with each poll (default 100 ms, at most 5 s).
    pub fn poll_timeout(&self) -> Duration {
        self.poll_timeout
    }

    /// The most tasks asked for in one poll; `None` asks for every free slot.
    pub fn batch_size(&self) -> Option<NonZeroUsize> {
        self.batch_size
    }

    /// How many attempts `perago start` runs at once when `-j` is not given (threads in thread
    /// mode, child processes in process mode); `None` means 1. `-j` always wins.
    pub fn thread_count(&self) -> Option<NonZeroUsize> {
        self.thread_count
    }

    /// The variable a property was read from; `None` when it has its default.
    pub fn source(&self, property: WorkerProperty) -> Option<&str> {
        self.sources.get(&property).map(String::as_str)
    }

    /// `{task, domain, poll_interval_ms, poll_timeout_ms, batch_size, thread_count}` (`null`
    /// when unset).
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("task".into(), self.task_name.clone().into());
        object.insert(
            "domain".into(),
            self.domain.clone().map_or(Value::Null, Value::from),
        );
        object.insert(
            "poll_interval_ms".into(),
            (self.poll_interval.as_millis() as u64).into(),
        );
        object.insert(
            "poll_timeout_ms".into(),
            (self.poll_timeout.as_millis() as u64).into(),
        );
        object.insert(
            "batch_size".into(),
            self.batch_size.map_or(Value::Null, |n| n.get().into()),
        );
        object.insert(
            "thread_count".into(),
            self.thread_count.map_or(Value::Null, |n| n.get().into()),
        );
        Value::Object(object)
    }

    /// `worker.<property>` lines for `perago config`, each naming where the value came from.
    pub fn text_lines(&self) -> Vec<(String, String)> {
        let from = |property| match self.source(property) {
            Some(var) => format!(" (from {var})"),
            None => " (default)".to_owned(),
        };
        vec![
            ("worker.task".to_owned(), self.task_name.clone()),
            (
                "worker.domain".to_owned(),
                match &self.domain {
                    Some(domain) => format!("{domain}{}", from(WorkerProperty::Domain)),
                    None => "none (default queue)".to_owned(),
                },
            ),
            (
                "worker.poll_interval".to_owned(),
                format!(
                    "{} ms{}",
                    self.poll_interval.as_millis(),
                    from(WorkerProperty::PollInterval)
                ),
            ),
            (
                "worker.poll_timeout".to_owned(),
                format!(
                    "{} ms{}",
                    self.poll_timeout.as_millis(),
                    from(WorkerProperty::PollTimeout)
                ),
            ),
            (
                "worker.batch_size".to_owned(),
                match self.batch_size {
                    Some(n) => format!("{n}{}", from(WorkerProperty::BatchSize)),
                    None => "free slots (default)".to_owned(),
                },
            ),
            (
                "worker.thread_count".to_owned(),
                match self.thread_count {
                    Some(n) => format!(
                        "{n}{} (when -j is not given)",
                        from(WorkerProperty::ThreadCount)
                    ),
                    None => "1 (default; -j wins)".to_owned(),
                },
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &[(&str, &str)]) -> Result<WorkerSettingsSource, ConfigError> {
        let env = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        WorkerSettingsSource::from_env_map(&env)
    }

    fn domain(pairs: &[(&str, &str)]) -> Option<String> {
        source(pairs)
            .unwrap()
            .resolve("features.build")
            .domain()
            .map(str::to_owned)
    }

    #[test]
    fn lookup_order_is_conductor_pythons_then_shell_friendly_then_all() {
        // Each variable in lookup order beats every later one.
        let order = [
            "conductor.worker.features.build.domain",
            "conductor_worker_features.build_domain",
            "CONDUCTOR_WORKER_FEATURES.BUILD_DOMAIN",
            "CONDUCTOR_WORKER_features.build_DOMAIN",
            "CONDUCTOR_WORKER_FEATURES_BUILD_DOMAIN",
            "conductor.worker.all.domain",
            "CONDUCTOR_WORKER_ALL_DOMAIN",
            "conductor_worker_domain",
            "CONDUCTOR_WORKER_DOMAIN",
        ];
        assert_eq!(
            WorkerSettingsSource::lookup_order("features.build", WorkerProperty::Domain),
            order
        );
        for (index, winner) in order.iter().enumerate() {
            let pairs: Vec<(&str, &str)> = order[index..]
                .iter()
                .enumerate()
                .map(|(i, var)| (*var, ["win", "lose1", "lose2", "lose3", "lose4"][i.min(4)]))
                .collect();
            assert_eq!(domain(&pairs).as_deref(), Some("win"), "{winner}");
        }
        assert_eq!(domain(&[]), None);
        assert_eq!(
            domain(&[("CONDUCTOR_WORKER_OTHER_DOMAIN", "x")]),
            None,
            "another task's domain"
        );
        assert_eq!(
            domain(&[
                ("CONDUCTOR_WORKER_FEATURES_BUILD_DOMAIN", " "),
                ("CONDUCTOR_WORKER_ALL_DOMAIN", "all")
            ])
            .as_deref(),
            Some("all"),
            "blank means not set"
        );
    }

    #[test]
    fn poll_settings_resolve_with_the_same_scheme_and_name_their_source() {
        let settings = source(&[
            ("conductor.worker.all.poll_interval", "250"),
            ("CONDUCTOR_WORKER_FEATURES_BUILD_POLLING_INTERVAL", "50"),
            ("CONDUCTOR_WORKER_POLL_TIMEOUT", "2000"),
            ("conductor_worker_features.build_batch_size", "4"),
        ])
        .unwrap()
        .resolve("features.build");
        assert_eq!(settings.poll_interval(), Duration::from_millis(50));
        assert_eq!(
            settings.source(WorkerProperty::PollInterval),
            Some("CONDUCTOR_WORKER_FEATURES_BUILD_POLLING_INTERVAL")
        );
        assert_eq!(settings.poll_timeout(), Duration::from_millis(2000));
        assert_eq!(settings.batch_size().map(NonZeroUsize::get), Some(4));
        assert_eq!(settings.domain(), None);
        let defaults = source(&[]).unwrap().resolve("x");
        assert_eq!(defaults.poll_interval(), DEFAULT_POLL_INTERVAL);
        assert_eq!(defaults.poll_timeout(), DEFAULT_POLL_TIMEOUT);
        assert_eq!(defaults.batch_size(), None);
        assert_eq!(defaults.source(WorkerProperty::PollTimeout), None);
    }

    #[test]
    fn invalid_values_fail_with_the_variable_named() {
        let cases = [
            (
                "CONDUCTOR_WORKER_ALL_POLL_INTERVAL",
                "fast",
                "CONDUCTOR_WORKER_ALL_POLL_INTERVAL must be a whole number of milliseconds from 1 to 3600000",
            ),
            (
                "conductor.worker.echo.poll_interval",
                "0",
                "conductor.worker.echo.poll_interval must be a whole number of milliseconds from 1 to 3600000",
            ),
            (
                "CONDUCTOR_WORKER_POLL_TIMEOUT",
                "5001",
                "CONDUCTOR_WORKER_POLL_TIMEOUT must be a whole number of milliseconds from 0 to 5000",
            ),
            (
                "CONDUCTOR_WORKER_ECHO_BATCH_SIZE",
                "0",
                "CONDUCTOR_WORKER_ECHO_BATCH_SIZE must be a positive integer",
            ),
            (
                "CONDUCTOR_WORKER_DOMAIN",
                "a,b",
                "CONDUCTOR_WORKER_DOMAIN must be a task domain name without spaces, commas or colons",
            ),
        ];
        for (var, value, message) in cases {
            assert_eq!(source(&[(var, value)]).unwrap_err().to_string(), message);
        }
        // Other SDK properties are not ours to judge.
        assert!(source(&[("CONDUCTOR_WORKER_ALL_PAUSED", "maybe")]).is_ok());
        assert_eq!(
            source(&[("CONDUCTOR_WORKER_ALL_THREAD_COUNT", "x")])
                .unwrap_err()
                .to_string(),
            "CONDUCTOR_WORKER_ALL_THREAD_COUNT must be a positive integer"
        );
        let counted = source(&[("conductor.worker.all.thread_count", "6")])
            .unwrap()
            .resolve("echo");
        assert_eq!(counted.thread_count().map(NonZeroUsize::get), Some(6));
    }
}
