//! lakeFS: the blocking REST client and the publication protocol (SPEC §7) behind the
//! attempt core's [`WorkspaceStore`](crate::execution::WorkspaceStore) seam.
//!
//! - [`client`]: [`LakefsClient`] — ureq with keep-alive, Basic auth, explicit timeouts,
//!   retries of what lakeFS calls retryable, typed [`LakefsError`]s.
//! - [`model`]: lenient serde types of the responses.
//! - [`download`]: the prefix projection of a ref into an attempt workspace, fetched with a
//!   bounded thread pool and hashed while written; unsafe object paths are refused.
//! - [`cache`]: [`ObjectCache`], the host's content-addressed object cache (SPEC §18).
//! - [`presign`]: pre-signed downloads and uploads, when the server announces them.
//! - [`stage`]: staging branch, upload of new/changed files, delete of removed ones, commit.
//! - [`publish`]: the head-state protocol (merge / replace / fail closed, and the no-op rows).
//! - [`store`]: [`LakefsStore`], composing the above for [`run_attempt`](crate::execution::run_attempt).

pub mod cache;
pub mod client;
pub mod download;
pub mod model;
mod pool;
pub mod presign;
pub mod publish;
pub mod stage;
pub mod store;

pub use cache::{CacheKey, CacheStats, ObjectCache};
pub use client::{ClientOptions, LakefsClient, UploadSource};
pub use download::{FetchOptions, download_prefix, download_prefix_with};
pub use stage::stage_changes;
pub use store::LakefsStore;
