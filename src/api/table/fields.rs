//! Lenient typed reads from the JSON of stored objects.
//!
//! Printers read many optional fields; a missing or wrongly typed field reads as absent
//! (`None`, empty string, empty list, zero) rather than failing, because upstream's printers
//! work on decoded Go structs where absent fields are zero values. Keeping that rule in one
//! place means no printer can panic on odd input.

use serde_json::{Map, Value};

/// Walks object keys; `None` as soon as a step is missing or not an object.
pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |cur, key| cur.as_object()?.get(*key))
}

/// The string at `path`, or `None` when missing or not a string.
pub(super) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

/// The string at `path`, empty when missing (Go's zero value).
pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str(v, path).unwrap_or("")
}

/// The integer at `path`, or `None` when missing or not an integer.
pub(super) fn opt_i64(v: &Value, path: &[&str]) -> Option<i64> {
    let n = at(v, path)?;
    n.as_i64()
        .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
}

/// The integer at `path`, zero when missing.
pub(super) fn i64_at(v: &Value, path: &[&str]) -> i64 {
    opt_i64(v, path).unwrap_or(0)
}

/// The boolean at `path`, or `None` when missing or not a boolean.
pub(super) fn opt_bool(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path)?.as_bool()
}

/// The boolean at `path`, false when missing.
pub(super) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

/// The array at `path`, empty when missing.
pub(super) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The object at `path`, or `None` when missing or not an object.
pub(super) fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    at(v, path)?.as_object()
}

/// Number of entries of the object at `path` (zero when missing).
pub(super) fn len_at(v: &Value, path: &[&str]) -> i64 {
    let n = match at(v, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Whether `path` is present and not JSON `null` (Go's "pointer is non-nil").
pub(super) fn present(v: &Value, path: &[&str]) -> bool {
    at(v, path).is_some_and(|x| !x.is_null())
}

/// `metadata.name`.
pub(super) fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"])
}

/// `metadata.creationTimestamp`, if set.
pub(super) fn created(v: &Value) -> Option<&str> {
    opt_str(v, &["metadata", "creationTimestamp"])
}

/// Whether `metadata.deletionTimestamp` is set.
pub(super) fn deleting(v: &Value) -> bool {
    present(v, &["metadata", "deletionTimestamp"])
}

/// A string annotation, if set.
pub(super) fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    obj_at(v, &["metadata", "annotations"])?.get(key)?.as_str()
}

/// A quantity as stored (canonical string form), or `None` when missing.
///
/// Quantities are shown as stored instead of being re-canonicalised: the apiserver already
/// serialises them canonically, so re-parsing would only add ways to disagree.
pub(super) fn quantity(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The status (`"True"`, ...) of the first condition of `kind` in `conditions`.
pub(super) fn condition_status<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .map(|c| str_at(c, &["status"]))
}

/// Whether the first condition of `kind` has status `"True"`.
pub(super) fn condition_true(conditions: &[Value], kind: &str) -> bool {
    condition_status(conditions, kind) == Some("True")
}
