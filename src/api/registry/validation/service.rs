//! Services (core `ValidateService`, `ValidateServiceUpdate` and the cluster-IP / IP-family
//! rules).
//!
//! Allocation of cluster IPs and node ports (health-check node ports included) is the
//! caller's; upstream allocates before validating, so an unset `healthCheckNodePort` is not
//! reported here. An update that omits an already allocated cluster IP is read as keeping
//! it, and type-dependent fields carried over from the old object are ignored, the way
//! upstream's update strategy patches and drops them before validating.

use serde_json::Value;

use super::equality::opt_eq;
use super::field::{
    Bad, Path, duplicate, forbidden, invalid, invalid_each, invalid_str, not_supported, required,
};
use super::json::{arr, get, int_of, opt_str, str_of, strings, sub};
use super::meta::validate_labels;
use super::netaddr::{is_ipv6, is_valid_cidr, is_valid_ip, validate_non_special_ip};
use super::pod::{port_num_errors, validate_port_num_or_name, validate_protocol};
use super::{FIELD_IMMUTABLE, FieldError};
use crate::api::registry::names::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name};

const ONLY_LB: &str = "may only be used when `type` is 'LoadBalancer'";

fn is_headless(spec: &Value) -> bool {
    strings(spec, "clusterIPs") == ["None"]
}

fn externally_accessible(spec: &Value) -> bool {
    let t = str_of(spec, "type");
    t == "LoadBalancer"
        || t == "NodePort"
        || (t == "ClusterIP" && !arr(spec, "externalIPs").is_empty())
}

/// Service create (upstream `ValidateService` minus metadata).
pub(crate) fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let (spec, path) = (sub(obj, "spec"), Path::new("spec"));
    let svc_type = str_of(spec, "type");
    if arr(spec, "ports").is_empty() && !is_headless(spec) && svc_type != "ExternalName" {
        errs.push(required(&path.child("ports"), ""));
    }
    validate_type_specifics(spec, &path, errs);
    validate_ports(spec, &path.child("ports"), errs);
    if get(spec, "selector").is_some() {
        validate_labels(spec, "selector", &path.child("selector"), errs);
    }
    validate_session_affinity(spec, &path, errs);
    validate_cluster_ips(spec, &path, errs);
    for (i, ip) in strings(spec, "externalIPs").iter().enumerate() {
        let p = path.child("externalIPs").index(i);
        let ip_errs = is_valid_ip(&p, ip);
        if ip_errs.is_empty() {
            errs.extend(validate_non_special_ip(&p, ip));
        } else {
            errs.extend(ip_errs);
        }
    }
    let tp = path.child("type");
    match svc_type {
        "" => errs.push(required(&tp, "")),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" => {}
        other => {
            let valid = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
            errs.push(not_supported(&tp, Bad::s(other), &valid));
        }
    }
    validate_port_uniqueness(spec, &path.child("ports"), errs);
    validate_load_balancer_fields(spec, &path, errs);
    validate_traffic_policies(spec, &path, errs);
}

fn validate_type_specifics(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    match str_of(spec, "type") {
        t @ ("LoadBalancer" | "NodePort") if is_headless(spec) => {
            let msg = format!("may not be set to 'None' for {t} services");
            errs.push(invalid_str(
                &path.child("clusterIPs").index(0),
                "None",
                &msg,
            ));
        }
        "ExternalName" => {
            for key in ["clusterIPs", "ipFamilies"] {
                if !arr(spec, key).is_empty() {
                    errs.push(forbidden(
                        &path.child(key),
                        "may not be set for ExternalName services",
                    ));
                }
            }
            if get(spec, "ipFamilyPolicy").is_some() {
                let msg = "may not be set for ExternalName services";
                errs.push(forbidden(&path.child("ipFamilyPolicy"), msg));
            }
            let cname = str_of(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(required(&path.child("externalName"), ""));
            } else {
                invalid_each(
                    errs,
                    &path.child("externalName"),
                    cname,
                    is_dns1123_subdomain(cname),
                );
            }
        }
        _ => {}
    }
}

fn validate_ports(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let ports = arr(spec, "ports");
    let mut names: Vec<&str> = Vec::new();
    for (i, sp) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = str_of(sp, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        } else if !name.is_empty() {
            invalid_each(errs, &p.child("name"), name, is_dns1123_label(name));
            if names.contains(&name) {
                errs.push(duplicate(&p.child("name"), Bad::s(name)));
            } else {
                names.push(name);
            }
        }
        errs.extend(port_num_errors(
            &p.child("port"),
            int_of(sp, "port").unwrap_or(0),
        ));
        validate_protocol(sp, &p.child("protocol"), errs);
        validate_port_num_or_name(sp, "targetPort", &p.child("targetPort"), errs);
        if let Some(app) = opt_str(sp, "appProtocol") {
            invalid_each(errs, &p.child("appProtocol"), app, is_qualified_name(app));
        }
    }
}

