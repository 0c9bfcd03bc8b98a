//! List merging for strategic merge patch: merge keys, list directives, ordering.
//!
//! Mirrors upstream `mergeSlice`, `mergeSliceWithSpecialElements`,
//! `mergePatchIntoOriginal` and `normalizeElementOrder`. The resulting order is
//! upstream's: `$setElementOrder` first, then the patch's own order, with items
//! only the server has kept next to their old neighbours. Merge keys are plain
//! strings with `""` meaning "none", as upstream's lookups return.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::gofmt;
use super::{DIRECTIVE, SET_ELEMENT_ORDER, directive_target, merge_map, remove_directives};
use crate::api::patch::PatchError;
use crate::api::patch::schema::{Field, Node, Smp};

/// What the items of a list are, by Go type (`int64` and `float64` differ).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Kind(&'static str);

const MAP: Kind = Kind("map[string]interface {}");

fn merge_key(field: Field) -> &'static str {
    match field.smp {
        Smp::Merge(Some(key)) => key,
        _ => "",
    }
}

/// Upstream `mergeSliceHandler`: merge when tagged (or deleting), else replace.
pub(super) fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: Field,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if matches!(field.smp, Smp::Merge(_)) || delete_list {
        merge_slice(original, patch, merge_key(field), field.node, delete_list)
    } else {
        Ok(patch)
    }
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    node: Node,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&[&original, &patch])?;
    let (original, patch, merged) = if kind != MAP {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for value in original.iter().chain(&patch) {
            if !merged.contains(value) {
                merged.push(value.clone());
            }
        }
        (original, patch, merged)
    } else {
        if key.is_empty() {
            return Err(PatchError::Internal(
                "cannot merge lists without merge key for ".to_string(),
            ));
        }
        let (original, patch) = apply_list_directives(original, patch, key)?;
        let merged = merge_items(original.clone(), &patch, key, node)?;
        (original, patch, merged)
    };
    let (patch_items, server_only) = partition(merged, &patch, key, kind)?;
    normalize_element_order(patch_items, server_only, &patch, &original, key, kind)
}

/// Handles `$patch` items: `delete` removes by key, `replace` drops the original.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(value) = item.get(key) else {
                    return Err(gofmt::no_merge_key(&item, key));
                };
                original.retain(|o| o.get(key) != Some(value));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Internal(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ));
            }
            _ => return Err(gofmt::bad_patch_type(directive, &item)),
        }
    }
    Ok(if replace {
        (rest, Vec::new())
    } else {
        (original, rest)
    })
}

/// Merges each patch item into the original item with the same key, or appends it.
fn merge_items(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    node: Node,
) -> Result<Vec<Value>, PatchError> {
    // Upstream scans the list for every patch item (quadratic: 30 000 new
    // containers took half a minute); an index by merge key gives the same
    // first match in one pass. A list with a non-map item keeps upstream's
    // scan, for its error.
    let mut positions = if original.iter().all(Value::is_object) {
        Some(Positions::of(&original, key, MAP))
    } else {
        None
    };
    for item in patch {
        let Some(value) = item.get(key) else {
            return Err(gofmt::no_merge_key(item, key));
        };
        let found = match &positions {
            Some(p) => p.get(item, key, MAP),
            None => find_by_key(&original, key, value)?,
        };
        match found {
            Some(index) => {
                let old = std::mem::take(&mut original[index]);
                let (Value::Object(old), Value::Object(new)) = (old, item.clone()) else {
                    return Err(gofmt::expected_map(item));
                };
                original[index] = Value::Object(merge_map(old, new, node)?);
            }
            None => {
                if let Some(p) = &mut positions {
                    p.add(item, key, MAP, original.len());
                }
                original.push(item.clone());
            }
        }
    }
    Ok(original)
}

/// The first position of each item of a list, by merge key for maps (an
/// item without the key is found by another without it, as in Go) and by
/// value otherwise: lookups in constant time instead of a scan.
struct Positions(HashMap<String, usize>);

impl Positions {
    fn of(list: &[Value], key: &str, kind: Kind) -> Self {
        let mut p = Positions(HashMap::with_capacity(list.len()));
        for (i, item) in list.iter().enumerate() {
            p.add(item, key, kind, i);
        }
        p
    }

    fn identity(item: &Value, key: &str, kind: Kind) -> String {
        if kind == MAP {
            match item.as_object().and_then(|m| m.get(key)) {
                Some(v) => format!("k{v}"),
                None => "-".to_string(),
            }
        } else {
            format!("v{item}")
        }
    }

    fn add(&mut self, item: &Value, key: &str, kind: Kind, at: usize) {
        self.0.entry(Self::identity(item, key, kind)).or_insert(at);
    }

    fn get(&self, item: &Value, key: &str, kind: Kind) -> Option<usize> {
        self.0.get(&Self::identity(item, key, kind)).copied()
    }
}

