//! Tests of node eligibility: taints, tolerations, selectors, affinity and pinning.

use super::*;
use k8s_openapi::api::core::v1::NodeSpec;

fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
    let mut n = Node {
        spec: Some(NodeSpec {
            taints: Some(
                taints
                    .iter()
                    .map(|(k, e)| Taint {
                        key: k.to_string(),
                        effect: e.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    n.metadata.name = Some(name.into());
    n.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    n
}

fn requirement(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

fn with_required(terms: Vec<NodeSelectorTerm>) -> PodSpec {
    PodSpec {
        affinity: Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn untainted_matching_nodes_run_daemons() {
    let spec = PodSpec::default();
    assert_eq!(node_should_run(&spec, &node("a", &[], &[])), (true, true));
}

#[test]
fn no_schedule_taints_stop_new_pods_but_keep_running_ones() {
    let spec = PodSpec::default();
    assert_eq!(
        node_should_run(&spec, &node("a", &[], &[("dedicated", "NoSchedule")])),
        (false, true)
    );
    assert_eq!(
        node_should_run(&spec, &node("a", &[], &[("dedicated", "NoExecute")])),
        (false, false)
    );
    let tolerant = PodSpec {
        tolerations: Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    assert_eq!(
        node_should_run(&tolerant, &node("a", &[], &[("dedicated", "NoExecute")])),
        (true, true)
    );
}

#[test]
fn default_tolerations_cover_unhealthy_and_cordoned_nodes() {
    let spec = PodSpec::default();
    let sick = node(
        "a",
        &[],
        &[
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ],
    );
    assert_eq!(node_should_run(&spec, &sick), (true, true));
    let no_net = node(
        "a",
        &[],
        &[("node.kubernetes.io/network-unavailable", "NoSchedule")],
    );
    assert_eq!(node_should_run(&spec, &no_net), (false, true));
    let host = PodSpec {
        host_network: Some(true),
        ..Default::default()
    };
    assert_eq!(node_should_run(&host, &no_net), (true, true));
}

#[test]
fn node_selector_and_required_affinity_filter_nodes() {
    let spec = PodSpec {
        node_selector: Some([("disk".to_string(), "ssd".to_string())].into()),
        ..Default::default()
    };
    assert_eq!(
        node_should_run(&spec, &node("a", &[("disk", "ssd")], &[])),
        (true, true)
    );
    assert_eq!(
        node_should_run(&spec, &node("a", &[("disk", "hdd")], &[])),
        (false, false)
    );
    let zone = with_required(vec![
        NodeSelectorTerm {
            match_expressions: Some(vec![requirement("zone", "In", &["x", "y"])]),
            match_fields: None,
        },
        NodeSelectorTerm {
            match_expressions: Some(vec![requirement("cores", "Gt", &["8"])]),
            match_fields: None,
        },
    ]);
    assert!(node_should_run(&zone, &node("a", &[("zone", "y")], &[])).0);
    assert!(node_should_run(&zone, &node("a", &[("cores", "16")], &[])).0);
    assert!(!node_should_run(&zone, &node("a", &[("cores", "4")], &[])).0);
}

#[test]
fn pinning_uses_match_fields_on_the_node_name() {
    let pinned = pin_to_node(None, "n2");
    let spec = PodSpec {
        affinity: Some(pinned),
        ..Default::default()
    };
    assert!(required_affinity_matches(&spec, &node("n2", &[], &[])));
    assert!(!required_affinity_matches(&spec, &node("n1", &[], &[])));
    let pod = Pod {
        spec: Some(spec),
        ..Default::default()
    };
    assert_eq!(target_node(&pod).as_deref(), Some("n2"));
}
