//! perago's dev server: one loopback HTTP server that speaks the subset of the Conductor and
//! lakeFS REST APIs that perago and the official SDK clients use, with the real paths, status
//! codes and JSON shapes, server-side retry/timeout/lease semantics, fault injection and
//! request counters. `perago demo`, `perago dev-server` and perago's integration tests run
//! against it; it does not depend on perago.
//!
//! ```no_run
//! use perago_devserver::{DevServer, DevServerOptions};
//!
//! # fn main() -> Result<(), perago_devserver::DevServerError> {
//! let server = DevServer::start(DevServerOptions::default())?;
//! println!("CONDUCTOR_SERVER_URL={}", server.conductor_url());
//! println!("LAKECTL_SERVER_ENDPOINT_URL={}", server.lakefs_endpoint());
//! server.stop()?;
//! # Ok(()) }
//! ```
//!
//! - [`server`]: routing by mount, fault injection, start/stop ([`DevServer`]).
//! - `transport`: the HTTP/1.1 listener, one thread per connection, framing and limits.
//! - [`conductor`]: the Conductor engine and routes (`/api`).
//! - [`lakefs`]: the lakeFS service (`/api/v1`).
//! - [`faults`], [`stats`]: fault injection and request counters for tests (`/_dev`).
//! - [`http`]: the request/response types the services share.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod conductor;
pub mod faults;
pub mod http;
pub mod lakefs;
pub mod otlp;
pub mod server;
pub mod stats;
mod transport;

pub use server::{DevServer, DevServerError, DevServerOptions};
