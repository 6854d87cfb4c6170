//! [`RuntimeConfig`]: the validated, immutable worker-local configuration, and the one
//! startup function that builds it from `.env` + process environment ([`RuntimeConfig::load`]).
//!
//! Loading is staged so each stage is testable on its own: [`load_env`] gathers raw strings,
//! [`RuntimeConfig::from_env_map`] parses and validates them without touching the filesystem,
//! and [`RuntimeConfig::probe_roots`] proves both roots are writable. Only
//! [`RuntimeConfig::load`] reads the real process environment.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::dotenv::{load_env, load_env_file};
use super::net::{CONDUCTOR_TLS, LAKEFS_TLS, ProxyEnv, ProxyUrl, TlsFiles};
use super::observe::{ObservabilityConfig, parse_observability};
use super::parse::{
    ConfigError, DEFAULT_CACHE_MAX_SIZE, DEFAULT_FAILURE_REASON_MAX_LENGTH,
    DEFAULT_LOG_FILE_MAX_SIZE, DEFAULT_LOG_RETENTION, DEFAULT_WORKSPACE_GC_INTERVAL,
    DEFAULT_WORKSPACE_GC_TTL, ExecutionMode, MAX_DURATION_DAYS, MAX_DURATION_SECS,
    MAX_WORKER_ID_LEN, MAX_WORKER_ID_PREFIX_LEN, MIN_WORKER_STACK_SIZE, connection_value,
    default_worker_id_prefix, non_blank, parse_cache_max_size, parse_duration,
    parse_failure_reason_max_length, parse_log_file_max_size, parse_log_retention,
    parse_worker_stack_size, validate_service_url, validate_worker_id_prefix, vars,
};
use super::secret::Secret;
use super::worker::{WorkerSettings, WorkerSettingsSource};
use crate::util::redact_url;

/// Orkes-style key/secret pair used to obtain a Conductor access token (beyond the reference).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConductorAuth {
    key_id: String,
    key_secret: Secret,
}

impl ConductorAuth {
    /// Builds the pair; [`RuntimeConfig::from_env_map`] is the validating path.
    pub fn new(key_id: String, key_secret: Secret) -> Self {
        Self { key_id, key_secret }
    }

    /// `CONDUCTOR_AUTH_KEY`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `CONDUCTOR_AUTH_SECRET`.
    pub fn key_secret(&self) -> &Secret {
        &self.key_secret
    }
}

/// Where and how to reach Conductor.
///
/// `Debug` shows the URL without userinfo (configuration refuses it, but a config built in
/// code with [`ConductorConfig::new`] is not validated).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConductorConfig {
    server_url: String,
    #[serde(default)]
    auth: Option<ConductorAuth>,
    #[serde(default)]
    tls: Option<TlsFiles>,
    #[serde(default)]
    proxy: Option<ProxyUrl>,
}

impl std::fmt::Debug for ConductorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConductorConfig")
            .field("server_url", &redact_url(&self.server_url))
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl std::fmt::Debug for LakefsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakefsConfig")
            .field("endpoint_url", &redact_url(&self.endpoint_url))
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("tls", &self.tls)
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl ConductorConfig {
    /// Builds the config; [`RuntimeConfig::from_env_map`] is the validating path.
    pub fn new(server_url: String, auth: Option<ConductorAuth>) -> Self {
        Self {
            server_url,
            auth,
            tls: None,
            proxy: None,
        }
    }

    /// TLS settings (`CONDUCTOR_SSL_CA_CERT`, `CONDUCTOR_SSL_CLIENT_CERT`,
    /// `CONDUCTOR_SSL_CLIENT_KEY`), when any is set.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The proxy used for `CONDUCTOR_SERVER_URL` (by its scheme, unless `NO_PROXY` exempts
    /// its host).
    pub fn proxy(&self) -> Option<&ProxyUrl> {
        self.proxy.as_ref()
    }

    /// `CONDUCTOR_SERVER_URL`, trimmed (e.g. `http://localhost:8080/api`).
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Token auth, when both `CONDUCTOR_AUTH_KEY` and `CONDUCTOR_AUTH_SECRET` are set.
    pub fn auth(&self) -> Option<&ConductorAuth> {
        self.auth.as_ref()
    }
}

/// Where and how to reach lakeFS.
///
/// `Debug` shows the URL without userinfo and the secret key redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakefsConfig {
    endpoint_url: String,
    access_key_id: String,
    secret_access_key: Secret,
    #[serde(default)]
    tls: Option<TlsFiles>,
    #[serde(default)]
    proxy: Option<ProxyUrl>,
}

impl LakefsConfig {
    /// Builds the config; [`RuntimeConfig::from_env_map`] is the validating path.
    pub fn new(endpoint_url: String, access_key_id: String, secret_access_key: Secret) -> Self {
        Self {
            endpoint_url,
            access_key_id,
            secret_access_key,
            tls: None,
            proxy: None,
        }
    }

    /// TLS settings (`LAKECTL_SERVER_CA_CERT`, `LAKECTL_SERVER_CLIENT_CERT`,
    /// `LAKECTL_SERVER_CLIENT_KEY`), when any is set.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The proxy used for `LAKECTL_SERVER_ENDPOINT_URL`.
    pub fn proxy(&self) -> Option<&ProxyUrl> {
        self.proxy.as_ref()
    }

    /// `LAKECTL_SERVER_ENDPOINT_URL`.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// `LAKECTL_CREDENTIALS_ACCESS_KEY_ID`.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// `LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY`.
    pub fn secret_access_key(&self) -> &Secret {
        &self.secret_access_key
    }
}

/// Values given on the command line; each one beats its environment variable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfigOverrides {
    /// `perago start --execution-mode`.
    pub execution_mode: Option<ExecutionMode>,
}

/// The complete worker-local runtime configuration (SPEC §2).
///
/// Immutable once built: fields are private and read through getters. It never reaches a
/// TaskDef, a task input or a task output. `Debug` redacts secrets.
///
/// `Deserialize` reads the shape [`RuntimeConfig::to_json`] writes (durations in whole
/// seconds), rejects unknown fields and re-checks the value rules; `worker_id` may be given
/// too. Secrets come back as written, so a redacted `to_json` output does not round-trip its
/// secrets.
///
/// # Threads and cloning
///
/// Plain data: `Send + Sync`, and a clone is a deep copy that shares nothing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRuntimeConfig")]
pub struct RuntimeConfig {
    workspace_root: PathBuf,
    log_root: PathBuf,
    log_file_max_size: u64,
    log_retention: Duration,
    worker_id_prefix: String,
    /// The prefix derived from the target alone (SPEC §2: a worker started by hand is
    /// `<default prefix from target>-pid-<pid>`, whatever `PERAGO_WORKER_ID_PREFIX` says).
    target_worker_id_prefix: String,
    execution_mode: ExecutionMode,
    workspace_gc_ttl: Duration,
    workspace_gc_interval: Duration,
    shutdown_force_kill_after: Option<Duration>,
    failure_reason_max_length: NonZeroUsize,
    /// `None`: the platform's default thread stack (2 MiB for Rust threads).
    worker_stack_size: Option<u64>,
    cache_dir: Option<PathBuf>,
    cache_max_size: u64,
    conductor: Option<ConductorConfig>,
    lakefs: Option<LakefsConfig>,
    worker_id: Option<String>,
    /// Every per-task worker setting found in the environment (not part of the JSON shape).
    worker_settings: WorkerSettingsSource,
    /// SPEC §15 settings; not part of the serialised shape (a deserialised config has the
    /// defaults: text logs at info, no metrics, no admin listener).
    observability: ObservabilityConfig,
}

