//! Schema-aware walks over objects: field sets, comparison, merge and pruning.
//!
//! These are the operations of structured-merge-diff's `typed` package that
//! server-side apply and managed-fields tracking are built from, over
//! `serde_json::Value` guided by [`schema::Field`]. Only building the field set of
//! an applied configuration can fail (duplicate or key-less list items, as
//! upstream's validation reports); the walks over stored objects are lenient and
//! treat a list whose items cannot be keyed as atomic, since a stored object must
//! never make a later write impossible.

use serde_json::{Map, Value};

use super::fieldpath::{FieldSet, PathElement, path_string};
use super::schema::{Field, ListType};

/// An element of a keyed associative list: it must be an object.
fn keyed_element(item: &Value) -> Result<&Map<String, Value>, String> {
    match item {
        Value::Object(map) => Ok(map),
        Value::Null => Err("associative list with keys may not have a null element".to_string()),
        _ => Err("associative list with keys may not have non-map elements".to_string()),
    }
}

/// The key path element of an item from its key `fields` (sorted by
/// name), or upstream's error when it has none of the key fields `names`.
fn key_element<'k>(
    mut fields: Vec<(String, Value)>,
    names: impl Iterator<Item = &'k str>,
) -> Result<PathElement, String> {
    if fields.is_empty() {
        let names: Vec<String> = names.map(|k| format!("{k:?}")).collect();
        return Err(format!(
            "associative list with keys has an element that omits all key fields [{}] \
             (and doesn't have default values for any key fields)",
            names.join(" ")
        ));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(PathElement::Key(fields))
}

/// The path element naming `item` in a list of type `list`.
pub(crate) fn item_element(list: ListType, item: &Value) -> Result<PathElement, String> {
    match list {
        ListType::Atomic => Err("invalid indexing of non-associative list".to_string()),
        ListType::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".to_string())
            }
            Value::Array(_) => {
                Err("not supported: associative list with lists as elements".to_string())
            }
            Value::Null => Err(
                "associative list without keys has an element that's an explicit null".to_string(),
            ),
            scalar => Ok(PathElement::Value(scalar.clone())),
        },
        ListType::Keys(names) => {
            let map = keyed_element(item)?;
            let fields: Vec<(String, Value)> = names
                .iter()
                .filter_map(|name| Some((name.clone(), map.get(name)?.clone())))
                .collect();
            key_element(fields, names.iter().map(String::as_str))
        }
        ListType::Map(keys) => {
            let map = keyed_element(item)?;
            let fields: Vec<(String, Value)> = keys
                .iter()
                .filter_map(|key| {
                    let value = map
                        .get(key.name)
                        .cloned()
                        .or_else(|| key.default.map(Value::from))?;
                    Some((key.name.to_string(), value))
                })
                .collect();
            key_element(fields, keys.iter().map(|k| k.name))
        }
    }
}

/// Items of an associative list by path element, first occurrence winning;
/// `None` when some item cannot be keyed.
fn index_lenient(list: ListType, items: &[Value]) -> Option<Vec<(PathElement, &Value)>> {
    let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(items.len());
    // A set, not a scan: lists of tens of thousands of items stay linear-ish.
    let mut seen = std::collections::BTreeSet::new();
    for item in items {
        let pe = item_element(list, item).ok()?;
        if seen.insert(pe.clone()) {
            out.push((pe, item));
        }
    }
    Some(out)
}

/// An index of keyed items by path element.
fn by_element<'a, 'v>(
    items: &'a [(PathElement, &'v Value)],
) -> std::collections::BTreeMap<&'a PathElement, &'v Value> {
    items.iter().map(|(pe, v)| (pe, *v)).collect()
}

/// The fields set by `value` (upstream `ToFieldSet`), rejecting bad list items.
pub(crate) fn to_field_set(value: &Value, field: Field) -> Result<FieldSet, String> {
    let mut set = FieldSet::default();
    walk_set(value, field, &mut Vec::new(), &mut set)?;
    Ok(set)
}

fn walk_set(
    value: &Value,
    field: Field,
    path: &mut Vec<PathElement>,
    set: &mut FieldSet,
) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(PathElement::Field(key.clone()));
                walk_set(child, field.node.field(key), path, set)?;
                let empty_map = child.as_object().is_some_and(Map::is_empty);
                if child.is_null() || empty_map || field.node.is_free_map() {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) if field.list != ListType::Atomic => {
            let mut seen: Vec<PathElement> = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let pe = item_element(field.list, item)
                    .map_err(|e| format!("{}: element {index}: {e}", path_string(path)))?;
                if seen.contains(&pe) {
                    return Err(format!(
                        "{}: duplicate entries for key {pe}",
                        path_string(path)
                    ));
                }
                seen.push(pe.clone());
                path.push(pe);
                walk_set(item, field.item(), path, set)?;
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

/// Fields added, changed and removed between two objects (upstream `Compare`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    /// Present only in the new object.
    pub added: FieldSet,
    /// Present in both with different values.
    pub modified: FieldSet,
    /// Present only in the old object.
    pub removed: FieldSet,
}

