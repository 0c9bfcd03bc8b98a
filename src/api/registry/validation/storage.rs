//! PersistentVolumeClaims, and the claim templates of generic ephemeral volumes (core
//! `ValidatePersistentVolumeClaimSpec` and `ValidatePersistentVolumeClaimUpdate`).

use std::cmp::Ordering;

use serde_json::Value;

use super::equality::{diff, opt_eq, semantic_eq};
use super::field::{
    Bad, Path, forbidden, invalid, invalid_each, invalid_str, not_supported, required,
};
use super::json::{get, obj_of, opt_str, str_of, strings, sub};
use super::meta::{validate_annotations, validate_label_selector, validate_labels};
use super::pod::{parse_quantity, validate_quantity_value};
use super::quantity::{self, Quantity};
use super::{FIELD_IMMUTABLE, FieldError};
use crate::api::registry::names::{is_dns1123_label, is_dns1123_subdomain, name_is_dns_subdomain};

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// PVC create.
pub(crate) fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_claim_spec(sub(obj, "spec"), &Path::new("spec"), errs);
}

/// Upstream `ValidatePersistentVolumeClaimTemplate`: labels, annotations and the spec.
pub(crate) fn validate_claim_template(t: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let meta = sub(t, "metadata");
    let mp = path.child("metadata");
    validate_annotations(meta, &mp.child("annotations"), errs);
    validate_labels(meta, "labels", &mp.child("labels"), errs);
    if let Some(m) = meta.as_object() {
        for key in m.keys().filter(|k| *k != "labels" && *k != "annotations") {
            if get(meta, key).is_some_and(|v| !super::equality::is_zero(v)) {
                errs.push(forbidden(&mp.child(key), "cannot be set"));
            }
        }
    }
    validate_claim_spec(sub(t, "spec"), &path.child("spec"), errs);
}

fn validate_claim_spec(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    validate_access_modes(spec, &path.child("accessModes"), errs);
    if let Some(sel) = get(spec, "selector") {
        validate_label_selector(sel, &path.child("selector"), errs);
    }
    let sp = path.child("resources").key("storage");
    match get(sub(sub(spec, "resources"), "requests"), "storage") {
        None => errs.push(required(&sp, "")),
        Some(v) => match parse_quantity(v, &sp, errs) {
            Some(q) if q.is_zero() || q.is_negative() => {
                errs.push(invalid_str(
                    &sp,
                    &q.canonical(),
                    "must be greater than zero",
                ));
            }
            Some(q) => validate_quantity_value("storage", &q, &sp, errs),
            None => {}
        },
    }
    for key in ["storageClassName", "volumeAttributesClassName"] {
        if let Some(class) = opt_str(spec, key).filter(|c| !c.is_empty()) {
            let msgs = name_is_dns_subdomain(class, false);
            invalid_each(errs, &path.child(key), class, msgs);
        }
    }
    let mode = opt_str(spec, "volumeMode");
    if let Some(mode) = mode.filter(|m| *m != "Block" && *m != "Filesystem") {
        let valid = ["Block", "Filesystem"];
        errs.push(not_supported(
            &path.child("volumeMode"),
            Bad::s(mode),
            &valid,
        ));
    }
    validate_data_sources(spec, path, errs);
}

