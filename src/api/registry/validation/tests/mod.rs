//! Behaviour tests of validation, on realistic objects run through defaulting first, as the
//! apiserver does.

mod batch;
mod core_kinds;
mod fixtures;
mod meta;
mod misc_kinds;
mod names;
mod pod;
mod pod_scheduling;
mod service;
mod updates;
mod workloads;

use serde_json::Value;

use super::{FieldError, validate_create, validate_update};
use crate::api::registry::defaults::apply_defaults;

/// Defaults then validates a new object.
pub(super) fn create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut o = obj.clone();
    apply_defaults(group, kind, &mut o);
    validate_create(group, kind, &o)
}

/// Defaults both objects then validates the update.
pub(super) fn update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let (mut o, mut n) = (old.clone(), new.clone());
    apply_defaults(group, kind, &mut o);
    apply_defaults(group, kind, &mut n);
    validate_update(group, kind, &o, &n)
}

/// A copy of `obj` with the value at a JSON pointer replaced (intermediate objects created).
pub(super) fn with(obj: &Value, pointer: &str, value: Value) -> Value {
    let mut out = obj.clone();
    let mut cur = &mut out;
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            Value::Array(a) => {
                let idx: usize = part.parse().unwrap_or(a.len());
                if last {
                    if idx < a.len() {
                        a[idx] = value;
                    } else {
                        a.push(value);
                    }
                    return out;
                }
                match a.get_mut(idx) {
                    Some(v) => v,
                    None => return out,
                }
            }
            Value::Object(m) => {
                if last {
                    m.insert(part.clone(), value);
                    return out;
                }
                m.entry(part.clone())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()))
            }
            _ => return out,
        };
    }
    out
}

/// A copy of `obj` without the field at a JSON pointer.
pub(super) fn without(obj: &Value, pointer: &str) -> Value {
    let mut out = obj.clone();
    if let Some((parent, key)) = pointer.rsplit_once('/')
        && let Some(Value::Object(m)) = out.pointer_mut(parent)
    {
        m.remove(key);
    }
    out
}

/// Defaults and validates `obj`, asserting an error at `field` whose message starts with
/// `prefix`.
pub(super) fn expect(group: &str, kind: &str, obj: &Value, field: &str, prefix: &str) {
    assert_error(&create(group, kind, obj), field, prefix);
}

/// Asserts there are no errors, printing them otherwise.
pub(super) fn assert_valid(errs: &[FieldError]) {
    let rendered: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(errs.is_empty(), "unexpected errors: {rendered:#?}");
}

/// Asserts some error is at `field` with a message starting with `prefix`.
pub(super) fn assert_error(errs: &[FieldError], field: &str, prefix: &str) {
    let found = errs
        .iter()
        .any(|e| e.field == field && e.message.starts_with(prefix));
    let rendered: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        found,
        "no error at {field} starting with {prefix:?}; got {rendered:#?}"
    );
}