/// Compares `old` with `new` under `field`.
///
/// Unlike upstream, a struct-valued field is not itself reported when it appears
/// or disappears (only its contents are): upstream starts creates from a zeroed
/// Go struct in which non-pointer structs already exist, and JSON has no such
/// notion. Free maps (labels) and list items are reported, as upstream does.
pub(crate) fn compare(old: &Value, new: &Value, field: Field) -> Comparison {
    let mut out = Comparison::default();
    compare_at(
        Some(old),
        Some(new),
        field,
        false,
        &mut Vec::new(),
        &mut out,
    );
    out
}

fn compare_at(
    old: Option<&Value>,
    new: Option<&Value>,
    field: Field,
    mark: bool,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    let is_map = |v: Option<&Value>| v.is_none_or(Value::is_object);
    if is_map(old) && is_map(new) && (!empty_map(old) || !empty_map(new)) {
        let (l, r) = (
            old.and_then(Value::as_object),
            new.and_then(Value::as_object),
        );
        for key in union_keys(l, r) {
            let child = field.node.field(key);
            path.push(PathElement::Field(key.to_string()));
            let (lv, rv) = (l.and_then(|m| m.get(key)), r.and_then(|m| m.get(key)));
            compare_at(lv, rv, child, child.node.is_free_map(), path, out);
            path.pop();
        }
    } else if !compare_items(old, new, field, path, out) {
        compare_leaf(old, new, path, out);
        return;
    }
    mark_presence(old, new, mark, path, out);
}

/// Compares associative lists item by item; `false` when the lists are atomic,
/// empty on both sides, or cannot be keyed (then they compare as leaves).
fn compare_items(
    old: Option<&Value>,
    new: Option<&Value>,
    field: Field,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) -> bool {
    let is_list = |v: Option<&Value>| v.is_none_or(Value::is_array);
    if field.list == ListType::Atomic || !is_list(old) || !is_list(new) {
        return false;
    }
    if empty_list(old) && empty_list(new) {
        return false;
    }
    let (Some(l), Some(r)) = (list_items(field.list, old), list_items(field.list, new)) else {
        return false;
    };
    let (li, ri) = (by_element(&l), by_element(&r));
    let mut pes: Vec<&PathElement> = l.iter().map(|(pe, _)| pe).collect();
    pes.extend(r.iter().map(|(pe, _)| pe).filter(|pe| !li.contains_key(pe)));
    for pe in pes {
        path.push(pe.clone());
        let (lv, rv) = (li.get(pe).copied(), ri.get(pe).copied());
        compare_at(lv, rv, field.item(), true, path, out);
        path.pop();
    }
    true
}

fn list_items(list: ListType, value: Option<&Value>) -> Option<Vec<(PathElement, &Value)>> {
    let items = value
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    index_lenient(list, items)
}

fn mark_presence(
    old: Option<&Value>,
    new: Option<&Value>,
    mark: bool,
    path: &[PathElement],
    out: &mut Comparison,
) {
    if !mark {
        return;
    }
    match (old, new) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

fn compare_leaf(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &[PathElement],
    out: &mut Comparison,
) {
    match (old, new) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(l), Some(r)) if l != r => out.modified.insert(path),
        _ => {}
    }
}

fn empty_map(v: Option<&Value>) -> bool {
    v.and_then(Value::as_object).is_none_or(Map::is_empty)
}

fn empty_list(v: Option<&Value>) -> bool {
    v.and_then(Value::as_array).is_none_or(Vec::is_empty)
}

fn union_keys<'a>(
    l: Option<&'a Map<String, Value>>,
    r: Option<&'a Map<String, Value>>,
) -> Vec<&'a str> {
    let mut keys: Vec<&str> = l
        .into_iter()
        .flat_map(|m| m.keys())
        .map(String::as_str)
        .collect();
    keys.extend(r.into_iter().flat_map(|m| m.keys()).map(String::as_str));
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Merges an applied configuration into a live object (upstream `Merge`).
///
/// The configuration wins on scalars and atomic lists; maps merge per key and
/// associative lists per item, keeping live-only items where they were. An
/// explicit `null` in the configuration leaves the field unset, as decoding into
/// upstream's Go types does.
pub(crate) fn merge(live: &Value, config: &Value, field: Field) -> Value {
    merge_at(Some(live), Some(config), field).unwrap_or(Value::Null)
}