impl RuntimeConfig {
    /// Loads the configuration for `target` the way every CLI command does: `<cwd>/.env`
    /// overlaid by the real process environment, then parsed, validated, and the roots probed.
    ///
    /// This and [`RuntimeConfig::load_with_env_file`] are the only functions in perago that
    /// read the process environment (besides the CLI asking where values came from).
    pub fn load(
        target: &str,
        cwd: &Path,
        overrides: &ConfigOverrides,
    ) -> Result<Self, ConfigError> {
        Self::load_with_env_file(target, cwd, None, overrides)
    }

    /// [`RuntimeConfig::load`] with `env_file` (relative to `cwd`) read instead of
    /// `<cwd>/.env` when given (`perago --env-file PATH`); a given file must exist.
    pub fn load_with_env_file(
        target: &str,
        cwd: &Path,
        env_file: Option<&Path>,
        overrides: &ConfigOverrides,
    ) -> Result<Self, ConfigError> {
        let env = match env_file {
            None => load_env(cwd, std::env::vars_os())?,
            Some(path) => load_env_file(&cwd.join(path), std::env::vars_os())?,
        };
        let mut config = Self::from_env_map(target, &env, overrides)?;
        config.make_roots_absolute(cwd);
        config.probe_roots()?;
        Ok(config)
    }

    /// Joins relative roots onto `cwd`, so every report and every child process sees the
    /// directory actually used.
    pub fn make_roots_absolute(&mut self, cwd: &Path) {
        for root in [&mut self.workspace_root, &mut self.log_root] {
            if root.is_relative() {
                *root = cwd.join(&*root);
            }
        }
    }

    /// Parses and validates `env` (already layered) for `target`. Pure: touches no file.
    ///
    /// Blank values mean "not configured" (the default applies), except an explicit
    /// `PERAGO_WORKER_ID_PREFIX`, which is trimmed and must then be non-empty, as in the
    /// reference. When several variables are invalid, the error is about the first one in
    /// SPEC §2 table order. Relative roots stay relative to the process working directory.
    pub fn from_env_map(
        target: &str,
        env: &BTreeMap<String, String>,
        overrides: &ConfigOverrides,
    ) -> Result<Self, ConfigError> {
        let get = |var: &str| env.get(var).map(String::as_str);
        let base = temp_base(get(vars::TMPDIR), std::env::temp_dir).join("perago");
        let root = |var: &str, default: &str| {
            non_blank(get(var)).map_or_else(|| base.join(default), PathBuf::from)
        };
        let workspace_root = root(vars::PERAGO_WORKSPACE_ROOT, "workspaces");
        let log_root = root(vars::PERAGO_LOG_ROOT, "logs");

        let log_file_max_size = non_blank(get(vars::PERAGO_LOG_FILE_MAX_SIZE))
            .map(parse_log_file_max_size)
            .transpose()?
            .unwrap_or(DEFAULT_LOG_FILE_MAX_SIZE);
        let log_retention = non_blank(get(vars::PERAGO_LOG_RETENTION))
            .map(parse_log_retention)
            .transpose()?
            .unwrap_or(DEFAULT_LOG_RETENTION);
        let derived = default_worker_id_prefix(target);
        let worker_id_prefix = match get(vars::PERAGO_WORKER_ID_PREFIX) {
            Some(explicit) => validate_worker_id_prefix(explicit.trim())?.to_owned(),
            None => {
                validate_worker_id_prefix(&derived)?;
                derived.clone()
            }
        };
        // A target with no letters or digits still needs a by-hand worker id.
        let target_worker_id_prefix = if derived.is_empty() {
            worker_id_prefix.clone()
        } else {
            derived
        };
        // The environment value is validated even when the CLI overrides it, as in the
        // reference: a broken variable is reported, not hidden by a flag.
        let env_execution_mode = non_blank(get(vars::PERAGO_EXECUTION_MODE))
            .map(str::parse::<ExecutionMode>)
            .transpose()?
            .unwrap_or_default();
        let execution_mode = overrides.execution_mode.unwrap_or(env_execution_mode);
        let duration = |var: &'static str| {
            non_blank(get(var))
                .map(|value| parse_duration(var, value))
                .transpose()
        };
        let workspace_gc_ttl =
            duration(vars::PERAGO_WORKSPACE_GC_TTL)?.unwrap_or(DEFAULT_WORKSPACE_GC_TTL);
        let workspace_gc_interval =
            duration(vars::PERAGO_WORKSPACE_GC_INTERVAL)?.unwrap_or(DEFAULT_WORKSPACE_GC_INTERVAL);
        let shutdown_force_kill_after = duration(vars::PERAGO_SHUTDOWN_FORCE_KILL_AFTER)?;
        let failure_reason_max_length = non_blank(get(vars::PERAGO_FAILURE_REASON_MAX_LENGTH))
            .map(parse_failure_reason_max_length)
            .transpose()?
            .unwrap_or(DEFAULT_FAILURE_REASON_MAX_LENGTH);
        let worker_stack_size = non_blank(get(vars::PERAGO_WORKER_STACK_SIZE))
            .map(parse_worker_stack_size)
            .transpose()?;
        let cache_dir = non_blank(get(vars::PERAGO_CACHE_DIR)).map(PathBuf::from);
        let cache_max_size = non_blank(get(vars::PERAGO_CACHE_MAX_SIZE))
            .map(parse_cache_max_size)
            .transpose()?
            .unwrap_or(DEFAULT_CACHE_MAX_SIZE);

        let proxies = ProxyEnv::from_env(&get)?;
        let conductor = conductor_from_env(&get)?.map(|mut conductor| {
            conductor.proxy = proxies.proxy_for(&conductor.server_url);
            conductor
        });
        let conductor_tls = TlsFiles::from_env(&get, CONDUCTOR_TLS)?;
        let conductor = conductor.map(|conductor| ConductorConfig {
            tls: conductor_tls,
            ..conductor
        });
        let lakefs = lakefs_from_env(&get)?;
        let lakefs_tls = TlsFiles::from_env(&get, LAKEFS_TLS)?;
        let lakefs = lakefs.map(|lakefs| LakefsConfig {
            proxy: proxies.proxy_for(&lakefs.endpoint_url),
            tls: lakefs_tls,
            ..lakefs
        });
        let worker_id = non_blank(get(vars::PERAGO_WORKER_ID)).map(str::to_owned);
        check_worker_id_lengths(
            &worker_id_prefix,
            &target_worker_id_prefix,
            worker_id.as_deref(),
        )?;
        let worker_settings = WorkerSettingsSource::from_env_map(env)?;
        let observability = parse_observability(&get)?;

