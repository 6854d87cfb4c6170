//! perago: a typed runtime for Conductor task workers over versioned lakeFS workspaces.
//!
//! A task author writes one Rust function with typed params and result; perago derives the
//! Conductor TaskDef from the types, validates configuration, and runs workers that poll
//! Conductor, materialise a lakeFS workspace locally, run the function, check guardrails,
//! publish changes with a fenced protocol and report the result.
//!
//! # The surface
//!
//! - **Authoring a task**: [`Task::builder`] → [`TaskBuilder`] with [`TaskControls`],
//!   [`WorkspaceSpec`] and [`Guardrail`]s; the body gets a [`TaskContext`] and fails with a
//!   [`TaskError`].
//! - **Naming targets**: [`Targets`], the set a binary serves.
//! - **Configuration**: [`RuntimeConfig::load`] (`.env` + environment, SPEC §2).
//! - **Embedding a runtime**: [`Runtime::builder`] → [`RuntimeBuilder`] → [`RuntimeHandle`].
//! - **Seeing and steering it** (SPEC §15): [`RuntimeHandle::metrics`] ([`Metrics`]: Prometheus
//!   text, the OTel-shaped series), [`RuntimeHandle::probe`], [`RuntimeHandle::status`],
//!   [`RuntimeHandle::pause`] / [`resume`](RuntimeHandle::resume), and
//!   [`AdminServer::for_runtime`] for the same HTTP listener `perago start` runs. Task bodies
//!   record `app.<name>` series through [`TaskContext::histogram`], [`gauge`](TaskContext::gauge)
//!   and [`timer`](TaskContext::timer) once the task declares [`MetricSpec`].
//! - **The TaskDef**: [`task_def`] / [`render_task_def`].
//! - **The command line** (feature `cli`): [`cli::main_with`] with a [`cli::App`].
//!
//! # Features
//!
//! - `cli` (default): the command line and the `perago` binary (clap).
//! - `dev-server` (default): the `dev-server` and `demo` commands, built on the
//!   `perago-devserver` crate.
//!
//! An embedder that only hosts workers writes
//! `perago = { version = "0.1", default-features = false }` and compiles neither.
//!
//! ```no_run
//! use perago::{RuntimeConfig, Runtime, Task, TaskContext, TaskError, ConfigOverrides};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Params { text: String }
//! #[derive(Serialize, JsonSchema)]
//! struct Output { length: usize }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let task = Task::builder("text.length", "team@example.com").handler(
//!     |_ctx: &TaskContext, params: Params| -> Result<Output, TaskError> {
//!         Ok(Output { length: params.text.len() })
//!     },
//! )?;
//! let config = RuntimeConfig::load("text.length", &std::env::current_dir()?, &ConfigOverrides::default())?;
//! let handle = Runtime::builder(config, task).threads(4).start()?;
//! handle.shutdown();
//! assert!(handle.join().is_clean());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod admin;
#[cfg(feature = "cli")]
pub mod cli;
mod conductor;
mod config;
pub mod examples;
mod execution;
mod lakefs;
mod logging;
mod metrics;
mod registry;
mod result;
mod runtime;
mod signal;
#[cfg(feature = "cli")]
mod supervisor;
mod task;
mod taskdef;
mod util;
mod workspace;

pub use admin::{AdminError, AdminServer};
pub use config::{
    AdminConfig, ConductorAuth, ConductorConfig, ConfigError, ConfigOverrides, ExecutionMode,
    LakefsConfig, LogFormat, MetricsConfig, ObservabilityConfig, ProxyUrl, RuntimeConfig, Secret,
    TlsFiles, TlsPaths, WorkerProperty, WorkerSettings,
};
pub use metrics::{
    Instrument, Kind as MetricKind, MetricRecorder, MetricSpec, MetricTimer, Metrics,
};
pub use registry::{TargetError, Targets};
pub use result::{Phase, TaskStatus};
pub use runtime::{
    CountersSnapshot, InFlightStatus, Probe, Runtime, RuntimeBuilder, RuntimeError, RuntimeExit,
    RuntimeHandle, RuntimeStatus, RuntimeView, ShutdownReason, TaskCounters,
};
pub use task::{
    AttemptIdentity, AttemptLogger, CancelSource, CancelToken, Cancelled, DeclarationError,
    Guardrail, GuardrailPhase, InProgress, LimitControls, PublishBudget, RetryControls, RetryLogic,
    Task, TaskBuilder, TaskContext, TaskControls, TaskError, TaskLogSink, TimeoutControls,
    TimeoutPolicy, WorkspacePathError, WorkspaceSpec,
};
pub use taskdef::{ExtractError, render_task_def, task_def, write_task_def};

/// Seams for perago's own tests and benchmarks: the attempt core, the clients, the workspace
/// primitives. Not part of the API; anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::conductor::model::UpdateStatus;
    pub use crate::conductor::{
        ClientOptions as ConductorClientOptions, ConductorApi, ConductorClient, ConductorError,
        PolledTask, TaskUpdate,
    };
    pub use crate::config::load_env;
    pub use crate::execution::staging::staging_branch_name;
    pub use crate::execution::{
        AttemptEnv, AttemptFence, AttemptObserver, AttemptReport, FenceError, LocalDirStore,
        NoFence, NoObserver, StageRequest, StoreError, WorkspaceRef, WorkspaceStore, run_attempt,
        run_attempt_observed,
    };
    pub use crate::lakefs::stage::stage_changes_with;
    pub use crate::lakefs::store::{DEFAULT_DOWNLOAD_PARALLELISM, DEFAULT_UPLOAD_PARALLELISM};
    pub use crate::lakefs::{
        CacheKey, CacheStats, ClientOptions as LakefsClientOptions, FetchOptions, LakefsClient,
        LakefsStore, ObjectCache, UploadSource, download_prefix, download_prefix_with,
        stage_changes,
    };
    pub use crate::logging::path::LogFileName;
    pub use crate::logging::{
        LogRole, LogSettings, LoggingError, init_logging, parse_log_file_name, worker_log_dir,
    };
    pub use crate::runtime::{ConductorFence, attempt_identity};
    pub use crate::util::backoff::{Backoff, RetryPolicy};
    pub use crate::workspace::{
        ChangeSet, LiveOwners, MARKER_FILE_NAME, Marker, SUPERVISOR_LOCK_FILE_NAME, Snapshot,
        acquire_supervisor_lock, create_attempt_dir, diff, new_execution_id,
    };

    #[cfg(feature = "dev-server")]
    pub use crate::cli::demo::{DemoOptions, DemoReport, run_demo};
}