fn validate_session_affinity(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let sa = str_of(spec, "sessionAffinity");
    let cp = path.child("sessionAffinityConfig");
    match sa {
        "" => errs.push(required(&path.child("sessionAffinity"), "")),
        "ClientIP" => {
            let when = "when session affinity type is ClientIP";
            let Some(config) = get(spec, "sessionAffinityConfig") else {
                errs.push(required(&cp, when));
                return;
            };
            let Some(client) = get(config, "clientIP") else {
                errs.push(required(&cp.child("clientIP"), when));
                return;
            };
            let tp = cp.child("clientIP").child("timeoutSeconds");
            match int_of(client, "timeoutSeconds") {
                None => errs.push(required(&tp, when)),
                Some(t) if t <= 0 || t > 86400 => {
                    errs.push(invalid(
                        &tp,
                        Bad::Int(t),
                        "must be greater than 0 and less than 86400",
                    ));
                }
                Some(_) => {}
            }
        }
        "None" => {
            if get(spec, "sessionAffinityConfig").is_some() {
                errs.push(forbidden(
                    &cp,
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => {
            let p = path.child("sessionAffinity");
            errs.push(not_supported(&p, Bad::s(other), &["ClientIP", "None"]));
        }
    }
}

/// Upstream `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if str_of(spec, "type") == "ExternalName" {
        return;
    }
    let (ips_path, ips) = (path.child("clusterIPs"), strings(spec, "clusterIPs"));
    let ips_bad = || Bad::json(get(spec, "clusterIPs"));
    let cluster_ip = str_of(spec, "clusterIP");
    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(required(&ips_path, ""));
        } else if ips[0] != cluster_ip {
            let msg = "first value must match `clusterIP`";
            errs.push(invalid(&ips_path, ips_bad(), msg));
        }
    } else if !ips.is_empty() {
        let msg = "must be empty when `clusterIP` is not specified";
        errs.push(invalid(&ips_path, ips_bad(), msg));
    }
    validate_ip_families(spec, path, errs);
    if !validate_ip_values(spec, &ips_path, errs) {
        return;
    }
    if ips.len() > 1 && is_ipv6(ips[0]) == is_ipv6(ips[1]) {
        let msg = "may specify no more than one IP for each IP family";
        errs.push(invalid(&ips_path, ips_bad(), msg));
    }
    if !is_headless(spec) {
        let families = strings(spec, "ipFamilies");
        for (i, (ip, family)) in ips.iter().zip(&families).enumerate() {
            let (want_v6, v6) = (*family == "IPv6", is_ipv6(ip));
            if (*family == "IPv4" && v6) || (want_v6 && !v6) {
                let which = if want_v6 { "IPv6" } else { "IPv4" };
                let msg = format!("expected an {which} value as indicated by `ipFamilies[{i}]`");
                errs.push(invalid_str(&ips_path.index(i), ip, &msg));
            }
        }
    }
}

fn validate_ip_families(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let families = strings(spec, "ipFamilies");
    for (i, f) in families.iter().enumerate() {
        let p = path.child("ipFamilies").index(i);
        if *f != "IPv4" && *f != "IPv6" {
            errs.push(not_supported(&p, Bad::s(f), &["IPv4", "IPv6"]));
        }
        if families[..i].contains(f) {
            errs.push(duplicate(&p, Bad::s(f)));
        }
    }
    if let Some(policy) = opt_str(spec, "ipFamilyPolicy") {
        let valid = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !valid.contains(&policy) {
            let p = path.child("ipFamilyPolicy");
            errs.push(not_supported(&p, Bad::s(policy), &valid));
        }
    }
}

/// The per-IP checks of `clusterIPs`; false when an IP is malformed, which ends the checks.
fn validate_ip_values(spec: &Value, ips_path: &Path, errs: &mut Vec<FieldError>) -> bool {
    let ips = strings(spec, "clusterIPs");
    let ips_bad = || Bad::json(get(spec, "clusterIPs"));
    let mut ok = true;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                ok = false;
                let msg = "'None' must be the first and only value";
                errs.push(invalid(ips_path, ips_bad(), msg));
            }
            continue;
        }
        let ip_errs = is_valid_ip(&ips_path.index(i), ip);
        ok &= ip_errs.is_empty();
        errs.extend(ip_errs);
    }
    if ips.len() > 2 {
        errs.push(invalid(ips_path, ips_bad(), "may only hold up to 2 values"));
    }
    ok
}

