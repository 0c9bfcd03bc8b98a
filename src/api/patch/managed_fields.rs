//! `metadata.managedFields`: decoding, encoding and tracking of non-apply writes.
//!
//! Mirrors k8s.io/apimachinery `managedfields/internal`: entries are keyed by
//! manager identity (name, operation, subresource, and apiVersion for updates
//! only), encoded sorted as upstream sorts them, with at most ten update entries
//! (older ones fold into `ancient-changes`). [`update_managed_fields`] is
//! upstream's `FieldManager.UpdateNoErrors`: it never fails; undecodable
//! managedFields fall back to the live object's, then to none, as upstream does.
//! The object's type for list keys comes from its own `apiVersion`/`kind`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::fieldpath::{FieldSet, PathElement};
use super::{TypeRef, schema, typed};

/// Upstream `DefaultMaxUpdateManagers`.
const MAX_UPDATE_MANAGERS: usize = 10;
/// Manager name of the bucket old update entries are merged into.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Identity of a managedFields entry (upstream `BuildManagerIdentifier`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ManagerId {
    /// Manager name (`"unknown"` when the request named none).
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// API version, empty for appliers so re-applies at another version match.
    pub api_version: String,
    /// Subresource written through, empty for the main resource.
    pub subresource: String,
}

impl ManagerId {
    /// Identity of an entry for `manager` doing `operation` at `api_version`.
    pub(crate) fn new(
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: &str,
    ) -> Self {
        let manager = if manager.is_empty() {
            "unknown"
        } else {
            manager
        };
        ManagerId {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: if operation == "Apply" {
                ""
            } else {
                api_version
            }
            .to_string(),
            subresource: subresource.to_string(),
        }
    }

    /// Upstream's identifier string, whose order conflict messages follow.
    pub(crate) fn identifier(&self) -> String {
        let mut fields = vec![format!("\"manager\":{}", json!(self.manager))];
        for (name, value) in [
            ("operation", &self.operation),
            ("apiVersion", &self.api_version),
        ] {
            if !value.is_empty() {
                fields.push(format!("\"{name}\":{}", json!(value)));
            }
        }
        if !self.subresource.is_empty() {
            fields.push(format!("\"subresource\":{}", json!(self.subresource)));
        }
        format!("{{{}}}", fields.join(","))
    }

    /// Upstream `printManager`: `"kubectl" using apps/v1`.
    pub(crate) fn describe(&self) -> String {
        let mut out = json!(self.manager).to_string();
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {}", json!(self.subresource)));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// The fields one manager owns, at one API version, last touched at `time`.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// Owned fields.
    pub set: FieldSet,
    /// API version the fields were written at.
    pub api_version: String,
    /// RFC 3339 time of the last change, if recorded.
    pub time: Option<String>,
}

/// All managers of an object.
pub(crate) type Managers = BTreeMap<ManagerId, Entry>;

/// Decodes `metadata.managedFields` of `obj` (absent means no managers).
pub(crate) fn decode(obj: &Value) -> Result<Managers, String> {
    let mut managers = Managers::new();
    let entries = match obj.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => return Ok(managers),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err("managedFields must be a list".to_string()),
    };
    for (index, entry) in entries.iter().enumerate() {
        let text = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
        let operation = text("operation");
        if operation != "Apply" && operation != "Update" {
            return Err("operation must be `Apply` or `Update`".to_string());
        }
        if text("apiVersion").is_empty() {
            return Err("apiVersion must not be empty".to_string());
        }
        match text("fieldsType") {
            "FieldsV1" => {}
            "" => {
                return Err(format!(
                    "missing fieldsType in managed fields entry {index}"
                ));
            }
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {index}"
                ));
            }
        }
        let set = match entry.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::default(),
            Some(fields) => {
                FieldSet::from_fields_v1(fields).map_err(|e| format!("error decoding set: {e}"))?
            }
        };
        let id = ManagerId::new(
            text("manager"),
            operation,
            text("apiVersion"),
            text("subresource"),
        );
        let time = entry
            .get("time")
            .and_then(Value::as_str)
            .map(str::to_string);
        let api_version = text("apiVersion").to_string();
        managers.insert(
            id,
            Entry {
                set,
                api_version,
                time,
            },
        );
    }
    Ok(managers)
}

/// Writes `managers` to `obj`'s `metadata.managedFields` (removed when empty).
pub(crate) fn encode_onto(obj: &mut Value, managers: &Managers) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if managers.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let mut entries: Vec<(&ManagerId, &Entry)> = managers.iter().collect();
    entries.sort_by(|(a, ae), (b, be)| {
        let time = |e: &Entry| e.time.clone().unwrap_or_default();
        (
            &a.operation,
            time(ae),
            &a.manager,
            &ae.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                time(be),
                &b.manager,
                &be.api_version,
                &b.subresource,
            ))
    });
    let encoded = entries.into_iter().map(|(id, entry)| {
        let mut out = Map::new();
        out.insert("manager".into(), json!(id.manager));
        out.insert("operation".into(), json!(id.operation));
        out.insert("apiVersion".into(), json!(entry.api_version));
        if let Some(time) = &entry.time {
            out.insert("time".into(), json!(time));
        }
        out.insert("fieldsType".into(), json!("FieldsV1"));
        out.insert("fieldsV1".into(), entry.set.to_fields_v1());
        if !id.subresource.is_empty() {
            out.insert("subresource".into(), json!(id.subresource));
        }
        Value::Object(out)
    });
    meta.insert("managedFields".into(), Value::Array(encoded.collect()));
}

/// A copy of `obj` without `metadata.managedFields` (the form ownership is computed on).
pub(crate) fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    out
}

