//! Tables of cluster-level resources: nodes, namespaces, component statuses, leases and
//! priority classes.
//!
//! A node's STATUS looks only at the `Ready` condition (`Ready`, `NotReady`, or `Unknown`
//! when absent) plus `SchedulingDisabled` for cordoned nodes; ROLES come from
//! `node-role.kubernetes.io/<role>` label keys and the `kubernetes.io/role` label value.
//! Missing v1-defaulted fields (namespace phase, preemption policy) read as their defaults.

use std::collections::BTreeSet;

use serde_json::Value;

use super::fields::{arr_at, bool_at, i64_at, name, obj_at, opt_str, str_at};
use super::time::Instant;
use super::{AGE, NAME, Printer, age, col, docs, wide};

/// `kubectl get nodes`.
pub(super) const NODES: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        AGE,
        col("Version", "string", docs::NODE_SYSTEM_INFO_KUBELET_VERSION),
        wide("Internal-IP", docs::NODE_STATUS_ADDRESSES),
        wide("External-IP", docs::NODE_STATUS_ADDRESSES),
        wide("OS-Image", docs::NODE_SYSTEM_INFO_OS_IMAGE),
        wide("Kernel-Version", docs::NODE_SYSTEM_INFO_KERNEL_VERSION),
        wide(
            "Container-Runtime",
            docs::NODE_SYSTEM_INFO_CONTAINER_RUNTIME_VERSION,
        ),
    ],
    cells: node_cells,
};

/// `kubectl get namespaces`.
pub(super) const NAMESPACES: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ],
    cells: namespace_cells,
};

/// `kubectl get componentstatuses`.
pub(super) const COMPONENT_STATUSES: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Status of the component conditions"),
        col("Message", "string", "Message of the component conditions"),
        col("Error", "string", "Error of the component conditions"),
    ],
    cells: component_status_cells,
};

/// `kubectl get leases`.
pub(super) const LEASES: Printer = Printer {
    columns: &[
        NAME,
        col("Holder", "string", docs::LEASE_SPEC_HOLDER_IDENTITY),
        AGE,
    ],
    cells: lease_cells,
};

/// `kubectl get priorityclasses`.
pub(super) const PRIORITY_CLASSES: Printer = Printer {
    columns: &[
        NAME,
        col("Value", "integer", docs::PRIORITY_CLASS_VALUE),
        col(
            "Global-Default",
            "boolean",
            docs::PRIORITY_CLASS_GLOBAL_DEFAULT,
        ),
        AGE,
        col(
            "PreemptionPolicy",
            "string",
            docs::PRIORITY_CLASS_PREEMPTION_POLICY,
        ),
    ],
    cells: priority_class_cells,
};

const ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const ROLE_LABEL: &str = "kubernetes.io/role";

fn node_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let info = |field: &str| match str_at(obj, &["status", "nodeInfo", field]) {
        "" => "<unknown>",
        v => v,
    };
    vec![
        name(obj).into(),
        node_status(obj).into(),
        node_roles(obj).into(),
        age(obj, now),
        str_at(obj, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(obj, "InternalIP").into(),
        node_address(obj, "ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

fn node_status(obj: &Value) -> String {
    // Upstream indexes conditions by type, so the last Ready condition wins.
    let ready = arr_at(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready")
        .map(|c| str_at(c, &["status"]));
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if bool_at(obj, &["spec", "unschedulable"]) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(obj: &Value) -> String {
    let labels = obj_at(obj, &["metadata", "labels"]);
    let roles: BTreeSet<&str> = labels
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| match key.strip_prefix(ROLE_PREFIX) {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None if key == ROLE_LABEL => value.as_str().filter(|v| !v.is_empty()),
            None => None,
        })
        .collect();
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

/// The first address of `kind`, or `<none>`.
fn node_address<'a>(obj: &'a Value, kind: &str) -> &'a str {
    arr_at(obj, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map_or("<none>", |a| str_at(a, &["address"]))
}

fn namespace_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let phase = opt_str(obj, &["status", "phase"]).unwrap_or("Active");
    vec![name(obj).into(), phase.into(), age(obj, now)]
}

fn component_status_cells(obj: &Value, _now: Instant) -> Vec<Value> {
    let healthy = arr_at(obj, &["conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Healthy");
    let (status, message, error) = match healthy {
        None => ("Unknown", "", ""),
        Some(c) => (
            if str_at(c, &["status"]) == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            str_at(c, &["message"]),
            str_at(c, &["error"]),
        ),
    };
    vec![
        name(obj).into(),
        status.into(),
        message.into(),
        error.into(),
    ]
}

fn lease_cells(obj: &Value, now: Instant) -> Vec<Value> {
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "holderIdentity"]).into(),
        age(obj, now),
    ]
}

fn priority_class_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let policy = opt_str(obj, &["preemptionPolicy"]).unwrap_or("PreemptLowerPriority");
    vec![
        name(obj).into(),
        i64_at(obj, &["value"]).into(),
        bool_at(obj, &["globalDefault"]).into(),
        age(obj, now),
        policy.into(),
    ]
}
