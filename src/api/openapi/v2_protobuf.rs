//! The Swagger 2.0 document in gnostic's `openapi.v2.Document` protobuf
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), the
//! only form client-go's `OpenAPISchema()` reads.
//!
//! Written straight from the JSON document with a small protobuf writer:
//! the message is a fixed tree of a dozen types, and generating Rust types
//! for gnostic's 60 messages to fill a handful would cost more than it
//! saves. Field numbers are gnostic's `OpenAPIv2.proto`. Values that
//! gnostic keeps as `Any` (defaults, examples, enums, `x-` extensions) go
//! in its `yaml` field; JSON is YAML, and kube-openapi parses them so.

use serde_json::{Map, Value};

/// Encodes the v2 JSON document.
pub(super) fn encode(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, doc.get("swagger"));
    message(&mut out, 2, |b| {
        string(b, 1, doc.pointer("/info/title"));
        string(b, 2, doc.pointer("/info/version"));
    });
    message(&mut out, 8, |b| {
        for (path, item) in entries(doc.get("paths")) {
            message(b, 2, |b| {
                string(b, 1, Some(&Value::String(path.clone())));
                message(b, 2, |b| path_item(b, item));
            });
        }
    });
    message(&mut out, 9, |b| {
        for (name, schema) in entries(doc.get("definitions")) {
            named_schema(b, 1, name, schema);
        }
    });
    out
}

fn path_item(b: &mut Vec<u8>, item: &Value) {
    for (tag, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = item.get(method) {
            message(b, tag, |b| operation(b, op));
        }
    }
    for param in array(item.get("parameters")) {
        message(b, 9, |b| parameters_item(b, param));
    }
    extensions(b, 10, item);
}

fn operation(b: &mut Vec<u8>, op: &Value) {
    strings(b, 1, op.get("tags"));
    string(b, 3, op.get("description"));
    string(b, 5, op.get("operationId"));
    strings(b, 6, op.get("produces"));
    strings(b, 7, op.get("consumes"));
    for param in array(op.get("parameters")) {
        message(b, 8, |b| parameters_item(b, param));
    }
    message(b, 9, |b| {
        for (code, response) in entries(op.get("responses")) {
            message(b, 1, |b| {
                string(b, 1, Some(&Value::String(code.clone())));
                // ResponseValue.response → Response
                message(b, 2, |b| {
                    message(b, 1, |b| {
                        string(b, 1, response.get("description"));
                        if let Some(schema) = response.get("schema") {
                            // SchemaItem.schema
                            message(b, 2, |b| message(b, 1, |b| schema_fields(b, schema)));
                        }
                    })
                });
            });
        }
    });
    strings(b, 10, op.get("schemes"));
    boolean(b, 11, op.get("deprecated"));
    extensions(b, 13, op);
}

/// `ParametersItem.parameter` → `Parameter` (body, or non-body by `in`).
fn parameters_item(b: &mut Vec<u8>, param: &Value) {
    message(b, 1, |b| {
        if param.get("in").and_then(Value::as_str) == Some("body") {
            message(b, 1, |b| {
                string(b, 1, param.get("description"));
                string(b, 2, param.get("name"));
                string(b, 3, param.get("in"));
                boolean(b, 4, param.get("required"));
                if let Some(schema) = param.get("schema") {
                    message(b, 5, |b| schema_fields(b, schema));
                }
                extensions(b, 6, param);
            });
            return;
        }
        // NonBodyParameter: query (3) and path (4) differ in field numbers
        // after `name`, since only query parameters have allowEmptyValue.
        let (variant, shift) = match param.get("in").and_then(Value::as_str) {
            Some("path") => (4, 0),
            Some("header") => (1, 0),
            _ => (3, 1),
        };
        message(b, 2, |b| {
            message(b, variant, |b| {
                boolean(b, 1, param.get("required"));
                string(b, 2, param.get("in"));
                string(b, 3, param.get("description"));
                string(b, 4, param.get("name"));
                string(b, 5 + shift, param.get("type"));
                string(b, 6 + shift, param.get("format"));
                boolean(b, 19 + shift, param.get("uniqueItems"));
                extensions(b, 22 + shift, param);
            })
        });
    });
}

fn named_schema(b: &mut Vec<u8>, tag: u32, name: &str, schema: &Value) {
    message(b, tag, |b| {
        string(b, 1, Some(&Value::String(name.to_owned())));
        message(b, 2, |b| schema_fields(b, schema));
    });
}

