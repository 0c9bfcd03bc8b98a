//! Lease, Event, Endpoints, EndpointSlice, PriorityClass, Ingress and RBAC rules.

use serde_json::json;

use super::fixtures::{ingress, role_binding};
use super::{assert_error, assert_valid, create, with, without};

const RBAC: &str = "rbac.authorization.k8s.io";

#[test]
fn lease_durations_and_transitions() {
    let lease = json!({"metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
                       "spec": {"holderIdentity": "node-1_abc", "leaseDurationSeconds": 15, "leaseTransitions": 2}});
    assert_valid(&create("coordination.k8s.io", "Lease", &lease));
    let errs = create(
        "coordination.k8s.io",
        "Lease",
        &with(&lease, "/spec/leaseDurationSeconds", json!(0)),
    );
    assert_error(
        &errs,
        "spec.leaseDurationSeconds",
        "Invalid value: 0: must be greater than 0",
    );
    let errs = create(
        "coordination.k8s.io",
        "Lease",
        &with(&lease, "/spec/leaseTransitions", json!(-1)),
    );
    assert_error(
        &errs,
        "spec.leaseTransitions",
        "Invalid value: -1: must be greater than or equal to 0",
    );
}

#[test]
fn core_events_check_involved_object_namespace() {
    let event = json!({"metadata": {"name": "web.17a", "namespace": "default"},
                       "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
                       "reason": "Started", "message": "Started container", "type": "Normal"});
    assert_valid(&create("", "Event", &event));
    let errs = create(
        "",
        "Event",
        &with(&event, "/involvedObject/namespace", json!("other")),
    );
    assert_error(
        &errs,
        "involvedObject.namespace",
        "Invalid value: \"other\": does not match event.namespace",
    );
    let new_style = with(&event, "/eventTime", json!("2024-01-01T00:00:00.000000Z"));
    let errs = create("", "Event", &new_style);
    assert_error(&errs, "reportingController", "Required value");
    assert_error(&errs, "action", "Required value");
}

#[test]
fn events_api_events_are_strict() {
    let event = json!({"metadata": {"name": "web.17a", "namespace": "default"},
                       "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
                       "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "kelp.io/kubelet",
                       "reportingInstance": "node-1", "action": "Started", "reason": "Started", "type": "Normal"});
    assert_valid(&create("events.k8s.io", "Event", &event));
    let errs = create(
        "events.k8s.io",
        "Event",
        &with(&event, "/type", json!("Info")),
    );
    assert_error(
        &errs,
        "type",
        "Invalid value: \"\": has invalid value: Info",
    );
    let errs = create("events.k8s.io", "Event", &without(&event, "/eventTime"));
    assert_error(&errs, "eventTime", "Required value");
}

#[test]
fn endpoints_need_addresses_and_valid_ports() {
    let ep = json!({"metadata": {"name": "web", "namespace": "default"},
                    "subsets": [{"addresses": [{"ip": "10.42.0.5", "nodeName": "node-1"}], "ports": [{"port": 80}]}]});
    assert_valid(&create("", "Endpoints", &ep));
    let errs = create(
        "",
        "Endpoints",
        &with(&ep, "/subsets/0/addresses", json!([])),
    );
    assert_error(
        &errs,
        "subsets[0]",
        "Required value: must specify `addresses` or `notReadyAddresses`",
    );
    let errs = create(
        "",
        "Endpoints",
        &with(&ep, "/subsets/0/addresses/0/ip", json!("127.0.0.1")),
    );
    assert_error(
        &errs,
        "subsets[0].addresses[0].ip",
        "Invalid value: \"127.0.0.1\": may not be in the loopback range",
    );
    let errs = create(
        "",
        "Endpoints",
        &with(&ep, "/subsets/0/ports/0/port", json!(0)),
    );
    assert_error(
        &errs,
        "subsets[0].ports[0].port",
        "Invalid value: 0: must be between 1 and 65535, inclusive",
    );
}

#[test]
fn endpoint_slices_check_address_type_and_ports() {
    let slice = json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
                       "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": true}}],
                       "ports": [{"name": "http", "port": 80}]});
    assert_valid(&create("discovery.k8s.io", "EndpointSlice", &slice));
    let errs = create(
        "discovery.k8s.io",
        "EndpointSlice",
        &with(&slice, "/addressType", json!("IPv5")),
    );
    assert_error(
        &errs,
        "addressType",
        "Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
    );
    let errs = create(
        "discovery.k8s.io",
        "EndpointSlice",
        &with(&slice, "/endpoints/0/addresses", json!(["fd00::1"])),
    );
    assert_error(
        &errs,
        "endpoints[0].addresses[0]",
        "Invalid value: \"fd00::1\": must be a valid IPv4 address",
    );
    let errs = create(
        "discovery.k8s.io",
        "EndpointSlice",
        &with(&slice, "/endpoints/0/addresses", json!([])),
    );
    assert_error(
        &errs,
        "endpoints[0].addresses",
        "Required value: must contain at least 1 address",
    );
}

