//! Tables of the batch group: jobs and cron jobs.
//!
//! A job's STATUS is derived from its conditions in upstream's precedence (Complete, Failed,
//! Terminating, Suspended, FailureTarget, SuccessCriteriaMet, else Running); COMPLETIONS
//! reads `succeeded/completions` (or `/1 of <parallelism>` for work queues); DURATION is
//! start to completion, or start to now while running. A cron job's missing `suspend` reads
//! as `False`, the v1 default.

use serde_json::Value;

use super::fields::{arr_at, condition_true, deleting, i64_at, name, opt_bool, opt_i64, opt_str};
use super::labels::format_label_selector;
use super::time::{Instant, age_of, human_duration};
use super::workloads::container_cells;
use super::{AGE, CONTAINERS, IMAGES, NAME, Printer, age, col, docs, wide};

/// `kubectl get jobs`.
pub(super) const JOBS: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Status of the job."),
        col("Completions", "string", docs::JOB_STATUS_SUCCEEDED),
        col("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", docs::JOB_SPEC_SELECTOR),
    ],
    cells: job_cells,
};

/// `kubectl get cronjobs`.
pub(super) const CRON_JOBS: Printer = Printer {
    columns: &[
        NAME,
        col("Schedule", "string", docs::CRON_JOB_SPEC_SCHEDULE),
        col("Timezone", "string", docs::CRON_JOB_SPEC_TIME_ZONE),
        col("Suspend", "boolean", docs::CRON_JOB_SPEC_SUSPEND),
        col("Active", "integer", docs::CRON_JOB_STATUS_ACTIVE),
        col(
            "Last Schedule",
            "string",
            docs::CRON_JOB_STATUS_LAST_SCHEDULE_TIME,
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", docs::JOB_SPEC_SELECTOR),
    ],
    cells: cron_job_cells,
};

fn job_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let succeeded = i64_at(obj, &["status", "succeeded"]);
    let completions = match opt_i64(obj, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_i64(obj, &["spec", "parallelism"]).unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let [names, images] = container_cells(obj, &["spec", "template", "spec", "containers"]);
    vec![
        name(obj).into(),
        job_status(obj).into(),
        completions.into(),
        job_duration(obj, now).into(),
        age(obj, now),
        names,
        images,
        format_label_selector(obj.pointer("/spec/selector")).into(),
    ]
}

fn job_status(obj: &Value) -> &'static str {
    let conditions = arr_at(obj, &["status", "conditions"]);
    let has = |kind| condition_true(conditions, kind);
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if deleting(obj) {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_duration(obj: &Value, now: Instant) -> String {
    let stamp = |field| opt_str(obj, &["status", field]).and_then(Instant::parse_rfc3339);
    match (stamp("startTime"), stamp("completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.since(start)),
        (Some(start), Some(end)) => human_duration(end.since(start)),
    }
}

fn cron_job_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let last_schedule = match opt_str(obj, &["status", "lastScheduleTime"]) {
        Some(t) => age_of(Some(t), now),
        None => "<none>".to_string(),
    };
    let time_zone = opt_str(obj, &["spec", "timeZone"]).unwrap_or("<none>");
    let suspend = opt_bool(obj, &["spec", "suspend"]).unwrap_or(false);
    let template = [
        "spec",
        "jobTemplate",
        "spec",
        "template",
        "spec",
        "containers",
    ];
    let [names, images] = container_cells(obj, &template);
    vec![
        name(obj).into(),
        opt_str(obj, &["spec", "schedule"]).unwrap_or("").into(),
        time_zone.into(),
        if suspend { "True" } else { "False" }.into(),
        i64::try_from(arr_at(obj, &["status", "active"]).len())
            .unwrap_or(i64::MAX)
            .into(),
        last_schedule.into(),
        age(obj, now),
        names,
        images,
        format_label_selector(obj.pointer("/spec/jobTemplate/spec/selector")).into(),
    ]
}
