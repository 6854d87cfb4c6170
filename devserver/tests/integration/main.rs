//! The dev server's integration tests over real loopback HTTP: one test binary, one module per
//! area. Run them with `cargo nextest run -p perago-devserver` (or `--workspace`).

/// Shared helpers: [`support::wait_until`], the one deadline-bounded wait.
mod support;

/// Every Conductor route against what the real Conductor server answers: metadata, start and
/// inspect, polling, updates v1 and v2, timeouts, token auth, persistence and bad input.
mod conductor;
/// Every lakeFS route against the real lakeFS API's statuses, JSON shapes and pagination.
mod lakefs;
/// What the official SDKs rely on: task domains, `callbackAfterSeconds`, task logs, Spring-style
/// query booleans.
mod sdk_fidelity;
/// The first smoke tests: Conductor semantics, lakeFS basics, faults (errors, latency, dropped
/// connections), slow and half-closed clients, keep-alive bursts, persistence and autosave.
mod smoke;
