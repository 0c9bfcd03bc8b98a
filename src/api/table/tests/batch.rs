//! Jobs and cron jobs.

use serde_json::{Value, json};

use super::support::{ago, row};
use crate::api::table::columns;

fn job(spec: Value, status: Value) -> Value {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}});
    spec["template"] = json!({"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}});
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "creationTimestamp": ago(400)}, "spec": spec, "status": status})
}

fn cond(kind: &str) -> Value {
    json!({"type": kind, "status": "True"})
}

#[test]
fn job_columns_follow_current_upstream() {
    let cols: Vec<_> = columns("batch", "jobs")
        .iter()
        .map(|c| (c.name, c.priority))
        .collect();
    assert_eq!(
        cols,
        [
            ("Name", 0),
            ("Status", 0),
            ("Completions", 0),
            ("Duration", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ]
    );
    assert_eq!(
        columns("batch", "jobs")[1].description,
        "Status of the job."
    );
}

#[test]
fn completed_job_row() {
    let j = job(
        json!({"completions": 1, "parallelism": 1}),
        json!({"succeeded": 1, "startTime": ago(400), "completionTime": ago(388),
               "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}),
    );
    assert_eq!(
        row("batch", "jobs", &j),
        [
            json!("pi"),
            json!("Complete"),
            json!("1/1"),
            json!("12s"),
            json!("6m40s"),
            json!("pi"),
            json!("perl:5.34"),
            json!("batch.kubernetes.io/controller-uid=abc"),
        ]
    );
}

#[test]
fn running_job_duration_runs_to_now() {
    let j = job(
        json!({"completions": 5, "parallelism": 2}),
        json!({"succeeded": 2, "startTime": ago(200)}),
    );
    let cells = row("batch", "jobs", &j);
    assert_eq!(
        cells[1..4],
        [json!("Running"), json!("2/5"), json!("3m20s")]
    );
}

#[test]
fn work_queue_job_completions() {
    let queue = job(json!({"parallelism": 3}), json!({"succeeded": 1}));
    assert_eq!(
        row("batch", "jobs", &queue)[2..4],
        [json!("1/1 of 3"), json!("")]
    );
    let single = job(json!({}), json!({}));
    assert_eq!(row("batch", "jobs", &single)[2], json!("0/1"));
}

#[test]
fn job_status_precedence() {
    let status_of = |conditions: Value, deleting: bool| {
        let mut j = job(json!({"completions": 1}), json!({"conditions": conditions}));
        if deleting {
            j["metadata"]["deletionTimestamp"] = json!(ago(1));
        }
        row("batch", "jobs", &j)[1].clone()
    };
    assert_eq!(
        status_of(json!([cond("FailureTarget"), cond("Failed")]), true),
        json!("Failed")
    );
    assert_eq!(
        status_of(json!([cond("Suspended")]), true),
        json!("Terminating")
    );
    assert_eq!(
        status_of(json!([cond("Suspended")]), false),
        json!("Suspended")
    );
    assert_eq!(
        status_of(json!([cond("FailureTarget")]), false),
        json!("FailureTarget")
    );
    assert_eq!(
        status_of(json!([cond("SuccessCriteriaMet")]), false),
        json!("SuccessCriteriaMet")
    );
    let not_true = json!([{"type": "Complete", "status": "False"}]);
    assert_eq!(status_of(not_true, false), json!("Running"));
}

#[test]
fn cron_job_row() {
    let cj = json!({
        "metadata": {"name": "backup", "creationTimestamp": ago(3 * 86_400)},
        "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "suspend": true,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "dump", "image": "pg:16"}]}}}}},
        "status": {"active": [{"name": "backup-1"}, {"name": "backup-2"}], "lastScheduleTime": ago(170)}
    });
    assert_eq!(
        row("batch", "cronjobs", &cj),
        [
            json!("backup"),
            json!("*/5 * * * *"),
            json!("Etc/UTC"),
            json!("True"),
            json!(2),
            json!("2m50s"),
            json!("3d"),
            json!("dump"),
            json!("pg:16"),
            json!("<none>"),
        ]
    );
}

#[test]
fn never_scheduled_cron_job() {
    let cj = json!({"metadata": {"name": "n"}, "spec": {"schedule": "@daily"}});
    let cells = row("batch", "cronjobs", &cj);
    assert_eq!(
        cells[2..7],
        [
            json!("<none>"),
            json!("False"),
            json!(0),
            json!("<none>"),
            json!("<unknown>")
        ]
    );
    let suspend = &columns("batch", "cronjobs")[3];
    assert_eq!((suspend.name, suspend.type_), ("Suspend", "boolean"));
}