#[test]
fn priority_class_values_are_bounded() {
    let pc = json!({"metadata": {"name": "high"}, "value": 1000000, "description": "important"});
    assert_valid(&create("scheduling.k8s.io", "PriorityClass", &pc));
    let errs = create(
        "scheduling.k8s.io",
        "PriorityClass",
        &with(&pc, "/value", json!(2000000000)),
    );
    assert_error(
        &errs,
        "value",
        "Forbidden: maximum allowed value of a user defined priority is 1000000000",
    );
    let errs = create(
        "scheduling.k8s.io",
        "PriorityClass",
        &with(&pc, "/metadata/name", json!("system-custom")),
    );
    assert_error(
        &errs,
        "metadata.name",
        "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-custom is not a known system priority class",
    );
}

#[test]
fn ingress_rules_paths_and_backends() {
    assert_valid(&create("networking.k8s.io", "Ingress", &ingress()));
    let p0 = "/spec/rules/0/http/paths/0";
    let errs = create(
        "networking.k8s.io",
        "Ingress",
        &without(&ingress(), &format!("{p0}/pathType")),
    );
    assert_error(
        &errs,
        "spec.rules[0].http.paths[0].pathType",
        "Required value: pathType must be specified",
    );
    let errs = create(
        "networking.k8s.io",
        "Ingress",
        &with(&ingress(), &format!("{p0}/path"), json!("api")),
    );
    assert_error(
        &errs,
        "spec.rules[0].http.paths[0].path",
        "Invalid value: \"api\": must be an absolute path",
    );
    let errs = create(
        "networking.k8s.io",
        "Ingress",
        &with(&ingress(), "/spec/rules/0/host", json!("10.0.0.1")),
    );
    assert_error(
        &errs,
        "spec.rules[0].host",
        "Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
    );
    let errs = create(
        "networking.k8s.io",
        "Ingress",
        &with(&ingress(), &format!("{p0}/backend"), json!({})),
    );
    assert_error(
        &errs,
        "spec.rules[0].http.paths[0].backend",
        "Invalid value: \"\": resource or service backend is required",
    );
    let errs = create(
        "networking.k8s.io",
        "Ingress",
        &with(&ingress(), &format!("{p0}/backend/service/port"), json!({})),
    );
    assert_error(
        &errs,
        "spec.rules[0].http.paths[0].backend",
        "Required value: port name or number is required",
    );
    let empty = json!({"metadata": {"name": "x", "namespace": "default"}, "spec": {}});
    assert_error(
        &create("networking.k8s.io", "Ingress", &empty),
        "spec",
        "Invalid value: null: either `defaultBackend` or `rules` must be specified",
    );
}

#[test]
fn roles_need_verbs_and_resources() {
    let role = json!({"metadata": {"name": "pod-reader", "namespace": "default"},
                      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]});
    assert_valid(&create(RBAC, "Role", &role));
    let errs = create(RBAC, "Role", &with(&role, "/rules/0/verbs", json!([])));
    assert_error(
        &errs,
        "rules[0].verbs",
        "Required value: verbs must contain at least one value",
    );
    let errs = create(RBAC, "Role", &without(&role, "/rules/0/resources"));
    assert_error(
        &errs,
        "rules[0].resources",
        "Required value: resource rules must supply at least one resource",
    );
    let errs = create(
        RBAC,
        "Role",
        &with(&role, "/rules/0/nonResourceURLs", json!(["/healthz"])),
    );
    assert_error(
        &errs,
        "rules[0].nonResourceURLs",
        "Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs",
    );
    let cr = json!({"metadata": {"name": "system:metrics"}, "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]});
    assert_valid(&create(RBAC, "ClusterRole", &cr));
    let errs = create(RBAC, "Role", &with(&role, "/metadata/name", json!("a/b")));
    assert_error(
        &errs,
        "metadata.name",
        "Invalid value: \"a/b\": may not contain '/'",
    );
}

#[test]
fn bindings_need_a_role_ref() {
    assert_valid(&create(RBAC, "RoleBinding", &role_binding()));
    let errs = create(
        RBAC,
        "RoleBinding",
        &without(&role_binding(), "/roleRef/name"),
    );
    assert_error(&errs, "roleRef.name", "Required value");
    let errs = create(
        RBAC,
        "RoleBinding",
        &with(&role_binding(), "/roleRef/kind", json!("Group")),
    );
    assert_error(
        &errs,
        "roleRef.kind",
        "Unsupported value: \"Group\": supported values: \"Role\", \"ClusterRole\"",
    );
    let crb = with(
        &without(&role_binding(), "/metadata/namespace"),
        "/roleRef/kind",
        json!("Role"),
    );
    let crb = without(&crb, "/subjects/1/namespace");
    let errs = create(RBAC, "ClusterRoleBinding", &crb);
    assert_error(
        &errs,
        "roleRef.kind",
        "Unsupported value: \"Role\": supported values: \"ClusterRole\"",
    );
    assert_error(&errs, "subjects[1].namespace", "Required value");
    let errs = create(
        RBAC,
        "RoleBinding",
        &with(&role_binding(), "/subjects/0/kind", json!("Robot")),
    );
    assert_error(
        &errs,
        "subjects[0].kind",
        "Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
    );
}
