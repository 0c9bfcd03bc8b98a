//! Pure Job arithmetic: which pods count as active, failed or finished, how many pods a
//! Job wants, its deadlines, and its conditions (upstream helpers of `job_controller.go`).
//!
//! No I/O happens here; [`super::sync`] feeds the cache contents in and acts on the results,
//! which keeps the completion math unit-testable.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::indexed::completion_index;
use crate::controllers::batch_common::pods::{deletion_order, phase};
use crate::controllers::batch_common::time::{plus_seconds, until};

/// The finalizer that keeps a pod around until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The `managedBy` value meaning "this controller".
pub const MANAGED_BY_SELF: &str = "kubernetes.io/job-controller";

/// The Job's finished condition type (`Complete` or `Failed`), if it has one.
pub fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// Another controller named in `spec.managedBy`, if any.
pub fn managed_by_external(spec: &JobSpec) -> Option<&str> {
    spec.managed_by.as_deref().filter(|m| *m != MANAGED_BY_SELF)
}

/// Whether `completionMode` is `Indexed`.
pub fn is_indexed(spec: &JobSpec) -> bool {
    spec.completion_mode.as_deref() == Some("Indexed")
}

/// Whether `spec.suspend` is true.
pub fn is_suspended(spec: &JobSpec) -> bool {
    spec.suspend == Some(true)
}

/// Upstream `onlyReplaceFailedPods`: terminating pods are not replaced until they fail.
pub fn only_replace_failed(spec: &JobSpec) -> bool {
    spec.pod_replacement_policy.as_deref() == Some("Failed") || spec.pod_failure_policy.is_some()
}

/// Whether the pod still carries the tracking finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

/// Upstream `isPodFailed`: Failed, or (unless only failed pods are replaced) deleted
/// before succeeding.
pub fn is_pod_failed(pod: &Pod, spec: &JobSpec) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed(spec) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// How many pods the Job wants running (upstream `manageJob`'s `wantActive`).
pub fn want_active(completions: Option<i32>, parallelism: i32, succeeded: i32, active: i32) -> i32 {
    match completions {
        None if succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - succeeded).min(parallelism).max(0),
    }
}

/// Whether a Job is complete given its counts (upstream `syncJob`'s `complete`).
pub fn is_complete(completions: Option<i32>, succeeded: i32, active: i32) -> bool {
    match completions {
        None => succeeded > 0 && active == 0,
        Some(c) => succeeded >= c && active == 0,
    }
}

/// Upstream `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure`, container restarts
/// of running pods count against the backoff limit.
pub fn past_backoff_limit_on_failure(spec: &JobSpec, pods: &[Arc<Pod>]) -> bool {
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if restart != Some("OnFailure") {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            let init = s.init_container_statuses.iter().flatten();
            init.chain(s.container_statuses.iter().flatten())
        })
        .map(|c| i64::from(c.restart_count))
        .sum();
    let limit = i64::from(spec.backoff_limit.unwrap_or(6));
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// Time left before `activeDeadlineSeconds` expires; `None` when there is no running
/// deadline (unset, suspended or not started).
pub fn deadline_remaining(
    spec: &JobSpec,
    start: Option<Timestamp>,
    now: Timestamp,
) -> Option<Duration> {
    let ads = spec.active_deadline_seconds?;
    if is_suspended(spec) {
        return None;
    }
    Some(until(now, plus_seconds(start?, ads)))
}

/// A new condition stamped `now`.
pub fn new_condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: (!reason.is_empty()).then(|| reason.into()),
        message: (!message.is_empty()).then(|| message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of a type, if present.
pub fn find_condition<'a>(conditions: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Upstream `ensureJobConditionStatus`: sets a condition, returning whether anything changed.
/// A missing condition is not added with status False.
pub fn ensure_condition(
    list: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let want = |c: &JobCondition| {
        c.status == status
            && c.reason.as_deref().unwrap_or("") == reason
            && c.message.as_deref().unwrap_or("") == message
    };
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if want(c) {
            return false;
        }
        *c = new_condition(type_, reason, message, now);
        c.status = status.into();
        return true;
    }
    if status == "False" {
        return false;
    }
    let mut c = new_condition(type_, reason, message, now);
    c.status = status.into();
    list.push(c);
    true
}

/// Upstream `activePodsForRemoval`: for Indexed Jobs first pods with duplicate, invalid or
/// missing indexes, then the cheapest pods to lose, until `at_least` are chosen.
pub fn pods_for_removal(
    indexed: Option<i32>,
    active: &[Arc<Pod>],
    at_least: usize,
) -> Vec<Arc<Pod>> {
    let (mut rm, mut left) = match indexed {
        Some(completions) => split_duplicate_indexes(active, completions),
        None => (Vec::new(), active.to_vec()),
    };
    if rm.len() < at_least {
        left.sort_by(|a, b| deletion_order(a, b));
        let take = (at_least - rm.len()).min(left.len());
        rm.extend(left.into_iter().take(take));
    }
    rm
}

/// Keeps the best pod per valid index; everything else is returned for removal.
fn split_duplicate_indexes(pods: &[Arc<Pod>], completions: i32) -> (Vec<Arc<Pod>>, Vec<Arc<Pod>>) {
    let mut by_index: BTreeMap<i32, Vec<Arc<Pod>>> = BTreeMap::new();
    let mut rm = Vec::new();
    for p in pods {
        match completion_index(p).filter(|i| *i < completions) {
            Some(i) => by_index.entry(i).or_default().push(p.clone()),
            None => rm.push(p.clone()),
        }
    }
    let mut left = Vec::new();
    for (_, mut group) in by_index {
        group.sort_by(|a, b| deletion_order(a, b));
        if let Some(keep) = group.pop() {
            left.push(keep);
        }
        rm.extend(group);
    }
    (rm, left)
}

/// Uids recorded in `status.uncountedTerminatedPods`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uncounted {
    /// Succeeded pods not yet in `status.succeeded`.
    pub succeeded: HashSet<String>,
    /// Failed pods not yet in `status.failed`.
    pub failed: HashSet<String>,
}

impl Uncounted {
    /// Reads the sets from a Job's status.
    pub fn of(job: &Job) -> Self {
        let u = job
            .status
            .as_ref()
            .and_then(|s| s.uncounted_terminated_pods.as_ref());
        let set = |v: Option<&Vec<String>>| v.into_iter().flatten().cloned().collect();
        Uncounted {
            succeeded: set(u.and_then(|u| u.succeeded.as_ref())),
            failed: set(u.and_then(|u| u.failed.as_ref())),
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