        Ok(Self {
            workspace_root,
            log_root,
            log_file_max_size,
            log_retention,
            worker_id_prefix,
            target_worker_id_prefix,
            execution_mode,
            workspace_gc_ttl,
            workspace_gc_interval,
            shutdown_force_kill_after,
            failure_reason_max_length,
            worker_stack_size,
            cache_dir,
            cache_max_size,
            conductor,
            lakefs,
            worker_id,
            worker_settings,
            observability,
        })
    }

    /// The worker settings of task `task_name` (domain, poll interval, poll timeout, batch
    /// size), looked up as the Conductor SDKs do: `conductor.worker.<name>.<prop>` and its
    /// spellings first, then the `all` and unqualified ones, then the default.
    pub fn worker(&self, task_name: &str) -> WorkerSettings {
        self.worker_settings.resolve(task_name)
    }

    /// Proves both roots (and the cache directory, when set) usable: each is created if
    /// missing, then a fresh `.perago-check-*` directory holding a `write-test` file is
    /// created inside and removed. Failure → `<path> is not writable: <os error>`.
    pub fn probe_roots(&self) -> Result<(), ConfigError> {
        for (var, root) in [
            (vars::PERAGO_WORKSPACE_ROOT, &self.workspace_root),
            (vars::PERAGO_LOG_ROOT, &self.log_root),
        ]
        .into_iter()
        .chain(
            self.cache_dir
                .as_ref()
                .map(|dir| (vars::PERAGO_CACHE_DIR, dir)),
        ) {
            probe_root(root).map_err(|error| ConfigError::NotWritable {
                path: root.clone(),
                var,
                error,
            })?;
        }
        Ok(())
    }

    /// The Conductor config, or `CONDUCTOR_SERVER_URL is required for perago start`.
    pub fn require_conductor(&self) -> Result<&ConductorConfig, ConfigError> {
        self.conductor
            .as_ref()
            .ok_or(ConfigError::ConductorRequired)
    }

    /// The lakeFS config, or `LakeFS config is required for workspace tasks`.
    pub fn require_lakefs(&self) -> Result<&LakefsConfig, ConfigError> {
        self.lakefs.as_ref().ok_or(ConfigError::LakefsRequired)
    }

    /// Root directory for attempt workspaces (`PERAGO_WORKSPACE_ROOT`).
    pub fn workspace_root(&self) -> &Path {
        &self.workspace_root
    }

    /// Root directory for worker JSONL logs (`PERAGO_LOG_ROOT`).
    pub fn log_root(&self) -> &Path {
        &self.log_root
    }

    /// Log rotation threshold in bytes (`PERAGO_LOG_FILE_MAX_SIZE`); always positive.
    pub fn log_file_max_size(&self) -> u64 {
        self.log_file_max_size
    }

    /// How long rotated logs are kept (`PERAGO_LOG_RETENTION`); whole days when loaded from
    /// the environment, at most 999999999 days.
    pub fn log_retention(&self) -> Duration {
        self.log_retention
    }

    /// ASCII alphanumeric prefix of supervised worker ids (`PERAGO_WORKER_ID_PREFIX`).
    pub fn worker_id_prefix(&self) -> &str {
        &self.worker_id_prefix
    }

    /// How attempts run; the CLI override already applied.
    pub fn execution_mode(&self) -> ExecutionMode {
        self.execution_mode
    }

    /// Minimum age before GC removes an abandoned attempt workspace.
    pub fn workspace_gc_ttl(&self) -> Duration {
        self.workspace_gc_ttl
    }

    /// Period of the workspace GC loop.
    pub fn workspace_gc_interval(&self) -> Duration {
        self.workspace_gc_interval
    }

    /// Shutdown drain deadline; `None` means never force.
    pub fn shutdown_force_kill_after(&self) -> Option<Duration> {
        self.shutdown_force_kill_after
    }

    /// The SPEC §15 settings: log format and level, metrics export, admin listener.
    pub fn observability(&self) -> &ObservabilityConfig {
        &self.observability
    }

    /// Character limit of failure reasons (`PERAGO_FAILURE_REASON_MAX_LENGTH`).
    pub fn failure_reason_max_length(&self) -> NonZeroUsize {
        self.failure_reason_max_length
    }

    /// `PERAGO_WORKER_STACK_SIZE` in bytes: the stack of each worker thread, which runs task
    /// bodies. `None` (unset) keeps the platform default (2 MiB for Rust threads).
    pub fn worker_stack_size(&self) -> Option<u64> {
        self.worker_stack_size
    }

    /// Directory of the local object cache (`PERAGO_CACHE_DIR`); `None`: no cache.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// Size budget of the local object cache in bytes (`PERAGO_CACHE_MAX_SIZE`); always
    /// positive.
    pub fn cache_max_size(&self) -> u64 {
        self.cache_max_size
    }

    /// Conductor connection, when `CONDUCTOR_SERVER_URL` is configured.
    pub fn conductor(&self) -> Option<&ConductorConfig> {
        self.conductor.as_ref()
    }

    /// lakeFS connection, when all three lakeFS variables are configured.
    pub fn lakefs(&self) -> Option<&LakefsConfig> {
        self.lakefs.as_ref()
    }

    /// `PERAGO_WORKER_ID`, trimmed; set by the process supervisor for its children.
    pub fn worker_id(&self) -> Option<&str> {
        self.worker_id.as_deref()
    }

    /// The worker id of this process: `PERAGO_WORKER_ID` when set (a supervised child's
    /// `<prefix><slot>`), else `<default prefix from target>-pid-<pid>` (SPEC §2) — the
    /// default prefix ignores `PERAGO_WORKER_ID_PREFIX`, which names supervised slots.
    pub fn process_worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            format!(
                "{}-pid-{}",
                self.target_worker_id_prefix,
                std::process::id()
            )
        })
    }
}

/// Every worker id this configuration can produce must fit a log directory name: the
/// supervised `<prefix><slot>`, the by-hand `<target prefix>-pid-<pid>` and an explicit
/// `PERAGO_WORKER_ID`.
fn check_worker_id_lengths(
    prefix: &str,
    target_prefix: &str,
    worker_id: Option<&str>,
) -> Result<(), ConfigError> {
    // `-pid-` and up to ten digits of a pid.
    const PID_SUFFIX_LEN: usize = 15;
    if prefix.len() > MAX_WORKER_ID_PREFIX_LEN
        || target_prefix.len() + PID_SUFFIX_LEN > MAX_WORKER_ID_LEN
    {
        return Err(ConfigError::WorkerIdTooLong {
            var: vars::PERAGO_WORKER_ID_PREFIX,
            max: MAX_WORKER_ID_PREFIX_LEN.min(MAX_WORKER_ID_LEN - PID_SUFFIX_LEN),
        });
    }
    if worker_id.is_some_and(|id| id.len() > MAX_WORKER_ID_LEN) {
        return Err(ConfigError::WorkerIdTooLong {
            var: vars::PERAGO_WORKER_ID,
            max: MAX_WORKER_ID_LEN,
        });
    }
    Ok(())
}

/// `CONDUCTOR_SERVER_URL`: `http`/`https` with a host, no userinfo (never echoed).
fn validate_conductor_url(url: &str) -> Result<(), ConfigError> {
    validate_service_url(
        vars::CONDUCTOR_SERVER_URL,
        url,
        "http://localhost:8080/api",
        "CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET",
    )
}

