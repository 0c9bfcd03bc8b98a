//! Job and CronJob rules.

use serde_json::json;

use super::fixtures::{cronjob, job};
use super::{assert_valid, create, expect, with, without};

fn job_with(pointer: &str, value: serde_json::Value) -> serde_json::Value {
    with(&job(), pointer, value)
}

fn cron_with(pointer: &str, value: serde_json::Value) -> serde_json::Value {
    with(&cronjob(), pointer, value)
}

#[test]
fn job_counts_may_not_be_negative() {
    let nonneg = "Invalid value: -1: must be greater than or equal to 0";
    expect(
        "batch",
        "Job",
        &job_with("/spec/completions", json!(-1)),
        "spec.completions",
        nonneg,
    );
    expect(
        "batch",
        "Job",
        &job_with("/spec/parallelism", json!(-1)),
        "spec.parallelism",
        nonneg,
    );
    expect(
        "batch",
        "Job",
        &job_with("/spec/backoffLimit", json!(-1)),
        "spec.backoffLimit",
        nonneg,
    );
}

#[test]
fn job_restart_policy_must_be_on_failure_or_never() {
    let rp = "spec.template.spec.restartPolicy";
    let unset = without(&job(), "/spec/template/spec/restartPolicy");
    expect(
        "batch",
        "Job",
        &unset,
        rp,
        "Required value: valid values: \"OnFailure\", \"Never\"",
    );
    let odd = job_with("/spec/template/spec/restartPolicy", json!("Sometimes"));
    expect("batch", "Job", &odd, rp, "Unsupported value: \"Sometimes\"");
}

#[test]
fn job_completion_modes() {
    assert_valid(&create(
        "batch",
        "Job",
        &job_with("/spec/completionMode", json!("Indexed")),
    ));
    let per_index = job_with("/spec/backoffLimitPerIndex", json!(1));
    let msg = "Invalid value: 1: requires indexed completion mode";
    expect("batch", "Job", &per_index, "spec.backoffLimitPerIndex", msg);
    let odd = job_with("/spec/completionMode", json!("Sometimes"));
    expect(
        "batch",
        "Job",
        &odd,
        "spec.completionMode",
        "Unsupported value: \"Sometimes\"",
    );
}

#[test]
fn job_selector_is_generated_and_checked() {
    let mut defaulted = job();
    crate::api::registry::defaults::apply_defaults("batch", "Job", &mut defaulted);
    let uid = "0b4ea2f4-8f55-4bde-9c34-6e2bd1b3f3c1";
    let selector = &defaulted["spec"]["selector"]["matchLabels"];
    assert_eq!(selector["batch.kubernetes.io/controller-uid"], json!(uid));
    assert_eq!(
        defaulted["spec"]["template"]["metadata"]["labels"]["job-name"],
        json!("pi")
    );
    let other = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}});
    let wrong = job_with("/spec/selector", other);
    expect(
        "batch",
        "Job",
        &wrong,
        "spec.selector",
        "Invalid value: {\"matchLabels\"",
    );
    let manual = job_with("/spec/manualSelector", json!(true));
    expect("batch", "Job", &manual, "spec.selector", "Required value");
}

#[test]
fn cronjob_schedule_is_required_and_parsed() {
    let unset = without(&cronjob(), "/spec/schedule");
    expect(
        "batch",
        "CronJob",
        &unset,
        "spec.schedule",
        "Required value",
    );
    let short = cron_with("/spec/schedule", json!("* * *"));
    let msg = "Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]";
    expect("batch", "CronJob", &short, "spec.schedule", msg);
    let big = cron_with("/spec/schedule", json!("61 * * * *"));
    let msg = "Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61";
    expect("batch", "CronJob", &big, "spec.schedule", msg);
    for ok in ["@hourly", "@daily", "0 9-17/2 * * mon-fri", "@every 30m"] {
        assert_valid(&create(
            "batch",
            "CronJob",
            &cron_with("/spec/schedule", json!(ok)),
        ));
    }
    let tz = cron_with("/spec/schedule", json!("TZ=UTC 0 * * * *"));
    let msg = "Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use \
               timeZone field instead";
    expect("batch", "CronJob", &tz, "spec.schedule", msg);
}

#[test]
fn cronjob_policy_name_and_template_rules() {
    let policy = cron_with("/spec/concurrencyPolicy", json!("Sometimes"));
    let msg =
        "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"";
    expect("batch", "CronJob", &policy, "spec.concurrencyPolicy", msg);
    let long = cron_with("/metadata/name", json!("x".repeat(53)));
    expect(
        "batch",
        "CronJob",
        &long,
        "metadata.name",
        "Invalid value: \"xxx",
    );
    let unset = without(
        &cronjob(),
        "/spec/jobTemplate/spec/template/spec/restartPolicy",
    );
    let rp = "spec.jobTemplate.spec.template.spec.restartPolicy";
    expect(
        "batch",
        "CronJob",
        &unset,
        rp,
        "Required value: valid values",
    );
    let zone = cron_with("/spec/timeZone", json!("Local"));
    expect(
        "batch",
        "CronJob",
        &zone,
        "spec.timeZone",
        "Invalid value: \"Local\": timeZone must be an explicit time zone",
    );
}
