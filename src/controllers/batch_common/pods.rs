//! Pod predicates and orderings shared by the controllers (upstream `podutil` and
//! `controller.ActivePods`).
//!
//! Everything here is a pure function of a pod (and a caller-supplied `now`), so the
//! controllers agree on what "active", "ready" and "available" mean and tests can pin them.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::time::plus_seconds;

/// The pod's phase, `""` when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Succeeded or Failed: the pod will not run again.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// The pod has a deletion timestamp.
pub fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream `FilterActivePods`: neither terminal nor being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && !is_deleting(pod)
}

/// Upstream `IsPodTerminating` as used by `CountTerminatingPods`: deleting but not terminal.
pub fn is_terminating(pod: &Pod) -> bool {
    is_deleting(pod) && !is_terminal(pod)
}

/// The pod's `Ready` condition as (status is True, last transition time).
fn ready_condition(pod: &Pod) -> Option<(bool, Option<Timestamp>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            (
                c.status == "True",
                c.last_transition_time.as_ref().map(|t| t.0),
            )
        })
}

/// Whether the `Ready` condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|(ready, _)| ready)
}

/// When the pod last became ready, if it is ready.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod).and_then(|(ready, t)| if ready { t } else { None })
}

/// Upstream `IsPodAvailable`: ready for at least `min_ready_seconds` (strictly before now).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some((true, since)) = ready_condition(pod) else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    since.is_some_and(|t| plus_seconds(t, i64::from(min_ready_seconds)) < now)
}

/// The node the pod is bound to, `""` when unscheduled.
pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn max_container_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// Orders `a` before `b` when `a` is the better pod to delete (upstream `ActivePods.Less`):
/// unscheduled, then pending, then not ready, then ready for less time, then more restarts,
/// then newer.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let by_phase = phase_rank(a).cmp(&phase_rank(b));
    if by_phase != Ordering::Equal {
        return by_phase;
    }
    let (ra, rb) = (is_ready(a), is_ready(b));
    if ra != rb {
        return if ra {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    if ra {
        let by_ready = newer_or_unset_first(ready_since(a), ready_since(b));
        if by_ready != Ordering::Equal {
            return by_ready;
        }
    }
    let by_restarts = max_container_restarts(b).cmp(&max_container_restarts(a));
    if by_restarts != Ordering::Equal {
        return by_restarts;
    }
    newer_or_unset_first(
        a.metadata.creation_timestamp.as_ref().map(|t| t.0),
        b.metadata.creation_timestamp.as_ref().map(|t| t.0),
    )
}

/// Upstream `afterOrZero` as an ordering: unset first, then later instants first.
fn newer_or_unset_first(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    }
}

/// Upstream `podByCreationTimestampAndPhase`: scheduled pods first, then oldest, then name.
pub fn oldest_scheduled_first(a: &Pod, b: &Pod) -> Ordering {
    let (sa, sb) = (!node_name(a).is_empty(), !node_name(b).is_empty());
    if sa != sb {
        return if sa {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ca.cmp(&cb)
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn pod(node: &str, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        let conditions = ready_at.map(|t| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(t))),
                ..Default::default()
            }]
        });
        let mut p = Pod {
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions,
                ..Default::default()
            }),
            ..Default::default()
        };
        p.metadata.creation_timestamp = Some(Time(ts(created)));
        p
    }

    #[test]
    fn deletion_prefers_unscheduled_then_pending_then_unready_then_newer() {
        let unscheduled = pod("", "Pending", None, 10);
        let pending = pod("n", "Pending", None, 10);
        let running_unready = pod("n", "Running", None, 10);
        let ready_recently = pod("n", "Running", Some(100), 10);
        let ready_long = pod("n", "Running", Some(50), 10);
        let mut pods = vec![
            ready_long.clone(),
            ready_recently.clone(),
            running_unready.clone(),
            pending.clone(),
            unscheduled.clone(),
        ];
        pods.sort_by(deletion_order);
        assert_eq!(
            pods,
            vec![
                unscheduled,
                pending,
                running_unready,
                ready_recently,
                ready_long
            ]
        );
    }

    #[test]
    fn availability_needs_min_ready_seconds_to_have_elapsed() {
        let p = pod("n", "Running", Some(100), 0);
        assert!(is_available(&p, 0, ts(100)));
        assert!(!is_available(&p, 10, ts(110)));
        assert!(is_available(&p, 10, ts(111)));
        assert!(!is_available(&pod("n", "Running", None, 0), 0, ts(100)));
    }

    #[test]
    fn active_and_terminating_exclude_each_other() {
        let mut p = pod("n", "Running", None, 0);
        assert!(is_active(&p) && !is_terminating(&p));
        p.metadata.deletion_timestamp = Some(Time(ts(5)));
        assert!(!is_active(&p) && is_terminating(&p));
        let done = pod("n", "Succeeded", None, 0);
        assert!(!is_active(&done) && !is_terminating(&done) && is_terminal(&done));
    }
}
