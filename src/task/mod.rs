//! The task authoring contract: what a task author declares and what a body receives.
//!
//! - [`contract`]: the [`Task`] builder and the type-erased task the runtime runs.
//! - [`controls`]: retry, timeout, limit and publish-budget controls.
//! - [`workspace_spec`]: the workspace prefix, guardrails and read-only flag.
//! - [`context`]: the [`TaskContext`] a body receives.
//! - [`workspace_path`]: joining paths below the workspace root without escaping it.
//! - [`cancel`]: cooperative cancellation tokens.
//! - [`error`]: [`TaskError`], the body's failure type.
//! - [`guardrail`]: file-shape checks before and after the body.
//! - [`schema`]: JSON Schemas from the Rust types, and validation against them.

pub mod cancel;
pub mod context;
pub mod contract;
pub mod controls;
pub mod error;
pub mod guardrail;
pub mod schema;
pub mod workspace_path;
pub mod workspace_spec;

pub use cancel::{CancelSource, CancelToken, Cancelled};
pub use context::{AttemptIdentity, AttemptLogger, TaskContext, TaskLogSink};
pub use contract::{DeclarationError, Task, TaskBuilder};
pub use controls::{
    LimitControls, PublishBudget, RetryControls, RetryLogic, TaskControls, TimeoutControls,
    TimeoutPolicy,
};
pub use error::{InProgress, TaskError};
pub use guardrail::{Guardrail, GuardrailPhase};
pub use workspace_path::WorkspacePathError;
pub use workspace_spec::WorkspaceSpec;
