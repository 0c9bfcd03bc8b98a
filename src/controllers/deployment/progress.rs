//! A Deployment's status and conditions (upstream `sync.go`'s
//! `calculateStatus` and `progress.go`): replica counters summed over its
//! ReplicaSets, `Available` (MinimumReplicasAvailable /
//! MinimumReplicasUnavailable) and `Progressing` (NewReplicaSetCreated,
//! FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
//! ProgressDeadlineExceeded, DeploymentPaused/Resumed), plus `ReplicaFailure`
//! promoted from a ReplicaSet.
//!
//! Pure functions of the deployment, its ReplicaSets and the current time,
//! so the deadline logic is testable without clocks or servers.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::scaling::{self, deployment_replicas};

/// Condition types.
pub const AVAILABLE: &str = "Available";
/// The condition type tracking rollout progress.
pub const PROGRESSING: &str = "Progressing";
/// The condition type promoted from ReplicaSets that cannot create pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Progressing: a ReplicaSet was scaled as part of the rollout.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing=False: the new ReplicaSet could not be created.
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
/// Progressing: the new ReplicaSet was created.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing: an existing ReplicaSet matches the template.
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing: the rollout completed.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing=False: no progress within progressDeadlineSeconds.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing=Unknown: the deployment is paused.
pub const PAUSED: &str = "DeploymentPaused";
/// Progressing=Unknown: the deployment was resumed.
pub const RESUMED: &str = "DeploymentResumed";
/// Available=True reason.
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available=False reason.
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// The current time at the API's one-second resolution, so conditions
/// written and read back compare equal.
pub fn now() -> Timestamp {
    let t = Timestamp::now();
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// A condition stamped `now` (upstream's `NewDeploymentCondition`).
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if present.
pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// The condition of `type_` on a deployment's current status.
pub fn deployment_condition<'a>(d: &'a Deployment, type_: &str) -> Option<&'a DeploymentCondition> {
    d.status.as_ref().and_then(|s| condition(s, type_))
}

/// Upstream's `SetDeploymentCondition`: no-op if status and reason are
/// unchanged; keeps the transition time if only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    let type_ = cond.type_.clone().unwrap_or_default();
    if let Some(current) = condition(status, &type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

/// Removes the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

/// Whether a progress deadline applies (set and not "infinite").
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|s| s != i32::MAX)
}

/// Upstream's `calculateStatus`.
pub fn calculate_status(
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&Arc<ReplicaSet>>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let current = d.status.clone().unwrap_or_default();
    let available = scaling::available_replica_count(all);
    let total = scaling::replica_count(all);
    // Unknown (None) as soon as one ReplicaSet does not report it.
    let terminating: Option<i32> = all
        .iter()
        .map(|rs| rs.status.as_ref().and_then(|s| s.terminating_replicas))
        .try_fold(0, |sum, t| t.map(|t| sum + t));
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(scaling::actual_replica_count(all)),
        updated_replicas: Some(scaling::actual_replica_count(new_rs)),
        ready_replicas: Some(scaling::ready_replica_count(all)),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        terminating_replicas: terminating,
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
    };
    let cond = if available >= deployment_replicas(d) - scaling::max_unavailable(d) {
        new_condition(
            AVAILABLE,
            "True",
            MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, cond);
    status
}

/// Upstream's `DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = deployment_replicas(d);
    status.updated_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream's `DeploymentProgressing`: more updated, fewer old, more ready
/// or more available replicas than the current status says.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Upstream's `DeploymentTimedOut`.
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(cond) = condition(new, PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let deadline =
        SignedDuration::from_secs(i64::from(d.spec.progress_deadline_seconds.unwrap_or(0)));
    cond.last_update_time
        .as_ref()
        .and_then(|t| t.0.checked_add(deadline).ok())
        .is_some_and(|at| at < now)
}

