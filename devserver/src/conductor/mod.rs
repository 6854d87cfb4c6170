//! The Conductor half of the dev server, mounted at `/api`.
//!
//! - [`engine`]: definitions, workflows, task attempts, queues, retries and timeouts.
//! - [`routes`]: the REST surface and its status codes.
//! - `wiring`: `${...}` input resolution.

pub mod engine;
pub mod routes;
mod wiring;

pub use engine::{Engine, EngineError, TaskRecord, TaskResultBody, Updated, Violation};
pub use routes::{ConductorOptions, ConductorService, EmptyPoll, UpdateV2};
