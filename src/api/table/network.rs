//! Tables of networking resources: services, endpoints, endpoint slices, ingresses,
//! ingress classes and network policies.
//!
//! Lists of addresses are cut after three entries with upstream's `+ N more...` suffix.
//! Load-balancer addresses are the sorted, de-duplicated IPs (or hostnames) of the status,
//! unclipped because the server always prints the wide form. A service without `type` reads
//! as `ClusterIP` and a port without `protocol` as `TCP`, the v1 defaults.

use std::collections::BTreeSet;

use serde_json::Value;

use super::fields::{arr_at, i64_at, name, obj_at, opt_i64, opt_str, str_at};
use super::labels::{format_label_selector, format_labels};
use super::time::Instant;
use super::{AGE, NAME, Printer, age, col, docs, wide};

/// `kubectl get services`.
pub(super) const SERVICES: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", docs::SERVICE_SPEC_TYPE),
        col("Cluster-IP", "string", docs::SERVICE_SPEC_CLUSTER_IP),
        col("External-IP", "string", docs::SERVICE_SPEC_EXTERNAL_IPS),
        col("Port(s)", "string", docs::SERVICE_SPEC_PORTS),
        AGE,
        wide("Selector", docs::SERVICE_SPEC_SELECTOR),
    ],
    cells: service_cells,
};

/// `kubectl get endpoints`.
pub(super) const ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        col("Endpoints", "string", docs::ENDPOINTS_SUBSETS),
        AGE,
    ],
    cells: endpoints_cells,
};

/// `kubectl get endpointslices`.
pub(super) const ENDPOINT_SLICES: Printer = Printer {
    columns: &[
        NAME,
        col("AddressType", "string", docs::ENDPOINT_SLICE_ADDRESS_TYPE),
        col("Ports", "string", docs::ENDPOINT_SLICE_PORTS),
        col("Endpoints", "string", docs::ENDPOINT_SLICE_ENDPOINTS),
        AGE,
    ],
    cells: endpoint_slice_cells,
};

/// `kubectl get ingresses`.
pub(super) const INGRESSES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        col(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        col(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        col("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    cells: ingress_cells,
};

/// `kubectl get ingressclasses`.
pub(super) const INGRESS_CLASSES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    cells: ingress_class_cells,
};

/// `kubectl get networkpolicies`.
pub(super) const NETWORK_POLICIES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Pod-Selector",
            "string",
            docs::NETWORK_POLICY_SPEC_POD_SELECTOR,
        ),
        AGE,
    ],
    cells: network_policy_cells,
};

/// At most this many entries are listed before `+ N more...`.
const MAX_LISTED: usize = 3;

fn service_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let svc_type = opt_str(obj, &["spec", "type"]).unwrap_or("ClusterIP");
    // The internal service keeps clusterIPs; a v1 object with only clusterIP converts to one.
    let cluster_ip = arr_at(obj, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_at(obj, &["spec", "clusterIP"]));
    let ports: Vec<String> = arr_at(obj, &["spec", "ports"])
        .iter()
        .map(port_string)
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name(obj).into(),
        svc_type.into(),
        if cluster_ip.is_empty() {
            "<none>"
        } else {
            cluster_ip
        }
        .into(),
        external_ip(obj, svc_type).into(),
        ports.into(),
        age(obj, now),
        format_labels(obj_at(obj, &["spec", "selector"])).into(),
    ]
}

/// `80/TCP`, or `80:30080/TCP` with a node port.
fn port_string(port: &Value) -> String {
    let number = i64_at(port, &["port"]);
    let protocol = opt_str(port, &["protocol"]).unwrap_or("TCP");
    match i64_at(port, &["nodePort"]) {
        node_port if node_port > 0 => format!("{number}:{node_port}/{protocol}"),
        _ => format!("{number}/{protocol}"),
    }
}

