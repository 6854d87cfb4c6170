//! Golden TaskDefs of the example targets: a change in schema shape or key order fails here.
//!
//! The golden files live in `tests/golden/` (found through `CARGO_MANIFEST_DIR`). Regenerate
//! after an intended change with `PERAGO_BLESS=1 cargo nextest run -p perago taskdef_golden`
//! and review the diff.

use std::path::PathBuf;

use perago::render_task_def;

fn golden_path(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{target}.json"))
}

#[test]
fn example_taskdefs_match_their_golden_files() {
    let targets = perago::examples::targets();
    let bless = std::env::var_os("PERAGO_BLESS").is_some();
    let mut mismatched = Vec::new();
    for name in targets.names() {
        let task = targets.resolve(name).unwrap();
        let rendered = render_task_def(&task);
        let path = golden_path(name);
        if bless {
            std::fs::write(&path, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("missing golden file {}: {err}", path.display()));
        if expected != rendered {
            mismatched.push(format!(
                "{name}:\n--- expected\n{expected}\n--- actual\n{rendered}"
            ));
        }
    }
    assert!(mismatched.is_empty(), "{}", mismatched.join("\n"));
}

#[test]
fn taskdef_key_order_is_the_contract() {
    let task = perago::examples::features_build().unwrap();
    let def = perago::task_def(&task);
    let keys: Vec<&str> = def
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "ownerEmail",
            "description",
            "retryCount",
            "retryLogic",
            "retryDelaySeconds",
            "maxRetryDelaySeconds",
            "backoffJitterMs",
            "totalTimeoutSeconds",
            "timeoutPolicy",
            "timeoutSeconds",
            "responseTimeoutSeconds",
            "pollTimeoutSeconds",
            "concurrentExecLimit",
            "inputKeys",
            "outputKeys",
            "inputSchema",
            "outputSchema",
        ]
    );
    let free = perago::task_def(&perago::examples::echo().unwrap());
    let object = free.as_object().unwrap();
    assert!(!object.contains_key("description"));
    assert!(!object.contains_key("concurrentExecLimit"));
    assert_eq!(free["inputKeys"], serde_json::json!(["params"]));
    assert_eq!(free["inputSchema"]["data"]["additionalProperties"], true);
    assert_eq!(free["outputSchema"]["data"]["additionalProperties"], false);
    assert_eq!(free["inputSchema"]["name"], "examples.echo.input");
}
