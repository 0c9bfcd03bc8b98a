use std::collections::HashSet;

use serde_json::json;

use super::*;
use crate::scheduler::fixtures::{cache, info, node, pod};

#[test]
fn feasible_node_count_follows_upstream_adaptive_percentage() {
    assert_eq!(num_feasible_nodes_to_find(3), 3);
    assert_eq!(num_feasible_nodes_to_find(99), 99);
    assert_eq!(num_feasible_nodes_to_find(100), 100);
    assert_eq!(num_feasible_nodes_to_find(500), 230);
    assert_eq!(num_feasible_nodes_to_find(1000), 420);
    assert_eq!(num_feasible_nodes_to_find(5000), 500);
    assert_eq!(num_feasible_nodes_to_find(10_000), 500);
    assert_eq!(num_feasible_nodes_to_find(20_000), 1000);
}

#[test]
fn identical_pods_spread_over_identical_nodes() {
    let nodes: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| node(n, "4", "8Gi", json!({})))
        .collect();
    let mut c = cache(&nodes, &[]);
    let mut cycle = Cycle::new(Rng::seeded(7));
    let mut used = HashSet::new();
    for i in 0..3 {
        let p = info(&pod(&format!("p{i}"), "1", "1Gi", json!({})));
        let Decision::Bind(n) = cycle.schedule(&c, &p) else {
            panic!("should fit")
        };
        c.assume(p, &n);
        used.insert(n);
    }
    assert_eq!(used.len(), 3);
}

#[test]
fn a_pod_nobody_can_host_gets_the_upstream_message() {
    let cp = json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
    let nodes = [
        node("a", "4", "8Gi", json!({})),
        node("b", "4", "8Gi", cp.clone()),
        node("c", "4", "8Gi", cp),
    ];
    let c = cache(&nodes, &[]);
    let p = info(&pod("p", "100", "", json!({})));
    let Decision::Unschedulable(fit) = Cycle::new(Rng::seeded(1)).schedule(&c, &p) else {
        panic!("100 cpus cannot fit")
    };
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
         {node-role.kubernetes.io/control-plane: }."
    );
}

#[test]
fn empty_clusters_and_unparseable_pods_are_unschedulable() {
    let p = info(&pod("p", "", "", json!({})));
    let Decision::Unschedulable(fit) = Cycle::new(Rng::seeded(1)).schedule(&Cache::default(), &p)
    else {
        panic!("no node")
    };
    assert_eq!(fit.message(), "no nodes available to schedule pods");
    let bad = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "k",
            "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}]}}}}),
    ));
    let c = cache(&[node("a", "4", "8Gi", json!({}))], &[]);
    let Decision::Unschedulable(fit) = Cycle::new(Rng::seeded(1)).schedule(&c, &bad) else {
        panic!("bad selector")
    };
    assert!(
        fit.message()
            .starts_with("0/1 nodes are available: parsing pod: invalid selector"),
        "{}",
        fit.message()
    );
}

#[test]
fn large_clusters_are_sampled_in_a_rotating_window() {
    let nodes: Vec<_> = (0..1000)
        .map(|i| node(&format!("n{i:04}"), "4", "8Gi", json!({})))
        .collect();
    let c = cache(&nodes, &[]);
    let mut cycle = Cycle::new(Rng::seeded(3));
    let p = info(&pod("p", "1", "", json!({})));
    let first = cycle.find_feasible(&c, &p).map(|f| f.len()).unwrap_or(0);
    assert_eq!(first, 420);
    assert_eq!(cycle.next_start, 420);
    cycle.find_feasible(&c, &p).map(|_| ()).unwrap_or(());
    assert_eq!(cycle.next_start, 840);
    cycle.find_feasible(&c, &p).map(|_| ()).unwrap_or(());
    assert_eq!(cycle.next_start, 260, "window wraps around");
}

#[test]
fn ties_are_broken_randomly() {
    let nodes: Vec<_> = (0..4)
        .map(|i| node(&format!("n{i}"), "4", "8Gi", json!({})))
        .collect();
    let c = cache(&nodes, &[]);
    let p = info(&pod("p", "1", "", json!({})));
    let mut cycle = Cycle::new(Rng::seeded(11));
    let picks: HashSet<String> = (0..40)
        .filter_map(|_| match cycle.schedule(&c, &p) {
            Decision::Bind(n) => Some(n),
            Decision::Unschedulable(_) => None,
        })
        .collect();
    assert_eq!(picks.len(), 4);
}

#[test]
fn the_best_scored_node_wins() {
    let busy = pod("b", "3", "", json!({"spec": {"nodeName": "a"}}));
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ],
        &[busy],
    );
    let p = info(&pod("p", "500m", "", json!({})));
    let mut cycle = Cycle::new(Rng::seeded(5));
    for _ in 0..10 {
        assert!(matches!(cycle.schedule(&c, &p), Decision::Bind(ref n) if n == "b"));
    }
}

#[test]
fn required_anti_affinity_places_replicas_on_distinct_nodes() {
    let nodes: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| node(n, "4", "8Gi", json!({})))
        .collect();
    let mut c = cache(&nodes, &[]);
    let mut cycle = Cycle::new(Rng::seeded(9));
    let replica = |i: usize| {
        info(&pod(
            &format!("r{i}"),
            "",
            "",
            json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}),
        ))
    };
    let mut used = HashSet::new();
    for i in 0..3 {
        let p = replica(i);
        let Decision::Bind(n) = cycle.schedule(&c, &p) else {
            panic!("replica {i} should fit")
        };
        c.assume(p, &n);
        used.insert(n);
    }
    assert_eq!(used.len(), 3);
    let Decision::Unschedulable(fit) = cycle.schedule(&c, &replica(3)) else {
        panic!("no node left")
    };
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    );
}