/// `LAKECTL_SERVER_ENDPOINT_URL`: `http`/`https` with a host, no userinfo (never echoed).
fn validate_lakefs_url(url: &str) -> Result<(), ConfigError> {
    validate_service_url(
        vars::LAKECTL_SERVER_ENDPOINT_URL,
        url,
        "http://localhost:8000",
        "LAKECTL_CREDENTIALS_ACCESS_KEY_ID and LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
    )
}

/// The base of the default roots: `TMPDIR` when non-blank, else the platform's temp dir.
fn temp_base(tmpdir: Option<&str>, fallback: impl FnOnce() -> PathBuf) -> PathBuf {
    non_blank(tmpdir).map_or_else(fallback, PathBuf::from)
}

fn conductor_from_env<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<ConductorConfig>, ConfigError> {
    let server_url = connection_value(vars::CONDUCTOR_SERVER_URL, get(vars::CONDUCTOR_SERVER_URL))?;
    if let Some(url) = &server_url {
        validate_conductor_url(url)?;
    }
    let key = connection_value(vars::CONDUCTOR_AUTH_KEY, get(vars::CONDUCTOR_AUTH_KEY))?;
    let secret = connection_value(
        vars::CONDUCTOR_AUTH_SECRET,
        get(vars::CONDUCTOR_AUTH_SECRET),
    )?;
    let auth = match (key, secret) {
        (Some(key_id), Some(secret)) => Some(ConductorAuth::new(key_id, Secret::new(secret))),
        (None, None) => None,
        (key, _) => {
            let missing = if key.is_none() {
                vars::CONDUCTOR_AUTH_KEY
            } else {
                vars::CONDUCTOR_AUTH_SECRET
            };
            return Err(ConfigError::ConductorAuthIncomplete {
                missing: vec![missing],
            });
        }
    };
    // Auth without a server URL configures nothing; `start` then reports the missing URL.
    Ok(server_url.map(|server_url| ConductorConfig::new(server_url, auth)))
}

fn lakefs_from_env<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<LakefsConfig>, ConfigError> {
    let names = [
        vars::LAKECTL_SERVER_ENDPOINT_URL,
        vars::LAKECTL_CREDENTIALS_ACCESS_KEY_ID,
        vars::LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY,
    ];
    // Placeholders are reported before incompleteness, in table order, as in the reference.
    let [endpoint, key, secret] = [
        connection_value(names[0], get(names[0]))?,
        connection_value(names[1], get(names[1]))?,
        connection_value(names[2], get(names[2]))?,
    ];
    if let Some(url) = &endpoint {
        validate_lakefs_url(url)?;
    }
    match (endpoint, key, secret) {
        (Some(endpoint), Some(key), Some(secret)) => {
            Ok(Some(LakefsConfig::new(endpoint, key, Secret::new(secret))))
        }
        (None, None, None) => Ok(None),
        (endpoint, key, secret) => {
            let present = [endpoint.is_some(), key.is_some(), secret.is_some()];
            let missing = names
                .into_iter()
                .zip(present)
                .filter_map(|(name, present)| (!present).then_some(name))
                .collect();
            Err(ConfigError::LakefsIncomplete { missing })
        }
    }
}

fn probe_root(root: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    let probe_dir = create_probe_dir(root)?;
    let written = write_probe_file(&probe_dir);
    if written.is_err() {
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_dir_all(&probe_dir);
        return written;
    }
    fs::remove_dir(&probe_dir)
}

/// A fresh directory this call owns (`create_dir`, not `create_dir_all`, so an existing one
/// is never reused).
fn create_probe_dir(root: &Path) -> io::Result<PathBuf> {
    const ATTEMPTS: usize = 8;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let name = format!(
            ".perago-check-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        );
        let dir = root.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free probe directory name")))
}

fn write_probe_file(dir: &Path) -> io::Result<()> {
    let file = dir.join("write-test");
    fs::write(&file, b"ok")?;
    fs::remove_file(&file)
}

/// The deserialised shape, checked before it becomes a [`RuntimeConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntimeConfig {
    workspace_root: PathBuf,
    log_root: PathBuf,
    log_file_max_size: u64,
    log_retention: u64,
    worker_id_prefix: String,
    #[serde(default)]
    execution_mode: ExecutionMode,
    #[serde(default = "default_gc_ttl_secs")]
    workspace_gc_ttl: u64,
    #[serde(default = "default_gc_interval_secs")]
    workspace_gc_interval: u64,
    #[serde(default)]
    shutdown_force_kill_after: Option<u64>,
    #[serde(default = "default_failure_reason_max_length")]
    failure_reason_max_length: NonZeroUsize,
    #[serde(default)]
    worker_stack_size: Option<u64>,
    cache_dir: Option<PathBuf>,
    #[serde(default = "default_cache_max_size")]
    cache_max_size: u64,
    #[serde(default)]
    conductor: Option<ConductorConfig>,
    #[serde(default)]
    lakefs: Option<LakefsConfig>,
    #[serde(default)]
    worker_id: Option<String>,
}

fn default_gc_ttl_secs() -> u64 {
    DEFAULT_WORKSPACE_GC_TTL.as_secs()
}

fn default_gc_interval_secs() -> u64 {
    DEFAULT_WORKSPACE_GC_INTERVAL.as_secs()
}

fn default_failure_reason_max_length() -> NonZeroUsize {
    DEFAULT_FAILURE_REASON_MAX_LENGTH
}

fn default_cache_max_size() -> u64 {
    DEFAULT_CACHE_MAX_SIZE
}

/// Whole seconds in `1..=MAX_DURATION_DAYS` days, else the variable's duration error.
fn checked_secs(
    var: &'static str,
    secs: u64,
    zero: impl FnOnce() -> ConfigError,
) -> Result<Duration, ConfigError> {
    if secs == 0 {
        Err(zero())
    } else if secs > MAX_DURATION_SECS {
        Err(ConfigError::TooLarge {
            var,
            max: format!("{MAX_DURATION_DAYS}d"),
        })
    } else {
        Ok(Duration::from_secs(secs))
    }
}

impl TryFrom<RawRuntimeConfig> for RuntimeConfig {
    type Error = ConfigError;