fn validate_access_modes(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let modes = strings(spec, "accessModes");
    if modes.is_empty() {
        errs.push(required(path, "at least 1 access mode is required"));
    }
    let (mut rwop, mut other) = (false, false);
    for mode in &modes {
        if !ACCESS_MODES.contains(mode) {
            errs.push(not_supported(path, Bad::s(mode), &ACCESS_MODES));
        } else if *mode == "ReadWriteOncePod" {
            rwop = true;
        } else {
            other = true;
        }
    }
    if rwop && other {
        errs.push(forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

fn validate_data_sources(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for key in ["dataSource", "dataSourceRef"] {
        let Some(ds) = get(spec, key) else { continue };
        let p = path.child(key);
        for field in ["name", "kind"] {
            if str_of(ds, field).is_empty() {
                errs.push(required(&p.child(field), ""));
            }
        }
        let (group, kind) = (str_of(ds, "apiGroup"), str_of(ds, "kind"));
        if group.is_empty() && kind != "PersistentVolumeClaim" {
            let msg = "must be 'PersistentVolumeClaim' when referencing the default apiGroup";
            errs.push(invalid_str(&p, kind, msg));
        }
        if !group.is_empty() {
            invalid_each(
                errs,
                &p.child("apiGroup"),
                group,
                is_dns1123_subdomain(group),
            );
        }
        if let Some(ns) = opt_str(ds, "namespace").filter(|n| !n.is_empty()) {
            invalid_each(errs, &p.child("namespace"), ns, is_dns1123_label(ns));
        }
    }
    let (ds, dsr) = (get(spec, "dataSource"), get(spec, "dataSourceRef"));
    let ref_ns = dsr.and_then(|r| opt_str(r, "namespace")).unwrap_or("");
    let path_bad = || Bad::s(path.child("dataSource").as_str());
    if !ref_ns.is_empty() {
        if ds.is_some() {
            let msg = "may not be specified when dataSourceRef.namespace is specified";
            errs.push(invalid(path, path_bad(), msg));
        }
    } else if let (Some(a), Some(b)) = (ds, dsr) {
        let same = ["apiGroup", "kind", "name"]
            .iter()
            .all(|k| opt_str(a, k) == opt_str(b, k));
        if !same {
            errs.push(invalid(path, path_bad(), "must match dataSourceRef"));
        }
    }
}

fn storage_request(spec: &Value) -> Option<Quantity> {
    let v = get(sub(sub(spec, "resources"), "requests"), "storage")?;
    quantity::parse(v.as_str()?).ok()
}

/// PVC update: the spec is immutable except storage requests of bound claims, a first
/// `volumeName`, and `storageClassName` set from nil; storage may not shrink.
pub(crate) fn update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate(new, errs);
    let (os, ns) = (sub(old, "spec"), sub(new, "spec"));
    let (mut o, mut n) = (os.clone(), ns.clone());
    if str_of(os, "volumeName").is_empty()
        && let Some(m) = o.as_object_mut()
    {
        m.remove("volumeName");
        if let Some(v) = get(ns, "volumeName") {
            m.insert("volumeName".to_string(), v.clone());
        }
    }
    let bound = str_of(sub(new, "status"), "phase") == "Bound";
    if let Some(m) = n.as_object_mut() {
        // Setting a class on a claim that had none is allowed once.
        if get(os, "storageClassName").is_none() {
            m.remove("storageClassName");
        }
        if bound {
            match get(os, "volumeAttributesClassName") {
                Some(v) => m.insert("volumeAttributesClassName".to_string(), v.clone()),
                None => m.remove("volumeAttributesClassName"),
            };
        }
    }
    let old_storage = get(sub(sub(os, "resources"), "requests"), "storage").cloned();
    if bound
        && let Some(req) = n
            .pointer_mut("/resources/requests")
            .and_then(Value::as_object_mut)
    {
        match old_storage {
            Some(v) => req.insert("storage".to_string(), v),
            None => req.remove("storage"),
        };
    }
    if !semantic_eq(&n, &o) {
        let msg = format!(
            "spec is immutable after creation except resources.requests and \
             volumeAttributesClassName for bound claims\n{}",
            diff(&o, &n)
        );
        errs.push(forbidden(&Path::new("spec"), &msg));
    }
    validate_storage_shrink(old, new, errs);
    if !opt_eq(get(os, "volumeMode"), get(ns, "volumeMode")) {
        errs.push(invalid(
            &Path::new("volumeMode"),
            Bad::json(get(ns, "volumeMode")),
            FIELD_IMMUTABLE,
        ));
    }
}

fn validate_storage_shrink(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (Some(old_size), Some(new_size)) = (
        storage_request(sub(old, "spec")),
        storage_request(sub(new, "spec")),
    ) else {
        return;
    };
    if new_size.cmp_value(&old_size) != Ordering::Less {
        return;
    }
    let capacity = obj_of(sub(old, "status"), "capacity")
        .and_then(|c| c.get("storage"))
        .and_then(Value::as_str)
        .and_then(|s| quantity::parse(s).ok());
    let below_status = capacity.is_none_or(|c| new_size.cmp_value(&c) != Ordering::Greater);
    if below_status {
        let p = Path::new("spec")
            .child("resources")
            .child("requests")
            .child("storage");
        errs.push(forbidden(&p, "field can not be less than status.capacity"));
    }
}
