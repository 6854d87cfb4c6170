//! Runtime configuration (SPEC §2): the worker-local settings loaded from `<cwd>/.env`
//! overlaid by the process environment, validated once at startup into an immutable
//! [`RuntimeConfig`].
//!
//! - [`dotenv`]: the `.env` format (hand-written, stricter than `dotenvy`: no interpolation,
//!   no escapes, no multi-line values, `#` inside a value is part of it) and the layering.
//! - [`parse`]: each variable's grammar, defaults and the exact error texts ([`ConfigError`]).
//! - [`secret`]: [`Secret`], a string that is never printed in clear.
//! - [`runtime`]: [`RuntimeConfig`] and its connection sub-configs; loading and root probing.
//! - [`render`]: `perago config` output, JSON and text, secrets redacted.

pub mod dotenv;
pub mod parse;
pub mod render;
pub mod runtime;
pub mod secret;

pub use dotenv::{DOTENV_FILE_NAME, load_env, parse_dotenv, read_dotenv_file};
pub use parse::{
    ConfigError, DEFAULT_FAILURE_REASON_MAX_LENGTH, DEFAULT_LOG_FILE_MAX_SIZE,
    DEFAULT_LOG_RETENTION, DEFAULT_WORKSPACE_GC_INTERVAL, DEFAULT_WORKSPACE_GC_TTL, ExecutionMode,
    default_worker_id_prefix, vars,
};
pub use runtime::{ConductorAuth, ConductorConfig, ConfigOverrides, LakefsConfig, RuntimeConfig};
pub use secret::{REDACTED, Secret};
