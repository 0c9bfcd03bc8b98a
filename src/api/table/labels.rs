//! Label maps and label selectors rendered as upstream's printers render them.
//!
//! Owns `labels.FormatLabels` (sorted `k=v` pairs, `<none>` when empty) and
//! `metav1.LabelSelectorAsSelector(...).String()` / `metav1.FormatLabelSelector`
//! (requirements sorted by key, `in (...)` sets with sorted values, `!key` for
//! DoesNotExist). A selector that upstream would reject (bad key, bad value, unknown
//! operator, wrong number of values) yields `None`, which callers turn into upstream's
//! `<error>` or `<invalid>` markers; nothing here panics.

use serde_json::{Map, Value};

/// `labels.FormatLabels`: `a=1,b=2` sorted by key, or `<none>`.
pub(super) fn format_labels(m: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

/// `metav1.FormatLabelSelector`: the selector string, `<none>` when it selects nothing or
/// everything, `<error>` when invalid.
pub(super) fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        None => "<error>".to_string(),
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
    }
}

/// `LabelSelectorAsSelector(...).String()`: empty for a missing or empty selector, `None`
/// when the selector is invalid.
pub(super) fn selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(sel) = selector.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    let mut match_labels: Vec<(&String, &Value)> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .collect();
    match_labels.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in match_labels {
        let value = value.as_str()?;
        if !valid_key(key) || !valid_value(value) {
            return None;
        }
        reqs.push((key.clone(), format!("{key}={value}")));
    }
    let exprs = sel.get("matchExpressions").and_then(Value::as_array);
    for expr in exprs.into_iter().flatten() {
        reqs.push(expression(expr)?);
    }
    // Upstream sorts requirements by key only; stable sorting keeps matchLabels first on ties.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// One `matchExpressions` entry as `(key, rendered requirement)`.
fn expression(expr: &Value) -> Option<(String, String)> {
    let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
    let op = expr.get("operator").and_then(Value::as_str).unwrap_or("");
    let mut values: Vec<&str> = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().map(Value::as_str).collect::<Option<_>>()?,
        Some(_) => return None,
    };
    if !valid_key(key) || !values.iter().all(|v| valid_value(v)) {
        return None;
    }
    let rendered = match op {
        "In" | "NotIn" if values.is_empty() => return None,
        "In" | "NotIn" => {
            values.sort_unstable();
            let word = if op == "In" { "in" } else { "notin" };
            format!("{key} {word} ({})", values.join(","))
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => return None,
        "Exists" => key.to_string(),
        "DoesNotExist" => format!("!{key}"),
        _ => return None,
    };
    Some((key.to_string(), rendered))
}

/// A qualified label key: optional DNS-subdomain prefix and `/`, then a name part.
fn valid_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => valid_subdomain(prefix) && valid_name_part(name),
        None => valid_name_part(key),
    }
}

/// A label value: empty, or a name part.
fn valid_value(v: &str) -> bool {
    v.is_empty() || valid_name_part(v)
}

/// At most 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn valid_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let inner_ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c));
    !b.is_empty()
        && b.len() <= 63
        && inner_ok
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A DNS-1123 subdomain: lower-case labels joined by dots, at most 253 bytes.
fn valid_subdomain(s: &str) -> bool {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && b.iter().all(|c| alnum(c) || *c == b'-')
            && b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn format_labels_sorts_and_marks_empty() {
        let m = json!({"b": "2", "a": "1"});
        assert_eq!(format_labels(m.as_object()), "a=1,b=2");
        assert_eq!(format_labels(json!({}).as_object()), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn selector_renders_sorted_requirements() {
        let sel = json!({
            "matchLabels": {"tier": "web", "app": "nginx"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "example.com/gpu", "operator": "Exists", "values": []}
            ]
        });
        assert_eq!(
            format_label_selector(Some(&sel)),
            "app=nginx,!canary,env in (dev,prod),example.com/gpu,tier=web,zone notin (b)"
        );
    }

    #[test]
    fn empty_and_missing_selectors() {
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(
            selector_string(Some(&json!({"matchLabels": {}}))).as_deref(),
            Some("")
        );
    }

    #[test]
    fn invalid_selectors_are_errors() {
        for bad in [
            json!({"matchLabels": {"bad key": "x"}}),
            json!({"matchLabels": {"a": "-x"}}),
            json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "Bad_Prefix/a", "operator": "Exists"}]}),
        ] {
            assert_eq!(format_label_selector(Some(&bad)), "<error>", "{bad}");
        }
    }
}
