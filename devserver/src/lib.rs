//! The embedded dev server: one loopback HTTP server that speaks the subset of the Conductor
//! and lakeFS REST APIs that perago and the official SDK clients use.
//!
//! - [`server`]: routing by mount, fault injection, start/stop ([`DevServer`]).
//! - `transport`: the HTTP/1.1 listener, one thread per connection, framing and limits.
//! - [`conductor`]: the Conductor engine and routes (`/api`).
//! - [`lakefs`]: the lakeFS service (`/api/v1`).
//! - [`faults`], [`stats`]: fault injection and request counters for tests (`/_dev`).
//! - [`http`]: the request/response types the services share.

pub mod conductor;
pub mod faults;
pub mod http;
pub mod lakefs;
pub mod server;
pub mod stats;
mod transport;

pub use server::{DevServer, DevServerError, DevServerOptions};
