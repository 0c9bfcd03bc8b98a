//! Pod spec rules: containers, ports, env, volumes, resources, policies and probes.

use serde_json::json;

use super::fixtures::pod;
use super::{assert_error, assert_valid, create, with, without};
use crate::api::registry::validation::CauseType;

const C0: &str = "/spec/containers/0";

fn pod_errs(p: &serde_json::Value) -> Vec<crate::api::registry::validation::FieldError> {
    create("", "Pod", p)
}

#[test]
fn realistic_pod_is_valid() {
    assert_valid(&pod_errs(&pod()));
}

#[test]
fn containers_are_required() {
    let errs = pod_errs(&with(&pod(), "/spec/containers", json!([])));
    assert_error(&errs, "spec.containers", "Required value");
}

#[test]
fn container_names_are_labels_and_unique_across_init_containers() {
    let errs = pod_errs(&with(&pod(), &format!("{C0}/name"), json!("Web_1")));
    assert_error(
        &errs,
        "spec.containers[0].name",
        "Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist",
    );
    let errs = pod_errs(&with(&pod(), "/spec/initContainers/0/name", json!("nginx")));
    assert_error(
        &errs,
        "spec.initContainers[0].name",
        "Duplicate value: \"nginx\"",
    );
    let second = json!({"name": "nginx", "image": "nginx"});
    let errs = pod_errs(&with(&pod(), "/spec/containers/1", second));
    assert_error(
        &errs,
        "spec.containers[1].name",
        "Duplicate value: \"nginx\"",
    );
    assert_eq!(
        errs.iter()
            .find(|e| e.field == "spec.containers[1].name")
            .map(|e| e.kind),
        Some(CauseType::Duplicate)
    );
}

#[test]
fn image_is_required_and_trimmed_for_pods() {
    assert_error(
        &pod_errs(&without(&pod(), &format!("{C0}/image"))),
        "spec.containers[0].image",
        "Required value",
    );
    let errs = pod_errs(&with(&pod(), &format!("{C0}/image"), json!(" nginx")));
    assert_error(
        &errs,
        "spec.containers[0].image",
        "Invalid value: \" nginx\": must not have leading or trailing whitespace",
    );
}

#[test]
fn container_ports_are_checked() {
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/ports/0/containerPort"),
        json!(70000),
    ));
    assert_error(
        &errs,
        "spec.containers[0].ports[0].containerPort",
        "Invalid value: 70000: must be between 1 and 65535, inclusive",
    );
    let errs = pod_errs(&without(&pod(), &format!("{C0}/ports/0/containerPort")));
    assert_error(
        &errs,
        "spec.containers[0].ports[0].containerPort",
        "Required value",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/ports/0/protocol"),
        json!("HTTP"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].ports[0].protocol",
        "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
    );
    let errs = pod_errs(&with(&pod(), &format!("{C0}/ports/0/name"), json!("8080")));
    assert_error(
        &errs,
        "spec.containers[0].ports[0].name",
        "Invalid value: \"8080\": must contain at least one letter (a-z)",
    );
    let errs = pod_errs(&with(&pod(), &format!("{C0}/ports/1/name"), json!("http")));
    assert_error(
        &errs,
        "spec.containers[0].ports[1].name",
        "Duplicate value: \"http\"",
    );
}

#[test]
fn env_names_and_sources_are_checked() {
    let errs = pod_errs(&with(&pod(), &format!("{C0}/env/0/name"), json!("A=B")));
    assert_error(
        &errs,
        "spec.containers[0].env[0].name",
        "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
    );
    let errs = pod_errs(&with(&pod(), &format!("{C0}/env/0/name"), json!("")));
    assert_error(&errs, "spec.containers[0].env[0].name", "Required value");
    let errs = pod_errs(&with(&pod(), &format!("{C0}/env/1/value"), json!("x")));
    assert_error(
        &errs,
        "spec.containers[0].env[1].valueFrom",
        "Invalid value: \"\": may not be specified when `value` is not empty",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/env/1/valueFrom/fieldRef/fieldPath"),
        json!("spec.bogus"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath",
        "Unsupported value: \"spec.bogus\": supported values: \"metadata.name\"",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/env/2/valueFrom/secretKeyRef/key"),
        json!("a/b"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].env[2].valueFrom.secretKeyRef.key",
        "Invalid value: \"a/b\": a valid config key must consist",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/envFrom/0"),
        json!({"prefix": "X_"}),
    ));
    assert_error(
        &errs,
        "spec.containers[0].envFrom",
        "Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
    );
}

#[test]
fn volumes_need_unique_names_and_exactly_one_source() {
    let errs = pod_errs(&with(&pod(), "/spec/volumes/1/name", json!("data")));
    assert_error(&errs, "spec.volumes[1].name", "Duplicate value: \"data\"");
    let two = json!({"name": "both", "emptyDir": {}, "hostPath": {"path": "/tmp"}});
    let errs = pod_errs(&with(&pod(), "/spec/volumes/3", two));
    assert_error(
        &errs,
        "spec.volumes[3].hostPath",
        "Forbidden: may not specify more than 1 volume type",
    );
    let errs = pod_errs(&with(&pod(), "/spec/volumes/0/name", json!("Data")));
    assert_error(
        &errs,
        "spec.volumes[0].name",
        "Invalid value: \"Data\": a lowercase RFC 1123 label",
    );
    let errs = pod_errs(&with(
        &pod(),
        "/spec/volumes/1/configMap/defaultMode",
        json!(1000),
    ));
    assert_error(
        &errs,
        "spec.volumes[1].configMap.defaultMode",
        "Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
    );
    let errs = pod_errs(&with(
        &pod(),
        "/spec/volumes/1/configMap/items/0/path",
        json!("../x"),
    ));
    assert_error(
        &errs,
        "spec.volumes[1].configMap.items[0].path",
        "Invalid value: \"../x\": must not contain '..'",
    );
}

