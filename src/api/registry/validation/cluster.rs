//! Cluster-level and bookkeeping kinds: Namespace, Node, PriorityClass (scheduling.k8s.io)
//! and Lease (coordination.k8s.io).

use serde_json::Value;

use super::field::{
    Bad, Path, duplicate, forbidden, invalid, invalid_each, invalid_str, not_supported, required,
};
use super::json::{arr, bool_of, get, int_of, obj_of, opt_str, str_of, strings, sub};
use super::meta::validate_kube_finalizer_name;
use super::netaddr::{cidr_is_ipv6, is_valid_cidr};
use super::pod::{parse_quantity, validate_quantity_value, validate_taint_effect};
use super::{FIELD_IMMUTABLE, FieldError};
use crate::api::registry::names::{is_label_value, is_qualified_name};

/// Namespace create: the spec's finalizer names.
pub(crate) fn validate_ns(obj: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("spec").child("finalizers");
    for f in strings(sub(obj, "spec"), "finalizers") {
        invalid_each(errs, &path, f, is_qualified_name(f));
        validate_kube_finalizer_name(f, &path, errs);
    }
}

/// Node create (upstream `ValidateNode` minus metadata).
pub(crate) fn validate_node(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = sub(obj, "spec");
    // Upstream reports taints under metadata; kept for identical output.
    validate_taints(spec, &Path::new("metadata").child("taints"), errs);
    validate_node_resources(obj, errs);
    let cidrs = strings(spec, "podCIDRs");
    let path = Path::new("spec").child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        errs.extend(is_valid_cidr(&path.index(i), c));
    }
    if cidrs.len() > 1 {
        let families: Vec<Option<bool>> = cidrs.iter().map(|c| cidr_is_ipv6(c)).collect();
        let dual = cidrs.len() == 2
            && families[0].is_some()
            && families[1].is_some()
            && families[0] != families[1];
        if !dual {
            let msg = "may specify no more than one CIDR for each IP family";
            errs.push(invalid(&path, Bad::json(get(spec, "podCIDRs")), msg));
        }
        for (i, c) in cidrs.iter().enumerate() {
            if cidrs[..i].contains(c) {
                errs.push(duplicate(&path.index(i), Bad::s(c)));
            }
        }
    }
}

fn validate_taints(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let mut seen: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for (i, t) in arr(spec, "taints").iter().enumerate() {
        let p = path.index(i);
        let (key, value, effect) = (str_of(t, "key"), str_of(t, "value"), str_of(t, "effect"));
        invalid_each(errs, &p.child("key"), key, is_qualified_name(key));
        let msgs = is_label_value(value);
        if !msgs.is_empty() {
            errs.push(invalid_str(&p.child("value"), value, &msgs.join(";")));
        }
        if effect.is_empty() {
            errs.push(required(&p.child("effect"), ""));
        } else {
            validate_taint_effect(effect, &p.child("effect"), errs);
        }
        if seen.contains(&(key, effect)) {
            let mut e = duplicate(&p, Bad::Json(t.clone()));
            e.message
                .push_str(": taints must be unique by key and effect pair");
            errs.push(e);
            continue;
        }
        seen.insert((key, effect));
    }
}

fn validate_node_resources(obj: &Value, errs: &mut Vec<FieldError>) {
    let status = sub(obj, "status");
    for list in ["capacity", "allocatable"] {
        for (name, value) in obj_of(status, list).into_iter().flatten() {
            let p = Path::new("status").child(list).child(name);
            if let Some(q) = parse_quantity(value, &p, errs) {
                validate_quantity_value(name, &q, &p, errs);
            }
        }
    }
}

