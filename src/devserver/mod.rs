//! The embedded dev server: one loopback HTTP server that speaks the subset of the Conductor
//! and lakeFS REST APIs that perago and the official SDK clients use.

pub mod http;
pub mod lakefs;
