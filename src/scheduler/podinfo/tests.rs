use serde_json::json;

use super::*;
use crate::scheduler::fixtures::pod;

fn compile(extra: serde_json::Value) -> PodInfo {
    PodInfo::from_pod(&pod("p", "", "", extra))
}

#[test]
fn scheduler_name_defaults_and_lifecycle_flags_are_read() {
    let p = compile(json!({}));
    assert_eq!(p.scheduler_name, "default-scheduler");
    assert!(!p.gated && !p.terminal && !p.terminating);
    let p = compile(
        json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"schedulerName": "other", "schedulingGates": [{"name": "g"}]},
        "status": {"phase": "Failed", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "m"}]}}),
    );
    assert_eq!(p.scheduler_name, "other");
    assert!(p.gated && p.terminal && p.terminating);
    assert_eq!(
        p.scheduled_condition.map(|c| c.message),
        Some("m".to_string())
    );
}

#[test]
fn host_ports_are_normalised_and_container_only_ports_ignored() {
    let p = compile(json!({"spec": {"containers": [{"name": "c", "ports": [
        {"containerPort": 80},
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]}]}}));
    assert_eq!(
        p.host_ports,
        [
            HostPort {
                ip: "0.0.0.0".into(),
                protocol: "TCP".into(),
                port: 8080
            },
            HostPort {
                ip: "10.0.0.1".into(),
                protocol: "UDP".into(),
                port: 53
            },
        ]
    );
}

#[test]
fn match_label_keys_narrow_affinity_and_spread_selectors() {
    let p = compile(
        json!({"metadata": {"labels": {"app": "web", "rev": "r1"}}, "spec": {
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname",
             "matchLabelKeys": ["rev", "missing"]}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["rev"]}]}}),
    );
    let old_rev: Labels = [("app", "web"), ("rev", "r0")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let same_rev: Labels = [("app", "web"), ("rev", "r1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let term = &p.required_anti_affinity[0];
    assert!(term.selector.matches(&same_rev));
    assert!(!term.selector.matches(&old_rev));
    assert!(p.spread[0].selector.matches(&same_rev));
    assert!(!p.spread[0].selector.matches(&old_rev));
    assert!(p.spread[0].hard && p.spread[0].honor_node_affinity && !p.spread[0].honor_taints);
}

#[test]
fn affinity_terms_default_to_the_pods_namespace_unless_a_namespace_selector_is_given() {
    let p = compile(
        json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {}, "topologyKey": "k"},
        {"labelSelector": {}, "topologyKey": "k", "namespaceSelector": {}}]}}}}),
    );
    let mut other = PodInfo {
        namespace: "other".into(),
        ..Default::default()
    };
    assert!(!p.required_affinity[0].matches(&other, Some(&Labels::new())));
    assert!(p.required_affinity[1].matches(&other, Some(&Labels::new())));
    other.namespace = "default".into();
    assert!(p.required_affinity[0].matches(&other, None));
}

#[test]
fn invalid_own_selectors_are_reported_not_ignored() {
    let p = compile(
        json!({"spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]}}),
    );
    assert!(p.parse_error.is_some());
    assert!(p.spread.is_empty());
}

#[test]
fn toleration_semantics_follow_upstream() {
    let taint = Taint {
        key: "k".into(),
        value: "v".into(),
        effect: Effect::NoSchedule,
    };
    let tol =
        |t: serde_json::Value| Toleration::compile(&serde_json::from_value(t).unwrap_or_default());
    assert!(tol(json!({"operator": "Exists"})).tolerates(&taint));
    assert!(tol(json!({"key": "k", "value": "v"})).tolerates(&taint));
    assert!(
        tol(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})).tolerates(&taint)
    );
    assert!(
        !tol(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})).tolerates(&taint)
    );
    assert!(!tol(json!({"key": "k", "value": "w"})).tolerates(&taint));
    assert!(!tol(json!({"key": "k", "operator": "Bogus", "value": "v"})).tolerates(&taint));
}

#[test]
fn preferred_node_terms_without_weight_or_expressions_are_dropped() {
    let p = compile(
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}},
        {"weight": 5, "preference": {}},
        {"weight": 7, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}}}),
    );
    assert_eq!(
        p.preferred_node.iter().map(|(w, _)| *w).collect::<Vec<_>>(),
        [7]
    );
}
