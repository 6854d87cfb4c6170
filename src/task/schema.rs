//! JSON Schemas of task params and results: generation from Rust types and validation.
//!
//! Schemas come from `schemars` (draft 7, subschemas inlined) and are then shaped for the
//! Conductor TaskDef: no `$ref`/`$defs`, no generated `title`/`description` on object
//! schemas, and every object schema with `properties` closed (`additionalProperties: false`)
//! — except params objects of a non-strict task, which stay open. The same shaped schema
//! validates params before the body and results after it, so constraints declared on the
//! types (`#[schemars(range(min = 1))]`, `length`, …) are enforced at run time.

use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value, json};

use super::contract::DeclarationError;

/// Which side of the task a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaRole {
    /// Task params (deserialised from input); open objects unless strict.
    Params {
        /// Whether unknown params fields are rejected.
        strict: bool,
    },
    /// Task result (serialised to output); always closed.
    Result,
}

/// Generates the shaped object schema of `T` for `role`.
///
/// Fails if the root is not a JSON object with properties (newtype, sequence or scalar
/// roots are rejected) or the type is recursive.
pub fn object_schema_for<T: JsonSchema>(
    role: SchemaRole,
    type_label: &str,
) -> Result<Value, DeclarationError> {
    let contract = match role {
        SchemaRole::Params { .. } => Contract::Deserialize,
        SchemaRole::Result => Contract::Serialize,
    };
    let mut settings = SchemaSettings::draft07();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    settings.contract = contract;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Some(object) = value.as_object_mut() {
        object.remove("$schema");
        object.remove("definitions");
        object.remove("$defs");
        object.remove("title");
    }
    let is_object_root = value.get("type") == Some(&Value::String("object".into()))
        && value.get("properties").is_some_and(Value::is_object);
    if !is_object_root {
        return Err(DeclarationError::new(format!(
            "{type_label} must be a struct serialised as a JSON object with named fields"
        )));
    }
    if contains_ref(&value) {
        return Err(DeclarationError::new(format!(
            "{type_label} must not be a recursive type"
        )));
    }
    let open = matches!(role, SchemaRole::Params { strict: false });
    shape(&mut value, open);
    Ok(value)
}

/// The schema of the workspace input/output object.
pub fn workspace_schema() -> Value {
    let text = json!({"type": "string", "minLength": 1});
    json!({
        "type": "object",
        "properties": {
            "repository": text,
            "branch": text,
            "refType": {"const": "commit", "type": "string"},
            "ref": text,
        },
        "required": ["repository", "branch", "refType", "ref"],
        "additionalProperties": false,
    })
}

fn contains_ref(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.contains_key("$ref") || map.values().any(contains_ref),
        Value::Array(items) => items.iter().any(contains_ref),
        _ => false,
    }
}

/// Keywords whose value is one subschema.
const SINGLE_SUBSCHEMA: &[&str] = &[
    "items",
    "additionalItems",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
];
/// Keywords whose value is an array of subschemas.
const ARRAY_SUBSCHEMAS: &[&str] = &["anyOf", "oneOf", "allOf", "items", "prefixItems"];
/// Keywords whose value is a map of name → subschema.
const MAP_SUBSCHEMAS: &[&str] = &["properties", "patternProperties", "dependencies"];

/// Shapes one schema node and its subschemas: strips object titles/descriptions and
/// closes (or opens) every object schema that lists properties.
fn shape(schema: &mut Value, open: bool) {
    let Value::Object(node) = schema else {
        return;
    };
    let is_object = node.get("type") == Some(&Value::String("object".into()))
        || node.contains_key("properties");
    if is_object {
        node.remove("title");
        node.remove("description");
    }
    if node.get("properties").is_some_and(Value::is_object) {
        node.insert("additionalProperties".into(), Value::Bool(open));
    }
    for keyword in SINGLE_SUBSCHEMA {
        if let Some(child) = node.get_mut(*keyword)
            && child.is_object()
        {
            shape(child, open);
        }
    }
    for keyword in ARRAY_SUBSCHEMAS {
        if let Some(Value::Array(children)) = node.get_mut(*keyword) {
            children.iter_mut().for_each(|child| shape(child, open));
        }
    }
    for keyword in MAP_SUBSCHEMAS {
        if let Some(Value::Object(children)) = node.get_mut(*keyword) {
            children.values_mut().for_each(|child| shape(child, open));
        }
    }
}

