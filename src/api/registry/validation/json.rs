//! Read access to JSON objects with Go zero-value semantics.
//!
//! Validation works on the wire JSON, where an absent field, `null` and (for scalars) the
//! zero value all decode to the same Go value. These readers therefore answer "absent" for
//! `null` and for a value of the wrong JSON type, and string readers answer `""` when
//! absent, so validators can be written against the same conditions as the Go code
//! (`len(x) == 0`, `x == nil`). Type mismatches themselves are the decoder's concern and are
//! not reported here.

use serde_json::{Map, Value};

/// The field `key` of `obj`, unless absent or `null`.
pub(crate) fn get<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A string field, `""` when absent or not a string.
pub(crate) fn str_of<'a>(obj: &'a Value, key: &str) -> &'a str {
    get(obj, key).and_then(Value::as_str).unwrap_or("")
}

/// A pointer-to-string field: `None` when absent, `Some("")` when explicitly empty.
pub(crate) fn opt_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    get(obj, key).and_then(Value::as_str)
}

/// An integer field (JSON numbers with no fractional part).
pub(crate) fn int_of(obj: &Value, key: &str) -> Option<i64> {
    get(obj, key).and_then(as_int)
}

/// A JSON number as an integer, if it is one.
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
            .map(|f| f as i64)
    })
}

/// A boolean field.
pub(crate) fn bool_of(obj: &Value, key: &str) -> Option<bool> {
    get(obj, key).and_then(Value::as_bool)
}

/// An array field, empty when absent.
pub(crate) fn arr<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    get(obj, key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// An object field.
pub(crate) fn obj_of<'a>(obj: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    get(obj, key).and_then(Value::as_object)
}

/// A `map[string]string` field, in key order; non-string values read as `""`.
pub(crate) fn string_map<'a>(obj: &'a Value, key: &str) -> Vec<(&'a str, &'a str)> {
    obj_of(obj, key)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

/// The strings of a `[]string` field, skipping non-strings.
pub(crate) fn strings<'a>(obj: &'a Value, key: &str) -> Vec<&'a str> {
    arr(obj, key).iter().filter_map(Value::as_str).collect()
}

/// An IntOrString field as Go's `intstr`: a number or a string.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IntOrStr<'a> {
    /// The integer form.
    Int(i64),
    /// The string form.
    Str(&'a str),
}

/// Reads an IntOrString field; absent reads as `Int(0)` like the Go zero value.
pub(crate) fn int_or_str<'a>(obj: &'a Value, key: &str) -> IntOrStr<'a> {
    match get(obj, key) {
        Some(Value::String(s)) => IntOrStr::Str(s),
        Some(v) => IntOrStr::Int(as_int(v).unwrap_or(0)),
        None => IntOrStr::Int(0),
    }
}

/// The empty object, for walking absent sub-objects without special cases.
pub(crate) fn empty() -> &'static Value {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

/// A sub-object, or the empty object when absent.
pub(crate) fn sub<'a>(obj: &'a Value, key: &str) -> &'a Value {
    match get(obj, key) {
        Some(v @ Value::Object(_)) => v,
        _ => empty(),
    }
}
