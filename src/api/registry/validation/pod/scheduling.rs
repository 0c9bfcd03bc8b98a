//! Scheduling-related parts of a pod spec: tolerations, affinity, topology spread,
//! scheduling and readiness gates, DNS configuration and host aliases.

use serde_json::Value;

use super::super::FieldError;
use super::super::field::{
    Bad, Path, duplicate, forbidden, invalid, invalid_each, invalid_str, not_supported, required,
};
use super::super::json::{arr, get, int_of, opt_str, str_of, strings};
use super::super::meta::validate_label_selector;
use super::super::netaddr::is_valid_ip;
use crate::api::registry::names::{
    is_dns1123_label, is_dns1123_subdomain, is_dns1123_subdomain_with_underscore, is_label_value,
    is_qualified_name,
};

/// Upstream `ValidateTolerations`.
pub(crate) fn validate_tolerations(tolerations: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let (key, op, value, effect) = (
            str_of(t, "key"),
            str_of(t, "operator"),
            str_of(t, "value"),
            str_of(t, "effect"),
        );
        if !key.is_empty() {
            invalid_each(errs, &p.child("key"), key, is_qualified_name(key));
        }
        if key.is_empty() && op != "Exists" {
            let msg = "operator must be Exists when `key` is empty, which means \"match all values and all keys\"";
            errs.push(invalid_str(&p.child("operator"), op, msg));
        }
        if get(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            let msg = "effect must be 'NoExecute' when `tolerationSeconds` is set";
            errs.push(invalid_str(&p.child("effect"), effect, msg));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_label_value(value);
                if !msgs.is_empty() {
                    errs.push(invalid_str(&p.child("operator"), value, &msgs.join(";")));
                }
            }
            "Exists" if !value.is_empty() => {
                let msg = "value must be empty when `operator` is 'Exists'";
                errs.push(invalid_str(&p.child("operator"), value, msg));
            }
            "Exists" => {}
            other => errs.push(not_supported(
                &p.child("operator"),
                Bad::s(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            validate_taint_effect(effect, &p.child("effect"), errs);
        }
    }
}

/// Upstream `validateTaintEffect` for a non-empty effect.
pub(crate) fn validate_taint_effect(effect: &str, path: &Path, errs: &mut Vec<FieldError>) {
    let valid = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if !valid.contains(&effect) {
        errs.push(not_supported(path, Bad::s(effect), &valid));
    }
}

/// Upstream `validateAffinity`.
pub(crate) fn validate_affinity(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(affinity) = get(spec, "affinity") else {
        return;
    };
    if let Some(na) = get(affinity, "nodeAffinity") {
        let np = path.child("nodeAffinity");
        let req_key = "requiredDuringSchedulingIgnoredDuringExecution";
        if let Some(req) = get(na, req_key) {
            validate_node_selector(req, true, &np.child(req_key), errs);
        }
        let pref_key = "preferredDuringSchedulingIgnoredDuringExecution";
        for (i, term) in arr(na, pref_key).iter().enumerate() {
            let p = np.child(pref_key).index(i);
            validate_weight(term, &p, errs);
            let pref = super::super::json::sub(term, "preference");
            validate_node_selector_term(pref, false, &p.child("preference"), errs);
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = get(affinity, kind) else {
            continue;
        };
        let kp = path.child(kind);
        let req_key = "requiredDuringSchedulingIgnoredDuringExecution";
        for (i, term) in arr(pa, req_key).iter().enumerate() {
            validate_pod_affinity_term(term, &kp.child(req_key).index(i), errs);
        }
        let pref_key = "preferredDuringSchedulingIgnoredDuringExecution";
        for (i, w) in arr(pa, pref_key).iter().enumerate() {
            let p = kp.child(pref_key).index(i);
            validate_weight(w, &p, errs);
            let term = super::super::json::sub(w, "podAffinityTerm");
            validate_pod_affinity_term(term, &p.child("podAffinityTerm"), errs);
        }
    }
}

fn validate_weight(term: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let weight = int_of(term, "weight").unwrap_or(0);
    if !(1..=100).contains(&weight) {
        errs.push(invalid(
            &path.child("weight"),
            Bad::Int(weight),
            "must be in the range 1-100",
        ));
    }
}

/// Upstream `ValidateNodeSelector`.
fn validate_node_selector(sel: &Value, strict: bool, path: &Path, errs: &mut Vec<FieldError>) {
    let terms = arr(sel, "nodeSelectorTerms");
    let tp = path.child("nodeSelectorTerms");
    if terms.is_empty() {
        errs.push(required(&tp, "must have at least one node selector term"));
        return;
    }
    for (i, term) in terms.iter().enumerate() {
        validate_node_selector_term(term, strict, &tp.index(i), errs);
    }
}

fn validate_node_selector_term(
    term: &Value,
    strict: bool,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    for (j, req) in arr(term, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(j);
        validate_node_selector_requirement(req, strict, &p, errs);
    }
    for (j, req) in arr(term, "matchFields").iter().enumerate() {
        let p = path.child("matchFields").index(j);
        let op = str_of(req, "operator");
        if matches!(op, "In" | "NotIn") {
            if strings(req, "values").len() != 1 {
                let msg = "must be only one value when `operator` is 'In' or 'NotIn' for node \
                           field selector";
                errs.push(required(&p.child("values"), msg));
            }
        } else {
            errs.push(invalid_str(
                &p.child("operator"),
                op,
                "not a valid selector operator",
            ));
        }
        let key = str_of(req, "key");
        if key != "metadata.name" {
            errs.push(invalid_str(
                &p.child("key"),
                key,
                "not a valid field selector key",
            ));
        } else {
            for (k, v) in strings(req, "values").iter().enumerate() {
                invalid_each(
                    errs,
                    &p.child("values").index(k),
                    v,
                    is_dns1123_subdomain(v),
                );
            }
        }
    }
}

/// Upstream `ValidateNodeSelectorRequirement`.
fn validate_node_selector_requirement(
    req: &Value,
    strict: bool,
    p: &Path,
    errs: &mut Vec<FieldError>,
) {
    let values = strings(req, "values");
    let vp = p.child("values");
    match str_of(req, "operator") {
        "In" | "NotIn" if values.is_empty() => {
            errs.push(required(
                &vp,
                "must be specified when `operator` is 'In' or 'NotIn'",
            ));
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            let msg = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'";
            errs.push(forbidden(&vp, msg));
        }
        "Gt" | "Lt" if values.len() != 1 => {
            let msg = "must be specified single value when `operator` is 'Lt' or 'Gt'";
            errs.push(required(&vp, msg));
        }
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        op => errs.push(invalid_str(
            &p.child("operator"),
            op,
            "not a valid selector operator",
        )),
    }
    let key = str_of(req, "key");
    invalid_each(errs, &p.child("key"), key, is_qualified_name(key));
    if strict {
        for (k, v) in values.iter().enumerate() {
            invalid_each(errs, &vp.index(k), v, is_label_value(v));
        }
    }
}

fn validate_pod_affinity_term(term: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for key in ["labelSelector", "namespaceSelector"] {
        if let Some(sel) = get(term, key) {
            validate_label_selector(sel, &path.child(key), errs);
        }
    }
    for ns in strings(term, "namespaces") {
        invalid_each(errs, &path.child("namespace"), ns, is_dns1123_label(ns));
    }
    let has_selector = get(term, "labelSelector").is_some();
    for key in ["matchLabelKeys", "mismatchLabelKeys"] {
        let keys = strings(term, key);
        if keys.is_empty() {
            continue;
        }
        if !has_selector {
            errs.push(forbidden(
                &path.child(key),
                "must not be specified when labelSelector is not set",
            ));
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            invalid_each(errs, &path.child(key).index(i), k, is_qualified_name(k));
        }
    }
    let topology_key = str_of(term, "topologyKey");
    if topology_key.is_empty() {
        errs.push(required(&path.child("topologyKey"), "can not be empty"));
    }
    invalid_each(
        errs,
        &path.child("topologyKey"),
        topology_key,
        is_qualified_name(topology_key),
    );
}

/// Upstream `validateTopologySpreadConstraints`.
pub(crate) fn validate_topology_spread(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let constraints = arr(spec, "topologySpreadConstraints");
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        let max_skew = int_of(c, "maxSkew").unwrap_or(0);
        if max_skew <= 0 {
            errs.push(invalid(
                &p.child("maxSkew"),
                Bad::Int(max_skew),
                "must be greater than zero",
            ));
        }
        let (key, action) = (str_of(c, "topologyKey"), str_of(c, "whenUnsatisfiable"));
        if key.is_empty() {
            errs.push(required(&p.child("topologyKey"), "can not be empty"));
        }
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&action) {
            let valid = ["DoNotSchedule", "ScheduleAnyway"];
            errs.push(not_supported(
                &p.child("whenUnsatisfiable"),
                Bad::s(action),
                &valid,
            ));
        }
        let repeated = constraints[i + 1..]
            .iter()
            .any(|o| str_of(o, "topologyKey") == key && str_of(o, "whenUnsatisfiable") == action);
        if repeated {
            let dp = p.child("{topologyKey, whenUnsatisfiable}");
            errs.push(duplicate(&dp, Bad::Str(format!("{{{key}, {action}}}"))));
        }
        if let Some(min) = int_of(c, "minDomains") {
            if min <= 0 {
                errs.push(invalid(
                    &p.child("minDomains"),
                    Bad::Int(min),
                    "must be greater than zero",
                ));
            }
            if action != "DoNotSchedule" {
                let msg = format!(
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"
                );
                errs.push(invalid(&p.child("minDomains"), Bad::Int(min), &msg));
            }
        }
        for key in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if let Some(policy) = opt_str(c, key).filter(|v| !["Honor", "Ignore"].contains(v)) {
                errs.push(not_supported(
                    &p.child(key),
                    Bad::s(policy),
                    &["Honor", "Ignore"],
                ));
            }
        }
        if let Some(sel) = get(c, "labelSelector") {
            validate_label_selector(sel, &p.child("labelSelector"), errs);
        }
    }
}

