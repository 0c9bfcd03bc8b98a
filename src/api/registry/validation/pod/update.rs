//! Pod updates: which parts of a running pod's spec may change (core `ValidatePodUpdate`).
//!
//! Upstream copies the mutable fields from the old spec onto a copy of the new one and then
//! requires the two to be equal; this does the same on JSON, with [`semantic_eq`] standing
//! in for Go's semantic equality.

use serde_json::{Map, Value};

use super::super::FieldError;
use super::super::equality::{diff, opt_eq, semantic_eq};
use super::super::field::{Bad, Path, forbidden, invalid, required};
use super::super::json::{arr, get, int_of, str_of, string_map, sub};
use super::{validate_pod_only, validate_pod_spec, validate_template};

const UPDATABLE: &str = "pod updates may not change fields other than \
    `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
    `spec.tolerations` (only additions to existing tolerations),\
    `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The `PodTemplate` kind on update: the new template must be valid.
pub(crate) fn update_template(_old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_template(sub(new, "template"), &Path::new("template"), errs);
}

/// Upstream `ValidatePodUpdate` minus metadata.
pub(crate) fn validate_pod_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec");
    validate_ephemeral_update(sub(old, "spec"), sub(new, "spec"), &path, errs);
    // Ephemeral containers are checked above; the strategy lets them change
    // only through their subresource.
    let without_ephemeral = |spec: &Value| {
        let mut spec = spec.clone();
        if let Some(m) = spec.as_object_mut() {
            m.remove("ephemeralContainers");
        }
        spec
    };
    let (old_spec, new_spec) = (
        &without_ephemeral(sub(old, "spec")),
        &without_ephemeral(sub(new, "spec")),
    );
    validate_pod_spec(new_spec, &path, true, errs);
    validate_pod_only(new_spec, &path, errs);
    for list in ["containers", "initContainers"] {
        let (n, o) = (arr(new_spec, list), arr(old_spec, list));
        if n.len() != o.len() {
            errs.push(forbidden(
                &path.child(list),
                "pod updates may not add or remove containers",
            ));
            return;
        }
        for (i, c) in n.iter().enumerate() {
            if str_of(c, "image").is_empty() {
                errs.push(required(&path.child(list).index(i).child("image"), ""));
            }
        }
    }
    if !validate_active_deadline(old_spec, new_spec, &path, errs) {
        return;
    }
    validate_added_tolerations(old_spec, new_spec, &path.child("tolerations"), errs);
    validate_deleted_gates(old_spec, new_spec, &path.child("schedulingGates"), errs);
    if semantic_eq(new_spec, old_spec) {
        return;
    }
    let munged = munge(old_spec, new_spec, &path, errs);
    if !semantic_eq(&munged, old_spec) {
        let msg = format!("{UPDATABLE}\n{}", diff(old_spec, &munged));
        errs.push(forbidden(&path, &msg));
    }
}

/// Upstream `validateEphemeralContainers` on update: existing ephemeral
/// containers stay as they are; new ones need a unique name and an image
/// and may not have what only regular containers can (ports, probes,
/// lifecycle, resources).
fn validate_ephemeral_update(old: &Value, new: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let list = path.child("ephemeralContainers");
    let (olds, news) = (
        arr(old, "ephemeralContainers"),
        arr(new, "ephemeralContainers"),
    );
    for o in olds {
        let name = str_of(o, "name");
        let kept = news.iter().find(|n| str_of(n, "name") == name);
        if !kept.is_some_and(|n| semantic_eq(n, o)) {
            errs.push(forbidden(
                &list,
                &format!("existing ephemeral containers \"{name}\" may not be changed"),
            ));
        }
    }
    let mut names: Vec<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| arr(new, l).iter().map(|c| str_of(c, "name")))
        .collect();
    for (i, c) in news.iter().enumerate() {
        let p = list.index(i);
        let name = str_of(c, "name");
        if olds.iter().any(|o| str_of(o, "name") == name) {
            names.push(name);
            continue;
        }
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        } else if names.contains(&name) {
            errs.push(super::super::field::duplicate(
                &p.child("name"),
                Bad::Str(name.to_string()),
            ));
        }
        names.push(name);
        if str_of(c, "image").is_empty() {
            errs.push(required(&p.child("image"), ""));
        }
        for field in [
            "ports",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
            "resources",
        ] {
            let set = get(c, field)
                .is_some_and(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()));
            if set {
                errs.push(forbidden(
                    &p.child(field),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
    }
}

/// Returns false when an error ends the validation early, as upstream returns.
fn validate_active_deadline(
    old: &Value,
    new: &Value,
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> bool {
    let p = path.child("activeDeadlineSeconds");
    match (
        int_of(new, "activeDeadlineSeconds"),
        int_of(old, "activeDeadlineSeconds"),
    ) {
        (Some(n), _) if !(0..=2_147_483_647).contains(&n) => {
            let msg = crate::api::registry::names::inclusive_range_error(0, 2_147_483_647);
            errs.push(invalid(&p, Bad::Int(n), &msg));
            false
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(invalid(
                &p,
                Bad::Int(n),
                "must be less than or equal to previous value",
            ));
            false
        }
        (None, Some(_)) => {
            errs.push(invalid(
                &p,
                Bad::Json(Value::Null),
                "must not update from a positive integer to nil value",
            ));
            true
        }
        _ => true,
    }
}

fn without_seconds(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("tolerationSeconds");
    }
    t
}

fn validate_added_tolerations(old: &Value, new: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let new_list: Vec<Value> = arr(new, "tolerations")
        .iter()
        .map(without_seconds)
        .collect();
    for t in arr(old, "tolerations") {
        let t = without_seconds(t);
        if !new_list.iter().any(|n| semantic_eq(n, &t)) {
            let msg = "existing toleration can not be modified except its tolerationSeconds";
            errs.push(forbidden(path, msg));
            return;
        }
    }
}

fn validate_deleted_gates(old: &Value, new: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let old_names: Vec<&str> = arr(old, "schedulingGates")
        .iter()
        .map(|g| str_of(g, "name"))
        .collect();
    for (i, g) in arr(new, "schedulingGates").iter().enumerate() {
        let name = str_of(g, "name");
        if !old_names.contains(&name) {
            let msg = format!("only deletion is allowed, but found new scheduling gate '{name}'");
            errs.push(forbidden(&path.index(i).child("name"), &msg));
        }
    }
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

/// The new spec with every field a pod update may change taken from the old spec.
fn munge(old: &Value, new: &Value, path: &Path, errs: &mut Vec<FieldError>) -> Value {
    let mut munged = new.clone();
    let Some(m) = munged.as_object_mut() else {
        return munged;
    };
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = m.get_mut(list) {
            for (c, o) in cs.iter_mut().zip(arr(old, list)) {
                if let Some(cm) = c.as_object_mut() {
                    set_or_remove(cm, "image", get(o, "image"));
                }
            }
        }
    }
    for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
        set_or_remove(m, key, get(old, key));
    }
    let old_grace = int_of(old, "terminationGracePeriodSeconds");
    if old_grace.is_some_and(|g| g < 0) && int_of(new, "terminationGracePeriodSeconds") == Some(1) {
        set_or_remove(
            m,
            "terminationGracePeriodSeconds",
            get(old, "terminationGracePeriodSeconds"),
        );
    }
    if !arr(old, "schedulingGates").is_empty() {
        if !opt_eq(get(new, "nodeSelector"), get(old, "nodeSelector")) {
            let new_sel = string_map(new, "nodeSelector");
            let mutated = string_map(old, "nodeSelector")
                .iter()
                .any(|(k, v)| !new_sel.iter().any(|(nk, nv)| nk == k && nv == v));
            if mutated {
                let msg =
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)";
                errs.push(invalid(
                    &path.child("nodeSelector"),
                    Bad::json(get(new, "nodeSelector")),
                    msg,
                ));
            }
            set_or_remove(m, "nodeSelector", get(old, "nodeSelector"));
        }
        let old_na = get(sub(old, "affinity"), "nodeAffinity").cloned();
        if let Some(Value::Object(aff)) = m.get_mut("affinity") {
            set_or_remove(aff, "nodeAffinity", old_na.as_ref());
        } else if let Some(na) = old_na {
            m.insert(
                "affinity".to_string(),
                serde_json::json!({ "nodeAffinity": na }),
            );
        }
    }
    munged
}
