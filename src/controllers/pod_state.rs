//! What a controller may conclude about a pod from its status: active,
//! terminating, ready, available (ready for `minReadySeconds`), and when it
//! became ready. These mirror upstream's `IsPodActive`, `IsPodReady` and
//! `IsPodAvailable`.
//!
//! Pure functions over the typed pod; missing fields read as "not ready",
//! "no time", never as an error, because a pod without status is simply a pod
//! nobody has reported on yet.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The pod phase, or "" when unreported.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// A pod counts towards its controller's replicas: not finished and not
/// being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// A pod that is being deleted but has not finished (upstream's
/// `FilterTerminatingPods`), reported as `terminatingReplicas`.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// The pod's `Ready` condition, if reported.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod reports `Ready=True`.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When a ready pod became ready (its `Ready` condition's last transition);
/// `None` for pods that are not ready or carry no transition time.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Whether the pod has been ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod)
        .and_then(|since| since.checked_add(min_ready(min_ready_seconds)).ok())
        .is_some_and(|at| at < now)
}

fn min_ready(seconds: i32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(seconds))
}

/// How long until a ready-but-not-yet-available pod becomes available, or
/// `None` if it is not ready or already available.
pub fn until_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 || !is_ready(pod) || is_available(pod, min_ready_seconds, now) {
        return None;
    }
    let at = ready_since(pod)?
        .checked_add(min_ready(min_ready_seconds))
        .ok()?;
    let left = now.duration_until(at);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    /// A pod in `phase`, with a Ready condition of `ready` since `since`.
    pub(crate) fn pod_with(phase: &str, ready: Option<bool>, since: Timestamp) -> Pod {
        let conditions = ready.map(|r| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: if r { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(since)),
                ..Default::default()
            }]
        });
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn finished_or_deleted_pods_are_not_active() {
        assert!(is_active(&pod_with("Running", None, now())));
        assert!(is_active(&pod_with("", None, now())));
        assert!(!is_active(&pod_with("Succeeded", None, now())));
        assert!(!is_active(&pod_with("Failed", None, now())));
        let mut deleting = pod_with("Running", None, now());
        deleting.metadata.deletion_timestamp = Some(Time(now()));
        assert!(!is_active(&deleting));
        assert!(is_terminating(&deleting));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let since = now() - SignedDuration::from_secs(10);
        let pod = pod_with("Running", Some(true), since);
        assert!(is_available(&pod, 0, now()));
        assert!(is_available(&pod, 9, now()));
        assert!(!is_available(&pod, 10, now()));
        assert!(!is_available(&pod, 30, now()));
        assert_eq!(
            until_available(&pod, 30, now()),
            Some(Duration::from_secs(20))
        );
        assert_eq!(until_available(&pod, 5, now()), None);
    }

    #[test]
    fn unready_pods_are_never_available() {
        let pod = pod_with("Running", Some(false), now());
        assert!(!is_ready(&pod));
        assert!(!is_available(&pod, 0, now()));
        assert_eq!(ready_since(&pod), None);
        assert!(!is_ready(&Pod::default()));
    }
}