fn schema_fields(b: &mut Vec<u8>, schema: &Value) {
    string(b, 1, schema.get("$ref"));
    string(b, 2, schema.get("format"));
    string(b, 3, schema.get("title"));
    string(b, 4, schema.get("description"));
    any(b, 5, schema.get("default"));
    double(b, 6, schema.get("multipleOf"));
    double(b, 7, schema.get("maximum"));
    boolean(b, 8, schema.get("exclusiveMaximum"));
    double(b, 9, schema.get("minimum"));
    boolean(b, 10, schema.get("exclusiveMinimum"));
    int(b, 11, schema.get("maxLength"));
    int(b, 12, schema.get("minLength"));
    string(b, 13, schema.get("pattern"));
    int(b, 14, schema.get("maxItems"));
    int(b, 15, schema.get("minItems"));
    boolean(b, 16, schema.get("uniqueItems"));
    int(b, 17, schema.get("maxProperties"));
    int(b, 18, schema.get("minProperties"));
    strings(b, 19, schema.get("required"));
    for value in array(schema.get("enum")) {
        any(b, 20, Some(value));
    }
    match schema.get("additionalProperties") {
        Some(Value::Bool(allowed)) => {
            message(b, 21, |b| boolean(b, 2, Some(&Value::Bool(*allowed))))
        }
        Some(nested @ Value::Object(_)) => {
            message(b, 21, |b| message(b, 1, |b| schema_fields(b, nested)))
        }
        _ => {}
    }
    match schema.get("type") {
        Some(Value::String(_)) => message(b, 22, |b| string(b, 1, schema.get("type"))),
        Some(types @ Value::Array(_)) => message(b, 22, |b| strings(b, 1, Some(types))),
        _ => {}
    }
    if let Some(items) = schema.get("items") {
        message(b, 23, |b| match items {
            Value::Array(list) => {
                for item in list {
                    message(b, 1, |b| schema_fields(b, item));
                }
            }
            item => message(b, 1, |b| schema_fields(b, item)),
        });
    }
    for part in array(schema.get("allOf")) {
        message(b, 24, |b| schema_fields(b, part));
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        message(b, 25, |b| {
            for (name, prop) in props {
                named_schema(b, 1, name, prop);
            }
        });
    }
    boolean(b, 27, schema.get("readOnly"));
    any(b, 30, schema.get("example"));
    extensions(b, 31, schema);
}

/// The `x-` members of a JSON object as repeated `NamedAny`.
fn extensions(b: &mut Vec<u8>, tag: u32, obj: &Value) {
    for (name, value) in entries(Some(obj)) {
        if name.starts_with("x-") {
            message(b, tag, |b| {
                string(b, 1, Some(&Value::String(name.clone())));
                any(b, 2, Some(value));
            });
        }
    }
}

/// gnostic's `Any`: the value as YAML text (field 2).
fn any(b: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    let Some(value) = value else { return };
    let text = value.to_string();
    message(b, tag, |b| bytes_field(b, 2, text.as_bytes()));
}

fn entries(value: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    value
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(Map::iter)
}

fn array(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn key(b: &mut Vec<u8>, tag: u32, wire: u8) {
    varint(b, (u64::from(tag) << 3) | u64::from(wire));
}

fn varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn bytes_field(b: &mut Vec<u8>, tag: u32, data: &[u8]) {
    key(b, tag, 2);
    varint(b, data.len() as u64);
    b.extend_from_slice(data);
}

fn string(b: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    if let Some(s) = value.and_then(Value::as_str)
        && !s.is_empty()
    {
        bytes_field(b, tag, s.as_bytes());
    }
}

fn strings(b: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    for s in array(value) {
        if let Some(s) = s.as_str() {
            bytes_field(b, tag, s.as_bytes());
        }
    }
}

fn boolean(b: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    if value.and_then(Value::as_bool) == Some(true) {
        key(b, tag, 0);
        b.push(1);
    }
}

fn int(b: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    if let Some(n) = value.and_then(Value::as_i64) {
        key(b, tag, 0);
        // int64 negatives are ten-byte two's-complement varints.
        varint(b, n as u64);
    }
}

fn double(b: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    if let Some(n) = value.and_then(Value::as_f64) {
        key(b, tag, 1);
        b.extend_from_slice(&n.to_le_bytes());
    }
}

/// A length-delimited submessage written by `fill`; empty ones are kept,
/// since presence of e.g. an empty `Info` still matters to a reader.
fn message(b: &mut Vec<u8>, tag: u32, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    bytes_field(b, tag, &inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_encodes_with_gnostic_field_numbers() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.37.0"},
            "paths": {},
            "definitions": {"a.B": {"type": "object", "required": ["x"],
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "B", "version": "v1"}]}}
        });
        let bytes = encode(&doc);
        // swagger = 1, "2.0"
        assert_eq!(&bytes[..5], &[0x0a, 3, b'2', b'.', b'0']);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("a.B"));
        assert!(text.contains("x-kubernetes-group-version-kind"));
        assert!(text.contains("\"kind\":\"B\""));
    }
}
