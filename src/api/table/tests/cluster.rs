//! Nodes, namespaces, component statuses, leases, priority classes.

use serde_json::{Value, json};

use super::support::{ago, row};
use crate::api::table::columns;

fn node(labels: Value, spec: Value, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "labels": labels, "creationTimestamp": ago(49 * 3600)},
        "spec": spec, "status": status})
}

fn ready(status: &str) -> Value {
    json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": status}])
}

#[test]
fn node_columns() {
    let cols: Vec<_> = columns("", "nodes")
        .iter()
        .map(|c| (c.name, c.priority))
        .collect();
    assert_eq!(
        cols,
        [
            ("Name", 0),
            ("Status", 0),
            ("Roles", 0),
            ("Age", 0),
            ("Version", 0),
            ("Internal-IP", 1),
            ("External-IP", 1),
            ("OS-Image", 1),
            ("Kernel-Version", 1),
            ("Container-Runtime", 1),
        ]
    );
    assert_eq!(
        columns("", "nodes")[4].description,
        "Kubelet Version reported by the node."
    );
}

#[test]
fn ready_control_plane_node_row() {
    let n = node(
        json!({"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": "",
               "node-role.kubernetes.io/etcd": "true", "kubernetes.io/role": "master"}),
        json!({}),
        json!({
            "conditions": ready("True"),
            "addresses": [{"type": "Hostname", "address": "node-1"},
                          {"type": "InternalIP", "address": "192.168.1.10"},
                          {"type": "InternalIP", "address": "fd00::10"}],
            "nodeInfo": {"kubeletVersion": "v1.31.2", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0-26-amd64", "containerRuntimeVersion": "containerd://1.7.22"}
        }),
    );
    assert_eq!(
        row("", "nodes", &n),
        [
            json!("node-1"),
            json!("Ready"),
            json!("control-plane,etcd,master"),
            json!("2d1h"),
            json!("v1.31.2"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Debian GNU/Linux 12 (bookworm)"),
            json!("6.1.0-26-amd64"),
            json!("containerd://1.7.22"),
        ]
    );
}

#[test]
fn node_status_variants() {
    let status_of = |status: Value, unschedulable: bool| {
        let n = node(json!({}), json!({"unschedulable": unschedulable}), status);
        let cells = row("", "nodes", &n);
        (cells[1].clone(), cells[2].clone())
    };
    let not_ready = json!({"conditions": ready("False")});
    assert_eq!(
        status_of(not_ready, true),
        (json!("NotReady,SchedulingDisabled"), json!("<none>"))
    );
    let unknown_cond = json!({"conditions": ready("Unknown")});
    assert_eq!(status_of(unknown_cond, false).0, json!("NotReady"));
    assert_eq!(status_of(json!({}), false).0, json!("Unknown"));
    assert_eq!(
        status_of(json!({"conditions": ready("True")}), true).0,
        json!("Ready,SchedulingDisabled")
    );
}

#[test]
fn node_without_info_shows_unknowns() {
    let n = node(
        json!({}),
        json!({}),
        json!({"addresses": [{"type": "ExternalIP", "address": "203.0.113.4"}]}),
    );
    let cells = row("", "nodes", &n);
    assert_eq!(
        cells[4..],
        [
            json!(""),
            json!("<none>"),
            json!("203.0.113.4"),
            json!("<unknown>"),
            json!("<unknown>"),
            json!("<unknown>")
        ]
    );
}

#[test]
fn namespace_rows() {
    let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(10 * 86_400)},
        "status": {"phase": "Active"}});
    assert_eq!(
        row("", "namespaces", &ns),
        [json!("kube-system"), json!("Active"), json!("10d")]
    );
    let mut gone = ns.clone();
    gone["status"]["phase"] = json!("Terminating");
    assert_eq!(row("", "namespaces", &gone)[1], json!("Terminating"));
    let bare = json!({"metadata": {"name": "new"}});
    assert_eq!(row("", "namespaces", &bare)[1], json!("Active"));
}

#[test]
fn component_status_rows() {
    let healthy = json!({"metadata": {"name": "etcd-0"},
        "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]});
    assert_eq!(
        row("", "componentstatuses", &healthy),
        [json!("etcd-0"), json!("Healthy"), json!("ok"), json!("")]
    );
    let sick = json!({"metadata": {"name": "scheduler"},
        "conditions": [{"type": "Healthy", "status": "False", "message": "", "error": "connection refused"}]});
    assert_eq!(
        row("", "componentstatuses", &sick),
        [
            json!("scheduler"),
            json!("Unhealthy"),
            json!(""),
            json!("connection refused")
        ]
    );
    let none = json!({"metadata": {"name": "x"}});
    assert_eq!(row("", "componentstatuses", &none)[1], json!("Unknown"));
    assert_eq!(columns("", "componentstatuses").len(), 4);
}

#[test]
fn lease_rows() {
    let lease = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": ago(7200)},
        "spec": {"holderIdentity": "node-1_4f2a", "leaseDurationSeconds": 15}});
    assert_eq!(
        row("coordination.k8s.io", "leases", &lease),
        [json!("kube-scheduler"), json!("node-1_4f2a"), json!("120m")]
    );
    let free = json!({"metadata": {"name": "free"}, "spec": {}});
    assert_eq!(row("coordination.k8s.io", "leases", &free)[1], json!(""));
}

#[test]
fn priority_class_rows() {
    let pc = json!({"metadata": {"name": "system-node-critical", "creationTimestamp": ago(3600)},
        "value": 2_000_001_000, "globalDefault": false, "preemptionPolicy": "PreemptLowerPriority"});
    assert_eq!(
        row("scheduling.k8s.io", "priorityclasses", &pc),
        [
            json!("system-node-critical"),
            json!(2_000_001_000),
            json!(false),
            json!("60m"),
            json!("PreemptLowerPriority")
        ]
    );
    let never = json!({"metadata": {"name": "low"}, "value": -5, "globalDefault": true, "preemptionPolicy": "Never"});
    let cells = row("scheduling.k8s.io", "priorityclasses", &never);
    assert_eq!(
        (cells[1].clone(), cells[2].clone(), cells[4].clone()),
        (json!(-5), json!(true), json!("Never"))
    );
    let types: Vec<_> = columns("scheduling.k8s.io", "priorityclasses")
        .iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(types, ["string", "integer", "boolean", "string", "string"]);
}
