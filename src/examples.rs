//! The example targets registered in the `perago` binary.
//!
//! They double as the reference for task authors and as the fixtures of the golden TaskDef
//! tests, the demo and the benchmarks.

use std::path::Path;

use globset::GlobBuilder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::registry::Targets;
use crate::task::guardrail::Guardrail;
use crate::task::{
    DeclarationError, LimitControls, RetryControls, RetryLogic, Task, TaskContext, TaskControls,
    TaskError, TimeoutControls, WorkspaceSpec,
};
use crate::workspace::walk;

/// Params of `metadata.validate`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct MetadataParams {
    /// The song to validate.
    #[schemars(length(min = 1))]
    pub song_id: String,
    /// Minimum duration, seconds.
    pub min_duration_seconds: u64,
}

/// Result of `metadata.validate`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct MetadataResult {
    /// Whether the metadata is valid.
    pub valid: bool,
    /// Why it is not.
    pub reason: Option<String>,
}

/// `metadata.validate`: a workspace-free task with a business branch.
pub fn metadata_validate() -> Result<Task, DeclarationError> {
    Task::builder("metadata.validate", "data@example.com").handler(
        |_ctx: &TaskContext, params: MetadataParams| -> Result<MetadataResult, TaskError> {
            if params.min_duration_seconds > 600 {
                Ok(MetadataResult {
                    valid: false,
                    reason: Some("too long".into()),
                })
            } else {
                Ok(MetadataResult {
                    valid: true,
                    reason: None,
                })
            }
        },
    )
}

/// Params of `features.build`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct FeaturesParams {
    /// Output feature set directory name: one path segment of letters, digits, `_` and `-`
    /// (so params can never point the output outside the workspace).
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub feature_set: String,
    /// Rows per input file.
    #[schemars(range(min = 1))]
    pub min_rows: u64,
}

/// Result of `features.build`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct FeaturesResult {
    /// Input files times min_rows.
    pub row_count: u64,
    /// Number of feature files written.
    pub feature_count: u64,
}

/// `features.build`: a writable workspace task over `/audio/render`.
pub fn features_build() -> Result<Task, DeclarationError> {
    let controls = TaskControls {
        retry: RetryControls {
            count: 4,
            logic: RetryLogic::Fixed,
            delay_seconds: 30,
            ..RetryControls::default()
        },
        timeout: TimeoutControls {
            response_seconds: 900,
            ..TimeoutControls::default()
        },
        limits: LimitControls {
            concurrent_exec_limit: Some(2),
            ..LimitControls::default()
        },
        publish_budget: None,
    };
    let workspace = WorkspaceSpec::new("/audio/render")
        .pre([
            Guardrail::require_dir("raw"),
            Guardrail::require_glob("raw/**/*.parquet"),
        ])
        .post([
            Guardrail::require_glob("features/**/*.parquet"),
            Guardrail::forbid_glob("**/*.tmp"),
        ]);
    Task::builder("features.build", "data@example.com")
        .description("Build feature parquet files.")
        .controls(controls)
        .workspace(workspace)
        .workspace_handler(build_features)
}

fn build_features(
    ctx: &TaskContext,
    root: &Path,
    params: FeaturesParams,
) -> Result<FeaturesResult, TaskError> {
    let inputs = matching_files(root, "raw/**/*.parquet")?;
    // The schema pattern already keeps `feature_set` to one plain segment; building every
    // path through `workspace_path` keeps the body below the root even if it did not.
    let out_rel = Path::new("features").join(&params.feature_set);
    let out_dir = ctx.workspace_path(&out_rel)?;
    std::fs::create_dir_all(&out_dir)?;
    for input in &inputs {
        let mut bytes = std::fs::read(ctx.workspace_path(input)?)?;
        bytes.reverse();
        let file_name = input.rsplit('/').next().unwrap_or(input);
        std::fs::write(ctx.workspace_path(out_rel.join(file_name))?, bytes)?;
    }
    let files = inputs.len() as u64;
    Ok(FeaturesResult {
        row_count: files.saturating_mul(params.min_rows),
        feature_count: files,
    })
}

/// Params of `catalog.read`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct CatalogParams {
    /// Glob relative to the repository root.
    pub pattern: String,
}