fn external_ip(obj: &Value, svc_type: &str) -> String {
    let external: Vec<&str> = arr_at(obj, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match svc_type {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(obj);
            match (lb.is_empty(), external.is_empty()) {
                (true, true) => "<pending>".to_string(),
                (false, true) => lb.join(","),
                _ => lb
                    .iter()
                    .copied()
                    .chain(external)
                    .collect::<Vec<_>>()
                    .join(","),
            }
        }
        "ExternalName" => str_at(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// Sorted, de-duplicated `status.loadBalancer.ingress` IPs, else hostnames.
fn load_balancer_addresses(obj: &Value) -> Vec<&str> {
    let set: BTreeSet<&str> = arr_at(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| match (str_at(i, &["ip"]), str_at(i, &["hostname"])) {
            ("", "") => None,
            ("", host) => Some(host),
            (ip, _) => Some(ip),
        })
        .collect();
    set.into_iter().collect()
}

/// Joins `list`, appending `+ N more...` when entries beyond it were dropped.
fn with_more(list: &[String], total: usize) -> String {
    let joined = list.join(",");
    if total > list.len() && list.len() == MAX_LISTED {
        format!("{joined} + {} more...", total - MAX_LISTED)
    } else {
        joined
    }
}

fn endpoints_cells(obj: &Value, now: Instant) -> Vec<Value> {
    vec![
        name(obj).into(),
        format_endpoints(obj).into(),
        age(obj, now),
    ]
}

/// `formatEndpoints`: `ip:port` per address and port, plain IPs for port-less subsets.
fn format_endpoints(obj: &Value) -> String {
    let subsets = arr_at(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let (mut list, mut total) = (Vec::new(), 0usize);
    for subset in subsets {
        let addresses: Vec<&str> = arr_at(subset, &["addresses"])
            .iter()
            .map(|a| str_at(a, &["ip"]))
            .collect();
        let ports = arr_at(subset, &["ports"]);
        if ports.is_empty() {
            total += addresses.len();
            push_limited(&mut list, addresses.iter().map(|ip| ip.to_string()));
            continue;
        }
        for port in ports {
            let number = i64_at(port, &["port"]);
            total += addresses.len();
            push_limited(
                &mut list,
                addresses.iter().map(|ip| join_host_port(ip, number)),
            );
        }
    }
    with_more(&list, total)
}

fn push_limited(list: &mut Vec<String>, items: impl Iterator<Item = String>) {
    list.extend(items.take(MAX_LISTED.saturating_sub(list.len())));
}

/// `net.JoinHostPort`: brackets around IPv6 hosts.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn endpoint_slice_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let ports: Vec<String> = arr_at(obj, &["ports"])
        .iter()
        .map(|p| match (opt_i64(p, &["port"]), opt_str(p, &["name"])) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = arr_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| arr_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or("").to_string())
        .collect();
    vec![
        name(obj).into(),
        str_at(obj, &["addressType"]).into(),
        list_or_unset(&ports).into(),
        list_or_unset(&addresses).into(),
        age(obj, now),
    ]
}

/// `listWithMoreString`: first three entries, `+ N more...`, or `<unset>` when empty.
fn list_or_unset(all: &[String]) -> String {
    let shown = &all[..all.len().min(MAX_LISTED)];
    match with_more(shown, all.len()) {
        s if s.is_empty() => "<unset>".to_string(),
        s => s,
    }
}

fn ingress_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let class = opt_str(obj, &["spec", "ingressClassName"]).unwrap_or("<none>");
    let ports = if arr_at(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj).into(),
        class.into(),
        format_hosts(arr_at(obj, &["spec", "rules"])).into(),
        load_balancer_addresses(obj).join(",").into(),
        ports.into(),
        age(obj, now),
    ]
}

/// `formatHosts`, including its quirk: once three hosts are listed, the remainder counts
/// every further rule, host or not.
fn format_hosts(rules: &[Value]) -> String {
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX_LISTED {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - MAX_LISTED)
    } else {
        joined
    }
}

fn ingress_class_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let parameters = match obj.pointer("/spec/parameters").filter(|p| p.is_object()) {
        None => "<none>".to_string(),
        Some(p) => {
            let kind = str_at(p, &["kind"]);
            let group = opt_str(p, &["apiGroup"])
                .map(|g| format!(".{g}"))
                .unwrap_or_default();
            format!("{kind}{group}/{}", str_at(p, &["name"]))
        }
    };
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "controller"]).into(),
        parameters.into(),
        age(obj, now),
    ]
}

fn network_policy_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let selector = format_label_selector(obj.pointer("/spec/podSelector"));
    vec![name(obj).into(), selector.into(), age(obj, now)]
}