#[test]
fn volume_mounts_must_reference_existing_volumes() {
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/volumeMounts/0/name"),
        json!("missing"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].volumeMounts[0].name",
        "Not found: \"missing\"",
    );
    assert_eq!(
        errs.iter()
            .find(|e| e.message.starts_with("Not found"))
            .map(|e| e.kind.as_str()),
        Some("FieldValueNotFound")
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/volumeMounts/1/mountPath"),
        json!("/data"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].volumeMounts[1].mountPath",
        "Invalid value: \"/data\": must be unique",
    );
    let errs = pod_errs(&without(&pod(), &format!("{C0}/volumeMounts/0/mountPath")));
    assert_error(
        &errs,
        "spec.containers[0].volumeMounts[0].mountPath",
        "Required value",
    );
}

#[test]
fn policies_must_be_known_values() {
    let errs = pod_errs(&with(&pod(), "/spec/restartPolicy", json!("Sometimes")));
    assert_error(
        &errs,
        "spec.restartPolicy",
        "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
    );
    let errs = pod_errs(&with(&pod(), "/spec/dnsPolicy", json!("Google")));
    assert_error(
        &errs,
        "spec.dnsPolicy",
        "Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
    );
    let errs = pod_errs(&with(&pod(), "/spec/dnsPolicy", json!("None")));
    assert_error(
        &errs,
        "spec.dnsConfig.nameservers",
        "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/imagePullPolicy"),
        json!("Sometimes"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].imagePullPolicy",
        "Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
    );
}

#[test]
fn requests_may_not_exceed_limits() {
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/resources/requests/cpu"),
        json!("2"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].resources.requests",
        "Invalid value: \"2\": must be less than or equal to cpu limit of 500m",
    );
}

#[test]
fn quantities_must_parse_and_be_non_negative() {
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/resources/limits/memory"),
        json!("lots"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].resources.limits[memory]",
        "Invalid value: \"lots\": quantities must match the regular expression",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/resources/requests/memory"),
        json!("-1Mi"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].resources.requests[memory]",
        "Invalid value: \"-1Mi\": must be greater than or equal to 0",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/resources/requests/gpu"),
        json!("1"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].resources.requests[gpu]",
        "Invalid value: \"gpu\": must be a standard resource type or fully qualified",
    );
    let ext = with(
        &pod(),
        &format!("{C0}/resources/limits/example.com~1gpu"),
        json!("0.5"),
    );
    let errs = pod_errs(&with(
        &ext,
        &format!("{C0}/resources/requests/example.com~1gpu"),
        json!("0.5"),
    ));
    assert_error(
        &errs,
        "spec.containers[0].resources.limits[example.com/gpu]",
        "Invalid value: \"500m\": must be an integer",
    );
}

#[test]
fn probes_need_one_handler_and_sane_thresholds() {
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/livenessProbe"),
        json!({"initialDelaySeconds": 1}),
    ));
    assert_error(
        &errs,
        "spec.containers[0].livenessProbe",
        "Required value: must specify a handler type",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/livenessProbe/successThreshold"),
        json!(2),
    ));
    assert_error(
        &errs,
        "spec.containers[0].livenessProbe.successThreshold",
        "Invalid value: 2: must be 1",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/readinessProbe/periodSeconds"),
        json!(-1),
    ));
    assert_error(
        &errs,
        "spec.containers[0].readinessProbe.periodSeconds",
        "Invalid value: -1: must be greater than or equal to 0",
    );
    let both = json!({"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}});
    let errs = pod_errs(&with(&pod(), &format!("{C0}/readinessProbe"), both));
    assert_error(
        &errs,
        "spec.containers[0].readinessProbe.tcpSocket",
        "Forbidden: may not specify more than 1 handler type",
    );
    let errs = pod_errs(&with(
        &pod(),
        &format!("{C0}/livenessProbe/httpGet/port"),
        json!(0),
    ));
    assert_error(
        &errs,
        "spec.containers[0].livenessProbe.httpGet.port",
        "Invalid value: 0: must be between 1 and 65535, inclusive",
    );
}

#[test]
fn init_containers_may_not_have_probes_unless_sidecars() {
    let probe = json!({"exec": {"command": ["true"]}});
    let errs = pod_errs(&with(
        &pod(),
        "/spec/initContainers/0/readinessProbe",
        probe.clone(),
    ));
    assert_error(
        &errs,
        "spec.initContainers[0].readinessProbe",
        "Forbidden: may not be set for init containers without restartPolicy=Always",
    );
    let sidecar = with(
        &with(&pod(), "/spec/initContainers/0/readinessProbe", probe),
        "/spec/initContainers/0/restartPolicy",
        json!("Always"),
    );
    assert_valid(&pod_errs(&sidecar));
}