fn validate_port_uniqueness(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let ports = arr(spec, "ports");
    let cluster_ip = str_of(spec, "type") == "ClusterIP";
    let mut node_ports: Vec<(&str, i64)> = Vec::new();
    let mut keys: Vec<(&str, i64)> = Vec::new();
    for (i, sp) in ports.iter().enumerate() {
        let node_port = int_of(sp, "nodePort").unwrap_or(0);
        if cluster_ip && node_port != 0 {
            let msg = "may not be used when `type` is 'ClusterIP'";
            errs.push(forbidden(&path.index(i).child("nodePort"), msg));
        }
        let proto = str_of(sp, "protocol");
        if node_port != 0 {
            if node_ports.contains(&(proto, node_port)) {
                errs.push(duplicate(
                    &path.index(i).child("nodePort"),
                    Bad::Int(node_port),
                ));
            }
            node_ports.push((proto, node_port));
        }
    }
    for (i, sp) in ports.iter().enumerate() {
        let key = (str_of(sp, "protocol"), int_of(sp, "port").unwrap_or(0));
        if keys.contains(&key) {
            let raw = format!(
                "{{\"Name\":\"\",\"Protocol\":{},\"AppProtocol\":null,\"Port\":{},\"TargetPort\":0,\"NodePort\":0}}",
                serde_json::Value::String(key.0.to_string()),
                key.1
            );
            errs.push(duplicate(&path.index(i), Bad::Raw(raw)));
        }
        keys.push(key);
    }
}

fn validate_load_balancer_fields(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let lb = str_of(spec, "type") == "LoadBalancer";
    let ranges = strings(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let rp = path.child("LoadBalancerSourceRanges");
        if !lb {
            errs.push(forbidden(&rp, ONLY_LB));
        }
        for (i, r) in ranges.iter().enumerate() {
            errs.extend(is_valid_cidr(&rp.index(i), r.trim()));
        }
    }
    let alloc = get(spec, "allocateLoadBalancerNodePorts");
    if alloc.is_some() && !lb {
        errs.push(forbidden(
            &path.child("allocateLoadBalancerNodePorts"),
            ONLY_LB,
        ));
    }
    if lb && alloc.is_none() {
        errs.push(required(&Path::new("allocateLoadBalancerNodePorts"), ""));
    }
    let class_path = Path::new("spec").child("loadBalancerClass");
    match opt_str(spec, "loadBalancerClass") {
        Some(class) if lb => invalid_each(errs, &class_path, class, is_qualified_name(class)),
        Some(_) => errs.push(forbidden(&class_path, ONLY_LB)),
        None => {}
    }
}

