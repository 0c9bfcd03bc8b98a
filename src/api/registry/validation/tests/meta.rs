//! Object metadata rules, shared by every kind.

use serde_json::json;

use super::fixtures::{configmap, service};
use super::{assert_error, assert_valid, create, with, without};
use crate::api::registry::validation::{CauseType, validate_create};

#[test]
fn missing_name_without_generate_name_is_required() {
    let errs = create("", "ConfigMap", &without(&configmap(), "/metadata/name"));
    assert_error(
        &errs,
        "metadata.name",
        "Required value: name or generateName is required",
    );
    assert_eq!(errs[0].kind, CauseType::Required);
    assert_eq!(errs[0].kind.as_str(), "FieldValueRequired");
}

#[test]
fn generate_name_alone_is_accepted_and_checked_as_a_prefix() {
    let cm = with(
        &without(&configmap(), "/metadata/name"),
        "/metadata/generateName",
        json!("web-"),
    );
    assert_valid(&create("", "ConfigMap", &cm));
    let bad = with(&cm, "/metadata/generateName", json!("Web_"));
    assert_error(
        &create("", "ConfigMap", &bad),
        "metadata.generateName",
        "Invalid value: \"Web_\": a lowercase RFC 1123 subdomain",
    );
}

#[test]
fn names_follow_the_kind_rule() {
    let cm = with(&configmap(), "/metadata/name", json!("Foo"));
    let errs = create("", "ConfigMap", &cm);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        "metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case \
         alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
         (e.g. 'example.com', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    let svc = with(&service(), "/metadata/name", json!("1web"));
    assert_error(
        &create("", "Service", &svc),
        "metadata.name",
        "Invalid value: \"1web\": a DNS-1035 label must consist",
    );
    let ns = json!({"metadata": {"name": "a.b"}});
    assert_error(
        &create("", "Namespace", &ns),
        "metadata.name",
        "Invalid value: \"a.b\": must not contain dots",
    );
}

#[test]
fn namespaced_kinds_need_a_namespace_and_cluster_kinds_refuse_one() {
    let errs = create(
        "",
        "ConfigMap",
        &without(&configmap(), "/metadata/namespace"),
    );
    assert_error(&errs, "metadata.namespace", "Required value");
    let ns = json!({"metadata": {"name": "team", "namespace": "default"}});
    assert_error(
        &create("", "Namespace", &ns),
        "metadata.namespace",
        "Forbidden: not allowed on this type",
    );
}

#[test]
fn label_keys_and_values_are_checked() {
    let cm = with(
        &configmap(),
        "/metadata/labels",
        json!({"app": "-bad-", "a/b/c": "x"}),
    );
    let errs = create("", "ConfigMap", &cm);
    assert_error(
        &errs,
        "metadata.labels",
        "Invalid value: \"-bad-\": a valid label must be an empty string",
    );
    assert_error(
        &errs,
        "metadata.labels",
        "Invalid value: \"a/b/c\": a valid label key must consist",
    );
    let long = with(
        &configmap(),
        "/metadata/labels",
        json!({"k": "v".repeat(64)}),
    );
    assert_error(
        &create("", "ConfigMap", &long),
        "metadata.labels",
        "Invalid value: \"vvvv",
    );
}

#[test]
fn annotation_keys_and_total_size_are_checked() {
    let cm = with(
        &configmap(),
        "/metadata/annotations",
        json!({"Bad Key": "x"}),
    );
    assert_error(
        &create("", "ConfigMap", &cm),
        "metadata.annotations",
        "Invalid value: \"Bad Key\": name part must consist",
    );
    let big = with(
        &configmap(),
        "/metadata/annotations",
        json!({"big": "x".repeat(262_145)}),
    );
    let errs = create("", "ConfigMap", &big);
    assert_error(
        &errs,
        "metadata.annotations",
        "Too long: may not be more than 262144 bytes",
    );
    assert_eq!(errs[0].kind, CauseType::TooLong);
}

#[test]
fn owner_references_need_their_fields_and_one_controller() {
    let refs = json!([
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": true},
        {"apiVersion": "", "kind": "", "name": "c", "uid": "3"}
    ]);
    let errs = create(
        "",
        "ConfigMap",
        &with(&configmap(), "/metadata/ownerReferences", refs),
    );
    assert_error(&errs, "metadata.ownerReferences", "Invalid value: [");
    assert!(errs.iter().any(|e| {
        e.message
            .ends_with("Found \"true\" in references for ReplicaSet/a and ReplicaSet/b")
    }));
    assert_error(
        &errs,
        "metadata.ownerReferences[2].apiVersion",
        "Required value: must not be empty",
    );
    assert_error(
        &errs,
        "metadata.ownerReferences[2].kind",
        "Required value: must not be empty",
    );
}

#[test]
fn unqualified_finalizers_must_be_standard() {
    let cm = with(
        &configmap(),
        "/metadata/finalizers",
        json!(["kubernetes", "custom"]),
    );
    let errs = create("", "ConfigMap", &cm);
    assert_error(
        &errs,
        "metadata.finalizers[1]",
        "Invalid value: \"custom\": name is neither a standard finalizer name",
    );
    let ok = with(
        &configmap(),
        "/metadata/finalizers",
        json!(["example.com/cleanup"]),
    );
    assert_valid(&create("", "ConfigMap", &ok));
}

#[test]
fn unknown_kinds_are_not_validated() {
    assert!(validate_create("example.com", "Widget", &json!({"metadata": {}})).is_empty());
}

#[test]
fn new_finalizers_are_refused_while_deleting() {
    let old = with(
        &configmap(),
        "/metadata/deletionTimestamp",
        json!("2024-01-01T00:00:00Z"),
    );
    let new = with(&old, "/metadata/finalizers", json!(["example.com/x"]));
    let errs = super::update("", "ConfigMap", &old, &new);
    assert_error(
        &errs,
        "metadata.finalizers",
        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/x\"}",
    );
}
