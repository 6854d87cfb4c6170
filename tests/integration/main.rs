//! The perago integration tests: one test binary, one module per area. They talk HTTP to the
//! dev server (`perago-devserver`) over loopback, or run the `perago` binary (and the test-only
//! `perago-test-worker`) as child processes.
//!
//! Run them with `cargo nextest run --workspace`: nextest runs each test in its own process,
//! which the modules that install the process-global logger (`logging`, and the log capture of
//! `lakefs_publication`) rely on; under `cargo test` they fail with a message saying so.

/// Shared helpers: [`support::wait_until`], the one deadline-bounded wait.
mod support;

/// The attempt state machine against SPEC §6's classification table (local store, fences).
mod attempt_core;
/// `check`, `extract`, `config`, `run`, `targets`, `dev-server` as an operator runs them.
mod cli;
/// Workspaces at data scale (SPEC §18): object cache, pre-signed transfers, bounded memory.
mod data_scale;
/// The demo (the main job), small.
mod demo;
/// The lakeFS publication protocol (SPEC §7) against the dev server: every row, fences, safety
/// refusals, the Conductor fence, a chained workflow.
mod lakefs_publication;
/// The process-global JSONL logger: path layout, rotation, retention, fields (needs nextest).
mod logging;
/// SPEC §15: the admin listener, probes, OTLP export, `start`'s stderr, process mode's
/// merged listener.
mod observability;
/// `perago start --execution-mode process` as a real process tree.
mod process_mode;
/// The README recipe, read from README.md and run as written (`dev-server`, `register`,
/// `check --online`, `start`, `workflow`).
mod recipe;
/// Issue 13: a poison task in a poll batch, staging branches after SIGKILL and under DELETE
/// faults, a forced attempt in a slow merge.
mod reliability;
/// The thread runtime: delivery under faults, update-v2, leases, drain, force deadline, GC,
/// `perago start` logs and exit codes.
mod runtime;
/// What a worker moved from an official SDK expects: task domains, in-progress outcomes,
/// task logs (bounds, redaction), no publication from an in-progress outcome.
mod sdk_parity;
/// Set-up without hand work (SPEC §16): register, drift, preflight, config sources and the
/// smaller CLI defects, with the `perago` binary against a dev server.
mod setup;
/// TaskDefs of the example targets against the golden files in `tests/golden/`.
mod taskdef_golden;
/// TLS (test CA, client certificates) and proxies (`HTTPS_PROXY`, `NO_PROXY`) on loopback.
mod tls_proxy;
