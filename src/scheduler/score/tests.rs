use serde_json::{Value, json};

use super::*;
use crate::scheduler::fixtures::{cache, info, merge, node, pod};

fn bound(
    name: &str,
    node_name: &str,
    cpu: &str,
    labels: Value,
    extra_spec: Value,
) -> k8s_openapi::api::core::v1::Pod {
    let mut spec = json!({"nodeName": node_name});
    merge(&mut spec, extra_spec);
    pod(
        name,
        cpu,
        "",
        json!({"metadata": {"labels": labels}, "spec": spec}),
    )
}

fn nodes_of(c: &Cache) -> Vec<&NodeInfo> {
    c.nodes().iter().collect()
}

#[test]
fn least_allocated_prefers_emptier_nodes() {
    let busy = bound("b", "a", "2", json!({}), json!({}));
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ],
        &[busy],
    );
    let p = info(&pod("p", "1", "2Gi", json!({})));
    let n = nodes_of(&c);
    // a: cpu (4000-3000)/4000=25, memory (8Gi-2Gi-200Mi)/8Gi -> 72; b: 75 and 75.
    assert_eq!(resources::least_allocated(&p, n[0]), (25 + 72) / 2);
    assert_eq!(resources::least_allocated(&p, n[1]), 75);
}

#[test]
fn balanced_allocation_prefers_even_cpu_and_memory_use() {
    let busy = bound("b", "a", "2", json!({}), json!({}));
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ],
        &[busy],
    );
    let p = info(&pod("p", "1", "2Gi", json!({})));
    let n = nodes_of(&c);
    // a: cpu 3/4, memory 2/8 -> std 0.25 -> 75; b: 1/4 and 2/8 -> 100.
    assert_eq!(resources::balanced_allocation(&p, n[0]), 75);
    assert_eq!(resources::balanced_allocation(&p, n[1]), 100);
    assert!(resources::is_best_effort(&info(&pod(
        "q",
        "",
        "",
        json!({})
    ))));
    assert!(!resources::is_best_effort(&p));
}

#[test]
fn default_normalize_scales_by_maximum_and_reverses() {
    let mut s = [0, 1, 2];
    default_normalize(&mut s, true);
    assert_eq!(s, [100, 50, 0]);
    let mut s = [3, 6, 0];
    default_normalize(&mut s, false);
    assert_eq!(s, [50, 100, 0]);
    let mut s = [0, 0];
    default_normalize(&mut s, true);
    assert_eq!(s, [100, 100]);
}

#[test]
fn prefer_no_schedule_taints_lower_the_score_unless_tolerated() {
    let t = |n: usize| {
        let taints: Vec<Value> = (0..n)
            .map(|i| json!({"key": format!("k{i}"), "effect": "PreferNoSchedule"}))
            .collect();
        json!({"spec": {"taints": taints}})
    };
    let c = cache(
        &[
            node("a", "4", "8Gi", t(0)),
            node("b", "4", "8Gi", t(1)),
            node("c", "4", "8Gi", t(2)),
        ],
        &[],
    );
    let p = info(&pod("p", "", "", json!({})));
    let raw: Vec<i64> = c
        .nodes()
        .iter()
        .map(|n| affinity::intolerable_prefer_no_schedule(&p, n))
        .collect();
    assert_eq!(raw, [0, 1, 2]);
    let tolerant = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"tolerations": [
        {"key": "k0", "operator": "Exists", "effect": "PreferNoSchedule"}, {"key": "k1", "operator": "Exists"}]}}),
    ));
    let raw: Vec<i64> = c
        .nodes()
        .iter()
        .map(|n| affinity::intolerable_prefer_no_schedule(&tolerant, n))
        .collect();
    assert_eq!(raw, [0, 0, 0]);
    let no_schedule_only = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"tolerations": [
        {"key": "k0", "operator": "Exists", "effect": "NoSchedule"}]}}),
    ));
    assert_eq!(
        affinity::intolerable_prefer_no_schedule(&no_schedule_only, &c.nodes()[1]),
        1
    );
}

