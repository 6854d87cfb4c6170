//! `inputParameters` resolution: `${workflow.input.a.b}`, `${workflow.workflowId}` and
//! `${<ref>.output.a.b}` (whole-string expressions keep their JSON type; embedded ones are
//! interpolated as text; missing paths resolve to `null`).

use serde_json::{Map, Value};

/// What expressions can refer to.
pub(crate) struct Scope<'a> {
    /// The workflow id.
    pub workflow_id: &'a str,
    /// The workflow input.
    pub input: &'a Value,
    /// `(referenceTaskName, input, output)` of the workflow's latest attempts.
    pub tasks: Vec<(&'a str, &'a Value, &'a Value)>,
}

impl Scope<'_> {
    fn lookup(&self, expression: &str) -> Value {
        let mut parts = expression.split('.');
        let root = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        let (base, path): (Option<&Value>, &[&str]) = match (root, rest.first()) {
            ("workflow", Some(&"input")) => (Some(self.input), &rest[1..]),
            ("workflow", Some(&"workflowId")) => {
                return Value::String(self.workflow_id.to_owned());
            }
            (reference, Some(&kind)) => {
                let task = self
                    .tasks
                    .iter()
                    .rev()
                    .find(|(name, _, _)| *name == reference);
                match (task, kind) {
                    (Some((_, input, _)), "input") => (Some(*input), &rest[1..]),
                    (Some((_, _, output)), "output") => (Some(*output), &rest[1..]),
                    _ => (None, &[]),
                }
            }
            _ => (None, &[]),
        };
        let mut current = match base {
            Some(value) => value,
            None => return Value::Null,
        };
        for key in path {
            match current.get(*key) {
                Some(next) => current = next,
                None => return Value::Null,
            }
        }
        current.clone()
    }

    /// Resolves every expression inside `template`.
    pub fn resolve(&self, template: &Value) -> Value {
        match template {
            Value::String(text) => self.resolve_text(text),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.resolve(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect::<Map<_, _>>(),
            ),
            other => other.clone(),
        }
    }

    fn resolve_text(&self, text: &str) -> Value {
        if let Some(inner) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
            && !inner.contains("${")
        {
            return self.lookup(inner);
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Value::String(out);
            };
            match self.lookup(&after[..end]) {
                Value::String(s) => out.push_str(&s),
                Value::Null => {}
                other => out.push_str(&other.to_string()),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Value::String(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_resolve_typed_and_interpolated() {
        let input = json!({"a": {"b": 5}, "s": "x"});
        let out = json!({"y": [1, 2]});
        let tin = json!({});
        let scope = Scope {
            workflow_id: "wf",
            input: &input,
            tasks: vec![("t1", &tin, &out)],
        };
        let template = json!({
            "n": "${workflow.input.a.b}",
            "obj": "${workflow.input.a}",
            "y": "${t1.output.y}",
            "missing": "${workflow.input.nope}",
            "text": "id=${workflow.workflowId} s=${workflow.input.s}",
        });
        assert_eq!(
            scope.resolve(&template),
            json!({"n": 5, "obj": {"b": 5}, "y": [1, 2], "missing": null, "text": "id=wf s=x"})
        );
    }
}
