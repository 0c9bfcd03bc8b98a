//! ConfigMap, Secret, Namespace, Node, ServiceAccount and PersistentVolumeClaim rules.

use serde_json::json;

use super::fixtures::{configmap, node, pvc, tls_secret};
use super::{assert_error, assert_valid, create, with, without};

#[test]
fn realistic_core_objects_are_valid() {
    assert_valid(&create("", "ConfigMap", &configmap()));
    assert_valid(&create("", "Secret", &tls_secret()));
    assert_valid(&create("", "Node", &node()));
    assert_valid(&create("", "PersistentVolumeClaim", &pvc()));
    assert_valid(&create(
        "",
        "Namespace",
        &json!({"metadata": {"name": "team-a"}}),
    ));
    let sa = json!({"metadata": {"name": "builder", "namespace": "ci"}, "imagePullSecrets": [{"name": "regcred"}]});
    assert_valid(&create("", "ServiceAccount", &sa));
    let opaque = json!({"metadata": {"name": "creds", "namespace": "default"}, "stringData": {"password": "hunter2"}});
    assert_valid(&create("", "Secret", &opaque));
    let docker = json!({"metadata": {"name": "regcred", "namespace": "default"}, "type": "kubernetes.io/dockerconfigjson",
                        "stringData": {".dockerconfigjson": "{\"auths\":{}}"}});
    assert_valid(&create("", "Secret", &docker));
}

#[test]
fn config_keys_are_checked() {
    let errs = create(
        "",
        "ConfigMap",
        &with(&configmap(), "/data/bad~1key", json!("x")),
    );
    assert_error(
        &errs,
        "data[bad/key]",
        "Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
    );
    let errs = create(
        "",
        "ConfigMap",
        &with(&configmap(), "/binaryData/MODE", json!("AA==")),
    );
    assert_error(
        &errs,
        "data[MODE]",
        "Invalid value: \"MODE\": duplicate of key present in binaryData",
    );
    let errs = create(
        "",
        "Secret",
        &with(&tls_secret(), "/data/..", json!("eA==")),
    );
    assert_error(&errs, "data[..]", "Invalid value: \"..\": must not be '..'");
}

#[test]
fn secret_types_require_their_keys() {
    let errs = create("", "Secret", &without(&tls_secret(), "/data/tls.key"));
    assert_error(&errs, "data[tls.key]", "Required value");
    let docker = json!({"metadata": {"name": "r", "namespace": "default"}, "type": "kubernetes.io/dockerconfigjson", "data": {}});
    assert_error(
        &create("", "Secret", &docker),
        "data[.dockerconfigjson]",
        "Required value",
    );
    let bad_json = with(&docker, "/data/.dockerconfigjson", json!("bm90IGpzb24="));
    assert_error(
        &create("", "Secret", &bad_json),
        "data[.dockerconfigjson]",
        "Invalid value: \"<secret contents redacted>\": ",
    );
    let token = json!({"metadata": {"name": "t", "namespace": "default"}, "type": "kubernetes.io/service-account-token"});
    let errs = create("", "Secret", &token);
    assert_error(
        &errs,
        "metadata.annotations[kubernetes.io/service-account.name]",
        "Required value",
    );
    let basic = json!({"metadata": {"name": "b", "namespace": "default"}, "type": "kubernetes.io/basic-auth", "data": {}});
    assert_error(
        &create("", "Secret", &basic),
        "data[username]",
        "Required value",
    );
}

#[test]
fn secret_data_must_be_base64() {
    let errs = create(
        "",
        "Secret",
        &with(&tls_secret(), "/data/tls.crt", json!("not base64!")),
    );
    assert_error(
        &errs,
        "data[tls.crt]",
        "Invalid value: \"<secret contents redacted>\": illegal base64 data at input byte",
    );
}

#[test]
fn namespace_finalizers_are_checked() {
    let ns = json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["custom"]}});
    let errs = create("", "Namespace", &ns);
    assert_error(
        &errs,
        "spec.finalizers",
        "Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
    );
}

#[test]
fn node_pod_cidrs_must_be_cidrs() {
    let errs = create(
        "",
        "Node",
        &with(&node(), "/spec/podCIDR", json!("10.42.0.1/24")),
    );
    assert_error(
        &errs,
        "spec.podCIDRs[0]",
        "Invalid value: \"10.42.0.1/24\": must not have bits set beyond the prefix length",
    );
    let errs = create(
        "",
        "Node",
        &with(&node(), "/spec/podCIDR", json!("garbage")),
    );
    assert_error(
        &errs,
        "spec.podCIDRs[0]",
        "Invalid value: \"garbage\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
    );
    let two = with(
        &node(),
        "/spec/podCIDRs",
        json!(["10.42.0.0/24", "10.43.0.0/24"]),
    );
    assert_error(
        &create("", "Node", &two),
        "spec.podCIDRs",
        "Invalid value: [\"10.42.0.0/24\",\"10.43.0.0/24\"]: may specify no more than one CIDR for each IP family",
    );
    let errs = create(
        "",
        "Node",
        &with(&node(), "/spec/taints/0/effect", json!("Maybe")),
    );
    assert_error(
        &errs,
        "metadata.taints[0].effect",
        "Unsupported value: \"Maybe\"",
    );
}

#[test]
fn pvc_needs_access_modes_and_storage() {
    let errs = create(
        "",
        "PersistentVolumeClaim",
        &without(&pvc(), "/spec/accessModes"),
    );
    assert_error(
        &errs,
        "spec.accessModes",
        "Required value: at least 1 access mode is required",
    );
    let errs = create(
        "",
        "PersistentVolumeClaim",
        &without(&pvc(), "/spec/resources/requests/storage"),
    );
    assert_error(&errs, "spec.resources[storage]", "Required value");
    let errs = create(
        "",
        "PersistentVolumeClaim",
        &with(&pvc(), "/spec/resources/requests/storage", json!("0")),
    );
    assert_error(
        &errs,
        "spec.resources[storage]",
        "Invalid value: \"0\": must be greater than zero",
    );
    let errs = create(
        "",
        "PersistentVolumeClaim",
        &with(&pvc(), "/spec/accessModes/0", json!("ReadWriteSometimes")),
    );
    assert_error(
        &errs,
        "spec.accessModes",
        "Unsupported value: \"ReadWriteSometimes\"",
    );
    let errs = create(
        "",
        "PersistentVolumeClaim",
        &with(&pvc(), "/spec/volumeMode", json!("Raw")),
    );
    assert_error(
        &errs,
        "spec.volumeMode",
        "Unsupported value: \"Raw\": supported values: \"Block\", \"Filesystem\"",
    );
}