/// Removes the fields nobody may own (upstream `stripMetaManager`).
pub(crate) fn strip_meta(set: &FieldSet) -> FieldSet {
    let mut strip = FieldSet::default();
    let field = |name: &str| PathElement::Field(name.to_string());
    strip.insert(&[field("apiVersion")]);
    strip.insert(&[field("kind")]);
    strip.insert(&[field("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        strip.insert(&[field("metadata"), field(name)]);
    }
    set.difference(&strip)
}

/// The type of `obj` from its own `apiVersion` and `kind`, with its CRD's
/// schema when it is a custom object.
pub(crate) fn type_of<'a>(
    obj: &'a Value,
    schema: Option<&'static crate::api::custom::schema::Node>,
) -> TypeRef<'a> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    TypeRef {
        group: api_version.rsplit_once('/').map_or("", |(group, _)| group),
        kind: obj.get("kind").and_then(Value::as_str).unwrap_or_default(),
        schema,
    }
}

/// Folds the oldest update entries into `ancient-changes` buckets beyond ten.
pub(crate) fn cap_update_managers(managers: &mut Managers) {
    let mut updaters: Vec<ManagerId> = managers
        .keys()
        .filter(|id| id.operation != "Apply")
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by_cached_key(|id| {
        let time = managers
            .get(id)
            .and_then(|e| e.time.clone())
            .unwrap_or_default();
        (time, id.identifier())
    });
    let mut remaining = updaters.len();
    let mut first_of_version: BTreeMap<String, ManagerId> = BTreeMap::new();
    for id in updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managers.get(&id).cloned() else {
            continue;
        };
        let bucket = ManagerId::new(ANCIENT_CHANGES, "Update", &entry.api_version, "");
        let Some(first) = first_of_version.get(&entry.api_version) else {
            first_of_version.insert(entry.api_version.clone(), id);
            continue;
        };
        if !managers.contains_key(&bucket)
            && let Some(moved) = managers.remove(first)
        {
            managers.insert(bucket.clone(), moved);
        }
        managers.remove(&id);
        if let Some(target) = managers.get_mut(&bucket) {
            target.set = entry.set.union(&target.set);
            target.time = entry.time;
        }
        remaining -= 1;
    }
}

/// Tracks ownership for a create/update/patch (upstream `FieldManager.Update`):
/// `manager` takes every field the write changed, other managers lose them and
/// managers left with nothing are dropped. `old` is `None` for a create.
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    now_rfc3339: &str,
) {
    update_managed_fields_for_subresource(
        old,
        new,
        &Writer {
            manager,
            operation,
            api_version,
            subresource: "",
            schema: None,
        },
        now_rfc3339,
    );
}

/// Who writes, for managed-fields tracking.
pub struct Writer<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// `Update` or `Apply`.
    pub operation: &'a str,
    /// The API version written through.
    pub api_version: &'a str,
    /// The subresource (`""` for the main resource).
    pub subresource: &'a str,
    /// A custom object's CRD schema.
    pub schema: Option<&'static crate::api::custom::schema::Node>,
}

/// [`update_managed_fields`] for a write through a subresource such as `status`:
/// the entry records the subresource and managedFields sent in the request are
/// ignored, as upstream ignores them on subresources.
pub fn update_managed_fields_for_subresource(
    old: Option<&Value>,
    new: &mut Value,
    writer: &Writer<'_>,
    now_rfc3339: &str,
) {
    let Writer {
        manager,
        operation,
        api_version,
        subresource,
        schema,
    } = *writer;
    if !new.is_object() {
        return;
    }
    let empty = Value::Object(Map::new());
    let old = old.unwrap_or(&empty);
    let mut managers = managers_for_update(old, new, !subresource.is_empty());
    let old_clean = without_managed_fields(old);
    let new_clean = without_managed_fields(new);
    let typed_by = if new_clean.get("kind").is_some() {
        &new_clean
    } else {
        &old_clean
    };
    let field = schema::root(type_of(typed_by, schema));
    let comparison = typed::compare(&old_clean, &new_clean, field);
    let changed = comparison.modified.union(&comparison.added);
    for entry in managers.values_mut() {
        entry.set = entry
            .set
            .difference(&changed)
            .difference(&comparison.removed);
    }
    managers.retain(|_, entry| !entry.set.is_empty());
    let mine = strip_meta(&changed);
    if !mine.is_empty() {
        let id = ManagerId::new(manager, operation, api_version, subresource);
        let previous = managers.remove(&id).map(|e| e.set).unwrap_or_default();
        let entry = Entry {
            set: mine.union(&previous),
            api_version: api_version.to_string(),
            time: Some(now_rfc3339.to_string()),
        };
        managers.insert(id, entry);
    }
    cap_update_managers(&mut managers);
    *new = new_clean;
    encode_onto(new, &managers);
}

/// Upstream `decodeLiveOrNew`: the request's managedFields win unless absent,
/// undecodable, or sent through a subresource; `[]` or `[{}]` resets tracking.
fn managers_for_update(old: &Value, new: &Value, subresource: bool) -> Managers {
    let from_old = || decode(old).unwrap_or_default();
    if subresource {
        return from_old();
    }
    let reset = match new.pointer("/metadata/managedFields") {
        // Upstream: `[{}]` resets; `[]` does not ("so managedFields never
        // get stripped by clients not aware of the field").
        Some(Value::Array(entries)) => {
            entries.len() == 1 && entries[0].as_object().is_some_and(Map::is_empty)
        }
        _ => false,
    };
    if reset {
        return Managers::new();
    }
    match decode(new) {
        Ok(managers) if !managers.is_empty() => managers,
        _ => from_old(),
    }
}

#[cfg(test)]
mod tests;
