//! Input contract checks (SPEC §5): the shape of `inputData` and the workspace input.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::store::WorkspaceRef;
use crate::task::Task;
use crate::task::schema::{CompiledSchema, workspace_schema};

/// The validated parts of an attempt's `inputData`.
#[derive(Debug, Clone)]
pub(crate) struct ParsedInput {
    /// The workspace input (workspace tasks only).
    pub workspace: Option<WorkspaceRef>,
    /// The params object, validated against the params schema.
    pub params: Value,
}

/// Splits and validates `inputData`; the error is the failure reason.
pub(crate) fn parse_input(task: &Task, input: &Value) -> Result<ParsedInput, String> {
    let object = input.as_object();
    let get = |key: &str| object.and_then(|map| map.get(key));
    let workspace = if task.is_workspace_task() {
        let (Some(workspace), Some(_)) = (get("workspace"), get("params")) else {
            return Err("workspace task input must contain workspace and params".into());
        };
        Some(parse_workspace(workspace)?)
    } else {
        if get("params").is_none() {
            return Err("workspace-free task input must contain params".into());
        }
        None
    };
    let params = get("params").cloned().unwrap_or(Value::Null);
    if !params.is_object() {
        return Err(format!(
            "invalid params: params must be a JSON object, got {}",
            json_type(&params)
        ));
    }
    task.validate_params(&params)
        .map_err(|error| format!("invalid params: {error}"))?;
    Ok(ParsedInput { workspace, params })
}

fn parse_workspace(value: &Value) -> Result<WorkspaceRef, String> {
    static SCHEMA: OnceLock<Option<CompiledSchema>> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| CompiledSchema::compile(&workspace_schema()).ok());
    if let Some(schema) = schema {
        schema
            .validate(value)
            .map_err(|error| format!("invalid workspace input: {error}"))?;
    }
    let field = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let workspace = WorkspaceRef {
        repository: field("repository"),
        branch: field("branch"),
        reference: field("ref"),
    };
    for (name, text) in [
        ("repository", &workspace.repository),
        ("branch", &workspace.branch),
        ("ref", &workspace.reference),
    ] {
        if text.is_empty() {
            return Err(format!("invalid workspace input: {name} must not be blank"));
        }
    }
    if value.get("refType").and_then(Value::as_str) != Some("commit") {
        return Err("invalid workspace input: refType must be \"commit\"".into());
    }
    Ok(workspace)
}

/// The workspace object reported in the output: the input with `ref` replaced.
pub(crate) fn workspace_output(workspace: &WorkspaceRef, reference: &str) -> Value {
    json!({
        "repository": workspace.repository,
        "branch": workspace.branch,
        "refType": "commit",
        "ref": reference,
    })
}

/// The completed `outputData`.
pub(crate) fn completed_output(workspace: Option<Value>, result: Value) -> Value {
    let mut output = Map::new();
    if let Some(workspace) = workspace {
        output.insert("workspace".into(), workspace);
    }
    output.insert("result".into(), result);
    Value::Object(output)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_input_rules() {
        let ok = json!({"repository": "r", "branch": "main", "refType": "commit", "ref": "abc"});
        assert_eq!(parse_workspace(&ok).unwrap().reference, "abc");
        let cases = [
            (
                json!({"repository": " ", "branch": "main", "refType": "commit", "ref": "abc"}),
                "repository must not be blank",
            ),
            (
                json!({"repository": "r", "branch": "main", "refType": "branch", "ref": "abc"}),
                "refType",
            ),
            (
                json!({"repository": "r", "branch": "main", "refType": "commit"}),
                "ref",
            ),
            (
                json!({"repository": "r", "branch": "", "refType": "commit", "ref": "a"}),
                "branch",
            ),
            (
                json!({"repository": 1, "branch": "m", "refType": "commit", "ref": "a"}),
                "repository",
            ),
            (json!("nope"), "invalid workspace input"),
        ];
        for (value, needle) in cases {
            let error = parse_workspace(&value).unwrap_err();
            assert!(error.contains(needle), "{error} should mention {needle}");
        }
    }
}
