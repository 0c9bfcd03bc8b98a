//! Semantic equality of JSON values, standing in for upstream's `apiequality.Semantic`.
//!
//! Upstream compares decoded Go structs, where an absent field, `null`, `""`, `false`, `0`,
//! an empty list and an empty map are all the zero value. On JSON we treat all of those as
//! "unset", so a client that re-sends defaults explicitly (or drops empty ones) is not
//! mistaken for one changing an immutable field. The price is that switching a pointer
//! field between unset and an explicit zero is not seen as a change. Quantities compare as
//! strings: defaulting stores them in canonical form, so equal amounts are equal strings.
//!
//! [`diff`] renders the differing leaf paths for the tail of "may not change" messages,
//! where upstream prints a `cmp.Diff` of Go structs that cannot be reproduced exactly.

use serde_json::Value;

/// Whether a value is the zero value of its field.
pub(crate) fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// Semantic equality as described in the module documentation.
pub(crate) fn semantic_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys = x.keys().chain(y.keys());
            keys.into_iter().all(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => semantic_eq(p, q),
                (Some(v), None) | (None, Some(v)) => is_zero(v),
                (None, None) => true,
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| semantic_eq(p, q))
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => (is_zero(a) && is_zero(b)) || a == b,
    }
}

/// Semantic equality of optional values (absent is zero).
pub(crate) fn opt_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => semantic_eq(x, y),
        (Some(v), None) | (None, Some(v)) => is_zero(v),
        (None, None) => true,
    }
}

/// A readable list of the leaf differences between `old` and `new`, one per line.
pub(crate) fn diff(old: &Value, new: &Value) -> String {
    let mut lines = Vec::new();
    collect_diff("", old, new, &mut lines);
    lines.join("\n")
}

fn collect_diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if semantic_eq(old, new) {
        return;
    }
    match (old, new) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            let null = Value::Null;
            for k in keys {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_diff(
                    &child,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                collect_diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ => {
            out.push(format!("  {path}:"));
            out.push(format!("-   {old}"));
            out.push(format!("+   {new}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zero_values_equal_absent() {
        assert!(semantic_eq(
            &json!({"a": "", "b": [], "c": null}),
            &json!({})
        ));
        assert!(!semantic_eq(&json!({"a": "x"}), &json!({})));
    }

    #[test]
    fn strings_compare_exactly() {
        assert!(!semantic_eq(&json!({"v": "1.10"}), &json!({"v": "1.1"})));
        assert!(semantic_eq(&json!([1, "a"]), &json!([1, "a"])));
    }

    #[test]
    fn diff_lists_changed_leaves() {
        let d = diff(&json!({"a": {"b": 1}}), &json!({"a": {"b": 2}}));
        assert_eq!(d, "  a.b:\n-   1\n+   2");
    }
}
