use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::controllers::deployment::scaling::tests::{deployment, rs};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn reason<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a str> {
    condition(status, type_).and_then(|c| c.reason.as_deref())
}

fn with_deadline(replicas: i32, deadline: i32) -> Deployment {
    let mut d = deployment(replicas, IntOrString::Int(1), IntOrString::Int(1));
    d.spec.progress_deadline_seconds = Some(deadline);
    d
}

#[test]
fn status_sums_replica_sets_and_reports_availability() {
    let d = with_deadline(4, 600);
    let old = rs("old", 1, 1, 1, &[]);
    let new = rs("new", 3, 2, 2, &[]);
    let status = calculate_status(&[old, new.clone()], Some(&new), &d, t(0));
    assert_eq!(status.replicas, Some(4));
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(3));
    assert_eq!(status.unavailable_replicas, Some(1));
    assert_eq!(status.observed_generation, Some(1));
    // 3 available >= 4 - maxUnavailable(1).
    assert_eq!(reason(&status, AVAILABLE), Some(MIN_AVAILABLE));
    let thin = calculate_status(&[rs("x", 4, 1, 1, &[])], None, &d, t(0));
    assert_eq!(reason(&thin, AVAILABLE), Some(MIN_UNAVAILABLE));
}

#[test]
fn setting_a_condition_keeps_transition_time_when_status_is_unchanged() {
    let mut status = DeploymentStatus::default();
    set_condition(
        &mut status,
        new_condition(PROGRESSING, "True", NEW_RS_CREATED, "a".into(), t(0)),
    );
    set_condition(
        &mut status,
        new_condition(PROGRESSING, "True", RS_UPDATED, "b".into(), t(10)),
    );
    let c = condition(&status, PROGRESSING).cloned().unwrap_or_default();
    assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
    assert_eq!(c.last_transition_time.map(|t| t.0), Some(t(0)));
    assert_eq!(c.last_update_time.map(|t| t.0), Some(t(10)));
    // Same status and reason: nothing changes.
    set_condition(
        &mut status,
        new_condition(PROGRESSING, "True", RS_UPDATED, "c".into(), t(20)),
    );
    assert_eq!(
        condition(&status, PROGRESSING)
            .and_then(|c| c.message.clone())
            .as_deref(),
        Some("b")
    );
    assert_eq!(status.conditions.as_ref().map(Vec::len), Some(1));
}

#[test]
fn a_complete_rollout_reports_new_replica_set_available() {
    let d = with_deadline(2, 600);
    let new = rs("new", 2, 2, 1, &[]);
    let status = rollout_status(std::slice::from_ref(&new), Some(&new), &d, t(0));
    assert_eq!(reason(&status, PROGRESSING), Some(NEW_RS_AVAILABLE));
    assert!(
        condition(&status, PROGRESSING)
            .and_then(|c| c.message.clone())
            .is_some_and(|m| m.contains("\"new\" has successfully progressed"))
    );
    assert!(deployment_complete(&d, &status));
}

#[test]
fn progress_refreshes_the_update_time() {
    let mut d = with_deadline(3, 600);
    let mut old_status = DeploymentStatus {
        replicas: Some(3),
        updated_replicas: Some(1),
        ..Default::default()
    };
    set_condition(
        &mut old_status,
        new_condition(PROGRESSING, "True", RS_UPDATED, "x".into(), t(0)),
    );
    d.status = Some(old_status);
    let old = rs("old", 1, 1, 1, &[]);
    let new = rs("new", 2, 1, 2, &[]);
    let status = rollout_status(&[old, new.clone()], Some(&new), &d, t(30));
    let c = condition(&status, PROGRESSING).cloned().unwrap_or_default();
    assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
    assert_eq!(c.last_update_time.map(|t| t.0), Some(t(30)));
    assert_eq!(c.last_transition_time.map(|t| t.0), Some(t(0)));
}

