//! Writing objects as upstream's JSON encoder does: the fields of each
//! object in the order of the Go struct, not sorted by name.
//!
//! Some clients compare response text (two of the official Python client's
//! tests do). Go's `encoding/json` writes struct fields in declaration
//! order, `kind` and `apiVersion` first (the inline `TypeMeta`, in its own
//! order), and map keys sorted. The protobuf message table lists each
//! type's fields in declaration order (`tools/gen_protobuf_table.py` reads
//! the Go structs), so it drives the order here. Keys the table does not
//! know (custom resources, unknown kinds) follow in sorted order; values
//! are never changed, only the order of keys.

use serde_json::{Map, Value};

use super::table::{Kind, Message, Schema, Special, schema};

/// `obj` as JSON bytes, fields in upstream's order where its type is known.
pub fn to_vec(obj: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let root = match (schema(), obj) {
        (Ok(s), Value::Object(m)) => match (m.get("apiVersion"), m.get("kind")) {
            (Some(Value::String(v)), Some(Value::String(k))) => s.find_kind(v, k).map(|i| (s, i)),
            _ => None,
        },
        _ => None,
    };
    match root {
        Some((s, index)) => write(&mut out, obj, Some((s, index))),
        None => write(&mut out, obj, None),
    }
    out
}

fn write_plain(out: &mut Vec<u8>, v: &Value) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

fn write_key(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    // A &str serializes without building a Value (no allocation per key).
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

/// Writes `v`; `message` is its type when known.
fn write(out: &mut Vec<u8>, v: &Value, message: Option<(&Schema, usize)>) {
    match (v, message) {
        (Value::Object(map), Some((s, index))) if s.messages[index].special == Special::None => {
            out.push(b'{');
            let mut first = true;
            let msg = &s.messages[index];
            // Kinds carry kind and apiVersion in the inline TypeMeta, which
            // the protobuf message leaves out; they come first. Types that
            // hold them as fields of their own (references, managed fields
            // entries) keep them in place.
            let leading: Vec<&str> = ["kind", "apiVersion"]
                .into_iter()
                .filter(|k| !has_field(s, msg, k))
                .collect();
            let mut written = 0;
            for key in &leading {
                if let Some(val) = map.get(*key) {
                    written += 1;
                    write_key(out, &mut first, key);
                    write_plain(out, val);
                }
            }
            write_fields(out, &mut first, map, s, msg, &mut written);
            if written < map.len() {
                for (k, val) in map {
                    let placed = leading.contains(&k.as_str()) || has_field(s, msg, k);
                    if !placed {
                        write_key(out, &mut first, k);
                        write(out, val, None);
                    }
                }
            }
            out.push(b'}');
        }
        (Value::Object(map), _) => {
            // Unknown type: keys sorted (Go sorts map keys too).
            out.push(b'{');
            let mut first = true;
            for (k, val) in map {
                write_key(out, &mut first, k);
                write(out, val, None);
            }
            out.push(b'}');
        }
        (Value::Array(items), _) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item, message);
            }
            out.push(b']');
        }
        _ => write_plain(out, v),
    }
}

/// The message's fields present in `map`, in declaration order; inline
/// members are expanded in place.
fn write_fields(
    out: &mut Vec<u8>,
    first: &mut bool,
    map: &Map<String, Value>,
    s: &Schema,
    msg: &Message,
    written: &mut usize,
) {
    for field in msg.order.iter().map(|&i| &msg.fields[i]) {
        if field.inline {
            if let Kind::Message(inner) = field.kind {
                write_fields(out, first, map, s, &s.messages[inner], written);
            }
            continue;
        }
        let Some(val) = map.get(&field.json) else {
            continue;
        };
        *written += 1;
        write_key(out, first, &field.json);
        match &field.kind {
            Kind::Message(inner) => write(out, val, Some((s, *inner))),
            Kind::Map(_, value) => match (val, value.as_ref()) {
                (Value::Object(m), Kind::Message(inner)) => {
                    out.push(b'{');
                    let mut f = true;
                    for (k, item) in m {
                        write_key(out, &mut f, k);
                        write(out, item, Some((s, *inner)));
                    }
                    out.push(b'}');
                }
                _ => write(out, val, None),
            },
            Kind::Scalar(_) => write_plain(out, val),
        }
    }
}

/// Whether `msg` (with its inline members) has a field named `json`.
fn has_field(s: &Schema, msg: &Message, json: &str) -> bool {
    msg.fields.iter().any(|f| {
        f.json == json
            || (f.inline
                && matches!(f.kind, Kind::Message(inner) if has_field(s, &s.messages[inner], json)))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_come_out_in_go_struct_order() {
        let pod = json!({
            "status": {"phase": "Running"},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "i"}]},
            "metadata": {"uid": "u", "name": "p", "namespace": "default", "labels": {"b": "2", "a": "1"}},
            "kind": "Pod",
            "apiVersion": "v1",
        });
        let text = String::from_utf8(to_vec(&pod)).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"default","uid":"u","labels":{"a":"1","b":"2"}},"spec":{"containers":[{"name":"c","image":"i"}],"nodeName":"n"},"status":{"phase":"Running"}}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, pod, "only the order changes");
    }

    #[test]
    fn fields_named_like_type_meta_stay_in_place_and_are_written_once() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
            "managedFields": [{"time": "t", "manager": "m", "apiVersion": "v1", "operation": "Update"}],
            "ownerReferences": [{"uid": "u", "name": "o", "kind": "Pod", "apiVersion": "v1"}]}});
        let text = String::from_utf8(to_vec(&cm)).unwrap();
        assert!(
            text.contains(r#"{"apiVersion":"v1","kind":"Pod","name":"o","uid":"u"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"manager":"m","operation":"Update","apiVersion":"v1","time":"t"}"#),
            "{text}"
        );
        assert_eq!(text.matches("apiVersion").count(), 3, "{text}");
    }

    #[test]
    fn unknown_kinds_and_fields_keep_sorted_order() {
        let widget = json!({"kind": "Widget", "apiVersion": "example.com/v1", "b": 1, "a": 2});
        let text = String::from_utf8(to_vec(&widget)).unwrap();
        assert_eq!(
            text,
            r#"{"a":2,"apiVersion":"example.com/v1","b":1,"kind":"Widget"}"#
        );
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "zzz": true, "data": {"k": "v"}, "metadata": {"name": "c"}});
        let text = String::from_utf8(to_vec(&cm)).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c"},"data":{"k":"v"},"zzz":true}"#
        );
    }
}
