//! TaskDef drift (SPEC §16): how the TaskDef registered in Conductor differs from the one the
//! code generates, field by field, and which differences are breaking.
//!
//! Only the fields perago generates are compared; fields the server adds (`createTime`,
//! `ownerApp`, defaults for omitted rate limits, …) are not drift. A field is **breaking**
//! when serving against it would go wrong: `inputKeys`, `outputKeys`, `inputSchema` or
//! `outputSchema` missing or different, or `responseTimeoutSeconds` below a writable task's
//! publish-budget response timeout (the server would time an attempt out while it
//! publishes). Every other difference (retry settings, timeouts, description, owner, …) is
//! harmless: `start` warns and serves.

use serde_json::Value;

use crate::task::Task;

/// Fields whose difference refuses `start`.
const BREAKING_FIELDS: [&str; 4] = ["inputKeys", "outputKeys", "inputSchema", "outputSchema"];

/// One field that differs between the registered and the generated TaskDef.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldChange {
    /// The TaskDef field (`retryCount`).
    pub field: String,
    /// The registered value; `None` when the server has none.
    pub registered: Option<Value>,
    /// The value the code generates.
    pub generated: Value,
    /// Whether serving against the registered value would go wrong.
    pub breaking: bool,
}

impl FieldChange {
    /// `field: <registered> -> <generated>` (compact JSON; `(none)` when absent).
    pub fn describe(&self) -> String {
        let registered = self
            .registered
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), Value::to_string);
        format!("{}: {registered} -> {}", self.field, self.generated)
    }
}

/// Every generated field whose registered value differs, in TaskDef key order.
pub(crate) fn compare(task: &Task, registered: &Value, generated: &Value) -> Vec<FieldChange> {
    let Some(generated) = generated.as_object() else {
        return Vec::new();
    };
    let budget_timeout = task
        .is_writable()
        .then(|| task.effective_publish_budget())
        .flatten()
        .map(|budget| budget.response_timeout_seconds());
    let mut changes = Vec::new();
    for (field, want) in generated {
        let have = registered.get(field).filter(|value| !value.is_null());
        if have.is_some_and(|have| same(field, have, want)) {
            continue;
        }
        let breaking = if BREAKING_FIELDS.contains(&field.as_str()) {
            true
        } else if field == "responseTimeoutSeconds" {
            match (budget_timeout, have.and_then(Value::as_u64)) {
                (Some(budget), Some(have)) => have < budget,
                (Some(_), None) => true,
                (None, _) => false,
            }
        } else {
            false
        };
        changes.push(FieldChange {
            field: field.clone(),
            registered: have.cloned(),
            generated: want.clone(),
            breaking,
        });
    }
    changes
}

/// Equal for drift purposes: a schema matches when every key perago writes (`name`,
/// `version`, `type`, `data`) matches (servers add their own keys); numbers compare by value.
fn same(field: &str, have: &Value, want: &Value) -> bool {
    if field.ends_with("Schema")
        && let (Some(have), Some(want)) = (have.as_object(), want.as_object())
    {
        return want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|h| values_equal(h, value)));
    }
    values_equal(have, want)
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| values_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, value)| y.get(key).is_some_and(|other| values_equal(value, other)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::taskdef::task_def;

    fn echo() -> Task {
        crate::examples::targets().resolve("examples.echo").unwrap()
    }

    #[test]
    fn an_identical_registration_has_no_drift_and_server_fields_are_ignored() {
        let task = echo();
        let generated = task_def(&task);
        let mut registered = generated.clone();
        registered["createTime"] = json!(1_700_000_000_000_u64);
        registered["inputSchema"]["ownerApp"] = json!("x");
        registered["retryCount"] = json!(registered["retryCount"].as_u64().unwrap() as f64);
        assert_eq!(compare(&task, &registered, &generated), vec![]);
    }

    #[test]
    fn missing_schemas_and_keys_are_breaking_other_fields_harmless() {
        let task = echo();
        let generated = task_def(&task);
        let registered = json!({"name": "examples.echo", "retryCount": 0,
                                "responseTimeoutSeconds": 5, "inputKeys": ["params"]});
        let changes = compare(&task, &registered, &generated);
        let breaking: Vec<&str> = changes
            .iter()
            .filter(|c| c.breaking)
            .map(|c| c.field.as_str())
            .collect();
        assert_eq!(breaking, ["outputKeys", "inputSchema", "outputSchema"]);
        let retry = changes.iter().find(|c| c.field == "retryCount").unwrap();
        assert!(!retry.breaking);
        assert_eq!(
            retry.describe(),
            format!("retryCount: 0 -> {}", generated["retryCount"])
        );
        let owner = changes.iter().find(|c| c.field == "ownerEmail").unwrap();
        assert_eq!(
            owner.describe(),
            "ownerEmail: (none) -> \"dev@example.com\""
        );
    }

    /// A writable workspace task whose publish budget derives a 60 s response timeout.
    fn writable_with_budget() -> Task {
        use crate::task::{PublishBudget, TaskContext, TaskControls, TaskError, WorkspaceSpec};

        #[derive(serde::Deserialize, schemars::JsonSchema)]
        struct In {
            #[allow(dead_code)]
            x: u32,
        }
        #[derive(serde::Serialize, schemars::JsonSchema)]
        struct Out {
            y: u32,
        }
        Task::builder("drift.writable", "dev@example.com")
            .workspace(WorkspaceSpec::new("/"))
            .controls(TaskControls {
                publish_budget: Some(PublishBudget {
                    observed_merge_p99_seconds: 0,
                    safety_margin_seconds: 0,
                    lakefs_merge_timeout_seconds: 30,
                    conductor_completion_timeout_seconds: 10,
                    worker_shutdown_grace_seconds: 10,
                    heartbeat_interval_seconds: 10,
                }),
                ..TaskControls::default()
            })
            .workspace_handler(|_: &TaskContext, _: &std::path::Path, _: In| {
                Ok::<_, TaskError>(Out { y: 0 })
            })
            .unwrap()
    }

    #[test]
    fn a_response_timeout_below_the_publish_budget_is_breaking() {
        let task = writable_with_budget();
        let budget = task
            .effective_publish_budget()
            .unwrap()
            .response_timeout_seconds();
        assert_eq!(budget, 60);
        let generated = task_def(&task);
        let mut registered = generated.clone();
        registered["responseTimeoutSeconds"] = json!(budget - 1);
        let changes = compare(&task, &registered, &generated);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].breaking);
        registered["responseTimeoutSeconds"] = json!(budget + 1_000_000);
        let changes = compare(&task, &registered, &generated);
        assert_eq!(changes.len(), 1);
        assert!(
            !changes[0].breaking,
            "above the budget is only a difference"
        );
    }
}
