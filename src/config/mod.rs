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

pub use dotenv::load_env;
pub use parse::{ConfigError, ExecutionMode};
pub use runtime::{ConductorAuth, ConductorConfig, ConfigOverrides, LakefsConfig, RuntimeConfig};
pub use secret::Secret;
