use serde_json::{Value, json};

use super::*;
use crate::scheduler::fixtures::{cache, info, node, pod};

/// Reasons per node ("" when the node passes), in node order.
fn verdicts(c: &Cache, p: &PodInfo) -> Vec<String> {
    let state = prefilter(c, p);
    c.nodes()
        .iter()
        .map(|n| {
            let mut reasons = Vec::new();
            let ok = filter(&state, n, &mut reasons);
            assert_eq!(ok, reasons.is_empty());
            reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect()
}

fn bound(
    name: &str,
    node_name: &str,
    labels: Value,
    extra_spec: Value,
) -> k8s_openapi::api::core::v1::Pod {
    let mut spec = json!({"nodeName": node_name});
    crate::scheduler::fixtures::merge(&mut spec, extra_spec);
    pod(
        name,
        "",
        "",
        json!({"metadata": {"labels": labels}, "spec": spec}),
    )
}

#[test]
fn node_name_rejects_other_nodes() {
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ],
        &[],
    );
    let p = info(&pod("p", "", "", json!({"spec": {"nodeName": "b"}})));
    assert_eq!(
        verdicts(&c, &p),
        ["node(s) didn't match the requested node name", ""]
    );
}

#[test]
fn cordoned_nodes_reject_unless_the_unschedulable_taint_is_tolerated() {
    let c = cache(
        &[node(
            "a",
            "4",
            "8Gi",
            json!({"spec": {"unschedulable": true}}),
        )],
        &[],
    );
    let p = info(&pod("p", "", "", json!({})));
    assert_eq!(verdicts(&c, &p), ["node(s) were unschedulable"]);
    let tolerant = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"tolerations": [
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
    ));
    assert_eq!(verdicts(&c, &tolerant), [""]);
}

#[test]
fn untolerated_no_schedule_and_no_execute_taints_reject_with_key_and_value() {
    let taints = json!({"spec": {"taints": [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
    let exec =
        json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]}});
    let soft =
        json!({"spec": {"taints": [{"key": "x", "value": "y", "effect": "PreferNoSchedule"}]}});
    let c = cache(
        &[
            node("a", "4", "8Gi", taints),
            node("b", "4", "8Gi", exec),
            node("c", "4", "8Gi", soft),
        ],
        &[],
    );
    let p = info(&pod("p", "", "", json!({})));
    assert_eq!(
        verdicts(&c, &p),
        [
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",
            "node(s) had untolerated taint {dedicated: db}",
            "",
        ]
    );
    let tolerant = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"tolerations": [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
        {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}]}}),
    ));
    assert_eq!(verdicts(&c, &tolerant), ["", "", ""]);
    let wrong_value = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"tolerations": [
        {"key": "dedicated", "value": "web", "effect": "NoExecute"}]}}),
    ));
    assert_eq!(
        verdicts(&c, &wrong_value)[1],
        "node(s) had untolerated taint {dedicated: db}"
    );
    let tolerate_all = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"tolerations": [{"operator": "Exists"}]}}),
    ));
    assert_eq!(verdicts(&c, &tolerate_all), ["", "", ""]);
}

#[test]
fn node_selector_and_required_affinity_terms_are_anded_and_terms_ored() {
    let zone = |z: &str| json!({"metadata": {"labels": {"zone": z, "disk": "ssd"}}});
    let c = cache(
        &[
            node("a", "4", "8Gi", zone("z1")),
            node("b", "4", "8Gi", zone("z2")),
            node("c", "4", "8Gi", json!({})),
        ],
        &[],
    );
    let affinity = json!({"spec": {"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}
    ]}}}}});
    let p = info(&pod("p", "", "", affinity));
    let msg = "node(s) didn't match Pod's node affinity/selector";
    assert_eq!(verdicts(&c, &p), ["", "", msg]);
    let only_z3 = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z3"]}]}]}}}}}),
    ));
    assert_eq!(verdicts(&c, &only_z3), [msg, msg, msg]);
}

