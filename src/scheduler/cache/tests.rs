use serde_json::json;

use super::*;
use crate::scheduler::fixtures::{info, node, pod};

fn bound(name: &str, node_name: &str, cpu: &str) -> Arc<PodInfo> {
    info(&pod(
        name,
        cpu,
        "",
        json!({"spec": {"nodeName": node_name}}),
    ))
}

#[test]
fn assumed_pods_count_immediately_and_confirmation_does_not_double_count() {
    let mut c = Cache::default();
    c.upsert_node(&node("n1", "4", "8Gi", json!({})));
    let p = bound("a", "n1", "1");
    c.assume(p.clone(), "n1");
    assert_eq!(c.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
    assert_eq!(c.add_assigned_pod(p), PodChange::Confirmed);
    assert_eq!(c.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
    assert_eq!(c.node("n1").map(|n| n.pods.len()), Some(1));
    // A confirmed pod can no longer be forgotten by a late binding error.
    assert!(!c.forget("uid-a"));
}

#[test]
fn forgetting_an_assumed_pod_releases_its_resources() {
    let mut c = Cache::default();
    c.upsert_node(&node("n1", "4", "8Gi", json!({})));
    c.assume(bound("a", "n1", "2"), "n1");
    assert!(c.forget("uid-a"));
    assert_eq!(c.node("n1").map(|n| n.requested.milli_cpu), Some(0));
    assert!(!c.has_pod("uid-a"));
}

#[test]
fn pods_before_their_node_and_after_node_deletion_are_kept_on_ghosts() {
    let mut c = Cache::default();
    assert_eq!(c.add_assigned_pod(bound("a", "n1", "1")), PodChange::Added);
    assert!(c.node("n1").is_none(), "ghost nodes are not schedulable");
    assert_eq!(
        c.upsert_node(&node("n1", "4", "8Gi", json!({}))),
        NodeChange::Added
    );
    assert_eq!(c.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
    assert!(c.delete_node("n1"));
    assert!(c.nodes().is_empty());
    c.upsert_node(&node("n1", "4", "8Gi", json!({})));
    assert_eq!(c.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
    assert!(c.delete_node("n1"));
    assert!(c.remove_pod("uid-a"));
    assert!(c.ghosts.is_empty());
}

#[test]
fn node_updates_report_only_scheduling_relevant_changes() {
    let mut c = Cache::default();
    c.upsert_node(&node("n1", "4", "8Gi", json!({})));
    let heartbeat = node(
        "n1",
        "4",
        "8Gi",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    assert_eq!(c.upsert_node(&heartbeat), NodeChange::Unchanged);
    let tainted = node(
        "n1",
        "4",
        "8Gi",
        json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
    );
    assert_eq!(c.upsert_node(&tainted), NodeChange::Updated);
}

#[test]
fn deleting_a_node_keeps_the_index_consistent() {
    let mut c = Cache::default();
    for n in ["a", "b", "c"] {
        c.upsert_node(&node(n, "1", "1Gi", json!({})));
    }
    c.delete_node("a");
    assert_eq!(c.node("c").map(|n| n.name.as_str()), Some("c"));
    assert_eq!(c.node("b").map(|n| n.name.as_str()), Some("b"));
    assert_eq!(c.nodes().len(), 2);
}

#[test]
fn moving_an_assigned_pod_updates_both_nodes() {
    let mut c = Cache::default();
    c.upsert_node(&node("n1", "4", "8Gi", json!({})));
    c.upsert_node(&node("n2", "4", "8Gi", json!({})));
    c.add_assigned_pod(bound("a", "n1", "1"));
    assert_eq!(
        c.add_assigned_pod(bound("a", "n2", "1")),
        PodChange::Updated
    );
    assert_eq!(c.node("n1").map(|n| n.requested.milli_cpu), Some(0));
    assert_eq!(c.node("n2").map(|n| n.requested.milli_cpu), Some(1000));
}

#[test]
fn sampling_order_round_robins_over_zones() {
    let mut c = Cache::default();
    let zone = |z: &str| json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}});
    for (n, z) in [
        ("a1", "a"),
        ("a2", "a"),
        ("a3", "a"),
        ("b1", "b"),
        ("c1", "c"),
        ("b2", "b"),
    ] {
        c.upsert_node(&node(n, "1", "1Gi", zone(z)));
    }
    assert!(c.order_is_stale());
    assert_eq!(c.node_at(1).name, "a2", "insertion order until refreshed");
    c.refresh_order();
    let order: Vec<&str> = (0..6).map(|k| c.node_at(k).name.as_str()).collect();
    assert_eq!(order, ["a1", "b1", "c1", "a2", "b2", "a3"]);
    c.delete_node("b1");
    assert!(c.order_is_stale());
    c.refresh_order();
    let order: Vec<&str> = (0..5).map(|k| c.node_at(k).name.as_str()).collect();
    assert_eq!(order.len(), 5);
    assert!(!order.contains(&"b1"));
}
