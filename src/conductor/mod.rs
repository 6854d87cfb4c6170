//! The Conductor REST client (SPEC §9): the calls a worker runtime makes, the JSON shapes it
//! exchanges, Orkes token auth and typed errors.
//!
//! - [`api`]: [`ConductorApi`], the trait the runtime uses (poll, update, lease, get task),
//!   so benchmarks and unit tests can plug in an in-process fake.
//! - [`client`]: [`ConductorClient`], the blocking `ureq` implementation, plus the few admin
//!   calls tests, `start` and the demo need (TaskDefs, workflow defs, start/get workflow).
//! - [`auth`]: the Orkes token cache behind `X-Authorization`.
//! - [`model`]: [`PolledTask`] and [`TaskUpdate`].
//! - [`error`]: [`ConductorError`] and its retry classification.
//! - `resolver`: host resolution without a thread per request.
//!
//! Server behaviour relied on (status codes, `200 []` vs `204` on empty polls, text/plain
//! update answers, update-v2 availability) follows Conductor OSS; Orkes specifics are only
//! the token endpoint and header.

pub mod api;
pub mod auth;
pub mod client;
pub mod error;
pub mod model;
mod resolver;

pub use api::ConductorApi;
pub use client::{ClientOptions, ConductorClient};
pub use error::ConductorError;
pub use model::{PolledTask, TaskUpdate};
