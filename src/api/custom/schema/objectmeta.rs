//! Type-meta checks of embedded resources (upstream `objectmeta.Validate`).
//!
//! Every `x-kubernetes-embedded-resource` object must carry a well-formed
//! `apiVersion` and `kind`. The object root is validated by the caller (it
//! owns ObjectMeta validation), so the walk starts below it.

use super::errors::{self, Bad, FieldError, child};
use super::structural::Node;
use serde_json::Value;

/// Validates embedded resources in `x`; with `resource_root`, `x` itself is
/// treated as one.
pub(crate) fn validate(path: &str, x: &Value, s: &Node, resource_root: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    walk(path, x, s, resource_root, &mut errs);
    errs
}

fn walk(path: &str, x: &Value, s: &Node, embedded: bool, errs: &mut Vec<FieldError>) {
    match x {
        Value::Object(m) => {
            if embedded || s.embedded_resource {
                embedded_resource(path, m, errs);
            }
            for (k, v) in m {
                if let Some(p) = s.properties.get(k) {
                    walk(&child(path, k), v, p, false, errs);
                } else if let Some(ap) = &s.additional_properties {
                    walk(&errors::key(path, k), v, ap, false, errs);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = &s.items {
                for (i, v) in a.iter().enumerate() {
                    walk(&errors::index(path, i), v, items, false, errs);
                }
            }
        }
        _ => {}
    }
}

fn embedded_resource(path: &str, m: &serde_json::Map<String, Value>, errs: &mut Vec<FieldError>) {
    if !m.contains_key("apiVersion") {
        errs.push(errors::required(&child(path, "apiVersion"), ""));
    }
    if !m.contains_key("kind") {
        errs.push(errors::required(&child(path, "kind"), ""));
    }
    if let Some(v) = m.get("apiVersion") {
        let p = child(path, "apiVersion");
        match v.as_str() {
            None => errs.push(errors::invalid(
                &p,
                Bad::Json(v.clone()),
                "must be a string",
            )),
            Some("") => errs.push(errors::invalid(
                &p,
                Bad::Str(String::new()),
                "must not be empty",
            )),
            Some(av) if av != "/" && av.matches('/').count() > 1 => errs.push(errors::invalid(
                &p,
                Bad::Str(av.to_string()),
                &format!("unexpected GroupVersion string: {}", av),
            )),
            Some(_) => {}
        }
    }
    if let Some(v) = m.get("kind") {
        let p = child(path, "kind");
        match v.as_str() {
            None => errs.push(errors::invalid(
                &p,
                Bad::Json(v.clone()),
                "must be a string",
            )),
            Some("") => errs.push(errors::invalid(
                &p,
                Bad::Str(String::new()),
                "must not be empty",
            )),
            Some(kind) => {
                let msgs = dns1035_label(&kind.to_lowercase());
                if !msgs.is_empty() {
                    errs.push(errors::invalid(
                        &p,
                        Bad::Str(kind.to_string()),
                        &format!(
                            "may have mixed case, but should otherwise match: {}",
                            msgs.join(",")
                        ),
                    ));
                }
            }
        }
    }
}

fn dns1035_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = v.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    if !ok {
        errs.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errs
}