/// Result of `catalog.read`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct CatalogResult {
    /// Number of files matching the pattern.
    pub matches: u64,
}

/// `catalog.read`: a read-only workspace task over the repository root.
pub fn catalog_read() -> Result<Task, DeclarationError> {
    Task::builder("catalog.read", "data@example.com")
        .workspace(WorkspaceSpec::new("/").read_only(true))
        .workspace_handler(|_ctx: &TaskContext, root: &Path, params: CatalogParams| {
            let matches = matching_files(root, &params.pattern)?.len() as u64;
            Ok(CatalogResult { matches })
        })
}

/// Params of `examples.echo`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct EchoParams {
    /// Message to echo.
    pub message: String,
    /// How long to sleep first (cancellable), milliseconds.
    #[serde(default)]
    pub sleep_ms: u64,
}

/// Result of `examples.echo`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct EchoResult {
    /// The message.
    pub message: String,
}

/// `examples.echo`: a workspace-free task that sleeps cooperatively and echoes.
pub fn echo() -> Result<Task, DeclarationError> {
    Task::builder("examples.echo", "dev@example.com").handler(
        |ctx: &TaskContext, params: EchoParams| -> Result<EchoResult, TaskError> {
            if params.sleep_ms > 0 {
                ctx.sleep(std::time::Duration::from_millis(params.sleep_ms))
                    .map_err(|_| TaskError::failed("cancelled while sleeping"))?;
            }
            Ok(EchoResult {
                message: params.message,
            })
        },
    )
}

/// Params of `examples.metered`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct MeteredParams {
    /// Items "processed" (recorded as the `app.items` histogram).
    pub items: u64,
    /// The `kind` label of the sample.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Fail (retryable) with this reason instead of completing.
    #[serde(default)]
    pub fail_with: Option<String>,
}

fn default_kind() -> String {
    "plain".into()
}

/// Result of `examples.metered`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct MeteredResult {
    /// The items counted.
    pub items: u64,
}

/// `examples.metered`: a workspace-free task with a metrics declaration. It logs through
/// `ctx.log()`, records `app.items` (histogram, label `kind`), `app.last_items` (gauge) and
/// `app.step_seconds` (timer) — the task-author metrics API in a dozen lines.
pub fn metered() -> Result<Task, DeclarationError> {
    Task::builder("examples.metered", "dev@example.com")
        .description("Counts items and reports them as application metrics.")
        .metrics(crate::MetricSpec::default())
        .handler(
            |ctx: &TaskContext, params: MeteredParams| -> Result<MeteredResult, TaskError> {
                let _step = ctx.timer("step_seconds", &[]);
                ctx.log()
                    .info(&format!("metering {} {} items", params.items, params.kind));
                // `task_id` is reserved: it is dropped from the labels with a warning.
                ctx.histogram(
                    "items",
                    params.items as f64,
                    &[("kind", params.kind.as_str()), ("task_id", ctx.task_id())],
                );
                ctx.gauge("last_items", params.items as f64, &[]);
                if let Some(reason) = params.fail_with {
                    return Err(TaskError::failed(reason));
                }
                Ok(MeteredResult {
                    items: params.items,
                })
            },
        )
}

/// All example targets, as the `perago` binary registers them.
pub fn targets() -> Targets {
    Targets::new()
        .register("examples.metadata_validate", metadata_validate)
        .register("examples.features_build", features_build)
        .register("examples.echo", echo)
        .register("examples.catalog_read", catalog_read)
        .register("examples.metered", metered)
}

/// Sorted workspace-relative paths of regular files under `root` matching `pattern`
/// (symlinks are not followed; the attempt marker never matches).
fn matching_files(root: &Path, pattern: &str) -> Result<Vec<String>, TaskError> {
    let matcher = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|err| TaskError::terminal(format!("invalid pattern '{pattern}': {err}")))?
        .compile_matcher();
    let mut found = Vec::new();
    for item in walk(root) {
        let entry =
            item.map_err(|err| TaskError::failed(format!("failed to scan workspace: {err}")))?;
        if entry.entry.file_type().is_file() && matcher.is_match(&entry.relative) {
            found.push(entry.relative);
        }
    }
    found.sort();
    Ok(found)
}