/// Node update (upstream `ValidateNodeUpdate` minus metadata).
pub(crate) fn update_node(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (os, ns) = (sub(old, "spec"), sub(new, "spec"));
    validate_node_resources(new, errs);
    let addrs = arr(sub(new, "status"), "addresses");
    for (i, a) in addrs.iter().enumerate() {
        if addrs[..i].contains(a) {
            let p = Path::new("status").child("addresses").index(i);
            errs.push(duplicate(&p, Bad::Json(a.clone())));
        }
    }
    let (old_cidrs, new_cidrs) = (strings(os, "podCIDRs"), strings(ns, "podCIDRs"));
    if !old_cidrs.is_empty() {
        let msg = "node updates may not change podCIDR except from \"\" to valid";
        let p = Path::new("spec").child("podCIDRs");
        if old_cidrs.len() != new_cidrs.len() {
            errs.push(forbidden(&p, msg));
        } else {
            for (o, n) in old_cidrs.iter().zip(&new_cidrs) {
                if o != n {
                    errs.push(forbidden(&p, msg));
                }
            }
        }
    }
    let old_provider = str_of(os, "providerID");
    if !old_provider.is_empty() && old_provider != str_of(ns, "providerID") {
        let msg = "node updates may not change providerID except from \"\" to valid";
        errs.push(forbidden(&Path::new("spec").child("providerID"), msg));
    }
    validate_taints(ns, &Path::new("metadata").child("taints"), errs);
    if str_of(os, "externalID") != str_of(ns, "externalID") {
        errs.push(forbidden(
            &Path::new("spec").child("externalID"),
            "may not be updated",
        ));
    }
}

/// PriorityClass create (upstream `ValidatePriorityClass` minus metadata).
pub(crate) fn validate_pc(obj: &Value, errs: &mut Vec<FieldError>) {
    let name = str_of(sub(obj, "metadata"), "name");
    let value = int_of(obj, "value").unwrap_or(0);
    let global_default = bool_of(obj, "globalDefault") == Some(true);
    if name.starts_with("system-") {
        let known = [
            ("system-cluster-critical", 2_000_000_000),
            ("system-node-critical", 2_000_001_000),
        ];
        let problem = match known.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((n, v)) if *v != value => Some(format!("value of {n} PriorityClass must be {v}")),
            Some((n, _)) if global_default => {
                Some(format!("globalDefault of {n} PriorityClass must be false"))
            }
            Some(_) => None,
        };
        if let Some(err) = problem {
            let msg = format!(
                "priority class names with 'system-' prefix are reserved for system use only. error: {err}"
            );
            errs.push(forbidden(&Path::new("metadata").child("name"), &msg));
        }
    } else if value > 1_000_000_000 {
        let msg = "maximum allowed value of a user defined priority is 1000000000";
        errs.push(forbidden(&Path::new("value"), msg));
    }
    if let Some(policy) = opt_str(obj, "preemptionPolicy") {
        let p = Path::new("preemptionPolicy");
        match policy {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required(&p, "")),
            other => errs.push(not_supported(
                &p,
                Bad::s(other),
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
}

/// PriorityClass update: value and preemption policy are immutable.
pub(crate) fn update_pc(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if int_of(old, "value") != int_of(new, "value") {
        errs.push(forbidden(
            &Path::new("value"),
            "may not be changed in an update.",
        ));
    }
    if opt_str(old, "preemptionPolicy") != opt_str(new, "preemptionPolicy") {
        let bad = Bad::json(get(new, "preemptionPolicy"));
        errs.push(invalid(
            &Path::new("preemptionPolicy"),
            bad,
            FIELD_IMMUTABLE,
        ));
    }
}

/// Lease create (upstream `ValidateLeaseSpec`).
pub(crate) fn validate_lease(obj: &Value, errs: &mut Vec<FieldError>) {
    let (spec, path) = (sub(obj, "spec"), Path::new("spec"));
    if let Some(d) = int_of(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(invalid(
            &path.child("leaseDurationSeconds"),
            Bad::Int(d),
            "must be greater than 0",
        ));
    }
    if let Some(t) = int_of(spec, "leaseTransitions").filter(|t| *t < 0) {
        let msg = "must be greater than or equal to 0";
        errs.push(invalid(&path.child("leaseTransitions"), Bad::Int(t), msg));
    }
    let strategy = opt_str(spec, "strategy");
    if let Some(s) = strategy.filter(|s| *s != "OldestEmulationVersion") {
        errs.push(not_supported(
            &path.child("strategy"),
            Bad::s(s),
            &["OldestEmulationVersion"],
        ));
    }
    let preferred = opt_str(spec, "preferredHolder").unwrap_or("");
    if !preferred.is_empty() && strategy.unwrap_or("").is_empty() {
        let msg = "may only be specified if `strategy` is defined";
        errs.push(forbidden(&path.child("preferredHolder"), msg));
    }
}

/// Lease update: the new spec must be valid.
pub(crate) fn update_lease(_old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_lease(new, errs);
}