/// A compiled schema validating instances at run time.
pub struct CompiledSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledSchema")
    }
}

impl CompiledSchema {
    /// Compiles `schema` (draft 7).
    pub fn compile(schema: &Value) -> Result<CompiledSchema, DeclarationError> {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(schema)
            .map_err(|err| DeclarationError::new(format!("invalid generated schema: {err}")))?;
        Ok(CompiledSchema { validator })
    }

    /// Validates `instance`; the error names the first offending field
    /// (`min_rows: -1 is less than the minimum of 1`).
    pub fn validate(&self, instance: &Value) -> Result<(), String> {
        let mut errors = self.validator.iter_errors(instance).map(|error| {
            let path = error.instance_path().to_string();
            let field = path.trim_start_matches('/').replace('/', ".");
            if field.is_empty() {
                error.to_string()
            } else {
                format!("{field}: {error}")
            }
        });
        match errors.next() {
            None => Ok(()),
            Some(first) => Err(first),
        }
    }
}

/// Builds the top-level `data` schema of the TaskDef input or output.
pub fn envelope(workspace: bool, payload_key: &str, payload: &Value, additional: bool) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    if workspace {
        properties.insert("workspace".into(), workspace_schema());
        required.push(Value::String("workspace".into()));
    }
    properties.insert(payload_key.into(), payload.clone());
    required.push(Value::String(payload_key.into()));
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": additional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// Doc comments must not leak as object descriptions.
    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Inner {
        #[schemars(range(min = 1))]
        rows: u32,
    }

    /// A params type.
    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Params {
        #[schemars(length(min = 1))]
        name: String,
        inner: Inner,
        list: Vec<Inner>,
        #[serde(default)]
        sleep_ms: u64,
    }

    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Newtype(u32);

    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Node {
        children: Vec<Node>,
    }

    fn all_objects_have(value: &Value, additional: bool) -> bool {
        match value {
            Value::Object(map) => {
                let ok = !map.contains_key("properties")
                    || map.get("additionalProperties") == Some(&Value::Bool(additional));
                let clean = !(map.contains_key("properties")
                    && (map.contains_key("title") || map.contains_key("description")));
                ok && clean
                    && map
                        .iter()
                        .filter(|(key, _)| key.as_str() != "properties")
                        .all(|(_, child)| all_objects_have(child, additional))
                    && map
                        .get("properties")
                        .and_then(Value::as_object)
                        .is_none_or(|props| props.values().all(|c| all_objects_have(c, additional)))
            }
            Value::Array(items) => items.iter().all(|c| all_objects_have(c, additional)),
            _ => true,
        }
    }

    #[test]
    fn schemas_are_inlined_untitled_and_closed() {
        let schema =
            object_schema_for::<Params>(SchemaRole::Params { strict: true }, "params").unwrap();
        let text = schema.to_string();
        assert!(!text.contains("$ref") && !text.contains("$defs") && !text.contains("definitions"));
        assert!(all_objects_have(&schema, false), "{schema:#}");
        assert_eq!(schema["required"], json!(["name", "inner", "list"]));
    }

    #[test]
    fn lenient_params_are_open() {
        let schema =
            object_schema_for::<Params>(SchemaRole::Params { strict: false }, "params").unwrap();
        assert!(all_objects_have(&schema, true), "{schema:#}");
    }

    #[test]
    fn non_object_and_recursive_roots_are_rejected() {
        let error = object_schema_for::<Newtype>(SchemaRole::Result, "result").unwrap_err();
        assert!(error.to_string().contains("JSON object"), "{error}");
        assert!(object_schema_for::<Node>(SchemaRole::Result, "result").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let schema =
            object_schema_for::<Params>(SchemaRole::Params { strict: true }, "params").unwrap();
        let compiled = CompiledSchema::compile(&schema).unwrap();
        let ok = json!({"name": "a", "inner": {"rows": 1}, "list": []});
        compiled.validate(&ok).unwrap();
        let bad = json!({"name": "a", "inner": {"rows": 0}, "list": []});
        let error = compiled.validate(&bad).unwrap_err();
        assert!(error.starts_with("inner.rows: "), "{error}");
        let unknown = json!({"name": "a", "inner": {"rows": 1}, "list": [], "x": 1});
        assert!(compiled.validate(&unknown).is_err());
        let missing = json!({"inner": {"rows": 1}, "list": []});
        assert!(compiled.validate(&missing).unwrap_err().contains("name"));
    }
}
