//! The lakeFS half of the dev server: the subset of the lakeFS REST API (mounted at
//! `/api/v1`) that perago and the official lakeFS SDKs use, with lakeFS's paths, status codes,
//! JSON shapes and version-control semantics (see `shared/protocols/lakefs-api.md`), over an
//! in-memory store that can be saved to and reloaded from a data dir.
//!
//! Contents:
//! - `service`: [`LakefsService`] (the [`crate::http::Service`]), auth, request
//!   parsing, pagination and the route handlers; introspection helpers for tests.
//! - [`routes`]: the route-label constants (request-counter keys) and path matching.
//! - `store`: repositories, branches with staging areas, commits, ref expressions, commit,
//!   merge, reset and diff semantics, content-addressed blobs.
//! - `tree`: committed trees as shared sorted ranges (cheap commits, diffs that skip shared
//!   ranges, boundary-independent content digests).
//! - `model`: serde types of the wire format.
//! - `persist`: the data-dir format, atomic saves and validated loads.
//! - `multipart`: the `multipart/form-data` upload parser.

mod model;
mod multipart;
mod persist;
pub mod routes;
mod service;
mod store;
mod tree;

pub use model::CommitInfo;
pub use persist::LakefsServiceError;
pub use service::{DEV_USER, LakefsCredentials, LakefsService};
