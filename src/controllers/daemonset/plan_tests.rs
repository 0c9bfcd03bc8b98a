//! Tests of per-node needs, rolling update budgets and status counts.

use super::*;
use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn pod(name: &str, node: &str, hash: &str, phase: &str, ready: bool, created: i64) -> Arc<Pod> {
    let conditions = ready.then(|| {
        vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(0))),
            ..Default::default()
        }]
    });
    let mut p = Pod {
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions,
            ..Default::default()
        }),
        ..Default::default()
    };
    p.metadata.name = Some(name.into());
    p.metadata.creation_timestamp = Some(Time(ts(created)));
    p.metadata.labels = Some([(REVISION_HASH_LABEL.to_string(), hash.to_string())].into());
    Arc::new(p)
}

fn rollout(surge: bool) -> Rollout<'static> {
    Rollout {
        hash: "new",
        generation: None,
        min_ready_seconds: 0,
        surge,
        now: ts(100),
    }
}

fn names(v: &[Arc<Pod>]) -> Vec<String> {
    v.iter().filter_map(|p| p.metadata.name.clone()).collect()
}

#[test]
fn nodes_without_a_pod_get_one_and_extra_pods_go_oldest_first_kept() {
    let r = rollout(false);
    assert!(node_needs(true, true, None, &r).create);
    let two = vec![
        pod("young", "n", "new", "Running", true, 20),
        pod("old", "n", "new", "Running", true, 10),
    ];
    let needs = node_needs(true, true, Some(&two), &r);
    assert!(!needs.create);
    assert_eq!(names(&needs.delete), ["young"]);
}

#[test]
fn failed_pods_are_replaced_and_pods_on_unwanted_nodes_removed() {
    let r = rollout(false);
    let failed = vec![pod("f", "n", "new", "Failed", false, 10)];
    let needs = node_needs(true, true, Some(&failed), &r);
    assert_eq!(names(&needs.failed), ["f"]);
    let stray = vec![pod("s", "n", "new", "Running", true, 10)];
    assert_eq!(
        names(&node_needs(false, false, Some(&stray), &r).delete),
        ["s"]
    );
    assert!(node_needs(false, true, Some(&stray), &r).delete.is_empty());
}

#[test]
fn surging_keeps_the_old_pod_until_the_new_one_is_available() {
    let r = rollout(true);
    let waiting = vec![
        pod("old", "n", "old", "Running", true, 10),
        pod("new", "n", "new", "Pending", false, 20),
    ];
    assert!(node_needs(true, true, Some(&waiting), &r).delete.is_empty());
    let ready = vec![
        pod("old", "n", "old", "Running", true, 10),
        pod("new", "n", "new", "Running", true, 20),
    ];
    assert_eq!(
        names(&node_needs(true, true, Some(&ready), &r).delete),
        ["old"]
    );
}

#[test]
fn rolling_update_without_surge_respects_max_unavailable() {
    let r = rollout(false);
    let by_node: NodePods = [
        (
            "a".to_string(),
            vec![pod("a", "a", "old", "Running", true, 1)],
        ),
        (
            "b".to_string(),
            vec![pod("b", "b", "old", "Running", true, 1)],
        ),
        (
            "c".to_string(),
            vec![pod("c", "c", "old", "Running", true, 1)],
        ),
    ]
    .into();
    assert_eq!(update_without_surge(&by_node, &r, 1).delete.len(), 1);
    assert_eq!(update_without_surge(&by_node, &r, 2).delete.len(), 2);
    let mut busy = by_node.clone();
    busy.insert("a".into(), vec![pod("a2", "a", "new", "Pending", false, 5)]);
    assert!(
        update_without_surge(&busy, &r, 1).delete.is_empty(),
        "an unavailable new pod uses the budget"
    );
    let mut broken = by_node.clone();
    broken.insert("a".into(), vec![pod("a", "a", "old", "Running", false, 1)]);
    assert_eq!(
        update_without_surge(&broken, &r, 1).delete,
        vec!["a".to_string()]
    );
}

#[test]
fn rolling_update_with_surge_creates_beside_old_pods() {
    let r = rollout(true);
    let by_node: NodePods = [
        (
            "a".to_string(),
            vec![pod("a", "a", "old", "Running", true, 1)],
        ),
        (
            "b".to_string(),
            vec![pod("b", "b", "old", "Running", true, 1)],
        ),
    ]
    .into();
    let step = update_with_surge(&by_node, &r, 1, 2, |_| true);
    assert_eq!(step.create, vec!["a".to_string()]);
    assert!(step.delete.is_empty());
}

#[test]
fn status_counts_desired_current_ready_updated_and_misscheduled() {
    let r = rollout(false);
    let by_node: NodePods = [
        (
            "a".to_string(),
            vec![pod("a", "a", "new", "Running", true, 1)],
        ),
        (
            "b".to_string(),
            vec![pod("b", "b", "old", "Pending", false, 1)],
        ),
        (
            "x".to_string(),
            vec![pod("x", "x", "new", "Running", true, 1)],
        ),
    ]
    .into();
    let nodes = vec![
        ("a".to_string(), true),
        ("b".to_string(), true),
        ("c".to_string(), true),
        ("x".to_string(), false),
    ];
    let c = count(&nodes, &by_node, &r);
    assert_eq!(
        c,
        Counts {
            desired: 3,
            current: 2,
            misscheduled: 1,
            ready: 1,
            updated: 1,
            available: 1
        }
    );
}