#[test]
fn host_port_conflicts_reject() {
    let web = bound(
        "web",
        "a",
        json!({}),
        json!({"containers": [{"name": "c", "ports": [
        {"containerPort": 80, "hostPort": 8080}]}]}),
    );
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ],
        &[web],
    );
    let p = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"containers": [{"name": "c", "ports": [
        {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]}]}}),
    ));
    assert_eq!(
        verdicts(&c, &p),
        [
            "node(s) didn't have free ports for the requested pod ports",
            ""
        ]
    );
    let udp = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"containers": [{"name": "c", "ports": [
        {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}]}}),
    ));
    assert_eq!(verdicts(&c, &udp), ["", ""]);
}

#[test]
fn resources_fit_reports_every_insufficient_resource() {
    let used = bound(
        "used",
        "a",
        json!({}),
        json!({"containers": [{"name": "c", "resources": {
        "requests": {"cpu": "3", "memory": "7Gi"}}}]}),
    );
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ],
        &[used],
    );
    let p = info(&pod("p", "1500m", "2Gi", json!({})));
    assert_eq!(
        verdicts(&c, &p),
        ["Insufficient cpu; Insufficient memory", ""]
    );
    let huge = info(&pod("p", "100", "", json!({})));
    assert_eq!(
        verdicts(&c, &huge),
        ["Insufficient cpu", "Insufficient cpu"]
    );
    let fits = info(&pod("p", "1", "1Gi", json!({})));
    assert_eq!(verdicts(&c, &fits), ["", ""]);
}

#[test]
fn resources_fit_counts_pods_and_extended_resources() {
    let full = node(
        "a",
        "4",
        "8Gi",
        json!({"status": {"allocatable": {"pods": "1", "example.com/gpu": "1"}}}),
    );
    let other = bound("o", "a", json!({}), json!({}));
    let c = cache(&[full, node("b", "4", "8Gi", json!({}))], &[other]);
    let best_effort = info(&pod("p", "", "", json!({})));
    assert_eq!(verdicts(&c, &best_effort), ["Too many pods", ""]);
    let gpu = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"containers": [{"name": "c", "resources": {
        "requests": {"example.com/gpu": "1"}}}]}}),
    ));
    assert_eq!(
        verdicts(&c, &gpu),
        ["Too many pods", "Insufficient example.com/gpu"]
    );
}

#[test]
fn init_containers_and_overhead_count_towards_fit() {
    let c = cache(&[node("a", "4", "8Gi", json!({}))], &[]);
    let init = info(&pod(
        "p",
        "1",
        "",
        json!({"spec": {"initContainers": [{"name": "i", "image": "x",
        "resources": {"requests": {"cpu": "5"}}}]}}),
    ));
    assert_eq!(verdicts(&c, &init), ["Insufficient cpu"]);
    let overhead = info(&pod(
        "p",
        "3500m",
        "",
        json!({"spec": {"overhead": {"cpu": "600m"}}}),
    ));
    assert_eq!(verdicts(&c, &overhead), ["Insufficient cpu"]);
}

#[test]
fn filters_stop_at_the_first_failing_plugin() {
    let n = node(
        "a",
        "1",
        "1Gi",
        json!({"spec": {"unschedulable": true,
        "taints": [{"key": "k", "effect": "NoSchedule"}]}}),
    );
    let c = cache(&[n], &[]);
    let p = info(&pod("p", "8", "", json!({})));
    assert_eq!(verdicts(&c, &p), ["node(s) were unschedulable"]);
}

fn anti_affinity(key: &str) -> Value {
    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": key}]}})
}

#[test]
fn required_anti_affinity_rejects_nodes_hosting_matching_pods() {
    let running = bound("w1", "a", json!({"app": "web"}), json!({}));
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ],
        &[running],
    );
    let p = info(&pod(
        "p",
        "",
        "",
        json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"affinity": anti_affinity("kubernetes.io/hostname")}}),
    ));
    assert_eq!(
        verdicts(&c, &p),
        ["node(s) didn't match pod anti-affinity rules", ""]
    );
}

