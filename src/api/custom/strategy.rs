//! The write rules of custom resources (upstream's customResourceStrategy
//! and the CRD codec): defaulting and pruning as the body is decoded, then
//! validation by the OpenAPI schema, the CEL rules and ObjectMeta's rules.

use serde_json::{Value, json};

use super::Definition;
use crate::api::request::FieldValidation;
use crate::api::status::{ApiError, ApiResult, Cause};

/// What the decoder does to a custom object: defaults from the schema,
/// then drops the fields the schema does not know. Unknown fields are a
/// 400 under `fieldValidation=Strict`, warnings under Warn.
pub fn decode(
    def: &Definition,
    kind: &str,
    version: &str,
    obj: &mut Value,
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    let Some(schema) = &def.schema else {
        return Ok(Vec::new());
    };
    schema.apply_defaults(obj);
    let pruned = schema.prune(obj);
    if pruned.is_empty() || mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let unknown: Vec<String> = pruned
        .iter()
        .map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.')))
        .collect();
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", ")
        )));
    }
    Ok(unknown)
}

/// Validation failures of a custom object: its schema, its CEL rules
/// (with the stored object for transition rules on update).
pub fn validate(def: &Definition, old: Option<&Value>, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(schema) = &def.schema {
        causes.extend(schema.validate(obj).into_iter().map(|e| Cause {
            reason: e.reason.to_string(),
            field: e.field,
            message: e.message,
        }));
    }
    // Upstream runs CEL rules only on objects the schema accepts.
    if causes.is_empty()
        && let Some(rules) = &def.rules
    {
        causes.extend(rules.validate(obj, old).into_iter().map(|e| Cause {
            reason: e.reason.to_string(),
            field: e.field,
            message: e.message,
        }));
    }
    causes
}

/// Whether an update changes more than metadata and status (upstream bumps
/// a custom object's generation then).
pub fn generation_changes(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

/// The value at a `.a.b` path.
pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(obj, |v, k| v.get(k))
}

/// Sets the value at a `.a.b` path, making the objects on the way.
pub fn set_path(obj: &mut Value, path: &str, value: Value) {
    let mut cur = obj;
    for key in path.trim_start_matches('.').split('.') {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur
            .as_object_mut()
            .map(|m| m.entry(key).or_insert(Value::Null))
            .expect("made an object above");
    }
    *cur = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_and_write() {
        let mut obj = json!({"spec": {"replicas": 2}});
        assert_eq!(get_path(&obj, ".spec.replicas"), Some(&json!(2)));
        set_path(&mut obj, ".status.replicas", json!(3));
        assert_eq!(obj["status"]["replicas"], 3);
        set_path(&mut obj, ".spec.replicas", json!(5));
        assert_eq!(obj["spec"]["replicas"], 5);
        assert!(generation_changes(&obj, &json!({"spec": {"replicas": 1}})));
        let mut same = obj.clone();
        same["status"] = json!({"x": 1});
        same["metadata"] = json!({"labels": {"a": "b"}});
        assert!(!generation_changes(&obj, &same));
    }
}