#[test]
fn no_progress_past_the_deadline_times_out() {
    let mut d = with_deadline(3, 10);
    let old = rs("old", 3, 3, 1, &[]);
    let new = rs("new", 1, 0, 2, &[]);
    let mut current = calculate_status(&[old.clone(), new.clone()], Some(&new), &d, t(0));
    set_condition(
        &mut current,
        new_condition(PROGRESSING, "True", RS_UPDATED, "x".into(), t(0)),
    );
    d.status = Some(current);
    let early = rollout_status(&[old.clone(), new.clone()], Some(&new), &d, t(5));
    assert_eq!(reason(&early, PROGRESSING), Some(RS_UPDATED));
    assert_eq!(
        requeue_stuck(&d, &early, t(5)),
        Some(std::time::Duration::from_secs(6))
    );
    let late = rollout_status(&[old, new.clone()], Some(&new), &d, t(11));
    assert_eq!(reason(&late, PROGRESSING), Some(TIMED_OUT));
    assert_eq!(
        condition(&late, PROGRESSING).and_then(|c| c.status.as_deref()),
        Some("False")
    );
}

#[test]
fn without_a_deadline_there_is_no_progressing_condition() {
    let mut d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.progress_deadline_seconds = None;
    let mut current = DeploymentStatus::default();
    set_condition(
        &mut current,
        new_condition(PROGRESSING, "True", RS_UPDATED, "x".into(), t(0)),
    );
    d.status = Some(current);
    let new = rs("new", 1, 1, 1, &[]);
    let status = rollout_status(std::slice::from_ref(&new), Some(&new), &d, t(1000));
    assert!(condition(&status, PROGRESSING).is_none());
    assert!(!deployment_timed_out(&d, &status, t(1000)));
    assert_eq!(requeue_stuck(&d, &status, t(1000)), None);
}

#[test]
fn replica_failures_are_promoted_and_cleared() {
    let d = with_deadline(1, 600);
    let mut failing = (*rs("new", 1, 0, 1, &[])).clone();
    failing.status = Some(ReplicaSetStatus {
        conditions: Some(vec![ReplicaSetCondition {
            type_: Some(REPLICA_FAILURE.into()),
            status: Some("True".into()),
            reason: Some("FailedCreate".into()),
            message: Some("quota".into()),
            last_transition_time: None,
        }]),
        ..Default::default()
    });
    let failing = Arc::new(failing);
    let status = rollout_status(std::slice::from_ref(&failing), Some(&failing), &d, t(0));
    assert_eq!(reason(&status, REPLICA_FAILURE), Some("FailedCreate"));
    let healthy = rs("new", 1, 1, 1, &[]);
    let mut d2 = d.clone();
    d2.status = Some(status);
    let status = rollout_status(std::slice::from_ref(&healthy), Some(&healthy), &d2, t(1));
    assert!(condition(&status, REPLICA_FAILURE).is_none());
}

#[test]
fn status_equality_ignores_omitted_zeros() {
    let a = DeploymentStatus {
        replicas: Some(0),
        conditions: Some(vec![]),
        ..Default::default()
    };
    let b = DeploymentStatus::default();
    assert!(status_equal(&a, &b));
    let c = DeploymentStatus {
        replicas: Some(1),
        ..Default::default()
    };
    assert!(!status_equal(&a, &c));
}

#[test]
fn terminating_replicas_are_unknown_unless_every_set_reports_them() {
    let d = with_deadline(1, 600);
    let mut a = (*rs("a", 1, 1, 1, &[])).clone();
    let mut b = (*rs("b", 0, 0, 2, &[])).clone();
    if let Some(s) = a.status.as_mut() {
        s.terminating_replicas = Some(2);
    }
    let (a, b2) = (Arc::new(a), Arc::new(b.clone()));
    assert_eq!(
        calculate_status(&[a.clone(), b2], None, &d, t(0)).terminating_replicas,
        None
    );
    if let Some(s) = b.status.as_mut() {
        s.terminating_replicas = Some(1);
    }
    assert_eq!(
        calculate_status(&[a, Arc::new(b)], None, &d, t(0)).terminating_replicas,
        Some(3)
    );
}
