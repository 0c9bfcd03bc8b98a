//! Pod scheduling, security-context and pod-only rules.

use serde_json::json;

use super::fixtures::pod;
use super::{assert_error, create, with};

const C0: &str = "/spec/containers/0";

fn pod_errs(p: &serde_json::Value) -> Vec<crate::api::registry::validation::FieldError> {
    create("", "Pod", p)
}

#[test]
fn scheduling_fields_are_checked() {
    let bad_value =
        json!({"key": "dedicated", "operator": "Equal", "value": "-gpu-", "effect": "NoSchedule"});
    let errs = pod_errs(&with(&pod(), "/spec/tolerations/0", bad_value));
    assert_error(
        &errs,
        "spec.tolerations[0].operator",
        "Invalid value: \"-gpu-\": a valid label must be an empty string",
    );
    let keyless = json!({"operator": "Equal"});
    let errs = pod_errs(&with(&pod(), "/spec/tolerations/0", keyless));
    assert_error(
        &errs,
        "spec.tolerations[0].operator",
        "Invalid value: \"Equal\": operator must be Exists when `key` is empty",
    );
    let errs = pod_errs(&with(
        &pod(),
        "/spec/tolerations/0/effect",
        json!("Sometimes"),
    ));
    assert_error(
        &errs,
        "spec.tolerations[0].effect",
        "Unsupported value: \"Sometimes\"",
    );
    let errs = pod_errs(&with(
        &pod(),
        "/spec/topologySpreadConstraints/0/maxSkew",
        json!(0),
    ));
    assert_error(
        &errs,
        "spec.topologySpreadConstraints[0].maxSkew",
        "Invalid value: 0: must be greater than zero",
    );
    let p = "/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0";
    let errs = pod_errs(&with(&pod(), &format!("{p}/weight"), json!(0)));
    assert_error(
        &errs,
        "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
        "Invalid value: 0: must be in the range 1-100",
    );
    let errs = pod_errs(&with(&pod(), "/spec/nodeName", json!("Node_1")));
    assert_error(
        &errs,
        "spec.nodeName",
        "Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain",
    );
}

#[test]
fn security_context_ids_are_ranged() {
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/securityContext/runAsUser"),
        json!(-1),
    ));
    assert_error(
        &errs,
        "spec.containers[0].securityContext.runAsUser",
        "Invalid value: -1: must be between 0 and 2147483647, inclusive",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/securityContext/privileged"),
        json!(true),
    ));
    assert_error(
        &errs,
        "spec.containers[0].securityContext",
        "Invalid value: {",
    );
}

#[test]
fn host_network_pods_must_use_container_ports() {
    let hn = with(
        &with(&pod(), "/spec/hostNetwork", json!(true)),
        &format!("{C0}/ports/0/hostPort"),
        json!(8080),
    );
    let errs = pod_errs(&hn);
    assert_error(
        &errs,
        "spec.containers[0].ports[0].hostPort",
        "Invalid value: 8080: must match `containerPort` when `hostNetwork` is true",
    );
}

#[test]
fn ephemeral_containers_are_refused_on_create() {
    let eph = json!([{"name": "debug", "image": "busybox"}]);
    let errs = pod_errs(&with(&pod(), "/spec/ephemeralContainers", eph));
    assert_error(
        &errs,
        "spec.ephemeralContainers",
        "Forbidden: cannot be set on create",
    );
}
