//! The order in which a ReplicaSet gives up pods when it scales down
//! (upstream's `ActivePodsWithRanks` with `LogarithmicScaleDown` and
//! `PodDeletionCost`): unscheduled before scheduled, pending before unknown
//! before running, not-ready before ready, cheaper `pod-deletion-cost`
//! first, pods doubled up on a node with related pods first, then the most
//! recently ready, the most restarted, and the newest.
//!
//! The comparison is upstream's, which is not a strict total order in every
//! corner (equal-bucket tie breaks by UID); it is therefore applied with a
//! merge sort that tolerates that instead of the standard library's sort,
//! which may panic on inconsistent comparators.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::pod_state;

const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Picks the `count` pods to delete first from `pods`, ranking pods that
/// share a node with many `related` active pods (pods of sibling ReplicaSets
/// of the same owner) as more deletable.
pub fn pods_to_delete(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    count: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if count >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: HashMap<&str, i64> = HashMap::new();
    for pod in related.iter().filter(|p| pod_state::is_active(p)) {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(Arc<Pod>, i64)> = pods
        .iter()
        .map(|p| (p.clone(), on_node.get(node_name(p)).copied().unwrap_or(0)))
        .collect();
    merge_sort(&mut ranked, &|a, b| compare(&a.0, a.1, &b.0, b.1, now));
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod_state::phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Orders `a` before `b` when `a` should be deleted first.
pub fn compare(a: &Pod, rank_a: i64, b: &Pod, rank_b: i64, now: Timestamp) -> Ordering {
    let (node_a, node_b) = (node_name(a), node_name(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return node_b.is_empty().cmp(&node_a.is_empty());
    }
    let by_phase = phase_ordinal(a).cmp(&phase_ordinal(b));
    let (ready_a, ready_b) = (pod_state::is_ready(a), pod_state::is_ready(b));
    let by_ready = ready_a.cmp(&ready_b);
    let by_cost = deletion_cost(a).cmp(&deletion_cost(b));
    let by_rank = rank_b.cmp(&rank_a);
    let early = by_phase.then(by_ready).then(by_cost).then(by_rank);
    if early != Ordering::Equal {
        return early;
    }
    if ready_a && ready_b {
        let (ta, tb) = (pod_state::ready_since(a), pod_state::ready_since(b));
        if ta != tb {
            return by_age(a, ta, b, tb, now);
        }
    }
    let (restarts_a, restarts_b) = (max_restarts(a), max_restarts(b));
    if restarts_a != restarts_b {
        return restarts_b.cmp(&restarts_a);
    }
    let (ca, cb) = (creation(a), creation(b));
    if ca != cb {
        return by_age(a, ca, b, cb, now);
    }
    Ordering::Equal
}

fn creation(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Missing times first, then younger before older in logarithmic buckets,
/// UID breaking ties within a bucket.
fn by_age(
    a: &Pod,
    ta: Option<Timestamp>,
    b: &Pod,
    tb: Option<Timestamp>,
    now: Timestamp,
) -> Ordering {
    let (Some(ta), Some(tb)) = (ta, tb) else {
        return tb.is_none().cmp(&ta.is_none());
    };
    let diff = log_bucket(ta, now) - log_bucket(tb, now);
    match diff.cmp(&0) {
        Ordering::Equal => a.metadata.uid.cmp(&b.metadata.uid),
        other => other,
    }
}

fn log_bucket(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = t.duration_until(now).as_nanos();
    if nanos > 0 {
        // Truncation is the bucketing: whole powers of two of nanoseconds.
        (nanos as f64).log2() as i64
    } else {
        -1
    }
}

/// (highest restart count among regular containers, among restartable
/// init containers); higher counts are deleted first.
fn max_restarts(pod: &Pod) -> (i32, i32) {
    let Some(status) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = status
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    let sidecars: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let sidecar = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|c| sidecars.contains(&c.name.as_str()))
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    (regular, sidecar)
}

/// A stable merge sort that accepts any comparator without panicking.
fn merge_sort<T: Clone>(items: &mut [T], cmp: &dyn Fn(&T, &T) -> Ordering) {
    if items.len() <= 1 {
        return;
    }
    let mid = items.len() / 2;
    merge_sort(&mut items[..mid], cmp);
    merge_sort(&mut items[mid..], cmp);
    let mut merged = Vec::with_capacity(items.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < items.len() {
        if cmp(&items[j], &items[i]) == Ordering::Less {
            merged.push(items[j].clone());
            j += 1;
        } else {
            merged.push(items[i].clone());
            i += 1;
        }
    }
    merged.extend_from_slice(&items[i..mid]);
    merged.extend_from_slice(&items[j..]);
    items.clone_from_slice(&merged);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::pod_state::tests::pod_with;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::SignedDuration;

    fn now() -> Timestamp {
        Timestamp::from_second(2_000_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn ago(secs: i64) -> Timestamp {
        now() - SignedDuration::from_secs(secs)
    }

    fn pod(name: &str, node: &str, phase: &str, ready: Option<bool>, created: i64) -> Arc<Pod> {
        let mut p = pod_with(phase, ready, ago(created));
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(ago(created)));
        p.spec = Some(PodSpec {
            node_name: (!node.is_empty()).then(|| node.into()),
            ..Default::default()
        });
        Arc::new(p)
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn unscheduled_pending_and_unready_pods_go_first() {
        let pods = vec![
            pod("running-ready", "n1", "Running", Some(true), 100),
            pod("running-unready", "n1", "Running", Some(false), 100),
            pod("pending", "n1", "Pending", None, 100),
            pod("unscheduled", "", "Pending", None, 100),
        ];
        let order = pods_to_delete(&pods, &pods, 3, now());
        assert_eq!(names(&order), ["unscheduled", "pending", "running-unready"]);
    }

    #[test]
    fn newest_pods_go_first_among_equals() {
        let pods = vec![
            pod("old", "n1", "Running", Some(false), 100_000),
            pod("new", "n1", "Running", Some(false), 10),
        ];
        assert_eq!(names(&pods_to_delete(&pods, &[], 1, now())), ["new"]);
    }

    #[test]
    fn doubled_up_pods_and_cheap_pods_go_first() {
        let lonely = pod("lonely", "n1", "Running", Some(true), 100);
        let crowded = pod("crowded", "n2", "Running", Some(true), 100);
        let related = vec![
            lonely.clone(),
            crowded.clone(),
            pod("x", "n2", "Running", None, 1),
        ];
        let order = pods_to_delete(&[lonely.clone(), crowded.clone()], &related, 1, now());
        assert_eq!(names(&order), ["crowded"]);
        let mut cheap = (*lonely).clone();
        cheap.metadata.annotations =
            Some([(DELETION_COST_ANNOTATION.to_string(), "-5".to_string())].into());
        let order = pods_to_delete(&[crowded, Arc::new(cheap)], &related, 1, now());
        assert_eq!(names(&order), ["lonely"]);
    }

    #[test]
    fn restarted_pods_go_before_healthy_ones() {
        let mut flappy = (*pod("flappy", "n1", "Running", Some(false), 50)).clone();
        if let Some(s) = flappy.status.as_mut() {
            s.container_statuses = Some(vec![ContainerStatus {
                restart_count: 7,
                ..Default::default()
            }]);
        }
        let steady = pod("steady", "n1", "Running", Some(false), 50);
        let order = pods_to_delete(&[steady, Arc::new(flappy)], &[], 1, now());
        assert_eq!(names(&order), ["flappy"]);
    }

    #[test]
    fn asking_for_everything_returns_everything() {
        let pods = vec![pod("a", "", "", None, 1), pod("b", "", "", None, 2)];
        assert_eq!(pods_to_delete(&pods, &[], 5, now()).len(), 2);
    }
}
