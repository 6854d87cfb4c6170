//! The [`Task`] declaration: a typed body plus its metadata, erased into one runnable value.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::context::TaskContext;
use super::controls::TaskControls;
use super::error::TaskError;
use super::schema::{CompiledSchema, SchemaRole, object_schema_for};
use super::workspace_spec::WorkspaceSpec;
use crate::metrics::MetricSpec;

/// A mistake in a task declaration, reported when the task is built — never at the first poll.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeclarationError {
    message: String,
}

impl DeclarationError {
    /// A declaration error with this message.
    pub fn new(message: impl Into<String>) -> DeclarationError {
        DeclarationError {
            message: message.into(),
        }
    }
}

/// Why the erased handler did not produce a result value.
#[derive(Debug)]
pub(crate) enum HandlerError {
    /// Params passed schema validation but did not deserialise into the params type.
    InvalidParams(String),
    /// The body returned an error.
    Body(TaskError),
    /// The result did not serialise.
    InvalidResult(String),
}

type Handler = dyn Fn(&TaskContext, Value) -> Result<Value, HandlerError> + Send + Sync;

struct TaskInner {
    name: String,
    owner_email: String,
    description: Option<String>,
    controls: TaskControls,
    workspace: Option<WorkspaceSpec>,
    object_prefix: String,
    strict_params: bool,
    metrics: Option<MetricSpec>,
    params_schema: Value,
    result_schema: Value,
    params_validator: CompiledSchema,
    result_validator: CompiledSchema,
    handler: Box<Handler>,
}

/// One task worker: a typed function plus its metadata, as one Conductor task type.
///
/// # Threads and cloning
/// `Task` is an `Arc` inside: clones are cheap and share the compiled schemas and body,
/// which every worker thread calls concurrently.
///
/// ```
/// use perago::{Task, TaskContext, TaskError};
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Params { message: String }
/// #[derive(Serialize, JsonSchema)]
/// struct Output { message: String }
///
/// let task = Task::builder("examples.echo", "dev@example.com")
///     .handler(|_ctx: &TaskContext, params: Params| -> Result<Output, TaskError> {
///         Ok(Output { message: params.message })
///     })
///     .unwrap();
/// assert_eq!(task.name(), "examples.echo");
/// ```
#[derive(Clone)]
pub struct Task {
    inner: Arc<TaskInner>,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.inner.name)
            .field("owner_email", &self.inner.owner_email)
            .field("workspace", &self.inner.workspace)
            .field("strict_params", &self.inner.strict_params)
            .finish_non_exhaustive()
    }
}

impl Task {
    /// Starts declaring a task named `name`, owned by `owner_email`.
    pub fn builder(name: impl Into<String>, owner_email: impl Into<String>) -> TaskBuilder {
        TaskBuilder {
            name: name.into(),
            owner_email: owner_email.into(),
            description: None,
            controls: TaskControls::default(),
            workspace: None,
            strict_params: false,
            metrics: None,
        }
    }

    /// The TaskDef name (also the Conductor task type polled).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The owner email.
    pub fn owner_email(&self) -> &str {
        &self.inner.owner_email
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.inner.description.as_deref()
    }

    /// The controls.
    pub fn controls(&self) -> &TaskControls {
        &self.inner.controls
    }

    /// The workspace spec (workspace tasks only).
    pub fn workspace(&self) -> Option<&WorkspaceSpec> {
        self.inner.workspace.as_ref()
    }

    /// Whether the task has a workspace.
    pub fn is_workspace_task(&self) -> bool {
        self.inner.workspace.is_some()
    }

    /// Whether the task is a writable workspace task (may publish).
    pub fn is_writable(&self) -> bool {
        self.inner
            .workspace
            .as_ref()
            .is_some_and(|spec| !spec.is_read_only())
    }

    /// The lakeFS key prefix of the workspace projection (`""` for the root, else `p/`).
    pub fn object_prefix(&self) -> &str {
        &self.inner.object_prefix
    }

    /// Whether unknown params fields are rejected.
    pub fn strict_params(&self) -> bool {
        self.inner.strict_params
    }

    /// The metrics declaration (`None`: no runtime series, application metrics dropped).
    pub fn metrics(&self) -> Option<MetricSpec> {
        self.inner.metrics
    }

    /// The shaped JSON Schema of the params object.
    pub fn params_schema(&self) -> &Value {
        &self.inner.params_schema
    }

