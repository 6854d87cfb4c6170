//! perago: a typed runtime for Conductor task workers over versioned lakeFS workspaces.
//!
//! A task author writes one Rust function with typed params and result; perago derives the
//! Conductor TaskDef from the types, validates configuration, and runs workers that poll
//! Conductor, materialise a lakeFS workspace locally, run the function, check guardrails,
//! publish changes with a fenced protocol and report the result.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod conductor;
pub mod config;
pub mod demo;
pub mod devserver;
pub mod examples;
pub mod execution;
pub mod guardrail;
pub mod lakefs;
pub mod logging;
pub mod registry;
pub mod result;
pub mod runtime;
pub mod schema;
pub mod signal;
pub mod supervisor;
pub mod task;
pub mod taskdef;
pub mod workspace;

pub use guardrail::{Guardrail, GuardrailPhase};
pub use task::{
    CancelToken, DeclarationError, Task, TaskBuilder, TaskContext, TaskControls, TaskError,
    WorkspaceSpec,
};
