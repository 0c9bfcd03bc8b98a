//! The pure half of the EndpointSlice controller: which endpoints a Service should have
//! ([`desired_groups`]) and how to spread them over slices with the least churn ([`plan`]).
//!
//! Endpoints are grouped by address type and resolved port set, since one slice carries one of
//! each. Planning keeps every endpoint that is still wanted in the slice that already holds it
//! (updating it in place if its conditions changed), tops up existing slices before creating
//! new ones, and deletes slices left empty — upstream's reconciler makes the same trade-off so
//! that a single pod change rewrites a single slice.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::ResourceExt;

use crate::controllers::service_endpoints::{
    find_port, is_pod_ready, pod_hostname, pod_ips, should_pod_be_in_endpoints,
};

/// Address type and ports shared by every endpoint of a slice.
pub type GroupKey = (String, Vec<(Option<String>, Option<i32>, Option<String>)>);

/// The endpoints wanted for one address type and port set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The slice ports.
    pub ports: Vec<EndpointPort>,
    /// Endpoints keyed by address.
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// The address types a service's slices use (upstream `getAddressTypesForService`): its
/// `ipFamilies`, else its cluster IP's family, else (headless, no families) both.
pub fn address_types(svc: &Service) -> Vec<String> {
    let spec = svc.spec.clone().unwrap_or_default();
    let families: Vec<String> = spec.ip_families.unwrap_or_default();
    if !families.is_empty() {
        return families;
    }
    match spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
    {
        Some(ip) if ip.is_ipv4() => vec!["IPv4".into()],
        Some(_) => vec!["IPv6".into()],
        None => vec!["IPv4".into(), "IPv6".into()],
    }
}

/// The key of a slice's port list, order-insensitive.
pub fn port_key(address_type: &str, ports: &[EndpointPort]) -> GroupKey {
    let mut key: Vec<_> = ports
        .iter()
        .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
        .collect();
    key.sort();
    (address_type.to_string(), key)
}

/// Computes the wanted endpoints of `svc`. `zone_of(node)` returns `None` for a node that is
/// not known yet (the pod is skipped, and the second result is true so the caller retries), or
/// `Some(zone)`.
pub fn desired_groups(
    svc: &Service,
    pods: &[Arc<Pod>],
    zone_of: impl Fn(&str) -> Option<Option<String>>,
) -> (BTreeMap<GroupKey, Group>, bool) {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let service_ports = spec.ports.unwrap_or_default();
    let types = address_types(svc);
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    let mut missing_node = false;
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let zone = match node.as_deref() {
            Some(node) => match zone_of(node) {
                Some(zone) => zone,
                None => {
                    missing_node = true;
                    continue;
                }
            },
            None => None,
        };
        let ports: Vec<EndpointPort> = service_ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(find_port(pod, p)?),
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        for address_type in &types {
            let v4 = address_type == "IPv4";
            let Some(ip) = pod_ips(pod).into_iter().find(|ip| ip.is_ipv4() == v4) else {
                continue;
            };
            let endpoint = pod_endpoint(
                svc,
                pod,
                ip.to_string(),
                node.clone(),
                zone.clone(),
                publish_not_ready,
            );
            let group = groups
                .entry(port_key(address_type, &ports))
                .or_insert_with(|| Group {
                    ports: ports.clone(),
                    endpoints: BTreeMap::new(),
                });
            group.endpoints.insert(ip.to_string(), endpoint);
        }
    }
    (groups, missing_node)
}

fn pod_endpoint(
    svc: &Service,
    pod: &Pod,
    ip: String,
    node_name: Option<String>,
    zone: Option<String>,
    publish_not_ready: bool,
) -> Endpoint {
    let serving = publish_not_ready || is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pod_hostname(pod, svc),
        node_name,
        zone,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: Some(pod.name_any()),
            uid: pod.uid(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What to write to reach the desired endpoints.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices: address type, ports, endpoints.
    pub create: Vec<(String, Vec<EndpointPort>, Vec<Endpoint>)>,
    /// Existing slices with new endpoints (labels and owner are set by the caller).
    pub update: Vec<(EndpointSlice, Vec<Endpoint>)>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
}

/// Spreads `groups` over `existing` slices (all owned by the service), at most `max` endpoints
/// per slice. With no endpoints at all, one empty placeholder slice of `placeholder_type`
/// is kept (or created), as upstream does so that consumers can tell "no endpoints" from "not
/// yet processed".
pub fn plan(
    mut groups: BTreeMap<GroupKey, Group>,
    existing: Vec<EndpointSlice>,
    max: usize,
    placeholder_type: &str,
) -> Plan {
    let max = max.max(1);
    if groups.values().all(|g| g.endpoints.is_empty()) {
        groups = BTreeMap::from([(port_key(placeholder_type, &[]), Group::default())]);
    }
    let mut by_group: BTreeMap<GroupKey, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        let key = port_key(
            &slice.address_type,
            slice.ports.as_deref().unwrap_or_default(),
        );
        by_group.entry(key).or_default().push(slice);
    }
    let mut out = Plan::default();
    for (key, group) in groups {
        let mut slices = by_group.remove(&key).unwrap_or_default();
        slices.sort_by_key(|s| s.name_any());
        plan_group(&key.0, group, slices, max, &mut out);
    }
    out.delete.extend(by_group.into_values().flatten());
    out
}

fn plan_group(
    address_type: &str,
    group: Group,
    slices: Vec<EndpointSlice>,
    max: usize,
    out: &mut Plan,
) {
    let Group {
        ports,
        endpoints: mut remaining,
    } = group;
    let placeholder = remaining.is_empty();
    // Keep each wanted endpoint where it already is.
    let mut kept: Vec<(EndpointSlice, Vec<Endpoint>)> = slices
        .into_iter()
        .map(|slice| {
            let eps = slice
                .endpoints
                .iter()
                .flatten()
                .filter_map(|ep| ep.addresses.first().and_then(|a| remaining.remove(a)))
                .collect();
            (slice, eps)
        })
        .collect();
    // Top up existing slices, then open new ones.
    for (_, eps) in &mut kept {
        while eps.len() < max {
            let Some((_, ep)) = remaining.pop_first() else {
                break;
            };
            eps.push(ep);
        }
    }
    let leftovers: Vec<Endpoint> = remaining.into_values().collect();
    for chunk in leftovers.chunks(max) {
        out.create
            .push((address_type.to_string(), ports.clone(), chunk.to_vec()));
    }
    let mut placeholder_kept = false;
    for (slice, eps) in kept {
        // An empty slice goes, except the first one kept as the placeholder.
        if eps.is_empty() && (!placeholder || placeholder_kept) {
            out.delete.push(slice);
            continue;
        }
        placeholder_kept = true;
        // Unchanged slices are listed too: their labels or owner may need refreshing, and the
        // caller skips those that are already right.
        out.update.push((slice, eps));
    }
    if placeholder && !placeholder_kept {
        out.create
            .push((address_type.to_string(), Vec::new(), Vec::new()));
    }
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
