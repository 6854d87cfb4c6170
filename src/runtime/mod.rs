//! The thread runtime (SPEC §9): one process polling Conductor and running attempts on N
//! worker threads, for one or more hosted tasks (SPEC §17: each task has the poller, workers
//! and slots drawn below; the lease, GC and signal threads are the runtime's, shared).
//!
//! ```text
//!              slots (free-worker permits)
//!        ┌─────────────────────────────────┐
//!        ▼                                 │
//!   [poller] ──jobs──▶ [worker-1..N] ──────┘      [lease]  heartbeats long attempts
//!      │  batch poll       │ run_attempt            ▲ Start/Stop
//!      ▼                   │ update(-v2) ───────────┘
//!   Conductor ◀────────────┘                      [gc]     sweeps the workspace root
//!                                                 [signal] SIGINT/SIGTERM → Shutdown
//! ```
//!
//! One [`Shutdown`] value is shared by every thread: the first request stops polling and
//! drains; the force deadline (or a second signal) cancels in-flight attempts; then the
//! runtime halts. [`RuntimeHandle::join`] is the main loop that drives it.
//!
//! - [`builder`]: [`Runtime::builder`] and transactional start.
//! - [`handle`]: [`RuntimeHandle`] (`shutdown`, `force`, `join`, `counters`) and [`RuntimeExit`].
//! - [`shutdown`]: [`Shutdown`] and the ordered [`ShutdownReason`].
//! - `task_runner`: one hosted task's unit (its poller, workers, slots and counters); a
//!   runtime hosts one or more (SPEC §17), sharing everything else below.
//! - `poller`, `worker`, [`lease`], `gc_timer`, `signals`, `task_log`: one file per thread
//!   (`task_log` ships `ctx.log()` lines to Conductor's task log).
//! - [`fence`]: [`ConductorFence`], the attempt fence over Conductor.
//! - `identity`: [`attempt_identity`], a polled task's domain identity.
//! - [`counters`]: the live counters (delays come from `util::backoff`).
//! - [`health`]: liveness, readiness and pause state, and the in-flight table (probes).
//! - [`observed`]: the Conductor decorator that feeds metrics and readiness.
//! - [`error`](mod@error): [`RuntimeError`].

pub mod builder;
pub mod counters;
pub mod error;
pub mod fence;
mod gc_timer;
pub mod handle;
pub mod health;
mod identity;
pub mod lease;
pub mod observed;
mod poller;
pub mod shutdown;
mod signals;
mod task_log;
mod task_runner;
mod worker;

#[cfg(test)]
mod tests;

pub use builder::{Runtime, RuntimeBuilder};
pub use counters::CountersSnapshot;
pub use error::RuntimeError;
pub use fence::ConductorFence;
pub use handle::{
    InFlightStatus, Probe, RuntimeExit, RuntimeHandle, RuntimeStatus, RuntimeView, TaskCounters,
};
pub use identity::attempt_identity;
pub use shutdown::ShutdownReason;
