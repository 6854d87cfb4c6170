//! Attempt execution: the state machine that turns one Conductor task into one result.
//!
//! - [`attempt`]: phases, classification, cleanup ([`run_attempt`]).
//! - [`store`]: the seams to lakeFS and Conductor ([`WorkspaceStore`], [`AttemptFence`]).
//! - [`local`]: a [`WorkspaceStore`] over a local directory, for `perago run`.
//! - [`staging`]: staging branch names.

pub mod attempt;
mod input;
pub mod local;
pub mod staging;
pub mod store;

pub use attempt::{
    AttemptEnv, AttemptObserver, AttemptReport, NoObserver, run_attempt, run_attempt_observed,
    undecodable_task_report,
};
pub use local::LocalDirStore;
pub use store::{
    AttemptFence, FenceError, NoFence, StageRequest, StoreError, WorkspaceRef, WorkspaceStore,
};
