//! Defaults of the non-workload kinds: core Service, Secret, Namespace, Node,
//! PersistentVolumeClaim and Endpoints, plus the small defaults of EndpointSlice,
//! PriorityClass and RBAC bindings.

use serde_json::{Map, Value, json};

use super::pod::claim_spec;
use super::{child, each, existing, is_unset, set_default, set_if_zero, text};
use crate::api::registry::validation::config::encode_base64;

fn root(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.as_object_mut()
}

/// Upstream `SetDefaults_Service`, plus the registry's cluster-IP normalisation and
/// IP-family defaults (single-stack IPv4 clusters).
pub(super) fn service(obj: &mut Value) {
    let Some(spec) = root(obj).and_then(|m| child(m, "spec")) else {
        return;
    };
    set_if_zero(spec, "sessionAffinity", json!("None"));
    match text(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
                .filter(|t| !t.is_null());
            if timeout.is_none() {
                spec.insert(
                    "sessionAffinityConfig".to_string(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    set_if_zero(spec, "type", json!("ClusterIP"));
    for port in each(spec, "ports") {
        set_if_zero(port, "protocol", json!("TCP"));
        let port_number = port.get("port").cloned().unwrap_or(json!(0));
        set_if_zero(port, "targetPort", port_number);
    }
    let svc_type = text(spec, "type").to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let accessible = matches!(svc_type.as_str(), "NodePort" | "LoadBalancer")
        || (svc_type == "ClusterIP" && has_external_ips);
    if accessible {
        set_if_zero(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(svc_type.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if svc_type == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if svc_type != "ExternalName" {
        ip_families(spec);
    }
    if svc_type == "LoadBalancer"
        && let Some(lb) = root(obj)
            .and_then(|m| existing(m, "status"))
            .and_then(|s| existing(s, "loadBalancer"))
    {
        for ingress in each(lb, "ingress") {
            if !text(ingress, "ip").is_empty() {
                set_default(ingress, "ipMode", json!("VIP"));
            }
        }
    }
}

fn ip_families(spec: &mut Map<String, Value>) {
    let cluster_ip = text(spec, "clusterIP").to_string();
    let ips_empty = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if !cluster_ip.is_empty() && ips_empty {
        spec.insert("clusterIPs".to_string(), json!([cluster_ip]));
    }
    let no_selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    let policy = if cluster_ip == "None" && no_selector {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    set_default(spec, "ipFamilyPolicy", json!(policy));
    let families_empty = spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if families_empty {
        let family = if cluster_ip.contains(':') {
            "IPv6"
        } else {
            "IPv4"
        };
        spec.insert("ipFamilies".to_string(), json!([family]));
    }
}

/// Upstream `SetDefaults_Secret`, with `stringData` folded into `data` as the v1
/// conversion does.
pub(super) fn secret(obj: &mut Value) {
    let Some(m) = root(obj) else { return };
    set_if_zero(m, "type", json!("Opaque"));
    let Some(Value::Object(string_data)) = m.remove("stringData") else {
        return;
    };
    if let Some(data) = child(m, "data") {
        for (k, v) in string_data {
            if let Value::String(s) = v {
                data.insert(k, json!(encode_base64(s.as_bytes())));
            }
        }
    }
}

/// Upstream `SetDefaults_Namespace` and `SetDefaults_NamespaceStatus`, plus the
/// `kubernetes` finalizer the namespace strategy adds on create. Upstream never lets a
/// regular update change `spec.finalizers`, so the finalizer is (re)added whenever the
/// namespace is not being deleted; only finalization, once deletion has begun, drops it.
pub(super) fn namespace(obj: &mut Value) {
    let Some(m) = root(obj) else { return };
    let meta = m.get("metadata");
    let name = meta
        .and_then(|md| md.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = name.to_string();
    let deleting = meta.is_some_and(|md| !is_unset_value(md.get("deletionTimestamp")));
    let phase = m
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str);
    let terminating = deleting || phase == Some("Terminating");
    if !name.is_empty()
        && let Some(labels) = child(m, "metadata").and_then(|md| child(md, "labels"))
    {
        labels.insert("kubernetes.io/metadata.name".to_string(), json!(name));
    }
    if !terminating && let Some(spec) = child(m, "spec") {
        let list = spec.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(items) = list.as_array_mut()
            && !items.iter().any(|f| f == "kubernetes")
        {
            items.push(json!("kubernetes"));
        }
    }
    if let Some(status) = child(m, "status") {
        set_if_zero(status, "phase", json!("Active"));
    }
}

fn is_unset_value(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

/// Upstream `SetDefaults_NodeStatus`, and the v1 conversion's `podCIDR`/`podCIDRs` pairing.
pub(super) fn node(obj: &mut Value) {
    let Some(m) = root(obj) else { return };
    if let Some(spec) = existing(m, "spec") {
        let single = text(spec, "podCIDR").to_string();
        let first = spec
            .get("podCIDRs")
            .and_then(|l| l.get(0))
            .and_then(Value::as_str)
            .map(str::to_string);
        match first {
            None if !single.is_empty() => {
                spec.insert("podCIDRs".to_string(), json!([single]));
            }
            Some(f) if single.is_empty() => {
                spec.insert("podCIDR".to_string(), json!(f));
            }
            _ => {}
        }
    }
    if let Some(status) = existing(m, "status")
        && is_unset(status, "allocatable")
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".to_string(), capacity);
    }
}

/// Upstream `SetDefaults_PersistentVolumeClaim` and `SetDefaults_PersistentVolumeClaimSpec`.
pub(super) fn pvc(obj: &mut Value) {
    let Some(m) = root(obj) else { return };
    if let Some(spec) = child(m, "spec") {
        claim_spec(spec);
    }
    if let Some(status) = child(m, "status") {
        set_if_zero(status, "phase", json!("Pending"));
    }
}

/// Upstream `SetDefaults_Endpoints`: ports default to TCP.
pub(super) fn endpoints(obj: &mut Value) {
    let Some(m) = root(obj) else { return };
    for subset in each(m, "subsets") {
        for port in each(subset, "ports") {
            set_if_zero(port, "protocol", json!("TCP"));
        }
    }
}

/// Upstream discovery/v1 `SetDefaults_EndpointPort`.
pub(super) fn endpoint_slice(obj: &mut Value) {
    let Some(m) = root(obj) else { return };
    for port in each(m, "ports") {
        set_default(port, "name", json!(""));
        set_default(port, "protocol", json!("TCP"));
    }
}

/// Upstream scheduling/v1 `SetDefaults_PriorityClass`.
pub(super) fn priority_class(obj: &mut Value) {
    if let Some(m) = root(obj) {
        set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// Upstream rbac/v1 `SetDefaults_RoleBinding`/`ClusterRoleBinding` and `SetDefaults_Subject`.
pub(super) fn binding(obj: &mut Value) {
    let Some(m) = root(obj) else { return };
    let group = "rbac.authorization.k8s.io";
    if let Some(role_ref) = existing(m, "roleRef") {
        set_if_zero(role_ref, "apiGroup", json!(group));
    }
    for subject in each(m, "subjects") {
        if matches!(text(subject, "kind"), "User" | "Group") {
            set_if_zero(subject, "apiGroup", json!(group));
        }
    }
}