fn validate_traffic_policies(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let etp = str_of(spec, "externalTrafficPolicy");
    let ep = path.child("externalTrafficPolicy");
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(invalid_str(
                &ep,
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(required(&ep, ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(not_supported(&ep, Bad::s(etp), &["Cluster", "Local"]));
    }
    let needs_hc = str_of(spec, "type") == "LoadBalancer" && etp == "Local";
    let hc = int_of(spec, "healthCheckNodePort").unwrap_or(0);
    let hp = path.child("healthCheckNodePort");
    if !needs_hc && hc != 0 {
        let msg =
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'";
        errs.push(invalid(&hp, Bad::Int(hc), msg));
    } else if needs_hc && hc != 0 {
        errs.extend(port_num_errors(&hp, hc));
    }
    let ip = path.child("internalTrafficPolicy");
    match opt_str(spec, "internalTrafficPolicy") {
        None if matches!(
            str_of(spec, "type"),
            "NodePort" | "LoadBalancer" | "ClusterIP"
        ) =>
        {
            errs.push(required(&ip, ""));
        }
        Some(p) if p != "Cluster" && p != "Local" => {
            errs.push(not_supported(&ip, Bad::s(p), &["Cluster", "Local"]));
        }
        _ => {}
    }
    if let Some(td) = opt_str(spec, "trafficDistribution") {
        let valid = ["PreferClose", "PreferSameZone", "PreferSameNode"];
        if !valid.contains(&td) {
            errs.push(not_supported(
                &path.child("trafficDistribution"),
                Bad::s(td),
                &valid,
            ));
        }
    }
}

/// The new spec with allocated values the client omitted patched back in from the old one,
/// and `clusterIPs` derived from `clusterIP` as upstream's `NormalizeClusterIPs` does.
fn patched_spec(old: &Value, new: &Value) -> Value {
    let old_spec = sub(old, "spec");
    let mut spec = sub(new, "spec").clone();
    let types = [str_of(old_spec, "type"), str_of(&spec, "type")];
    let both_need_ip = !types.contains(&"ExternalName");
    let new_ip_empty = str_of(&spec, "clusterIP").is_empty();
    let new_ips_empty = arr(&spec, "clusterIPs").is_empty();
    let Some(m) = spec.as_object_mut() else {
        return spec;
    };
    // Upstream `patchAllocatedValues`: omitted allocations are kept.
    if both_need_ip
        && new_ip_empty
        && let Some(v) = get(old_spec, "clusterIP")
    {
        m.insert("clusterIP".to_string(), v.clone());
    }
    if both_need_ip
        && new_ips_empty
        && let Some(v) = get(old_spec, "clusterIPs")
    {
        m.insert("clusterIPs".to_string(), v.clone());
    }
    // Upstream `NormalizeClusterIPs`: a changed singular field with unchanged plural field
    // means the client only knows the singular one.
    let new_ip = m
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let same_ips = opt_eq(get(old_spec, "clusterIPs"), m.get("clusterIPs"));
    if str_of(old_spec, "clusterIP") != new_ip && !new_ip.is_empty() && same_ips {
        m.insert("clusterIPs".to_string(), serde_json::json!([new_ip]));
    }
    drop_type_dependent_fields(old_spec, &mut spec);
    spec
}

/// Upstream `dropTypeDependentFields`: fields that no longer apply to the new type are
/// dropped when the client merely carried them over from the old object. Applying it to
/// values equal to the old ones also tolerates such leftovers stored earlier.
fn drop_type_dependent_fields(old_spec: &Value, spec: &mut Value) {
    let svc_type = str_of(spec, "type").to_string();
    let lb = svc_type == "LoadBalancer";
    let needs_hc = lb && str_of(spec, "externalTrafficPolicy") == "Local";
    let mut stale: Vec<&str> = Vec::new();
    if svc_type == "ExternalName" {
        stale.extend(["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"]);
    }
    if !externally_accessible(spec) {
        stale.push("externalTrafficPolicy");
    }
    if !needs_hc {
        stale.push("healthCheckNodePort");
    }
    if !lb {
        stale.extend(["allocateLoadBalancerNodePorts", "loadBalancerClass"]);
    }
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    for key in stale {
        if get(old_spec, key).is_some() && opt_eq(get(old_spec, key), m.get(key)) {
            m.remove(key);
        }
    }
    if matches!(svc_type.as_str(), "NodePort" | "LoadBalancer") {
        return;
    }
    let old_ports = arr(old_spec, "ports");
    for port in m
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let carried = old_ports.iter().any(|o| {
            o.get("port") == port.get("port")
                && o.get("protocol") == port.get("protocol")
                && get(o, "nodePort").is_some()
                && o.get("nodePort") == port.get("nodePort")
        });
        if carried && let Some(p) = port.as_object_mut() {
            p.remove("nodePort");
        }
    }
}

/// Service update (upstream `ValidateServiceUpdate` minus metadata).
pub(crate) fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let old_spec = sub(old, "spec");
    let spec = patched_spec(old, new);
    let external = [str_of(old_spec, "type"), str_of(&spec, "type")].contains(&"ExternalName");
    let both_headless = is_headless(old_spec) && is_headless(&spec);
    if !external && !both_headless {
        let (o, n) = (
            strings(old_spec, "clusterIPs"),
            strings(&spec, "clusterIPs"),
        );
        let p = Path::new("spec").child("clusterIPs");
        let changed = if o.len() == n.len() {
            o.iter().zip(&n).position(|(a, b)| a != b)
        } else {
            (!o.is_empty() && !n.is_empty() && o[0] != n[0]).then_some(0)
        };
        if let Some(i) = changed {
            errs.push(invalid(
                &p.index(i),
                Bad::json(get(&spec, "clusterIPs")),
                "may not change once set",
            ));
        } else if n.is_empty() && !o.is_empty() {
            let msg = "primary clusterIP can not be unset";
            errs.push(invalid(
                &p.index(0),
                Bad::json(get(&spec, "clusterIPs")),
                msg,
            ));
        }
    }
    let both_lb =
        str_of(old_spec, "type") == "LoadBalancer" && str_of(&spec, "type") == "LoadBalancer";
    if both_lb && opt_str(old_spec, "loadBalancerClass") != opt_str(&spec, "loadBalancerClass") {
        let p = Path::new("spec").child("loadBalancerClass");
        errs.push(invalid(
            &p,
            Bad::json(get(&spec, "loadBalancerClass")),
            "may not change once set",
        ));
    }
    let needs_hc = |s: &Value| {
        str_of(s, "type") == "LoadBalancer" && str_of(s, "externalTrafficPolicy") == "Local"
    };
    if needs_hc(old_spec)
        && needs_hc(&spec)
        && int_of(old_spec, "healthCheckNodePort") != int_of(&spec, "healthCheckNodePort")
    {
        errs.push(forbidden(
            &Path::new("spec").child("healthCheckNodePort"),
            FIELD_IMMUTABLE,
        ));
    }
    let mut patched = new.clone();
    if let Some(m) = patched.as_object_mut() {
        m.insert("spec".to_string(), spec);
    }
    validate(&patched, errs);
}
