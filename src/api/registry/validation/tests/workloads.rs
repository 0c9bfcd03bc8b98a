//! Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and CronJob rules.

use serde_json::json;

use super::fixtures::{cronjob, daemonset, deployment, job, statefulset, template_spec};
use super::{assert_error, assert_valid, create, expect, with, without};

#[test]
fn realistic_workloads_are_valid() {
    assert_valid(&create("apps", "Deployment", &deployment()));
    assert_valid(&create("apps", "StatefulSet", &statefulset()));
    assert_valid(&create("apps", "DaemonSet", &daemonset()));
    assert_valid(&create("batch", "Job", &job()));
    assert_valid(&create("batch", "CronJob", &cronjob()));
    let rs = json!({"metadata": {"name": "rs", "namespace": "default"},
                    "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template_spec()}});
    assert_valid(&create("apps", "ReplicaSet", &rs));
    let rc = json!({"metadata": {"name": "rc", "namespace": "default"}, "spec": {"template": template_spec()}});
    assert_valid(&create("", "ReplicationController", &rc));
}

#[test]
fn selector_is_required_and_must_match_template_labels() {
    let errs = create(
        "apps",
        "Deployment",
        &without(&deployment(), "/spec/selector"),
    );
    assert_error(&errs, "spec.selector", "Required value");
    let errs = create(
        "apps",
        "Deployment",
        &with(
            &deployment(),
            "/spec/selector/matchLabels/app",
            json!("other"),
        ),
    );
    assert_error(
        &errs,
        "spec.template.metadata.labels",
        "Invalid value: {\"app\":\"nginx\"}: `selector` does not match template `labels`",
    );
    let errs = create(
        "apps",
        "Deployment",
        &with(&deployment(), "/spec/selector", json!({})),
    );
    assert_error(
        &errs,
        "spec.selector",
        "Invalid value: {}: empty selector is invalid for deployment",
    );
    let bad_op = json!({"matchExpressions": [{"key": "app", "operator": "Near"}]});
    let errs = create(
        "apps",
        "Deployment",
        &with(&deployment(), "/spec/selector", bad_op),
    );
    assert_error(
        &errs,
        "spec.selector.matchExpressions[0].operator",
        "Invalid value: \"Near\": not a valid selector operator",
    );
}

#[test]
fn replicas_may_not_be_negative() {
    let errs = create(
        "apps",
        "Deployment",
        &with(&deployment(), "/spec/replicas", json!(-1)),
    );
    assert_error(
        &errs,
        "spec.replicas",
        "Invalid value: -1: must be greater than or equal to 0",
    );
    let errs = create(
        "apps",
        "StatefulSet",
        &with(&statefulset(), "/spec/replicas", json!(-2)),
    );
    assert_error(
        &errs,
        "spec.replicas",
        "Invalid value: -2: must be greater than or equal to 0",
    );
}

#[test]
fn controller_templates_must_restart_always() {
    let d = with(
        &deployment(),
        "/spec/template/spec/restartPolicy",
        json!("OnFailure"),
    );
    let errs = create("apps", "Deployment", &d);
    assert_error(
        &errs,
        "spec.template.spec.restartPolicy",
        "Unsupported value: \"OnFailure\": supported values: \"Always\"",
    );
    let ds = with(
        &daemonset(),
        "/spec/template/spec/restartPolicy",
        json!("Never"),
    );
    assert_error(
        &create("apps", "DaemonSet", &ds),
        "spec.template.spec.restartPolicy",
        "Unsupported value: \"Never\"",
    );
}

#[test]
fn deployment_rolling_update_needs_some_budget() {
    let zero =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
    let d = with(&deployment(), "/spec/strategy", zero);
    let field = "spec.strategy.rollingUpdate.maxUnavailable";
    expect(
        "apps",
        "Deployment",
        &d,
        field,
        "Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
    );
    let pct = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x%", "maxUnavailable": "150%"}});
    let d = with(&deployment(), "/spec/strategy", pct);
    let surge = "spec.strategy.rollingUpdate.maxSurge";
    expect(
        "apps",
        "Deployment",
        &d,
        surge,
        "Invalid value: \"x%\": a valid percent string must be",
    );
    expect(
        "apps",
        "Deployment",
        &d,
        field,
        "Invalid value: \"150%\": must not be greater than 100%",
    );
}

#[test]
fn deployment_strategy_types_and_deadlines() {
    let d = with(&deployment(), "/spec/strategy", json!({"type": "Canary"}));
    let msg = "Unsupported value: {\"type\":\"Canary\"}: supported values: \"Recreate\", \"RollingUpdate\"";
    expect("apps", "Deployment", &d, "spec.strategy", msg);
    let recreate = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
    let d = with(&deployment(), "/spec/strategy", recreate);
    let msg = "Forbidden: may not be specified when strategy `type` is 'Recreate'";
    expect("apps", "Deployment", &d, "spec.strategy.rollingUpdate", msg);
    let d = with(&deployment(), "/spec/progressDeadlineSeconds", json!(0));
    let msg = "Invalid value: 0: must be greater than minReadySeconds";
    expect(
        "apps",
        "Deployment",
        &d,
        "spec.progressDeadlineSeconds",
        msg,
    );
}

#[test]
fn daemonset_rolling_update_needs_exactly_one_budget() {
    let both =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    let errs = create(
        "apps",
        "DaemonSet",
        &with(&daemonset(), "/spec/updateStrategy", both),
    );
    assert_error(
        &errs,
        "spec.updateStrategy.rollingUpdate.maxSurge",
        "Invalid value: 1: may not be set when maxUnavailable is non-zero",
    );
    let none =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
    let errs = create(
        "apps",
        "DaemonSet",
        &with(&daemonset(), "/spec/updateStrategy", none),
    );
    assert_error(
        &errs,
        "spec.updateStrategy.rollingUpdate.maxUnavailable",
        "Required value: cannot be 0 when maxSurge is 0",
    );
}

#[test]
fn statefulset_specific_rules() {
    let errs = create(
        "apps",
        "StatefulSet",
        &with(&statefulset(), "/spec/podManagementPolicy", json!("Random")),
    );
    assert_error(
        &errs,
        "spec.podManagementPolicy",
        "Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
    );
    let errs = create(
        "apps",
        "StatefulSet",
        &with(&statefulset(), "/metadata/name", json!("db.example")),
    );
    assert_error(
        &errs,
        "metadata.name",
        "Invalid value: \"db.example\": must not contain dots",
    );
    let strategy = json!({"type": "OnDelete", "rollingUpdate": {"partition": 1}});
    let errs = create(
        "apps",
        "StatefulSet",
        &with(&statefulset(), "/spec/updateStrategy", strategy),
    );
    assert_error(
        &errs,
        "spec.updateStrategy.rollingUpdate",
        "Invalid value: {\"partition\":1}: only allowed for updateStrategy 'RollingUpdate'",
    );
    let errs = create(
        "apps",
        "StatefulSet",
        &with(&statefulset(), "/spec/selector", json!({})),
    );
    assert_error(
        &errs,
        "spec.selector",
        "Invalid value: {}: empty selector is invalid for statefulset",
    );
}