fn rs_name(rs: Option<&Arc<ReplicaSet>>) -> Option<&str> {
    rs.and_then(|rs| rs.metadata.name.as_deref())
}

fn progress_message(d: &Deployment, new_rs: Option<&Arc<ReplicaSet>>, what: &str) -> String {
    match rs_name(new_rs) {
        Some(name) => format!("ReplicaSet {name:?} {what}."),
        None => format!(
            "Deployment {:?} {what}.",
            d.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

/// Upstream's `syncRolloutStatus` without the write: the status to report.
pub fn rollout_status(
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&Arc<ReplicaSet>>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(all, new_rs, d, now);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = deployment_condition(d, PROGRESSING);
    let complete_before = status.replicas == status.updated_replicas
        && current.is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if has_progress_deadline(d) && !complete_before {
        if deployment_complete(d, &status) {
            let msg = progress_message(d, new_rs, "has successfully progressed");
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now),
            );
        } else if deployment_progressing(d, &status) {
            let msg = progress_message(d, new_rs, "is progressing");
            let mut cond = new_condition(PROGRESSING, "True", RS_UPDATED, msg, now);
            // Progress refreshes lastUpdateTime even when the reason stays.
            if let Some(current) = current {
                if current.status.as_deref() == Some("True") {
                    cond.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, cond);
        } else if deployment_timed_out(d, &status, now) {
            let msg = progress_message(d, new_rs, "has timed out progressing");
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "False", TIMED_OUT, msg, now),
            );
        }
    }
    match replica_failure(all, new_rs) {
        Some(cond) => set_condition(&mut status, cond),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// The first `ReplicaFailure=True` condition among the ReplicaSets, the new
/// one first, as a deployment condition.
fn replica_failure(
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&Arc<ReplicaSet>>,
) -> Option<DeploymentCondition> {
    let new_uid = new_rs.and_then(|rs| rs.metadata.uid.clone());
    let ordered = new_rs
        .into_iter()
        .chain(all.iter().filter(|rs| rs.metadata.uid != new_uid));
    for rs in ordered {
        let conditions = rs
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        if let Some(c) = conditions.iter().find(|c| {
            c.type_.as_deref() == Some(REPLICA_FAILURE) && c.status.as_deref() == Some("True")
        }) {
            return Some(DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: c.last_transition_time.clone(),
                last_update_time: c.last_transition_time.clone(),
            });
        }
    }
    None
}

/// Upstream's `requeueStuckDeployment`: when to look again to notice a
/// missed progress deadline, if the rollout is still running.
pub fn requeue_stuck(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let current = deployment_condition(d, PROGRESSING)?;
    if !has_progress_deadline(d)
        || deployment_complete(d, new)
        || current.reason.as_deref() == Some(TIMED_OUT)
    {
        return None;
    }
    let deadline =
        SignedDuration::from_secs(i64::from(d.spec.progress_deadline_seconds.unwrap_or(0)));
    let at = current
        .last_update_time
        .as_ref()?
        .0
        .checked_add(deadline)
        .ok()?;
    let after = Duration::try_from(now.duration_until(at)).unwrap_or(Duration::ZERO);
    // A second of slack so the check lands after the deadline, not on it.
    Some(after + Duration::from_secs(1))
}

/// Status equality that treats absent counters as zero and absent
/// conditions as none, since the API server omits zero values.
pub fn status_equal(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    n(a.replicas) == n(b.replicas)
        && n(a.updated_replicas) == n(b.updated_replicas)
        && n(a.ready_replicas) == n(b.ready_replicas)
        && n(a.available_replicas) == n(b.available_replicas)
        && n(a.unavailable_replicas) == n(b.unavailable_replicas)
        && a.terminating_replicas == b.terminating_replicas
        && a.collision_count == b.collision_count
        && a.observed_generation.unwrap_or(0) == b.observed_generation.unwrap_or(0)
        && a.conditions.as_deref().unwrap_or_default()
            == b.conditions.as_deref().unwrap_or_default()
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
