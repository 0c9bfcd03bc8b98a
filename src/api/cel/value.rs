//! Conversions between JSON and CEL values.
//!
//! Upstream converts unstructured objects with their structural schema:
//! `type: number` is always a double, even when written `1`, integers stay
//! ints, and int-or-string keeps whatever was written. Without a schema the
//! JSON shape decides.

use cel::Value;
use cel::objects::{Key, Map};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// Converts `json` to a CEL value, guided by `schema` when there is one.
pub(super) fn to_cel(json: &Json, schema: Option<&Json>) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            let ty = schema_type(schema);
            match n.as_i64() {
                Some(i) if ty != Some("number") => Value::Int(i),
                _ => {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    // Go's JSON decoding into unstructured turns whole
                    // floats of integer fields back into int64.
                    if ty == Some("integer") && f.fract() == 0.0 && f.abs() < 9.2e18 {
                        Value::Int(f as i64)
                    } else {
                        Value::Float(f)
                    }
                }
            }
        }
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            Value::List(Arc::new(
                items.iter().map(|i| to_cel(i, item_schema)).collect(),
            ))
        }
        Json::Object(fields) => {
            let declared = schema.and_then(|s| s.get("properties"));
            let mut map = HashMap::with_capacity(fields.len());
            for (k, v) in fields {
                // Declared properties are fields of an object type upstream,
                // reachable under their escaped names only; map keys
                // (additionalProperties, unknown fields) stay as written.
                let name = if declared.and_then(|d| d.get(k)).is_some() {
                    match escape(k) {
                        Some(name) => name,
                        None => continue,
                    }
                } else {
                    k.clone()
                };
                map.insert(
                    Key::String(Arc::new(name)),
                    to_cel(v, property_schema(schema, k)),
                );
            }
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// CEL keywords and reserved words, which upstream escapes as `__word__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Upstream's property-name escaping (`apiserver/pkg/cel/escaping.go`):
/// `-` is `__dash__`, `.` `__dot__`, `/` `__slash__`, `__` `__underscores__`,
/// keywords `__kw__`. `None` for names no CEL expression can reach.
pub(super) fn escape(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// The `type` of a schema node.
pub(super) fn schema_type(schema: Option<&Json>) -> Option<&str> {
    schema?.get("type")?.as_str()
}

/// The schema of property `name` of an object schema: a declared property,
/// else `additionalProperties` when that is a schema.
pub(super) fn property_schema<'a>(schema: Option<&'a Json>, name: &str) -> Option<&'a Json> {
    let schema = schema?;
    if let Some(p) = schema.get("properties").and_then(|p| p.get(name)) {
        return Some(p);
    }
    schema.get("additionalProperties").filter(|a| a.is_object())
}

/// Converts a CEL result back to JSON for callers of `evaluate`.
pub(super) fn to_json(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| format!("cannot represent {f} in JSON"))?,
        Value::String(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    Key::String(s) => s.to_string(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                out.insert(key, to_json(v)?);
            }
            Json::Object(out)
        }
        Value::Opaque(o) => {
            if let Some(q) = o.downcast_ref::<super::quantity::Quantity>() {
                Json::String(q.to_string())
            } else if let Some(u) = o.downcast_ref::<super::url::Url>() {
                Json::String(u.raw.clone())
            } else if let Some(opt) = o.downcast_ref::<cel::objects::OptionalValue>() {
                match opt.value() {
                    Some(v) => to_json(v)?,
                    None => Json::Null,
                }
            } else {
                return Err(format!("cannot represent {value:?} in JSON"));
            }
        }
        other => return Err(format!("cannot represent {other:?} in JSON")),
    })
}
