//! Strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! Follows k8s.io/apimachinery/pkg/util/strategicpatch `StrategicMergeMapPatch`
//! with the apiserver's options (`MergeParallelList`, `IgnoreUnmatchedNulls`):
//! maps merge recursively, `null` deletes, lists tagged `patchStrategy:"merge"`
//! merge by their `patchMergeKey` (see [`super::schema`]) and other lists are
//! replaced. Directives: `$patch: replace|delete` (in maps and list items),
//! `$retainKeys`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`.
//! `$patch: merge` is rejected, as upstream does.
//!
//! Errors carry upstream's text and status: malformed directives are
//! [`PatchError::BadRequest`], lists of lists [`PatchError::Unprocessable`], and
//! everything upstream passes through unclassified (a list item missing its merge
//! key, an unknown `$patch` value) is [`PatchError::Internal`], i.e. 500.
//!
//! Upstream decodes the result into Go structs, which silently drops unknown
//! fields; directive keys that survive merging (inside values copied wholesale)
//! are therefore stripped from the result here.

mod gofmt;
mod list;

use serde_json::{Map, Value};

use super::schema::{self, Node, Smp};
use super::{PatchError, TypeRef};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Applies strategic merge patch `body` to `original`, an object of type `ty`.
pub(crate) fn apply(original: &Value, body: &[u8], ty: TypeRef<'_>) -> Result<Value, PatchError> {
    let patch = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        Ok(other) => return Err(PatchError::BadRequest(unmarshal_type_error(&other))),
        Err(e) => return Err(PatchError::BadRequest(e.to_string())),
    };
    let Value::Object(original) = original.clone() else {
        return Err(PatchError::BadRequest("invalid JSON document".to_string()));
    };
    let mut merged = Value::Object(merge_map(original, patch, schema::root(ty).node)?);
    strip_directives(&mut merged);
    Ok(merged)
}

/// Go's `json.UnmarshalTypeError` text for a non-object patch.
fn unmarshal_type_error(value: &Value) -> String {
    let kind = match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        _ => "bool",
    };
    format!("json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
}

/// Upstream `mergeMap`: merges `patch` into `original` for struct `node`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: Node,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE).cloned() {
        return directive_in_map(&directive, patch);
    }
    apply_retain_keys(&mut original, &mut patch)?;
    list::merge_element_orders(&mut original, &mut patch, node)?;
    for (key, value) in patch {
        merge_entry(&mut original, key, value, node)?;
    }
    Ok(original)
}

/// `$patch` inside a map: `replace` takes the patch as is, `delete` empties it.
fn directive_in_map(
    directive: &Value,
    mut patch: Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    match directive.as_str() {
        Some("replace") => {
            patch.remove(DIRECTIVE);
            Ok(patch)
        }
        Some("delete") => Ok(Map::new()),
        _ => Err(gofmt::bad_patch_type(directive, &Value::Object(patch))),
    }
}

/// `$retainKeys`: drop original fields not listed; every patched field must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchError::BadRequest("invalid patch format of retainKeys".to_string());
    let Value::Array(retain) = retain else {
        return Err(bad());
    };
    let listed = |key: &str| retain.iter().any(|v| v.as_str() == Some(key));
    for (key, value) in patch.iter() {
        let directive =
            key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !value.is_null() && !directive && !listed(key) {
            return Err(bad());
        }
    }
    original.retain(|key, _| listed(key));
    Ok(())
}

/// The field a `$prefix/field` directive key refers to.
fn directive_target(key: &str, prefix: &str) -> Result<String, PatchError> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_string()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(PatchError::BadRequest(
            "invalid patch format of primitive list".to_string(),
        )),
        _ => Err(PatchError::BadRequest(
            "invalid patch format of setElementOrder list".to_string(),
        )),
    }
}

/// Merges one patch entry into `original` (the loop body of upstream `mergeMap`).
fn merge_entry(
    original: &mut Map<String, Value>,
    key: String,
    value: Value,
    node: Node,
) -> Result<(), PatchError> {
    let (key, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
        (directive_target(&key, DELETE_FROM_PRIMITIVE_LIST)?, true)
    } else {
        (key, false)
    };
    if value.is_null() {
        original.remove(&key);
        return Ok(());
    }
    let field = node.field(&key);
    let merged = match (original.remove(&key), value) {
        (None, value) => (!delete_list).then(|| take_patch_value(value)).flatten(),
        (Some(Value::Object(old)), Value::Object(new)) => Some(Value::Object(match field.smp {
            Smp::Replace => new,
            _ => merge_map(old, new, field.node)?,
        })),
        (Some(Value::Array(old)), Value::Array(new)) => Some(Value::Array(
            list::merge_slice_handler(old, new, field, delete_list)?,
        )),
        (Some(old), _) if delete_list => Some(old),
        (Some(_), value @ (Value::Object(_) | Value::Array(_))) => take_patch_value(value),
        (Some(_), value) => remove_directives(value),
    };
    if let Some(value) = merged {
        original.insert(key, value);
    }
    Ok(())
}

/// A patch value used where the original has nothing to merge with.
fn take_patch_value(mut value: Value) -> Option<Value> {
    discard_nulls(&mut value);
    remove_directives(value)
}

/// Drops `null` fields anywhere inside a patch value.
fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Upstream `removeDirectives`: a map holding `$patch` disappears entirely.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            let kept = map
                .into_iter()
                .filter_map(|(k, v)| Some((k, remove_directives(v)?)))
                .collect();
            Some(Value::Object(kept))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        scalar => Some(scalar),
    }
}

/// Removes directive keys left in the result, as decoding into Go types would.
fn strip_directives(value: &mut Value) {
    let is_directive = |key: &str| {
        key == DIRECTIVE
            || key == RETAIN_KEYS
            || key.starts_with("$setElementOrder/")
            || key.starts_with("$deleteFromPrimitiveList/")
    };
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !is_directive(key));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
