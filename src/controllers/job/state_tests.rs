//! Tests of Job completion math, failure accounting, deadlines and conditions.

use super::*;
use k8s_openapi::api::core::v1::{PodSpec, PodStatus};

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn pod(name: &str, phase: &str, index: Option<&str>) -> Arc<Pod> {
    let mut p = Pod {
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    p.metadata.name = Some(name.into());
    if let Some(i) = index {
        p.metadata.annotations = Some(
            [(
                super::super::indexed::COMPLETION_INDEX_ANNOTATION.to_string(),
                i.to_string(),
            )]
            .into(),
        );
    }
    Arc::new(p)
}

fn names(v: &[Arc<Pod>]) -> Vec<String> {
    let mut n: Vec<String> = v.iter().filter_map(|p| p.metadata.name.clone()).collect();
    n.sort();
    n
}

#[test]
fn wanted_pods_never_exceed_parallelism_or_remaining_completions() {
    // completions=5, parallelism=2: two at a time until fewer than two remain.
    assert_eq!(want_active(Some(5), 2, 0, 0), 2);
    assert_eq!(want_active(Some(5), 2, 3, 2), 2);
    assert_eq!(want_active(Some(5), 2, 4, 1), 1);
    assert_eq!(want_active(Some(5), 2, 5, 0), 0);
    assert_eq!(want_active(Some(5), 2, 7, 0), 0);
    // Work-queue Jobs: parallelism until the first success, then whatever still runs.
    assert_eq!(want_active(None, 3, 0, 1), 3);
    assert_eq!(want_active(None, 3, 1, 2), 2);
}

#[test]
fn completion_needs_enough_successes_and_nothing_running() {
    assert!(!is_complete(Some(5), 4, 0));
    assert!(!is_complete(Some(5), 5, 1));
    assert!(is_complete(Some(5), 5, 0));
    assert!(is_complete(None, 1, 0));
    assert!(!is_complete(None, 0, 0));
}

#[test]
fn deleted_pods_count_as_failed_unless_only_failed_pods_are_replaced() {
    let mut spec = JobSpec::default();
    let mut deleting = (*pod("a", "Running", None)).clone();
    deleting.metadata.deletion_timestamp = Some(Time(ts(1)));
    assert!(is_pod_failed(&deleting, &spec));
    assert!(is_pod_failed(&pod("b", "Failed", None), &spec));
    assert!(!is_pod_failed(&pod("c", "Succeeded", None), &spec));
    spec.pod_replacement_policy = Some("Failed".into());
    assert!(!is_pod_failed(&deleting, &spec));
}

#[test]
fn surplus_pods_are_removed_cheapest_first() {
    let pods = vec![
        pod("running", "Running", None),
        pod("pending", "Pending", None),
    ];
    assert_eq!(names(&pods_for_removal(None, &pods, 1)), ["pending"]);
    assert!(pods_for_removal(None, &pods, 0).is_empty());
}

#[test]
fn indexed_jobs_drop_duplicate_and_invalid_indexes_first() {
    let pods = vec![
        pod("a0", "Running", Some("0")),
        pod("b0", "Pending", Some("0")),
        pod("c1", "Running", Some("1")),
        pod("bad", "Running", Some("x")),
        pod("big", "Running", Some("9")),
    ];
    assert_eq!(
        names(&pods_for_removal(Some(3), &pods, 0)),
        ["b0", "bad", "big"]
    );
}

#[test]
fn deadlines_count_from_the_start_time_and_pause_while_suspended() {
    let mut spec = JobSpec {
        active_deadline_seconds: Some(30),
        ..Default::default()
    };
    assert_eq!(
        deadline_remaining(&spec, Some(ts(100)), ts(110)),
        Some(Duration::from_secs(20))
    );
    assert_eq!(
        deadline_remaining(&spec, Some(ts(100)), ts(140)),
        Some(Duration::ZERO)
    );
    assert_eq!(deadline_remaining(&spec, None, ts(140)), None);
    spec.suspend = Some(true);
    assert_eq!(deadline_remaining(&spec, Some(ts(100)), ts(140)), None);
}

#[test]
fn conditions_are_added_updated_but_never_created_false() {
    let mut list = Vec::new();
    assert!(!ensure_condition(
        &mut list,
        "Suspended",
        "False",
        "JobResumed",
        "Job resumed",
        ts(1)
    ));
    assert!(list.is_empty());
    assert!(ensure_condition(
        &mut list,
        "Suspended",
        "True",
        "JobSuspended",
        "Job suspended",
        ts(1)
    ));
    assert!(!ensure_condition(
        &mut list,
        "Suspended",
        "True",
        "JobSuspended",
        "Job suspended",
        ts(2)
    ));
    assert!(ensure_condition(
        &mut list,
        "Suspended",
        "False",
        "JobResumed",
        "Job resumed",
        ts(3)
    ));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, "False");
    assert_eq!(list[0].last_transition_time, Some(Time(ts(3))));
}

#[test]
fn on_failure_restarts_count_against_the_backoff_limit() {
    use k8s_openapi::api::core::v1::ContainerStatus;
    let mut spec = JobSpec {
        backoff_limit: Some(2),
        ..Default::default()
    };
    spec.template.spec = Some(PodSpec {
        restart_policy: Some("OnFailure".into()),
        ..Default::default()
    });
    let mut p = (*pod("a", "Running", None)).clone();
    if let Some(s) = p.status.as_mut() {
        s.container_statuses = Some(vec![ContainerStatus {
            restart_count: 2,
            ..Default::default()
        }]);
    }
    assert!(past_backoff_limit_on_failure(&spec, &[Arc::new(p)]));
    assert!(!past_backoff_limit_on_failure(
        &spec,
        &[pod("b", "Running", None)]
    ));
}
