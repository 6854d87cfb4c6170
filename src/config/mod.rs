//! Runtime configuration (SPEC §2): the worker-local settings loaded from `<cwd>/.env`
//! overlaid by the process environment, validated once at startup into an immutable
//! [`RuntimeConfig`].
//!
//! - [`dotenv`]: the `.env` format (hand-written, stricter than `dotenvy`: no interpolation,
//!   no escapes, no multi-line values, `#` inside a value is part of it) and the layering.
//! - [`parse`]: each variable's grammar, defaults and the exact error texts ([`ConfigError`]).
//! - [`secret`]: [`Secret`], a string that is never printed in clear.
//! - [`runtime`]: [`RuntimeConfig`] and its connection sub-configs; loading and root probing.
//! - [`net`]: TLS material and HTTP proxies for the Conductor and lakeFS connections.
//! - [`observe`]: SPEC §15 settings — stderr log format and level, OTLP metrics (the
//!   reference's `parse_metrics_config`), the admin listener.
//! - [`render`]: `perago config` output, JSON and text, secrets redacted.
//! - [`worker`]: per-task worker settings (domain, poll interval/timeout, batch size) with
//!   the Conductor SDKs' variable lookup order.
//! - `sources` (feature `cli`): where each value came from (default, `.env` line,
//!   environment, flag), for `perago config` and CLI errors.

pub mod dotenv;
pub mod net;
pub mod observe;
pub mod parse;
pub mod render;
pub mod runtime;
pub mod secret;
#[cfg(feature = "cli")]
pub mod sources;
pub mod worker;

pub use dotenv::load_env;
pub use net::{ProxyUrl, TlsFiles, TlsPaths};
pub use observe::{AdminConfig, LogFormat, MetricsConfig, ObservabilityConfig};
pub use parse::{ConfigError, ExecutionMode};
pub use runtime::{ConductorAuth, ConductorConfig, ConfigOverrides, LakefsConfig, RuntimeConfig};
pub use secret::Secret;
#[cfg(feature = "cli")]
pub use sources::{ConfigSources, ValueSource};
pub use worker::{WorkerProperty, WorkerSettings};
