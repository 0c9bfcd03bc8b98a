//! Go `fmt` renderings of JSON values, so strategic-merge errors read like upstream.
//!
//! Upstream's messages interpolate decoded values with `%v` (`map[name:x]`) and
//! their Go types with `%s` of `reflect.TypeOf`; clients and tests match on those
//! strings. Pure formatting: nothing here fails.

use serde_json::Value;

use super::super::PatchError;

/// `fmt.Sprintf("%v", v)` of a value decoded by Go's `encoding/json`.
pub(crate) fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

pub(crate) use crate::api::go_strings::go_type;

/// `fmt.Sprintf("%s", v)` for a directive value (strings print bare).
fn go_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => format!("%!s({}={})", go_type(other), go_value(other)),
    }
}

/// `mergepatch.ErrBadArgType` with a map expected.
pub(crate) fn expected_map(actual: &Value) -> PatchError {
    PatchError::Internal(format!(
        "expected a map[string]interface {{}}, but received a {}",
        go_type(actual)
    ))
}

/// `mergepatch.ErrBadArgType` with a slice expected.
pub(crate) fn expected_slice(actual: &Value) -> PatchError {
    PatchError::Internal(format!(
        "expected a []interface {{}}, but received a {}",
        go_type(actual)
    ))
}

/// `mergepatch.ErrNoMergeKey`.
pub(crate) fn no_merge_key(map: &Value, key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_value(map)
    ))
}

/// `mergepatch.ErrBadPatchType`.
pub(crate) fn bad_patch_type(directive: &Value, map: &Value) -> PatchError {
    PatchError::Internal(format!(
        "unknown patch type: {} in map: {}",
        go_string(directive),
        go_value(map)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_and_slices_print_like_go() {
        let v = json!({"name": "x", "ports": [1, 2], "b": null});
        assert_eq!(go_value(&v), "map[b:<nil> name:x ports:[1 2]]");
    }

    #[test]
    fn types_print_like_reflect() {
        assert_eq!(go_type(&json!(1)), "int64");
        assert_eq!(go_type(&json!(1.5)), "float64");
        assert_eq!(go_type(&json!([])), "[]interface {}");
        let err = expected_map(&json!("s"));
        assert_eq!(
            err.to_string(),
            "expected a map[string]interface {}, but received a string"
        );
    }
}