#[test]
fn anti_affinity_of_running_pods_is_honoured_with_any_topology_key() {
    let zone = |z: &str| json!({"metadata": {"labels": {"zone": z}}});
    let running = bound(
        "guard",
        "a",
        json!({"app": "guard"}),
        json!({"affinity": anti_affinity("zone")}),
    );
    let c = cache(
        &[
            node("a", "4", "8Gi", zone("z1")),
            node("b", "4", "8Gi", zone("z1")),
            node("c", "4", "8Gi", zone("z2")),
        ],
        &[running],
    );
    let p = info(&pod(
        "p",
        "",
        "",
        json!({"metadata": {"labels": {"app": "web"}}}),
    ));
    let msg = "node(s) didn't satisfy existing pods anti-affinity rules";
    assert_eq!(verdicts(&c, &p), [msg, msg, ""]);
    let other_ns = info(&pod(
        "p",
        "",
        "",
        json!({"metadata": {"namespace": "other", "labels": {"app": "web"}}}),
    ));
    assert_eq!(verdicts(&c, &other_ns), ["", "", ""]);
}

#[test]
fn required_affinity_needs_a_matching_pod_in_the_domain_except_for_the_first_pod() {
    let zone = |z: &str| json!({"metadata": {"labels": {"zone": z}}});
    let nodes = [
        node("a", "4", "8Gi", zone("z1")),
        node("b", "4", "8Gi", zone("z2")),
        node("c", "4", "8Gi", json!({})),
    ];
    let affinity = json!({"metadata": {"labels": {"app": "cache"}}, "spec": {"affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}]}}}});
    let p = info(&pod("p", "", "", affinity));
    let msg = "node(s) didn't match pod affinity rules";
    // First pod of the group: anywhere with the topology key.
    assert_eq!(verdicts(&cache(&nodes, &[]), &p), ["", "", msg]);
    let running = bound("c1", "b", json!({"app": "cache"}), json!({}));
    assert_eq!(verdicts(&cache(&nodes, &[running]), &p), [msg, "", msg]);
}

#[test]
fn topology_spread_limits_skew_and_requires_the_key() {
    let mut unlabeled = node("c", "4", "8Gi", json!({}));
    unlabeled.metadata.labels = None;
    let nodes = [
        node("a", "4", "8Gi", json!({})),
        node("b", "4", "8Gi", json!({})),
        unlabeled,
    ];
    let running = [
        bound("w1", "a", json!({"app": "web"}), json!({})),
        bound("w2", "a", json!({"app": "web"}), json!({})),
    ];
    let spread = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "web"}}}]}});
    let p = info(&pod("p", "", "", spread));
    assert_eq!(
        verdicts(&cache(&nodes, &running), &p),
        [
            "node(s) didn't match pod topology spread constraints",
            "",
            "node(s) didn't match pod topology spread constraints (missing required label)",
        ]
    );
}

#[test]
fn topology_spread_min_domains_treats_missing_domains_as_empty() {
    let nodes = [
        node("a", "4", "8Gi", json!({})),
        node("b", "4", "8Gi", json!({})),
    ];
    let running = [
        bound("w1", "a", json!({"app": "web"}), json!({})),
        bound("w2", "b", json!({"app": "web"}), json!({})),
    ];
    let spread = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
         "minDomains": 3, "labelSelector": {"matchLabels": {"app": "web"}}}]}});
    let p = info(&pod("p", "", "", spread));
    let msg = "node(s) didn't match pod topology spread constraints";
    assert_eq!(verdicts(&cache(&nodes, &running), &p), [msg, msg]);
}

#[test]
fn soft_constraints_and_other_namespaces_do_not_filter() {
    let nodes = [
        node("a", "4", "8Gi", json!({})),
        node("b", "4", "8Gi", json!({})),
    ];
    let running = [
        bound("w1", "a", json!({"app": "web"}), json!({})),
        bound("w2", "a", json!({"app": "web"}), json!({})),
    ];
    let soft = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"app": "web"}}}]}});
    assert_eq!(
        verdicts(&cache(&nodes, &running), &info(&pod("p", "", "", soft))),
        ["", ""]
    );
}