    fn try_from(raw: RawRuntimeConfig) -> Result<Self, ConfigError> {
        if raw.log_file_max_size == 0 {
            return Err(ConfigError::LogFileMaxSizeZero);
        }
        if raw.cache_max_size == 0 {
            return Err(ConfigError::CacheMaxSizeZero);
        }
        let log_retention = checked_secs(vars::PERAGO_LOG_RETENTION, raw.log_retention, || {
            ConfigError::LogRetentionInvalid
        })?;
        validate_worker_id_prefix(&raw.worker_id_prefix)?;
        let duration = |var: &'static str, secs: u64| {
            checked_secs(var, secs, || ConfigError::DurationInvalid { var })
        };
        let workspace_gc_ttl = duration(vars::PERAGO_WORKSPACE_GC_TTL, raw.workspace_gc_ttl)?;
        let workspace_gc_interval = duration(
            vars::PERAGO_WORKSPACE_GC_INTERVAL,
            raw.workspace_gc_interval,
        )?;
        let shutdown_force_kill_after = raw
            .shutdown_force_kill_after
            .map(|secs| duration(vars::PERAGO_SHUTDOWN_FORCE_KILL_AFTER, secs))
            .transpose()?;
        if raw
            .worker_stack_size
            .is_some_and(|bytes| bytes < MIN_WORKER_STACK_SIZE)
        {
            return Err(ConfigError::WorkerStackSizeTooSmall);
        }
        if let Some(conductor) = &raw.conductor {
            validate_conductor_url(&conductor.server_url)?;
        }
        if let Some(lakefs) = &raw.lakefs {
            validate_lakefs_url(&lakefs.endpoint_url)?;
        }
        check_worker_id_lengths(
            &raw.worker_id_prefix,
            &raw.worker_id_prefix,
            raw.worker_id.as_deref(),
        )?;
        Ok(Self {
            workspace_root: raw.workspace_root,
            log_root: raw.log_root,
            log_file_max_size: raw.log_file_max_size,
            log_retention,
            target_worker_id_prefix: raw.worker_id_prefix.clone(),
            worker_id_prefix: raw.worker_id_prefix,
            execution_mode: raw.execution_mode,
            workspace_gc_ttl,
            workspace_gc_interval,
            shutdown_force_kill_after,
            failure_reason_max_length: raw.failure_reason_max_length,
            worker_stack_size: raw.worker_stack_size,
            cache_dir: raw.cache_dir,
            cache_max_size: raw.cache_max_size,
            conductor: raw.conductor,
            lakefs: raw.lakefs,
            worker_id: raw.worker_id.filter(|id| !id.trim().is_empty()),
            worker_settings: WorkerSettingsSource::default(),
            observability: ObservabilityConfig::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "app.workers.features_build";

    /// Environment pairs of one table case.
    type Env<'a> = &'a [(&'a str, &'a str)];

    fn env_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([("TMPDIR".to_owned(), "/t".to_owned())]);
        env.extend(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
        env
    }

    fn load(pairs: &[(&str, &str)]) -> Result<RuntimeConfig, ConfigError> {
        RuntimeConfig::from_env_map(TARGET, &env_of(pairs), &ConfigOverrides::default())
    }

    fn error_of(pairs: &[(&str, &str)]) -> String {
        match load(pairs) {
            Ok(cfg) => format!("unexpectedly ok: {cfg:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn ok(pairs: &[(&str, &str)]) -> RuntimeConfig {
        match load(pairs) {
            Ok(cfg) => cfg,
            Err(error) => panic!("{pairs:?}: {error}"),
        }
    }

    #[test]
    fn defaults() {
        let cfg = ok(&[]);
        assert_eq!(cfg.workspace_root(), Path::new("/t/perago/workspaces"));
        assert_eq!(cfg.log_root(), Path::new("/t/perago/logs"));
        assert_eq!(cfg.log_file_max_size(), 100 * 1024 * 1024);
        assert_eq!(cfg.log_retention(), Duration::from_secs(30 * 86_400));
        assert_eq!(cfg.worker_id_prefix(), "appworkersfeaturesbuild");
        assert_eq!(cfg.execution_mode(), ExecutionMode::Process);
        assert_eq!(cfg.workspace_gc_ttl(), Duration::from_secs(86_400));
        assert_eq!(cfg.workspace_gc_interval(), Duration::from_secs(3600));
        assert_eq!(cfg.shutdown_force_kill_after(), None);
        assert_eq!(cfg.failure_reason_max_length().get(), 500);
        assert_eq!(cfg.conductor(), None);
        assert_eq!(cfg.lakefs(), None);
        assert_eq!(cfg.worker_id(), None);
    }

    #[test]
    fn every_variable_set() {
        let cfg = ok(&[
            ("PERAGO_WORKSPACE_ROOT", " /w "),
            ("PERAGO_LOG_ROOT", "relative/logs"),
            ("PERAGO_LOG_FILE_MAX_SIZE", "512KB"),
            ("PERAGO_LOG_RETENTION", "7d"),
            ("PERAGO_WORKER_ID_PREFIX", " prodA "),
            ("PERAGO_EXECUTION_MODE", "Thread"),
            ("PERAGO_WORKSPACE_GC_TTL", "30m"),
            ("PERAGO_WORKSPACE_GC_INTERVAL", "30s"),
            ("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "2h"),
            ("PERAGO_FAILURE_REASON_MAX_LENGTH", "80"),
            ("CONDUCTOR_SERVER_URL", " http://c:8080/api "),
            ("CONDUCTOR_AUTH_KEY", "kid"),
            ("CONDUCTOR_AUTH_SECRET", "ksecret"),
            ("LAKECTL_SERVER_ENDPOINT_URL", "http://l:8000"),
            ("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", "AKID"),
            ("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "lsecret"),
            ("PERAGO_WORKER_ID", " prodA0003 "),
        ]);
        assert_eq!(cfg.workspace_root(), Path::new("/w"));
        assert_eq!(cfg.log_root(), Path::new("relative/logs"));
        assert_eq!(cfg.log_file_max_size(), 524_288);
        assert_eq!(cfg.log_retention(), Duration::from_secs(7 * 86_400));
        assert_eq!(cfg.worker_id_prefix(), "prodA");
        assert_eq!(cfg.execution_mode(), ExecutionMode::Thread);
        assert_eq!(cfg.workspace_gc_ttl(), Duration::from_secs(1800));
        assert_eq!(cfg.workspace_gc_interval(), Duration::from_secs(30));
        assert_eq!(
            cfg.shutdown_force_kill_after(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(cfg.failure_reason_max_length().get(), 80);
        let conductor = cfg.require_conductor().expect("conductor configured");
        assert_eq!(conductor.server_url(), "http://c:8080/api");
        let auth = conductor.auth().expect("auth configured");
        assert_eq!(auth.key_id(), "kid");
        assert_eq!(auth.key_secret().expose(), "ksecret");
        let lakefs = cfg.require_lakefs().expect("lakefs configured");
        assert_eq!(lakefs.endpoint_url(), "http://l:8000");
        assert_eq!(lakefs.access_key_id(), "AKID");
        assert_eq!(lakefs.secret_access_key().expose(), "lsecret");
        assert_eq!(cfg.worker_id(), Some("prodA0003"));
    }

    #[test]
    fn blank_values_mean_not_configured() {
        let blank_everything: Vec<(&str, &str)> = [
            "PERAGO_WORKSPACE_ROOT",
            "PERAGO_LOG_ROOT",
            "PERAGO_LOG_FILE_MAX_SIZE",
            "PERAGO_LOG_RETENTION",
            "PERAGO_EXECUTION_MODE",
            "PERAGO_WORKSPACE_GC_TTL",
            "PERAGO_WORKSPACE_GC_INTERVAL",
            "PERAGO_SHUTDOWN_FORCE_KILL_AFTER",
            "PERAGO_FAILURE_REASON_MAX_LENGTH",
            "CONDUCTOR_SERVER_URL",
            "CONDUCTOR_AUTH_KEY",
            "CONDUCTOR_AUTH_SECRET",
            "LAKECTL_SERVER_ENDPOINT_URL",
            "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
            "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
            "PERAGO_WORKER_ID",
        ]
        .into_iter()
        .flat_map(|var| [(var, " \t ")])
        .collect();
        assert_eq!(ok(&blank_everything), ok(&[]));
        let empty: Vec<(&str, &str)> = blank_everything.iter().map(|&(k, _)| (k, "")).collect();
        assert_eq!(ok(&empty), ok(&[]));
    }

    #[test]
    fn default_roots_follow_tmpdir() {
        let cfg = ok(&[("TMPDIR", " /var/tmp ")]);
        assert_eq!(
            cfg.workspace_root(),
            Path::new("/var/tmp/perago/workspaces")
        );
        assert_eq!(cfg.log_root(), Path::new("/var/tmp/perago/logs"));
        let fallback = || PathBuf::from("/fallback");
        assert_eq!(temp_base(Some("/x"), fallback), PathBuf::from("/x"));
        assert_eq!(temp_base(Some("  "), fallback), PathBuf::from("/fallback"));
        assert_eq!(temp_base(None, fallback), PathBuf::from("/fallback"));
    }

    #[test]
    fn worker_id_prefix_rules() {
        let empty = "PERAGO_WORKER_ID_PREFIX must not be empty";
        let chars = "PERAGO_WORKER_ID_PREFIX must contain only ASCII letters and digits";
        // An explicit blank prefix is an error, not the default (as in the reference).
        assert_eq!(error_of(&[("PERAGO_WORKER_ID_PREFIX", "")]), empty);
        assert_eq!(error_of(&[("PERAGO_WORKER_ID_PREFIX", "   ")]), empty);
        assert_eq!(error_of(&[("PERAGO_WORKER_ID_PREFIX", "prod-a")]), chars);
        assert_eq!(error_of(&[("PERAGO_WORKER_ID_PREFIX", "prod a")]), chars);
        assert_eq!(
            ok(&[("PERAGO_WORKER_ID_PREFIX", "\tprodA1 ")]).worker_id_prefix(),
            "prodA1"
        );
        let from_target = |target: &str| {
            RuntimeConfig::from_env_map(target, &env_of(&[]), &ConfigOverrides::default())
                .map(|cfg| cfg.worker_id_prefix().to_owned())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            from_target("prod-a.features::build"),
            Ok("prodafeaturesbuild".into())
        );
        assert_eq!(from_target("..."), Err(empty.to_owned()));
        assert_eq!(from_target(""), Err(empty.to_owned()));
    }

    #[test]
    fn cli_execution_mode_wins_over_env() {
        let thread = ConfigOverrides {
            execution_mode: Some(ExecutionMode::Thread),
        };
        let process = ConfigOverrides {
            execution_mode: Some(ExecutionMode::Process),
        };
        let mode = |pairs: &[(&str, &str)], overrides: &ConfigOverrides| {
            RuntimeConfig::from_env_map(TARGET, &env_of(pairs), overrides)
                .map(|cfg| cfg.execution_mode())
                .map_err(|e| e.to_string())
        };
        assert_eq!(mode(&[], &thread), Ok(ExecutionMode::Thread));
        assert_eq!(
            mode(&[("PERAGO_EXECUTION_MODE", "thread")], &process),
            Ok(ExecutionMode::Process)
        );
        assert_eq!(
            mode(&[("PERAGO_EXECUTION_MODE", "process")], &thread),
            Ok(ExecutionMode::Thread)
        );
        // A broken variable is still reported when the flag is given (as in the reference).
        assert_eq!(
            mode(&[("PERAGO_EXECUTION_MODE", "fork")], &thread),
            Err("PERAGO_EXECUTION_MODE must be either 'process' or 'thread'".to_owned())
        );
    }

    #[test]
    fn conductor_rules() {
        type Expected<'a> = Result<Option<(&'a str, Option<&'a str>)>, &'a str>;
        let cases: &[(Env, Expected)] = &[
            (
                &[("CONDUCTOR_SERVER_URL", "http://c")],
                Ok(Some(("http://c", None))),
            ),
            (
                &[
                    ("CONDUCTOR_SERVER_URL", "http://c"),
                    ("CONDUCTOR_AUTH_KEY", " kid "),
                    ("CONDUCTOR_AUTH_SECRET", " s "),
                ],
                Ok(Some(("http://c", Some("kid")))),
            ),
            (
                &[
                    ("CONDUCTOR_SERVER_URL", "http://c"),
                    ("CONDUCTOR_AUTH_KEY", "kid"),
                ],
                Err("Conductor auth config is incomplete; missing CONDUCTOR_AUTH_SECRET"),
            ),
            (
                &[
                    ("CONDUCTOR_SERVER_URL", "http://c"),
                    ("CONDUCTOR_AUTH_KEY", " "),
                    ("CONDUCTOR_AUTH_SECRET", "s"),
                ],
                Err("Conductor auth config is incomplete; missing CONDUCTOR_AUTH_KEY"),
            ),
            // Auth completeness is checked even without a URL.
            (
                &[("CONDUCTOR_AUTH_SECRET", "s")],
                Err("Conductor auth config is incomplete; missing CONDUCTOR_AUTH_KEY"),
            ),
            // A complete pair without a URL configures nothing.
            (
                &[
                    ("CONDUCTOR_AUTH_KEY", "kid"),
                    ("CONDUCTOR_AUTH_SECRET", "s"),
                ],
                Ok(None),
            ),
            (
                &[("CONDUCTOR_SERVER_URL", "replace-me")],
                Err("CONDUCTOR_SERVER_URL must be replaced with a real value"),
            ),
            (
                // The placeholder check is exact; any other non-URL is not a URL.
                &[("CONDUCTOR_SERVER_URL", "REPLACE-ME")],
                Err(
                    "CONDUCTOR_SERVER_URL must be an http:// or https:// URL with a host, such as 'http://localhost:8080/api'",
                ),
            ),
            (
                &[
                    ("CONDUCTOR_SERVER_URL", "http://c"),
                    ("CONDUCTOR_AUTH_KEY", "replace-me"),
                    ("CONDUCTOR_AUTH_SECRET", "s"),
                ],
                Err("CONDUCTOR_AUTH_KEY must be replaced with a real value"),
            ),
            (
                &[
                    ("CONDUCTOR_SERVER_URL", "http://c"),
                    ("CONDUCTOR_AUTH_SECRET", "replace-me"),
                ],
                Err("CONDUCTOR_AUTH_SECRET must be replaced with a real value"),
            ),
        ];
        for (pairs, expected) in cases {
            let got = load(pairs)
                .map(|cfg| {
                    cfg.conductor().map(|c| {
                        (
                            c.server_url().to_owned(),
                            c.auth().map(|a| a.key_id().to_owned()),
                        )
                    })
                })
                .map_err(|e| e.to_string());
            let expected = expected
                .map(|o| o.map(|(url, key)| (url.to_owned(), key.map(str::to_owned))))
                .map_err(str::to_owned);
            assert_eq!(got, expected, "{pairs:?}");
        }
    }

    #[test]
    fn debug_never_shows_a_urls_userinfo() {
        let conductor = ConductorConfig::new("http://u:PASSWORD@c:8080/api".into(), None);
        let lakefs = LakefsConfig::new(
            "http://PASSWORD@l:8000".into(),
            "key".into(),
            Secret::new("SECRET".into()),
        );
        let text = format!("{conductor:?} {lakefs:?}");
        assert!(
            !text.contains("PASSWORD") && !text.contains("SECRET"),
            "{text}"
        );
        assert!(text.contains("http://***@c:8080/api"), "{text}");
    }

    #[test]
    fn lakefs_all_or_none() {
        const E: &str = "LAKECTL_SERVER_ENDPOINT_URL";
        const K: &str = "LAKECTL_CREDENTIALS_ACCESS_KEY_ID";
        const S: &str = "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY";
        let cases: &[(Env, Option<&str>)] = &[
            (&[], None),
            (&[(E, "http://l"), (K, "k"), (S, "s")], None),
            (
                &[(E, "http://l")],
                Some(
                    "LakeFS config is incomplete; missing LAKECTL_CREDENTIALS_ACCESS_KEY_ID, LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
                ),
            ),
            (
                &[(K, "k")],
                Some(
                    "LakeFS config is incomplete; missing LAKECTL_SERVER_ENDPOINT_URL, LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
                ),
            ),
            (
                &[(S, "s")],
                Some(
                    "LakeFS config is incomplete; missing LAKECTL_SERVER_ENDPOINT_URL, LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
                ),
            ),
            (
                &[(E, "http://l"), (K, "k")],
                Some("LakeFS config is incomplete; missing LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"),
            ),
            (
                &[(E, "http://l"), (S, "s"), (K, "  ")],
                Some("LakeFS config is incomplete; missing LAKECTL_CREDENTIALS_ACCESS_KEY_ID"),
            ),
            (
                &[(K, "k"), (S, "s")],
                Some("LakeFS config is incomplete; missing LAKECTL_SERVER_ENDPOINT_URL"),
            ),
            (
                &[(E, "replace-me"), (K, "k"), (S, "s")],
                Some("LAKECTL_SERVER_ENDPOINT_URL must be replaced with a real value"),
            ),
            (
                &[(E, "http://l"), (K, "replace-me"), (S, "s")],
                Some("LAKECTL_CREDENTIALS_ACCESS_KEY_ID must be replaced with a real value"),
            ),
            (
                &[(E, "http://l"), (K, "k"), (S, " replace-me ")],
                Some("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY must be replaced with a real value"),
            ),
            // A placeholder is reported before incompleteness, as in the reference.
            (
                &[(K, "replace-me")],
                Some("LAKECTL_CREDENTIALS_ACCESS_KEY_ID must be replaced with a real value"),
            ),
            (&[(E, "http://l"), (K, "Replace-Me"), (S, "s")], None),
        ];
        for (pairs, expected) in cases {
            match expected {
                Some(text) => assert_eq!(error_of(pairs), *text, "{pairs:?}"),
                None => {
                    let cfg = ok(pairs);
                    assert_eq!(cfg.lakefs().is_some(), !pairs.is_empty(), "{pairs:?}");
                }
            }
        }
    }

    #[test]
    fn first_invalid_variable_in_table_order_wins() {
        let all_bad = [
            ("LAKECTL_SERVER_ENDPOINT_URL", "http://l"),
            ("CONDUCTOR_AUTH_KEY", "k"),
            ("CONDUCTOR_SERVER_URL", "replace-me"),
            ("PERAGO_FAILURE_REASON_MAX_LENGTH", "0"),
            ("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "soon"),
            ("PERAGO_WORKSPACE_GC_INTERVAL", "0s"),
            ("PERAGO_WORKSPACE_GC_TTL", "1y"),
            ("PERAGO_EXECUTION_MODE", "fork"),
            ("PERAGO_WORKER_ID_PREFIX", "a-b"),
            ("PERAGO_LOG_RETENTION", "7"),
            ("PERAGO_LOG_FILE_MAX_SIZE", "10TB"),
        ];
        let expected = [
            "PERAGO_LOG_FILE_MAX_SIZE must be a positive size such as '512KB', '100MB', or '1.5GB'",
            "PERAGO_LOG_RETENTION must be a positive day count such as '7d' or '30d'",
            "PERAGO_WORKER_ID_PREFIX must contain only ASCII letters and digits",
            "PERAGO_EXECUTION_MODE must be either 'process' or 'thread'",
            "PERAGO_WORKSPACE_GC_TTL must be a positive duration such as '30s', '5m', '1h', or '24h'",
            "PERAGO_WORKSPACE_GC_INTERVAL must be a positive duration such as '30s', '5m', '1h', or '24h'",
            "PERAGO_SHUTDOWN_FORCE_KILL_AFTER must be a positive duration such as '30s', '5m', '1h', or '24h'",
            "PERAGO_FAILURE_REASON_MAX_LENGTH must be greater than zero",
            "CONDUCTOR_SERVER_URL must be replaced with a real value",
            "Conductor auth config is incomplete; missing CONDUCTOR_AUTH_SECRET",
            "LakeFS config is incomplete; missing LAKECTL_CREDENTIALS_ACCESS_KEY_ID, LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
        ];
        // Fix the earliest invalid variable one at a time: the next one in table order shows.
        for (fixed, message) in expected.iter().enumerate() {
            let remaining = &all_bad[..all_bad.len() - fixed];
            assert_eq!(error_of(remaining), *message, "with {remaining:?}");
        }
    }

    #[test]
    fn probe_creates_missing_roots_and_leaves_them_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let workspaces = dir.path().join("a/b/workspaces");
        let logs = dir.path().join("logs");
        let cfg = ok(&[
            (
                "PERAGO_WORKSPACE_ROOT",
                workspaces.to_str().expect("utf-8 tempdir"),
            ),
            ("PERAGO_LOG_ROOT", logs.to_str().expect("utf-8 tempdir")),
        ]);
        cfg.probe_roots().expect("writable");
        for root in [&workspaces, &logs] {
            let leftovers: Vec<_> = fs::read_dir(root).expect("root exists").collect();
            assert!(leftovers.is_empty(), "{root:?} left {leftovers:?}");
        }
        // A second probe over existing roots works too.
        cfg.probe_roots().expect("still writable");
    }

    #[test]
    fn probe_reports_the_unwritable_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("regular-file");
        fs::write(&file, b"x").expect("write file");
        let under_file = file.join("sub");
        let good = dir.path().join("good");
        let path_str = |p: &Path| p.to_str().expect("utf-8 tempdir").to_owned();
        let cases = [
            (under_file.clone(), good.clone(), under_file.clone()),
            (good.clone(), under_file.clone(), under_file.clone()),
            (file.clone(), good.clone(), file.clone()),
        ];
        for (workspace_root, log_root, failing) in cases {
            let cfg = ok(&[
                ("PERAGO_WORKSPACE_ROOT", &path_str(&workspace_root)),
                ("PERAGO_LOG_ROOT", &path_str(&log_root)),
            ]);
            let error = cfg.probe_roots().expect_err("not writable");
            let text = error.to_string();
            let prefix = format!("{} is not writable: ", failing.display());
            assert!(text.starts_with(&prefix), "{text}");
            assert!(text.len() > prefix.len(), "no os error in {text}");
            #[cfg(target_os = "linux")]
            assert!(
                text.ends_with("(os error 20)") || text.ends_with("(os error 17)"),
                "{text}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn probe_message_shape_is_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        fs::write(&file, b"x").expect("write file");
        let root = file.join("sub");
        let root_str = root.to_str().expect("utf-8 tempdir");
        let cfg = ok(&[("PERAGO_WORKSPACE_ROOT", root_str)]);
        assert_eq!(
            cfg.probe_roots().map_err(|e| e.to_string()),
            Err(format!(
                "{root_str} is not writable: Not a directory (os error 20)"
            ))
        );
    }

    #[test]
    fn loads_from_dotenv_and_process_env_without_the_real_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("roots");
        fs::write(
            dir.path().join(".env"),
            format!(
                "export PERAGO_WORKSPACE_ROOT={}/ws\n\
                 PERAGO_LOG_ROOT='{}/logs'\n\
                 PERAGO_EXECUTION_MODE=thread\n\
                 PERAGO_LOG_RETENTION=7d # a week\n",
                root.display(),
                root.display()
            ),
        )
        .expect("write .env");
        let process = [("PERAGO_EXECUTION_MODE", "process"), ("TMPDIR", "/t")]
            .map(|(k, v)| (k.into(), v.into()));
        let env = load_env(dir.path(), process).expect("env");
        // `#` inside a value is part of it, so the retention is invalid.
        assert_eq!(
            RuntimeConfig::from_env_map(TARGET, &env, &ConfigOverrides::default())
                .map_err(|e| e.to_string()),
            Err(
                "PERAGO_LOG_RETENTION must be a positive day count such as '7d' or '30d'"
                    .to_owned()
            )
        );
        let mut env = env;
        env.remove("PERAGO_LOG_RETENTION");
        let cfg =
            RuntimeConfig::from_env_map(TARGET, &env, &ConfigOverrides::default()).expect("valid");
        assert_eq!(cfg.execution_mode(), ExecutionMode::Process);
        assert_eq!(cfg.workspace_root(), root.join("ws"));
        assert_eq!(cfg.log_root(), root.join("logs"));
        cfg.probe_roots().expect("writable");
        assert!(root.join("ws").is_dir() && root.join("logs").is_dir());
    }

    #[test]
    fn cache_settings_follow_the_size_grammar() {
        let cfg = ok(&[]);
        assert_eq!(cfg.cache_dir(), None);
        assert_eq!(cfg.cache_max_size(), 10 * 1024 * 1024 * 1024);
        let cfg = ok(&[
            ("PERAGO_CACHE_DIR", " /var/cache/perago "),
            ("PERAGO_CACHE_MAX_SIZE", "1.5gb"),
        ]);
        assert_eq!(cfg.cache_dir(), Some(Path::new("/var/cache/perago")));
        assert_eq!(cfg.cache_max_size(), 1_610_612_736);
        assert_eq!(ok(&[("PERAGO_CACHE_DIR", "  ")]).cache_dir(), None);
        let invalid =
            "PERAGO_CACHE_MAX_SIZE must be a positive size such as '512KB', '100MB', or '1.5GB'";
        for value in ["10", "10TB", "-1MB", "MB", "01MB"] {
            assert_eq!(
                error_of(&[("PERAGO_CACHE_MAX_SIZE", value)]),
                invalid,
                "{value}"
            );
        }
        assert_eq!(
            error_of(&[("PERAGO_CACHE_MAX_SIZE", "0.0GB")]),
            "PERAGO_CACHE_MAX_SIZE must be greater than zero"
        );
    }

    #[test]
    fn an_unwritable_cache_dir_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap_or_else(|e| panic!("{e}"));
        let cfg = ok(&[
            (
                "PERAGO_WORKSPACE_ROOT",
                &dir.path().join("w").display().to_string(),
            ),
            (
                "PERAGO_LOG_ROOT",
                &dir.path().join("l").display().to_string(),
            ),
            ("PERAGO_CACHE_DIR", &file.display().to_string()),
        ]);
        let error = cfg
            .probe_roots()
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            error.starts_with(&format!("{} is not writable: ", file.display())),
            "{error}"
        );
    }

    #[test]
    fn require_messages() {
        let cfg = ok(&[]);
        assert_eq!(
            cfg.require_conductor().map_err(|e| e.to_string()),
            Err("CONDUCTOR_SERVER_URL is required for perago start".to_owned())
        );
        assert_eq!(
            cfg.require_lakefs().map_err(|e| e.to_string()),
            Err("LakeFS config is required for workspace tasks".to_owned())
        );
    }

    #[test]
    fn deserialises_the_json_shape() {
        let cfg = ok(&[
            ("PERAGO_SHUTDOWN_FORCE_KILL_AFTER", "5m"),
            ("CONDUCTOR_SERVER_URL", "http://c"),
        ]);
        let back: RuntimeConfig = serde_json::from_value(cfg.to_json()).expect("round trip");
        assert_eq!(back, cfg);

        let minimal = serde_json::json!({
            "workspace_root": "/w",
            "log_root": "/l",
            "log_file_max_size": 1024,
            "log_retention": 86400,
            "worker_id_prefix": "p",
            "lakefs": {"endpoint_url": "http://l", "access_key_id": "k", "secret_access_key": "s"},
        });
        let cfg: RuntimeConfig = serde_json::from_value(minimal.clone()).expect("minimal");
        assert_eq!(cfg.workspace_gc_ttl(), DEFAULT_WORKSPACE_GC_TTL);
        assert_eq!(cfg.execution_mode(), ExecutionMode::Process);
        assert_eq!(
            cfg.lakefs().map(|l| l.secret_access_key().expose()),
            Some("s")
        );

        let rejected = |patch: serde_json::Value| {
            let mut value = minimal.clone();
            if let (Some(object), Some(patch)) = (value.as_object_mut(), patch.as_object()) {
                object.extend(patch.clone());
            }
            serde_json::from_value::<RuntimeConfig>(value)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let cases = [
            (
                serde_json::json!({"metrics": null}),
                "unknown field `metrics`",
            ),
            (
                serde_json::json!({"lakefs": {"endpoint_url": "e", "access_key_id": "k", "secret_access_key": "s", "region": "x"}}),
                "unknown field `region`",
            ),
            (
                serde_json::json!({"worker_id_prefix": "a-b"}),
                "PERAGO_WORKER_ID_PREFIX must contain only ASCII letters and digits",
            ),
            (
                serde_json::json!({"log_file_max_size": 0}),
                "PERAGO_LOG_FILE_MAX_SIZE must be greater than zero",
            ),
            (
                serde_json::json!({"workspace_gc_interval": 0}),
                "PERAGO_WORKSPACE_GC_INTERVAL must be a positive duration",
            ),
            (
                serde_json::json!({"log_retention": 0}),
                "PERAGO_LOG_RETENTION must be a positive day count",
            ),
            (
                serde_json::json!({"shutdown_force_kill_after": u64::MAX}),
                "PERAGO_SHUTDOWN_FORCE_KILL_AFTER is too large",
            ),
            (
                serde_json::json!({"failure_reason_max_length": 0}),
                "nonzero",
            ),
            (
                serde_json::json!({"execution_mode": "fork"}),
                "unknown variant `fork`",
            ),
        ];
        for (patch, expected) in cases {
            let got = rejected(patch.clone());
            assert!(
                got.as_ref().is_err_and(|e| e.contains(expected)),
                "{patch}: {got:?}"
            );
        }
    }
}