    /// The shaped JSON Schema of the result object.
    pub fn result_schema(&self) -> &Value {
        &self.inner.result_schema
    }

    /// The publish budget that applies (writable workspace tasks only).
    pub fn effective_publish_budget(&self) -> Option<&super::PublishBudget> {
        if self.is_writable() {
            self.inner.controls.publish_budget.as_ref()
        } else {
            None
        }
    }

    /// Declaration warnings that `check`, `extract` and `start` print once.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let read_only = self
            .inner
            .workspace
            .as_ref()
            .is_some_and(WorkspaceSpec::is_read_only);
        if read_only && self.inner.controls.publish_budget.is_some() {
            warnings.push(
                "WorkspaceSpec(read_only=True) disables workspace publication; TaskControls.publish_budget is ignored."
                    .to_owned(),
            );
        }
        if let Some(budget) = self.effective_publish_budget() {
            let needed = budget.response_timeout_seconds();
            let configured = self.inner.controls.timeout.response_seconds;
            if configured < needed {
                warnings.push(format!(
                    "timeout.response_seconds={configured} is below the publish budget's response timeout of {needed} seconds"
                ));
            }
        }
        warnings
    }

    /// Validates params against the params schema.
    pub(crate) fn validate_params(&self, params: &Value) -> Result<(), String> {
        self.inner.params_validator.validate(params)
    }

    /// Validates a result against the result schema.
    pub(crate) fn validate_result(&self, result: &Value) -> Result<(), String> {
        self.inner.result_validator.validate(result)
    }

    /// Runs the body on validated params.
    pub(crate) fn call(&self, ctx: &TaskContext, params: Value) -> Result<Value, HandlerError> {
        (self.inner.handler)(ctx, params)
    }
}

/// Declares a [`Task`]; finish with [`TaskBuilder::handler`] or
/// [`TaskBuilder::workspace_handler`], which validate the whole declaration.
#[derive(Debug, Clone)]
#[must_use = "a TaskBuilder does nothing until a handler is attached"]
pub struct TaskBuilder {
    name: String,
    owner_email: String,
    description: Option<String>,
    controls: TaskControls,
    workspace: Option<WorkspaceSpec>,
    strict_params: bool,
    metrics: Option<MetricSpec>,
}

impl TaskBuilder {
    /// Declares metrics (SPEC §15): which `runtime.*` series are recorded, and turns on the
    /// body's recorder ([`TaskContext::histogram`] and friends). `MetricSpec::default()`
    /// enables all three categories.
    pub fn metrics(mut self, spec: MetricSpec) -> TaskBuilder {
        self.metrics = Some(spec);
        self
    }

    /// Sets the TaskDef description.
    pub fn description(mut self, description: impl Into<String>) -> TaskBuilder {
        self.description = Some(description.into());
        self
    }

    /// Sets the controls.
    pub fn controls(mut self, controls: TaskControls) -> TaskBuilder {
        self.controls = controls;
        self
    }

    /// Makes this a workspace task.
    pub fn workspace(mut self, spec: WorkspaceSpec) -> TaskBuilder {
        self.workspace = Some(spec);
        self
    }

    /// Rejects unknown params fields (default: ignored).
    pub fn strict_params(mut self, strict: bool) -> TaskBuilder {
        self.strict_params = strict;
        self
    }

    /// Finishes the declaration with a body taking the context and typed params.
    ///
    /// Workspace tasks reach their workspace through [`TaskContext::workspace`].
    pub fn handler<P, O, F>(self, body: F) -> Result<Task, DeclarationError>
    where
        P: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
        F: Fn(&TaskContext, P) -> Result<O, TaskError> + Send + Sync + 'static,
    {
        self.build::<P, O>(Box::new(move |ctx, params| {
            let params: P = serde_json::from_value(params)
                .map_err(|err| HandlerError::InvalidParams(err.to_string()))?;
            let output = body(ctx, params).map_err(HandlerError::Body)?;
            serde_json::to_value(output).map_err(|err| HandlerError::InvalidResult(err.to_string()))
        }))
    }

    /// Finishes a workspace task's declaration with a body that also takes the attempt
    /// workspace root.
    pub fn workspace_handler<P, O, F>(self, body: F) -> Result<Task, DeclarationError>
    where
        P: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
        F: Fn(&TaskContext, &Path, P) -> Result<O, TaskError> + Send + Sync + 'static,
    {
        if self.workspace.is_none() {
            return Err(DeclarationError::new(
                "workspace_handler requires a workspace spec (TaskBuilder::workspace)",
            ));
        }
        self.handler(move |ctx: &TaskContext, params: P| {
            let Some(root) = ctx.workspace() else {
                return Err(TaskError::failed("workspace task ran without a workspace"));
            };
            body(ctx, root, params)
        })
    }

