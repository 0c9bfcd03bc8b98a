//! RBAC: Roles, ClusterRoles and their bindings (`pkg/apis/rbac/validation`).

use serde_json::Value;

use super::FieldError;
use super::field::{Bad, Path, invalid, invalid_each, not_supported, required};
use super::json::{arr, get, str_of, sub};
use super::meta::validate_label_selector;
use crate::api::registry::names::{is_valid_path_segment_name, name_is_dns_subdomain};

const GROUP: &str = "rbac.authorization.k8s.io";

/// Upstream `ValidatePolicyRule`.
fn validate_rule(rule: &Value, namespaced: bool, path: &Path, errs: &mut Vec<FieldError>) {
    if arr(rule, "verbs").is_empty() {
        errs.push(required(
            &path.child("verbs"),
            "verbs must contain at least one value",
        ));
    }
    if !arr(rule, "nonResourceURLs").is_empty() {
        let p = path.child("nonResourceURLs");
        let bad = || Bad::json(get(rule, "nonResourceURLs"));
        if namespaced {
            errs.push(invalid(
                &p,
                bad(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        let mixed = ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|k| !arr(rule, k).is_empty());
        if mixed {
            let msg = "rules cannot apply to both regular resources and non-resource URLs";
            errs.push(invalid(&p, bad(), msg));
        }
        return;
    }
    if arr(rule, "apiGroups").is_empty() {
        let msg = "resource rules must supply at least one api group";
        errs.push(required(&path.child("apiGroups"), msg));
    }
    if arr(rule, "resources").is_empty() {
        errs.push(required(
            &path.child("resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

fn validate_rules(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in arr(obj, "rules").iter().enumerate() {
        validate_rule(rule, namespaced, &Path::new("rules").index(i), errs);
    }
}

/// Role create.
pub(crate) fn validate_role(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_rules(obj, true, errs);
}

/// Role update.
pub(crate) fn update_role(_old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_role(new, errs);
}

/// ClusterRole create, including its aggregation rule.
pub(crate) fn validate_cluster_role(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_rules(obj, false, errs);
    let Some(agg) = get(obj, "aggregationRule") else {
        return;
    };
    let path = Path::new("aggregationRule").child("clusterRoleSelectors");
    let selectors = arr(agg, "clusterRoleSelectors");
    if selectors.is_empty() {
        let msg = "at least one clusterRoleSelector required if aggregationRule is non-nil";
        errs.push(required(&path, msg));
    }
    for (i, sel) in selectors.iter().enumerate() {
        validate_label_selector(sel, &path.index(i), errs);
    }
}

/// ClusterRole update.
pub(crate) fn update_cluster_role(_old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_cluster_role(new, errs);
}

fn validate_binding(obj: &Value, kinds: &[&str], namespaced: bool, errs: &mut Vec<FieldError>) {
    let role_ref = sub(obj, "roleRef");
    let rp = Path::new("roleRef");
    let group = str_of(role_ref, "apiGroup");
    if group != GROUP {
        errs.push(not_supported(
            &rp.child("apiGroup"),
            Bad::s(group),
            &[GROUP],
        ));
    }
    let kind = str_of(role_ref, "kind");
    if !kinds.contains(&kind) {
        errs.push(not_supported(&rp.child("kind"), Bad::s(kind), kinds));
    }
    let name = str_of(role_ref, "name");
    if name.is_empty() {
        errs.push(required(&rp.child("name"), ""));
    } else {
        invalid_each(
            errs,
            &rp.child("name"),
            name,
            is_valid_path_segment_name(name),
        );
    }
    for (i, subject) in arr(obj, "subjects").iter().enumerate() {
        validate_subject(subject, namespaced, &Path::new("subjects").index(i), errs);
    }
}

/// Upstream `ValidateRoleBindingSubject`.
fn validate_subject(subject: &Value, namespaced: bool, path: &Path, errs: &mut Vec<FieldError>) {
    let name = str_of(subject, "name");
    if name.is_empty() {
        errs.push(required(&path.child("name"), ""));
    }
    let group = str_of(subject, "apiGroup");
    match str_of(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                invalid_each(
                    errs,
                    &path.child("name"),
                    name,
                    name_is_dns_subdomain(name, false),
                );
            }
            if !group.is_empty() {
                errs.push(not_supported(&path.child("apiGroup"), Bad::s(group), &[""]));
            }
            if !namespaced && str_of(subject, "namespace").is_empty() {
                errs.push(required(&path.child("namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                errs.push(not_supported(
                    &path.child("apiGroup"),
                    Bad::s(group),
                    &[GROUP],
                ));
            }
        }
        other => {
            let valid = ["ServiceAccount", "User", "Group"];
            errs.push(not_supported(&path.child("kind"), Bad::s(other), &valid));
        }
    }
}

fn role_ref_unchanged(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (o, n) = (sub(old, "roleRef"), sub(new, "roleRef"));
    let same = ["apiGroup", "kind", "name"]
        .iter()
        .all(|k| str_of(o, k) == str_of(n, k));
    if !same {
        let bad = Bad::Raw(format!(
            "{{\"APIGroup\":{},\"Kind\":{},\"Name\":{}}}",
            Value::String(str_of(n, "apiGroup").to_string()),
            Value::String(str_of(n, "kind").to_string()),
            Value::String(str_of(n, "name").to_string())
        ));
        errs.push(invalid(&Path::new("roleRef"), bad, "cannot change roleRef"));
    }
}

/// RoleBinding create.
pub(crate) fn validate_rb(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_binding(obj, &["Role", "ClusterRole"], true, errs);
}

/// RoleBinding update: the roleRef may not change.
pub(crate) fn update_rb(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_rb(new, errs);
    role_ref_unchanged(old, new, errs);
}

/// ClusterRoleBinding create.
pub(crate) fn validate_crb(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_binding(obj, &["ClusterRole"], false, errs);
}

/// ClusterRoleBinding update: the roleRef may not change.
pub(crate) fn update_crb(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_crb(new, errs);
    role_ref_unchanged(old, new, errs);
}