fn merge_at(live: Option<&Value>, config: Option<&Value>, field: Field) -> Option<Value> {
    let Some(config) = config else {
        return live.cloned();
    };
    match (live, config) {
        (Some(Value::Object(l)), Value::Object(r)) if l.is_empty() && r.is_empty() => {
            Some(config.clone())
        }
        (None | Some(Value::Object(_)), Value::Object(r)) => {
            let l = live.and_then(Value::as_object);
            let mut out = Map::new();
            for key in union_keys(l, Some(r)) {
                let rv = r.get(key);
                if rv.is_some_and(Value::is_null) {
                    continue;
                }
                let merged = merge_at(l.and_then(|m| m.get(key)), rv, field.node.field(key));
                if let Some(value) = merged {
                    out.insert(key.to_string(), value);
                }
            }
            Some(Value::Object(out))
        }
        (None | Some(Value::Array(_)), Value::Array(r)) if field.list != ListType::Atomic => {
            let l = live
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            if l.is_empty() && r.is_empty() {
                return Some(config.clone());
            }
            match (index_lenient(field.list, l), index_lenient(field.list, r)) {
                (Some(li), Some(ri)) => Some(Value::Array(merge_items(&li, &ri, field.item()))),
                _ => Some(config.clone()),
            }
        }
        _ => Some(config.clone()),
    }
}

/// Interleaves live and applied items: applied items in applied order, live-only
/// items kept next to where they stood.
fn merge_items(
    live: &[(PathElement, &Value)],
    config: &[(PathElement, &Value)],
    item: Field,
) -> Vec<Value> {
    let (live_index, config_index) = (by_element(live), by_element(config));
    let live_of = |pe: &PathElement| live_index.get(pe).copied();
    let in_config = |pe: &PathElement| config_index.contains_key(pe);
    let mut shared = config
        .iter()
        .map(|(pe, _)| pe)
        .filter(|pe| live_of(pe).is_some());
    let mut next_shared = shared.next();
    let mut emitted: std::collections::BTreeSet<&PathElement> = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut li, mut ri) = (0, 0);
    while li < live.len() || ri < config.len() {
        if li < live.len() && ri < config.len() {
            let pe = &live[li].0;
            if *pe == config[ri].0 {
                out.extend(merge_at(Some(live[li].1), Some(config[ri].1), item));
                emitted.insert(pe);
                (li, ri) = (li + 1, ri + 1);
                next_shared = shared.next();
                continue;
            }
            if in_config(pe) && next_shared.is_some_and(|next| next != pe) {
                li += 1;
                continue;
            }
        }
        if li < live.len() {
            let pe = &live[li].0;
            if !in_config(pe) {
                out.push(live[li].1.clone());
                li += 1;
                continue;
            } else if emitted.contains(pe) {
                li += 1;
            }
        }
        if ri < config.len() {
            let pe = &config[ri].0;
            emitted.insert(pe);
            out.extend(merge_at(live_of(pe), Some(config[ri].1), item));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

/// Removes what a manager applied before (`last`) unless someone owns it now
/// (`owned`, which includes the manager's new configuration).
///
/// A struct field counts as present in a set when anything below it is (upstream
/// `EnsureNamedFieldsAreMembers`), so a struct left with no owned content goes
/// away with its unowned defaults, as upstream's prune does.
pub(crate) fn prune(value: &mut Value, field: Field, last: &FieldSet, owned: Option<&FieldSet>) {
    let present = |set: Option<&FieldSet>, pe: &PathElement, named: bool| {
        set.is_some_and(|s| s.has_member(pe) || named && s.child(pe).is_some())
    };
    match value {
        Value::Object(map) => {
            let named = !field.node.is_free_map();
            let mut doomed = Vec::new();
            for (key, child) in map.iter_mut() {
                let pe = PathElement::Field(key.clone());
                if present(Some(last), &pe, named) && !present(owned, &pe, named) {
                    doomed.push(key.clone());
                } else if let Some(below) = last.child(&pe) {
                    let owned_below = owned.and_then(|o| o.child(&pe));
                    prune(child, field.node.field(key), below, owned_below);
                }
            }
            for key in doomed {
                map.remove(&key);
            }
        }
        Value::Array(items) if field.list != ListType::Atomic => {
            let mut kept = Vec::with_capacity(items.len());
            for mut item in std::mem::take(items) {
                let Ok(pe) = item_element(field.list, &item) else {
                    kept.push(item);
                    continue;
                };
                if present(Some(last), &pe, false) && !present(owned, &pe, false) {
                    continue;
                }
                if let Some(below) = last.child(&pe) {
                    prune(
                        &mut item,
                        field.item(),
                        below,
                        owned.and_then(|o| o.child(&pe)),
                    );
                }
                kept.push(item);
            }
            *items = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
