//! Where each configuration value came from (SPEC §16): the default, a `.env` line, the
//! process environment, or a command-line flag. `perago config` prints it, and CLI errors
//! about a value say it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::dotenv::{DOTENV_FILE_NAME, dotenv_line_numbers};
use super::net::{CONDUCTOR_TLS, LAKEFS_TLS};
use super::parse::{non_blank, vars};
use super::runtime::ConfigOverrides;

/// Every variable `perago config` reports a source for, in SPEC §2 table order, then the
/// cache variables (SPEC §18), the TLS files and the observability variables (SPEC §15).
/// (Proxy variables and per-task worker settings have several spellings each and are not
/// reported.)
pub const REPORTED_VARS: [&str; 35] = [
    vars::PERAGO_WORKSPACE_ROOT,
    vars::PERAGO_LOG_ROOT,
    vars::PERAGO_LOG_FILE_MAX_SIZE,
    vars::PERAGO_LOG_RETENTION,
    vars::PERAGO_WORKER_ID_PREFIX,
    vars::PERAGO_EXECUTION_MODE,
    vars::PERAGO_WORKSPACE_GC_TTL,
    vars::PERAGO_WORKSPACE_GC_INTERVAL,
    vars::PERAGO_SHUTDOWN_FORCE_KILL_AFTER,
    vars::PERAGO_FAILURE_REASON_MAX_LENGTH,
    vars::PERAGO_WORKER_STACK_SIZE,
    vars::CONDUCTOR_SERVER_URL,
    vars::CONDUCTOR_AUTH_KEY,
    vars::CONDUCTOR_AUTH_SECRET,
    vars::LAKECTL_SERVER_ENDPOINT_URL,
    vars::LAKECTL_CREDENTIALS_ACCESS_KEY_ID,
    vars::LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY,
    vars::PERAGO_WORKER_ID,
    vars::PERAGO_CACHE_DIR,
    vars::PERAGO_CACHE_MAX_SIZE,
    CONDUCTOR_TLS.ca_cert,
    CONDUCTOR_TLS.client_cert,
    CONDUCTOR_TLS.client_key,
    LAKEFS_TLS.ca_cert,
    LAKEFS_TLS.client_cert,
    LAKEFS_TLS.client_key,
    vars::PERAGO_LOG_FORMAT,
    vars::PERAGO_LOG_LEVEL,
    vars::PERAGO_ADMIN_ADDR,
    vars::PERAGO_ADMIN_TOKEN,
    vars::PERAGO_INSTANCE_ID,
    vars::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    vars::OTEL_EXPORTER_OTLP_METRICS_COMPRESSION,
    vars::OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    vars::OTEL_METRIC_EXPORT_INTERVAL,
];

/// Where one value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// Not set (or blank): the default applies.
    Default,
    /// A line of the `.env` file (or the `--env-file` file).
    Dotenv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The process environment.
    Environment,
    /// A command-line flag (`--execution-mode`).
    Flag(&'static str),
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Default => f.write_str("default"),
            ValueSource::Dotenv { path, line } => write!(f, "{} line {line}", path.display()),
            ValueSource::Environment => f.write_str("environment"),
            ValueSource::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The source of every variable of one configuration load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    sources: BTreeMap<&'static str, ValueSource>,
}

impl ConfigSources {
    /// The sources for a load from `cwd` (with `env_file` instead of `<cwd>/.env` when
    /// given), the process environment `process_env` and the CLI `overrides`. An unreadable
    /// `.env` leaves its values reported as defaults: loading itself reports the file.
    pub fn gather(
        cwd: &Path,
        env_file: Option<&Path>,
        process_env: impl IntoIterator<Item = (OsString, OsString)>,
        overrides: &ConfigOverrides,
    ) -> ConfigSources {
        let path = cwd.join(env_file.unwrap_or(Path::new(DOTENV_FILE_NAME)));
        let lines = std::fs::read_to_string(&path)
            .map(|text| dotenv_line_numbers(&text))
            .unwrap_or_default();
        let process: BTreeMap<String, String> = process_env
            .into_iter()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let mut sources = BTreeMap::new();
        for var in REPORTED_VARS {
            // The process environment wins over `.env`; a blank value means the default.
            let source = match process.get(var) {
                Some(value) if non_blank(Some(value)).is_some() => ValueSource::Environment,
                Some(_) => ValueSource::Default,
                None => match lines.get(var) {
                    Some(&line) => ValueSource::Dotenv {
                        path: path.clone(),
                        line,
                    },
                    None => ValueSource::Default,
                },
            };
            sources.insert(var, source);
        }
        if overrides.execution_mode.is_some() {
            sources.insert(
                vars::PERAGO_EXECUTION_MODE,
                ValueSource::Flag("--execution-mode"),
            );
        }
        ConfigSources { sources }
    }

    /// Where `var` came from (`Default` for a variable not reported).
    pub fn of(&self, var: &str) -> ValueSource {
        self.sources
            .get(var)
            .cloned()
            .unwrap_or(ValueSource::Default)
    }

    /// Every reported variable with its source, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, ValueSource)> + '_ {
        REPORTED_VARS.into_iter().map(|var| (var, self.of(var)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExecutionMode;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn environment_beats_dotenv_beats_default_and_flags_beat_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "# comment\nPERAGO_LOG_RETENTION=7d\nexport PERAGO_WORKSPACE_GC_TTL=1h\nPERAGO_EXECUTION_MODE=thread\n",
        )
        .unwrap();
        let env = os(&[
            ("PERAGO_WORKSPACE_GC_TTL", "2h"),
            ("PERAGO_LOG_ROOT", "/logs"),
            ("PERAGO_WORKSPACE_ROOT", "  "),
        ]);
        let overrides = ConfigOverrides {
            execution_mode: Some(ExecutionMode::Process),
        };
        let sources = ConfigSources::gather(dir.path(), None, env, &overrides);
        let dotenv = dir.path().join(".env");
        assert_eq!(
            sources.of(vars::PERAGO_LOG_RETENTION),
            ValueSource::Dotenv {
                path: dotenv.clone(),
                line: 2
            }
        );
        assert_eq!(
            sources.of(vars::PERAGO_LOG_RETENTION).to_string(),
            format!("{} line 2", dotenv.display())
        );
        assert_eq!(
            sources.of(vars::PERAGO_WORKSPACE_GC_TTL),
            ValueSource::Environment
        );
        assert_eq!(sources.of(vars::PERAGO_LOG_ROOT), ValueSource::Environment);
        assert_eq!(
            sources.of(vars::PERAGO_WORKSPACE_ROOT),
            ValueSource::Default
        );
        assert_eq!(
            sources.of(vars::PERAGO_EXECUTION_MODE).to_string(),
            "flag --execution-mode"
        );
        assert_eq!(sources.iter().count(), REPORTED_VARS.len());
    }

    #[test]
    fn an_env_file_replaces_dot_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "PERAGO_LOG_RETENTION=7d\n").unwrap();
        std::fs::write(dir.path().join("other.env"), "\nPERAGO_LOG_ROOT=/x\n").unwrap();
        let sources = ConfigSources::gather(
            dir.path(),
            Some(Path::new("other.env")),
            Vec::new(),
            &ConfigOverrides::default(),
        );
        assert_eq!(sources.of(vars::PERAGO_LOG_RETENTION), ValueSource::Default);
        assert_eq!(
            sources.of(vars::PERAGO_LOG_ROOT),
            ValueSource::Dotenv {
                path: dir.path().join("other.env"),
                line: 2
            }
        );
    }
}