    fn build<P: JsonSchema, O: JsonSchema>(
        self,
        handler: Box<Handler>,
    ) -> Result<Task, DeclarationError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(DeclarationError::new("task name is required"));
        }
        if name.contains('/') || name.contains('\\') {
            return Err(DeclarationError::new(
                "task name must not contain path separators",
            ));
        }
        if self.owner_email.trim().is_empty() {
            return Err(DeclarationError::new("owner_email is required"));
        }
        self.controls.validate()?;
        let object_prefix = match &self.workspace {
            Some(spec) => {
                spec.validate()?;
                spec.object_prefix()?
            }
            None => {
                if self.controls.publish_budget.is_some() {
                    return Err(DeclarationError::new(
                        "publish_budget requires a workspace spec (TaskBuilder::workspace)",
                    ));
                }
                String::new()
            }
        };
        let params_schema = object_schema_for::<P>(
            SchemaRole::Params {
                strict: self.strict_params,
            },
            "params",
        )?;
        let result_schema = object_schema_for::<O>(SchemaRole::Result, "result")?;
        Ok(Task {
            inner: Arc::new(TaskInner {
                name: name.to_owned(),
                owner_email: self.owner_email.trim().to_owned(),
                description: self.description,
                controls: self.controls,
                workspace: self.workspace,
                object_prefix,
                strict_params: self.strict_params,
                metrics: self.metrics,
                params_validator: CompiledSchema::compile(&params_schema)?,
                result_validator: CompiledSchema::compile(&result_schema)?,
                params_schema,
                result_schema,
                handler,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{PublishBudget, TaskControls};
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    struct P {
        #[allow(dead_code)]
        x: u32,
    }
    #[derive(Serialize, JsonSchema)]
    struct O {
        y: u32,
    }

    fn body(_: &TaskContext, p: P) -> Result<O, TaskError> {
        Ok(O { y: p.x })
    }

    fn budget() -> PublishBudget {
        PublishBudget {
            observed_merge_p99_seconds: 1,
            safety_margin_seconds: 1,
            lakefs_merge_timeout_seconds: 2,
            conductor_completion_timeout_seconds: 1,
            worker_shutdown_grace_seconds: 1,
            heartbeat_interval_seconds: 1,
        }
    }

    #[test]
    fn declaration_errors_are_clear() {
        let cases: Vec<(TaskBuilder, &str)> = vec![
            (Task::builder(" ", "a@b"), "task name is required"),
            (
                Task::builder("a/b", "a@b"),
                "task name must not contain path separators",
            ),
            (
                Task::builder("a\\b", "a@b"),
                "task name must not contain path separators",
            ),
            (Task::builder("a", ""), "owner_email is required"),
            (
                Task::builder("a", "a@b").controls(TaskControls {
                    publish_budget: Some(budget()),
                    ..TaskControls::default()
                }),
                "publish_budget requires a workspace spec (TaskBuilder::workspace)",
            ),
            (
                Task::builder("a", "a@b").workspace(WorkspaceSpec::new("..")),
                "workspace prefix '..' must stay inside the repository",
            ),
        ];
        for (builder, message) in cases {
            assert_eq!(builder.handler(body).unwrap_err().to_string(), message);
        }
        let error = Task::builder("a", "a@b")
            .workspace_handler(|_: &TaskContext, _: &Path, p: P| body_ok(p))
            .unwrap_err();
        assert!(error.to_string().contains("requires a workspace spec"));
    }

    fn body_ok(p: P) -> Result<O, TaskError> {
        Ok(O { y: p.x })
    }

    #[test]
    fn read_only_publish_budget_warns() {
        let task = Task::builder("a", "a@b")
            .workspace(WorkspaceSpec::new("/").read_only(true))
            .controls(TaskControls {
                publish_budget: Some(budget()),
                ..TaskControls::default()
            })
            .handler(body)
            .unwrap();
        assert_eq!(
            task.warnings(),
            vec![
                "WorkspaceSpec(read_only=True) disables workspace publication; TaskControls.publish_budget is ignored."
            ]
        );
        assert!(task.effective_publish_budget().is_none());
    }
}