/// Upstream `validateReadinessGates` and `validateSchedulingGates`.
pub(crate) fn validate_gates(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (i, g) in arr(spec, "readinessGates").iter().enumerate() {
        let p = path.child("readinessGates").index(i).child("conditionType");
        let t = str_of(g, "conditionType");
        invalid_each(errs, &p, t, is_qualified_name(t));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, g) in arr(spec, "schedulingGates").iter().enumerate() {
        let p = path.child("schedulingGates").index(i);
        let name = str_of(g, "name");
        invalid_each(errs, &p, name, is_qualified_name(name));
        if seen.contains(&name) {
            errs.push(duplicate(&p, Bad::s(name)));
        }
        seen.push(name);
    }
}

/// Upstream `validatePodDNSConfig`.
pub(crate) fn validate_dns_config(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let config = get(spec, "dnsConfig");
    let nameservers = config
        .map(|c| strings(c, "nameservers"))
        .unwrap_or_default();
    if str_of(spec, "dnsPolicy") == "None" {
        if config.is_none() {
            errs.push(required(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return;
        }
        if nameservers.is_empty() {
            let msg = "must provide at least one DNS nameserver when `dnsPolicy` is None";
            errs.push(required(&path.child("nameservers"), msg));
            return;
        }
    }
    let Some(config) = config else { return };
    if nameservers.len() > 3 {
        let bad = Bad::json(get(config, "nameservers"));
        errs.push(invalid(
            &path.child("nameservers"),
            bad,
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        errs.extend(is_valid_ip(&path.child("nameservers").index(i), ns));
    }
    validate_searches(config, &path.child("searches"), errs);
    for (i, o) in arr(config, "options").iter().enumerate() {
        if str_of(o, "name").is_empty() {
            errs.push(required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
}

fn validate_searches(config: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let searches = strings(config, "searches");
    if searches.len() > 32 {
        let bad = Bad::json(get(config, "searches"));
        errs.push(invalid(
            path,
            bad,
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        let bad = Bad::json(get(config, "searches"));
        let msg = "must not have more than 2048 characters (including spaces) in the search list";
        errs.push(invalid(path, bad, msg));
    }
    for (i, s) in searches.iter().enumerate() {
        if *s != "." {
            let s = s.strip_suffix('.').unwrap_or(s);
            invalid_each(
                errs,
                &path.index(i),
                s,
                is_dns1123_subdomain_with_underscore(s),
            );
        }
    }
}

/// Upstream `ValidateHostAliases`.
pub(crate) fn validate_host_aliases(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (i, alias) in arr(spec, "hostAliases").iter().enumerate() {
        let p = path.index(i);
        errs.extend(is_valid_ip(&p.child("ip"), str_of(alias, "ip")));
        for (j, h) in strings(alias, "hostnames").iter().enumerate() {
            invalid_each(
                errs,
                &p.child("hostnames").index(j),
                h,
                is_dns1123_subdomain(h),
            );
        }
    }
}
