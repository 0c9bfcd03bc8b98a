//! Service rules.

use serde_json::json;

use super::fixtures::service;
use super::{assert_error, assert_valid, create, update, with, without};

#[test]
fn realistic_services_are_valid() {
    assert_valid(&create("", "Service", &service()));
    let headless = with(
        &without(&service(), "/spec/ports"),
        "/spec/clusterIP",
        json!("None"),
    );
    assert_valid(&create("", "Service", &headless));
    let external = json!({"metadata": {"name": "db", "namespace": "default"},
                          "spec": {"type": "ExternalName", "externalName": "db.example.com."}});
    assert_valid(&create("", "Service", &external));
    let np = with(
        &with(&service(), "/spec/type", json!("NodePort")),
        "/spec/ports/0/nodePort",
        json!(30080),
    );
    assert_valid(&create("", "Service", &np));
    let lb = with(&service(), "/spec/type", json!("LoadBalancer"));
    assert_valid(&create("", "Service", &lb));
    let fixed_ip = with(&service(), "/spec/clusterIP", json!("10.43.0.10"));
    assert_valid(&create("", "Service", &fixed_ip));
}

#[test]
fn ports_are_required_unless_headless_or_external_name() {
    let errs = create("", "Service", &without(&service(), "/spec/ports"));
    assert_error(&errs, "spec.ports", "Required value");
}

#[test]
fn port_numbers_protocols_and_names() {
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/ports/0/port", json!(0)),
    );
    assert_error(
        &errs,
        "spec.ports[0].port",
        "Invalid value: 0: must be between 1 and 65535, inclusive",
    );
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/ports/0/protocol", json!("ICMP")),
    );
    assert_error(
        &errs,
        "spec.ports[0].protocol",
        "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
    );
    let errs = create("", "Service", &without(&service(), "/spec/ports/1/name"));
    assert_error(&errs, "spec.ports[1].name", "Required value");
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/ports/1/name", json!("http")),
    );
    assert_error(&errs, "spec.ports[1].name", "Duplicate value: \"http\"");
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/ports/1/port", json!(80)),
    );
    assert_error(
        &errs,
        "spec.ports[1]",
        "Duplicate value: {\"Name\":\"\",\"Protocol\":\"TCP\"",
    );
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/ports/0/targetPort", json!("HTTP_PORT")),
    );
    assert_error(
        &errs,
        "spec.ports[0].targetPort",
        "Invalid value: \"HTTP_PORT\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    );
    let single = with(&service(), "/spec/ports", json!([{"port": 80}]));
    assert_valid(&create("", "Service", &single));
}

#[test]
fn type_must_be_known() {
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/type", json!("Public")),
    );
    assert_error(
        &errs,
        "spec.type",
        "Unsupported value: \"Public\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
    );
}

#[test]
fn external_name_and_headless_rules() {
    let ext = json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"type": "ExternalName"}});
    assert_error(
        &create("", "Service", &ext),
        "spec.externalName",
        "Required value",
    );
    let np = with(
        &with(&service(), "/spec/type", json!("NodePort")),
        "/spec/clusterIP",
        json!("None"),
    );
    assert_error(
        &create("", "Service", &np),
        "spec.clusterIPs[0]",
        "Invalid value: \"None\": may not be set to 'None' for NodePort services",
    );
    let cip = with(&service(), "/spec/ports/0/nodePort", json!(30000));
    assert_error(
        &create("", "Service", &cip),
        "spec.ports[0].nodePort",
        "Forbidden: may not be used when `type` is 'ClusterIP'",
    );
}

#[test]
fn cluster_ip_must_be_an_ip() {
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/clusterIP", json!("10.43.0.300")),
    );
    assert_error(
        &errs,
        "spec.clusterIPs[0]",
        "Invalid value: \"10.43.0.300\": must be a valid IP address",
    );
}

#[test]
fn session_affinity_and_traffic_policies() {
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/sessionAffinity", json!("Cookie")),
    );
    assert_error(
        &errs,
        "spec.sessionAffinity",
        "Unsupported value: \"Cookie\": supported values: \"ClientIP\", \"None\"",
    );
    let errs = create(
        "",
        "Service",
        &with(&service(), "/spec/externalTrafficPolicy", json!("Local")),
    );
    assert_error(
        &errs,
        "spec.externalTrafficPolicy",
        "Invalid value: \"Local\": may only be set for externally-accessible services",
    );
}

#[test]
fn cluster_ip_is_immutable_unless_unchanged_or_omitted() {
    let old = with(&service(), "/spec/clusterIP", json!("10.43.0.10"));
    assert_valid(&update("", "Service", &old, &old));
    assert_valid(&update("", "Service", &old, &service()));
    let moved = with(&service(), "/spec/clusterIP", json!("10.43.0.11"));
    let errs = update("", "Service", &old, &moved);
    assert_error(
        &errs,
        "spec.clusterIPs[0]",
        "Invalid value: [\"10.43.0.11\"]: may not change once set",
    );
}

#[test]
fn type_changes_drop_fields_carried_over() {
    let np = with(&service(), "/spec/type", json!("NodePort"));
    let np = with(&np, "/spec/ports/0/nodePort", json!(30080));
    let mut stored = np.clone();
    crate::api::registry::defaults::apply_defaults("", "Service", &mut stored);
    let back = with(&stored, "/spec/type", json!("ClusterIP"));
    assert_valid(&update("", "Service", &stored, &back));
    let fresh = with(&service(), "/spec/externalTrafficPolicy", json!("Cluster"));
    let msg = "Invalid value: \"Cluster\": may only be set for externally-accessible services";
    super::assert_error(
        &create("", "Service", &fresh),
        "spec.externalTrafficPolicy",
        msg,
    );
    let local = with(
        &with(&service(), "/spec/type", json!("LoadBalancer")),
        "/spec/externalTrafficPolicy",
        json!("Local"),
    );
    assert_valid(&create("", "Service", &local));
}