/// Upstream `findMapInSliceBasedOnKeyValue`.
fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>, PatchError> {
    for (index, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(PatchError::Internal(format!(
                "value for key {index} is not a map"
            )));
        };
        if map.get(key) == Some(value) {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// Upstream `sliceElementType`: all items share one Go type, which is not a list.
fn element_kind(lists: &[&[Value]]) -> Result<Kind, PatchError> {
    let mut kind = None;
    for value in lists.iter().flat_map(|l| l.iter()) {
        let this = Kind(gofmt::go_type(value));
        match kind {
            None if value.is_array() => {
                return Err(PatchError::Unprocessable(
                    "lists of lists are not supported".to_string(),
                ));
            }
            None => kind = Some(this),
            Some(k) if k != this => {
                let all = Value::Array(lists.iter().map(|l| Value::Array(l.to_vec())).collect());
                return Err(PatchError::Internal(format!(
                    "list element types are not identical: {}",
                    gofmt::go_value(&all)
                )));
            }
            Some(_) => {}
        }
    }
    kind.ok_or_else(|| PatchError::Internal("no elements in any of the given slices".to_string()))
}

/// Splits `merged` into items present in `by` and items only the server has.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    key: &str,
    kind: Kind,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let (mut present, mut server_only) = (Vec::new(), Vec::new());
    let by_value = key.is_empty() && kind != MAP;
    let positions = (by_value || by.iter().all(Value::is_object))
        .then(|| Positions::of(by, key, if by_value { kind } else { MAP }));
    for item in merged {
        let found = if by_value {
            positions
                .as_ref()
                .is_some_and(|p| p.get(&item, key, kind).is_some())
        } else {
            let Value::Object(map) = &item else {
                return Err(gofmt::expected_map(&item));
            };
            let Some(value) = map.get(key) else {
                return Err(gofmt::no_merge_key(&item, key));
            };
            match &positions {
                Some(p) => p.get(&item, key, MAP).is_some(),
                None => find_by_key(by, key, value)?.is_some(),
            }
        };
        if found {
            present.push(item);
        } else {
            server_only.push(item);
        }
    }
    Ok((present, server_only))
}

/// Sorts both parts by their orders, then interleaves server-only items back.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let patch = normalize_slice_order(patch, patch_order, key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, key, kind)?;
    let server_positions = Positions::of(server_order, key, kind);
    let mut out = Vec::with_capacity(patch.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        patch.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                let li = server_positions.get(l, key, kind);
                let ri = server_positions.get(r, key, kind);
                matches!((li, ri), (Some(li), Some(ri)) if li < ri)
            }
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    Ok(out)
}

/// Stable-sorts `items` by position in `order`; `$patch: delete` items go last.
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    key: &str,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let (mut keep, mut delete) = (Vec::new(), Vec::new());
    if kind == MAP {
        for item in items.iter().chain(order) {
            let Value::Object(map) = item else {
                return Err(gofmt::expected_map(item));
            };
            if !map.contains_key(key) {
                return Err(gofmt::no_merge_key(item, key));
            }
        }
        for item in items {
            let deleting = item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
            if deleting {
                delete.push(item)
            } else {
                keep.push(item)
            }
        }
    } else {
        keep = items;
    }
    let positions = Positions::of(order, key, kind);
    keep.sort_by_key(|item| positions.get(item, key, kind).unwrap_or(usize::MAX));
    keep.extend(delete);
    Ok(keep)
}

/// Processes every `$setElementOrder/<field>` directive of `patch` together with
/// the list it orders, removing both from `patch` (upstream `mergePatchIntoOriginal`).
pub(super) fn merge_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: Node,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = patch.remove(&directive) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(gofmt::expected_slice(&order));
        };
        let target = directive_target(&directive, SET_ELEMENT_ORDER)?;
        let old = list_at(original, &target)?;
        let new = list_at(patch, &target)?;
        let field = node.field(&target);
        let key = merge_key(field);
        if let Some(new) = &new {
            validate_order(new, &order, key)?;
        }
        let merged = match (old.clone(), new.clone()) {
            (Some(old), None) => old,
            (None, Some(new)) => match remove_directives(Value::Array(new)) {
                Some(Value::Array(items)) => items,
                _ => continue,
            },
            (Some(old), Some(new)) => merge_slice_handler(old, new, field, false)?,
            (None, None) => continue,
        };
        let (old, new) = (old.unwrap_or_default(), new.unwrap_or_default());
        let kind = element_kind(&[&old, &new])?;
        let (present, server_only) = partition(merged, &order, key, kind)?;
        let both = normalize_element_order(present, server_only, &order, &old, key, kind)?;
        original.insert(target.clone(), Value::Array(both));
        patch.remove(&target);
    }
    Ok(())
}

fn list_at(map: &Map<String, Value>, key: &str) -> Result<Option<Vec<Value>>, PatchError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(gofmt::expected_slice(other)),
    }
}

/// Upstream `validatePatchWithSetOrderList`: patch items appear in the order list,
/// in the same relative order.
fn validate_order(patch: &[Value], order: &[Value], key: &str) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut items: Vec<&Value> = Vec::with_capacity(patch.len());
    for item in patch {
        if !key.is_empty() {
            let Value::Object(map) = item else {
                return Err(gofmt::expected_map(item));
            };
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(item);
    }
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if items[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if key_equal(items[pi], &order[oi], key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() && oi >= order.len() {
        let (patch, order) = (Value::Array(patch.to_vec()), Value::Array(order.to_vec()));
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            gofmt::go_value(&patch),
            gofmt::go_value(&order)
        )));
    }
    Ok(())
}

/// Upstream `mergeKeyValueEqual`.
fn key_equal(left: &Value, right: &Value, key: &str) -> Result<bool, PatchError> {
    if key.is_empty() {
        return Ok(left == right);
    }
    let value = |v: &Value| match v {
        Value::Object(map) => map
            .get(key)
            .cloned()
            .ok_or_else(|| gofmt::no_merge_key(v, key)),
        other => Err(gofmt::expected_map(other)),
    };
    Ok(value(left)? == value(right)?)
}
