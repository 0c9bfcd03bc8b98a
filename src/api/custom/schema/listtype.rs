//! `x-kubernetes-list-type` set/map uniqueness (upstream
//! `listtype.ValidateListSetsAndMaps`).
//!
//! Duplicates are found by hashing each element's canonical JSON, so large
//! lists cost linear time rather than upstream-style pairwise comparisons.

use super::errors::{self, Bad, FieldError};
use super::gofmt;
use super::structural::Node;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Validates list sets and maps below the object root.
pub(crate) fn validate_root(s: &Node, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Value::Object(m) = obj {
        object(None, s, m, &mut errs);
    }
    errs
}

fn object(path: Option<&str>, s: &Node, obj: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    let join_child = |k: &str| match path {
        None => k.to_string(),
        Some(p) => errors::child(p, k),
    };
    let join_key = |k: &str| match path {
        None => format!("[{}]", k),
        Some(p) => errors::key(p, k),
    };
    if let Some(ap) = &s.additional_properties {
        for (k, v) in obj {
            value(&join_key(k), ap, v, errs);
        }
    }
    for (k, v) in obj {
        if let Some(sub) = s.properties.get(k) {
            value(&join_child(k), sub, v, errs);
        }
    }
}

fn value(path: &str, s: &Node, v: &Value, errs: &mut Vec<FieldError>) {
    match v {
        Value::Array(a) => array(path, s, a, errs),
        Value::Object(m) => object(Some(path), s, m, errs),
        _ => {}
    }
}

fn array(path: &str, s: &Node, a: &[Value], errs: &mut Vec<FieldError>) {
    match s.list_type.as_deref() {
        Some("set") => {
            for i in non_unique(a.iter()) {
                errs.push(errors::duplicate(
                    &errors::index(path, i),
                    Bad::Json(a[i].clone()),
                ));
            }
        }
        Some("map") => list_map(path, s, a, errs),
        _ => {}
    }
    if let Some(items) = &s.items {
        for (i, x) in a.iter().enumerate() {
            value(&errors::index(path, i), items, x, errs);
        }
    }
}

// Indices of the second occurrence of each repeated element (upstream
// reports each duplicate value once).
fn non_unique<'a>(it: impl Iterator<Item = &'a Value>) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, x) in it.enumerate() {
        let c = seen.entry(canonical(x)).or_insert(0);
        *c += 1;
        if *c == 2 {
            out.push(i);
        }
    }
    out
}

// Go compares scalars by dynamic type and value: int64 1 and float64 1.5
// differ, and integral values decode to int64, so the canonical JSON text
// distinguishes exactly what Go does.
fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) if !n.is_i64() => format!("f{}", gofmt::json(v)),
        _ => gofmt::json(v),
    }
}

fn list_map(path: &str, s: &Node, a: &[Value], errs: &mut Vec<FieldError>) {
    for (i, x) in a.iter().enumerate() {
        if !x.is_object() && !x.is_null() {
            errs.push(errors::invalid(
                &errors::index(path, i),
                Bad::Json(x.clone()),
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if a.len() <= 1 {
        return;
    }
    if s.list_map_keys.len() == 1 {
        let kf = &s.list_map_keys[0];
        // A missing key is its own "unspecified" value, distinct from null.
        let keys: Vec<Option<&Value>> = a
            .iter()
            .map(|x| x.as_object().and_then(|m| m.get(kf)))
            .collect();
        let tagged: Vec<Value> = keys
            .iter()
            .map(|k| match k {
                None => Value::Array(vec![]),
                Some(v) => Value::Array(vec![(*v).clone()]),
            })
            .collect();
        for i in non_unique(tagged.iter()) {
            let mut m = Map::new();
            if let Some(k) = keys[i] {
                m.insert(kf.clone(), k.clone());
            }
            errs.push(errors::duplicate(
                &errors::index(path, i),
                Bad::Json(Value::Object(m)),
            ));
        }
        return;
    }
    let keys: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut key = Map::new();
            if let Some(m) = x.as_object() {
                for kf in &s.list_map_keys {
                    if let Some(v) = m.get(kf) {
                        key.insert(kf.clone(), v.clone());
                    }
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in non_unique(keys.iter()) {
        errs.push(errors::duplicate(
            &errors::index(path, i),
            Bad::Json(keys[i].clone()),
        ));
    }
}
