//! Conductor TaskDef generation (`perago extract`).
//!
//! The TaskDef is built as an ordered JSON object so its key order is part of the contract:
//! `name, ownerEmail, description?, retryCount, retryLogic, retryDelaySeconds,
//! maxRetryDelaySeconds, backoffJitterMs, totalTimeoutSeconds, timeoutPolicy, timeoutSeconds,
//! responseTimeoutSeconds, pollTimeoutSeconds, concurrentExecLimit?,
//! rateLimitFrequencyInSeconds?, rateLimitPerFrequency?, inputKeys, outputKeys, inputSchema,
//! outputSchema`. Guardrails, prefix, read-only, publish budget and connection settings
//! never appear in it.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::task::Task;
use crate::task::schema::envelope;

/// Builds the TaskDef JSON of `task`.
pub fn task_def(task: &Task) -> Value {
    let controls = task.controls();
    let mut def = Map::new();
    def.insert("name".into(), json!(task.name()));
    def.insert("ownerEmail".into(), json!(task.owner_email()));
    if let Some(description) = task.description() {
        def.insert("description".into(), json!(description));
    }
    let retry = &controls.retry;
    def.insert("retryCount".into(), json!(retry.count));
    def.insert("retryLogic".into(), json!(retry.logic));
    def.insert("retryDelaySeconds".into(), json!(retry.delay_seconds));
    def.insert(
        "maxRetryDelaySeconds".into(),
        json!(retry.max_delay_seconds),
    );
    def.insert("backoffJitterMs".into(), json!(retry.jitter_ms));
    let timeout = &controls.timeout;
    def.insert("totalTimeoutSeconds".into(), json!(timeout.total_seconds));
    def.insert("timeoutPolicy".into(), json!(timeout.policy));
    def.insert("timeoutSeconds".into(), json!(timeout.seconds));
    def.insert(
        "responseTimeoutSeconds".into(),
        json!(timeout.response_seconds),
    );
    def.insert("pollTimeoutSeconds".into(), json!(timeout.poll_seconds));
    let limits = &controls.limits;
    let optional = [
        ("concurrentExecLimit", limits.concurrent_exec_limit),
        (
            "rateLimitFrequencyInSeconds",
            limits.rate_limit_frequency_in_seconds,
        ),
        ("rateLimitPerFrequency", limits.rate_limit_per_frequency),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            def.insert(key.into(), json!(value));
        }
    }
    let workspace = task.is_workspace_task();
    let keys = |payload: &str| {
        if workspace {
            json!(["workspace", payload])
        } else {
            json!([payload])
        }
    };
    def.insert("inputKeys".into(), keys("params"));
    def.insert("outputKeys".into(), keys("result"));
    let schema_def = |suffix: &str, data: Value| {
        json!({
            "name": format!("{}.{suffix}", task.name()),
            "version": 1,
            "type": "JSON",
            "data": data,
        })
    };
    def.insert(
        "inputSchema".into(),
        schema_def(
            "input",
            envelope(workspace, "params", task.params_schema(), true),
        ),
    );
    def.insert(
        "outputSchema".into(),
        schema_def(
            "output",
            envelope(workspace, "result", task.result_schema(), false),
        ),
    );
    Value::Object(def)
}

/// The TaskDef as written by `extract`: 2-space indented JSON plus a newline.
pub fn render_task_def(task: &Task) -> String {
    let mut text = serde_json::to_string_pretty(&task_def(task))
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

/// Why `extract` could not write the TaskDef.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The output path does not end in `.json`.
    #[error("output must be a JSON file path, for example generated/features.build.json")]
    NotJsonPath,
    /// The output path is a directory.
    #[error("output must be a JSON file path, not a directory")]
    IsDirectory,
    /// Writing failed.
    #[error("failed to write {}", path.display())]
    Write {
        /// The output path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Checks the output path rules without writing anything.
pub fn check_output_path(path: &Path) -> Result<(), ExtractError> {
    if path.is_dir() {
        return Err(ExtractError::IsDirectory);
    }
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if !is_json {
        return Err(ExtractError::NotJsonPath);
    }
    Ok(())
}

/// Writes the TaskDef of `task` to `path`, creating parent directories.
pub fn write_task_def(task: &Task, path: &Path) -> Result<(), ExtractError> {
    check_output_path(path)?;
    let write_error = |source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    std::fs::write(path, render_task_def(task)).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_path_rules() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            check_output_path(&dir.path().join("x.yaml"))
                .unwrap_err()
                .to_string(),
            "output must be a JSON file path, for example generated/features.build.json"
        );
        let as_dir = dir.path().join("d.json");
        std::fs::create_dir(&as_dir).unwrap();
        assert_eq!(
            check_output_path(&as_dir).unwrap_err().to_string(),
            "output must be a JSON file path, not a directory"
        );
        check_output_path(&dir.path().join("a/b/c.json")).unwrap();
    }
}
