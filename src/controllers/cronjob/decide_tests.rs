//! Tests of the CronJob scheduling decision with an injected clock.

use super::*;
use k8s_openapi::api::batch::v1::{CronJobSpec, CronJobStatus};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn cronjob(policy: &str, last: Option<&str>, active: &[&str], sds: Option<i64>) -> CronJob {
    let mut cj = CronJob {
        spec: CronJobSpec {
            schedule: "*/1 * * * *".into(),
            concurrency_policy: Some(policy.into()),
            starting_deadline_seconds: sds,
            ..Default::default()
        },
        status: Some(CronJobStatus {
            last_schedule_time: last.map(|l| Time(ts(l))),
            active: Some(
                active
                    .iter()
                    .map(|n| ObjectReference {
                        name: Some(n.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    cj.metadata.name = Some("hello".into());
    cj.metadata.creation_timestamp = Some(Time(ts("2024-05-01T10:00:30Z")));
    cj
}

fn decide_at(cj: &CronJob, now: &str) -> Verdict {
    let sched = CronSchedule::parse("*/1 * * * *").expect("valid");
    decide(cj, &sched, &TimeZone::UTC, ts(now))
}

#[test]
fn waits_until_the_first_activation() {
    let v = decide_at(&cronjob("Allow", None, &[], None), "2024-05-01T10:00:45Z");
    assert_eq!(
        v.decision,
        Decision::Wait(Some(Duration::from_millis(15_100)))
    );
}

#[test]
fn starts_the_due_activation() {
    let v = decide_at(&cronjob("Allow", None, &[], None), "2024-05-01T10:01:02Z");
    assert_eq!(
        v.decision,
        Decision::Start {
            scheduled: ts("2024-05-01T10:01:00Z"),
            replace: false
        }
    );
}

#[test]
fn forbid_skips_while_a_job_is_active_and_replace_replaces_it() {
    let now = "2024-05-01T10:02:02Z";
    let last = Some("2024-05-01T10:01:00Z");
    let forbid = decide_at(&cronjob("Forbid", last, &["hello-28575961"], None), now);
    assert!(matches!(forbid.decision, Decision::Forbidden(Some(_))));
    let replace = decide_at(&cronjob("Replace", last, &["hello-28575961"], None), now);
    assert_eq!(
        replace.decision,
        Decision::Start {
            scheduled: ts("2024-05-01T10:02:00Z"),
            replace: true
        }
    );
}

#[test]
fn a_job_already_named_for_the_activation_is_not_created_twice() {
    let cj = cronjob("Allow", None, &["hello-28575961"], None);
    let v = decide_at(&cj, "2024-05-01T10:01:02Z");
    assert!(matches!(v.decision, Decision::AlreadyProcessed(_)));
}

#[test]
fn activations_older_than_the_starting_deadline_are_skipped() {
    let cj = cronjob("Allow", Some("2024-05-01T10:00:00Z"), &[], Some(10));
    let v = decide_at(&cj, "2024-05-01T10:01:50Z");
    assert_eq!(
        v.decision,
        Decision::Wait(Some(Duration::from_millis(10_100)))
    );
    let generous = cronjob("Allow", Some("2024-05-01T10:00:00Z"), &[], Some(100));
    let v = decide_at(&generous, "2024-05-01T10:01:50Z");
    assert!(matches!(v.decision, Decision::Start { .. }));
}