#[test]
fn preferred_node_affinity_sums_matching_weights() {
    let labels = |l: Value| json!({"metadata": {"labels": l}});
    let c = cache(
        &[
            node(
                "a",
                "4",
                "8Gi",
                labels(json!({"zone": "z1", "ssd": "true"})),
            ),
            node("b", "4", "8Gi", labels(json!({"zone": "z1"}))),
            node("c", "4", "8Gi", json!({})),
        ],
        &[],
    );
    let p = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}},
            {"weight": 30, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}},
            {"weight": 50, "preference": {}}
        ]}}}}),
    ));
    let raw: Vec<i64> = c
        .nodes()
        .iter()
        .map(|n| affinity::preferred_node_affinity(&p, n))
        .collect();
    assert_eq!(raw, [40, 10, 0], "empty preferences are ignored");
}

#[test]
fn soft_topology_spread_prefers_domains_with_fewer_matching_pods() {
    let running = [
        bound("w1", "a", "", json!({"app": "web"}), json!({})),
        bound("w2", "a", "", json!({"app": "web"}), json!({})),
        bound("w3", "b", "", json!({"app": "web"}), json!({})),
    ];
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
            node("c", "4", "8Gi", json!({})),
        ],
        &running,
    );
    let p = info(&pod(
        "p",
        "",
        "",
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
    ));
    let mut out = vec![0; 3];
    assert!(spread::score(&c, &p, &nodes_of(&c), &mut out));
    // raw = cnt * ln(5): 2*1.609=3, 1.609=2, 0 -> 100*(3+0-s)/3.
    assert_eq!(out, [0, 33, 100]);
    let hard_only = info(&pod("p", "", "", json!({})));
    assert!(!spread::score(&c, &hard_only, &nodes_of(&c), &mut out));
}

#[test]
fn preferred_pod_affinity_and_anti_affinity_score_by_topology() {
    let zone = |z: &str| json!({"metadata": {"labels": {"zone": z}}});
    let running = [bound("db", "a", "", json!({"app": "db"}), json!({}))];
    let nodes = [
        node("a", "4", "8Gi", zone("z1")),
        node("b", "4", "8Gi", zone("z1")),
        node("c", "4", "8Gi", zone("z2")),
    ];
    let c = cache(&nodes, &running);
    let term = json!({"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}});
    let near = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"affinity": {"podAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [term.clone()]}}}}),
    ));
    let mut out = vec![0; 3];
    assert!(affinity::inter_pod_affinity(
        &c,
        &near,
        &nodes_of(&c),
        &mut out
    ));
    assert_eq!(out, [100, 100, 0]);
    let far = info(&pod(
        "p",
        "",
        "",
        json!({"spec": {"affinity": {"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [term]}}}}),
    ));
    assert!(affinity::inter_pod_affinity(
        &c,
        &far,
        &nodes_of(&c),
        &mut out
    ));
    assert_eq!(out, [0, 0, 100]);
    let plain = info(&pod("p", "", "", json!({})));
    assert!(!affinity::inter_pod_affinity(
        &c,
        &plain,
        &nodes_of(&c),
        &mut out
    ));
}

#[test]
fn running_pods_required_affinity_attracts_matching_pods() {
    let running = [bound(
        "fe",
        "b",
        "",
        json!({"app": "fe"}),
        json!({"affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "be"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
    )];
    let c = cache(
        &[
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ],
        &running,
    );
    let p = info(&pod(
        "p",
        "",
        "",
        json!({"metadata": {"labels": {"app": "be"}}}),
    ));
    let mut out = vec![0; 2];
    assert!(affinity::inter_pod_affinity(
        &c,
        &p,
        &nodes_of(&c),
        &mut out
    ));
    assert_eq!(out, [0, 100]);
}

#[test]
fn total_score_combines_plugins_with_weights() {
    let tainted = json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}});
    let c = cache(
        &[
            node("a", "4", "8Gi", tainted),
            node("b", "4", "8Gi", json!({})),
        ],
        &[],
    );
    let p = info(&pod("p", "1", "2Gi", json!({})));
    let total = score(&c, &p, &nodes_of(&c));
    // Fit 75 + balance 100 on both; taint: a 0, b 100 (weight 3).
    assert_eq!(total, [175, 475]);
}
