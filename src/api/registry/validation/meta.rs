//! Object metadata, labels, annotations and label selectors (apimachinery's
//! `api/validation/objectmeta.go` and `apis/meta/v1/validation`).
//!
//! Map entries are visited in key order, where Go visits them in random order, so a
//! request with several bad labels gets its errors in a stable order.

use serde_json::Value;

use super::FieldError;
use super::field::{
    Bad, Path, forbidden, invalid, invalid_each, invalid_str, nonnegative, required, too_long,
};
use super::json::{arr, bool_of, get, int_of, obj_of, str_of, string_map, strings};
use crate::api::registry::names::{NameFn, is_dns1123_label, is_label_value, is_qualified_name};

/// Upstream `TotalAnnotationSizeLimitB`.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The name rule and scope of a kind, for [`validate_object_meta`].
#[derive(Clone, Copy)]
pub(crate) struct MetaRules {
    /// Whether objects of the kind live in a namespace.
    pub(crate) namespaced: bool,
    /// The name rule.
    pub(crate) name: NameFn,
}

/// Upstream core `ValidateObjectMeta` for create.
pub(crate) fn validate_object_meta(obj: &Value, rules: MetaRules, errs: &mut Vec<FieldError>) {
    let meta = super::json::sub(obj, "metadata");
    let path = Path::new("metadata");
    let generate_name = str_of(meta, "generateName");
    if !generate_name.is_empty() {
        let p = path.child("generateName");
        invalid_each(errs, &p, generate_name, (rules.name)(generate_name, true));
    }
    let name = str_of(meta, "name");
    if name.is_empty() {
        // With generateName the caller generates the name after validation of the prefix.
        if generate_name.is_empty() {
            errs.push(required(
                &path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        invalid_each(errs, &path.child("name"), name, (rules.name)(name, false));
    }
    let namespace = str_of(meta, "namespace");
    let ns_path = path.child("namespace");
    if rules.namespaced {
        if namespace.is_empty() {
            errs.push(required(&ns_path, ""));
        } else {
            invalid_each(errs, &ns_path, namespace, is_dns1123_label(namespace));
        }
    } else if !namespace.is_empty() {
        errs.push(forbidden(&ns_path, "not allowed on this type"));
    }
    validate_meta_common(meta, &path, errs);
    validate_finalizers(meta, &path.child("finalizers"), errs);
}

/// Upstream core `ValidateObjectMetaUpdate`, minus the identity fields the caller enforces.
pub(crate) fn validate_object_meta_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let meta = super::json::sub(new, "metadata");
    let old_meta = super::json::sub(old, "metadata");
    let path = Path::new("metadata");
    if get(old_meta, "deletionTimestamp").is_some() {
        let old_f = strings(old_meta, "finalizers");
        let mut extra: Vec<&str> = strings(meta, "finalizers")
            .into_iter()
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let listed: Vec<String> = extra.iter().map(|f| super::field::go_quote(f)).collect();
            let detail = format!(
                "no new finalizers can be added if the object is being deleted, found new \
                 finalizers []string{{{}}}",
                listed.join(", ")
            );
            errs.push(forbidden(&path.child("finalizers"), &detail));
        }
    }
    validate_meta_common(meta, &path, errs);
    for (i, f) in strings(meta, "finalizers").into_iter().enumerate() {
        validate_kube_finalizer_name(f, &path.child("finalizers").index(i), errs);
    }
}

fn validate_meta_common(meta: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    nonnegative(errs, &path.child("generation"), int_of(meta, "generation"));
    validate_labels(meta, "labels", &path.child("labels"), errs);
    validate_annotations(meta, &path.child("annotations"), errs);
    validate_owner_references(meta, &path.child("ownerReferences"), errs);
}

/// Upstream `ValidateLabels` on the map field `key` of `obj`, reported at `path`.
pub(crate) fn validate_labels(obj: &Value, key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    for (k, v) in string_map(obj, key) {
        invalid_each(errs, path, k, is_qualified_name(k));
        invalid_each(errs, path, v, is_label_value(v));
    }
}

/// Upstream `ValidateAnnotations` on the `annotations` field of `meta`.
pub(crate) fn validate_annotations(meta: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let annotations = string_map(meta, "annotations");
    let mut total = 0usize;
    for (k, v) in &annotations {
        invalid_each(errs, path, k, is_qualified_name(&k.to_lowercase()));
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn validate_owner_references(meta: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let refs = arr(meta, "ownerReferences");
    let mut first_controller: Option<String> = None;
    for (i, r) in refs.iter().enumerate() {
        let p = path.index(i);
        let api_version = str_of(r, "apiVersion");
        let mut parts = api_version.split('/');
        let (group, version) = match (parts.next(), parts.next(), parts.next()) {
            (Some(v), None, None) => ("", v),
            (Some(g), Some(v), None) => (g, v),
            _ => ("", ""),
        };
        if api_version.is_empty() {
            errs.push(required(&p.child("apiVersion"), "must not be empty"));
        } else if version.is_empty() {
            let msg = "must be <group>/<version> or <version>";
            errs.push(invalid_str(&p.child("apiVersion"), api_version, msg));
        }
        for key in ["kind", "name", "uid"] {
            if str_of(r, key).is_empty() {
                errs.push(required(&p.child(key), "must not be empty"));
            }
        }
        let kind = str_of(r, "kind");
        if group.is_empty() && version == "v1" && kind == "Event" {
            let msg = "/v1, Kind=Event is disallowed from being an owner";
            errs.push(invalid(&p, Bad::Json(r.clone()), msg));
        }
        if bool_of(r, "controller") == Some(true) {
            let current = format!("{kind}/{}", str_of(r, "name"));
            match &first_controller {
                Some(first) => {
                    let msg = format!(
                        "Only one reference can have Controller set to true. Found \"true\" in \
                         references for {first} and {current}"
                    );
                    errs.push(invalid(path, Bad::json(get(meta, "ownerReferences")), &msg));
                }
                None => first_controller = Some(current),
            }
        }
    }
}

fn validate_finalizers(meta: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let finalizers = strings(meta, "finalizers");
    for f in &finalizers {
        invalid_each(errs, path, f, is_qualified_name(f));
    }
    if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
        let msg = "finalizer orphan and foregroundDeletion cannot be both set";
        errs.push(invalid(path, Bad::json(get(meta, "finalizers")), msg));
    }
    for (i, f) in finalizers.iter().enumerate() {
        validate_kube_finalizer_name(f, &path.index(i), errs);
    }
}

/// Upstream `validateKubeFinalizerName`: unqualified finalizers must be standard ones.
pub(crate) fn validate_kube_finalizer_name(name: &str, path: &Path, errs: &mut Vec<FieldError>) {
    let standard = ["kubernetes", "orphan", "foregroundDeletion"];
    if !name.contains('/') && !standard.contains(&name) {
        let msg = "name is neither a standard finalizer name nor is it fully qualified";
        errs.push(invalid_str(path, name, msg));
    }
}

/// Upstream `ValidateLabelSelector` (strict label values).
pub(crate) fn validate_label_selector(sel: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    validate_labels(sel, "matchLabels", &path.child("matchLabels"), errs);
    for (i, expr) in arr(sel, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = strings(expr, "values");
        match str_of(expr, "operator") {
            "In" | "NotIn" if values.is_empty() => {
                let msg = "must be specified when `operator` is 'In' or 'NotIn'";
                errs.push(required(&p.child("values"), msg));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                let msg = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'";
                errs.push(forbidden(&p.child("values"), msg));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => errs.push(invalid_str(
                &p.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = str_of(expr, "key");
        invalid_each(errs, &p.child("key"), key, is_qualified_name(key));
        for (j, v) in values.iter().enumerate() {
            invalid_each(errs, &p.child("values").index(j), v, is_label_value(v));
        }
    }
}

/// A label selector as upstream's `LabelSelectorAsSelector` builds it.
pub(crate) enum Selector<'a> {
    /// A nil selector: matches nothing.
    Nothing,
    /// The requirements; no requirements match everything.
    Requirements(Vec<(&'a str, &'a str, Vec<&'a str>)>),
}

impl Selector<'_> {
    /// Whether the selector has no requirements (upstream `Selector.Empty`).
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Selector::Requirements(r) if r.is_empty())
    }

    /// Whether `labels` satisfy the selector.
    pub(crate) fn matches(&self, labels: &[(&str, &str)]) -> bool {
        let Selector::Requirements(reqs) = self else {
            return false;
        };
        reqs.iter().all(|(key, op, values)| {
            let found = labels.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
            match *op {
                "In" => found.is_some_and(|v| values.contains(&v)),
                "NotIn" => found.is_none_or(|v| !values.contains(&v)),
                "Exists" => found.is_some(),
                _ => found.is_none(),
            }
        })
    }
}

/// Upstream `LabelSelectorAsSelector`; `None` when the selector cannot be built.
pub(crate) fn as_selector(sel: Option<&Value>) -> Option<Selector<'_>> {
    let Some(sel) = sel else {
        return Some(Selector::Nothing);
    };
    let mut reqs = Vec::new();
    for (k, v) in string_map(sel, "matchLabels") {
        reqs.push((k, "In", vec![v]));
    }
    for expr in arr(sel, "matchExpressions") {
        let op = str_of(expr, "operator");
        let values = strings(expr, "values");
        let ok = match op {
            "In" | "NotIn" => !values.is_empty(),
            "Exists" | "DoesNotExist" => values.is_empty(),
            _ => false,
        };
        if !ok || !is_qualified_name(str_of(expr, "key")).is_empty() {
            return None;
        }
        reqs.push((str_of(expr, "key"), op, values));
    }
    Some(Selector::Requirements(reqs))
}

/// Whether a selector object has neither matchLabels nor matchExpressions.
pub(crate) fn selector_has_no_terms(sel: &Value) -> bool {
    obj_of(sel, "matchLabels").is_none_or(|m| m.is_empty())
        && arr(sel, "matchExpressions").is_empty()
}
