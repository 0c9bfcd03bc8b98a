//! Values: each special case of upstream's JSON marshalling.

use serde_json::json;

use super::*;

#[test]
fn content_type_detection_ignores_case_and_parameters() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "Application/VND.Kubernetes.Protobuf; charset=utf-8"
    ));
    assert!(!is_protobuf("application/json"));
    assert!(!is_protobuf("application/vnd.kubernetes.protobuffer"));
}

#[test]
fn configmap_drops_go_zero_values_of_omitempty_fields() {
    let object = Enc::default()
        .msg(1, meta("x"))
        .entry(2, "a", "b")
        .msg(3, Enc::default().str(1, "bin").bytes(2, &[0, 1, 2]));
    assert_eq!(
        decode_ok("v1", "ConfigMap", object),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "x" },
            "data": { "a": "b" },
            "binaryData": { "bin": "AAEC" },
        })
    );
}

#[test]
fn secret_bytes_map_values_are_base64() {
    let object = Enc::default()
        .msg(1, meta("s"))
        .msg(2, Enc::default().str(1, "password").bytes(2, b"hunter2"))
        .msg(2, Enc::default().str(1, "empty").bytes(2, b""))
        .str(3, "Opaque");
    let json = decode_ok("v1", "Secret", object);
    assert_eq!(
        json["data"],
        json!({ "password": "aHVudGVyMg==", "empty": "" })
    );
    assert_eq!(json["type"], "Opaque");
}

#[test]
fn times_are_rfc3339_and_zero_times_follow_omitzero() {
    let metadata = meta("p")
        .msg(8, Enc::default().int(1, 1_704_164_645).int(2, 999))
        .msg(9, Enc::default().int(1, 0));
    let json = decode_ok("v1", "Pod", Enc::default().msg(1, metadata));
    assert_eq!(
        json["metadata"]["creationTimestamp"],
        "2024-01-02T03:04:05Z"
    );
    assert_eq!(
        json["metadata"]["deletionTimestamp"],
        "1970-01-01T00:00:00Z"
    );

    let json = decode_ok("v1", "Pod", Enc::default().msg(1, meta("p")));
    assert!(json["metadata"].get("creationTimestamp").is_none());
}

#[test]
fn micro_times_have_six_fraction_digits() {
    let spec = Enc::default()
        .str(1, "holder")
        .msg(3, Enc::default().int(1, 1_704_164_645).int(2, 5_000))
        .msg(4, Enc::default());
    let object = Enc::default().msg(1, meta("l")).msg(2, spec);
    let json = decode_ok("coordination.k8s.io/v1", "Lease", object);
    assert_eq!(json["spec"]["acquireTime"], "2024-01-02T03:04:05.000005Z");
    assert_eq!(json["spec"]["renewTime"], Value::Null);
    assert_eq!(json["spec"]["holderIdentity"], "holder");
}

#[test]
fn durations_are_go_strings() {
    let object = Enc::default()
        .msg(1, meta("m"))
        .msg(3, Enc::default().int(1, 30_000_000_000));
    let json = decode_ok("metrics.k8s.io/v1beta1", "PodMetrics", object);
    assert_eq!(json["window"], "30s");
}

fn container(name: &str) -> Enc {
    Enc::default().str(1, name).str(2, "nginx").str(5, "")
}

#[test]
fn quantities_in_maps_are_strings() {
    let limits = Enc::default()
        .str(1, "cpu")
        .msg(2, Enc::default().str(1, "500m"));
    let requests = Enc::default().str(1, "memory").msg(2, Enc::default());
    let resources = Enc::default().msg(1, limits).msg(2, requests);
    let spec = Enc::default().msg(2, container("c").msg(8, resources));
    let json = decode_ok("v1", "Pod", Enc::default().msg(1, meta("p")).msg(2, spec));
    let resources = &json["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"], json!({ "cpu": "500m" }));
    assert_eq!(resources["requests"], json!({ "memory": "0" }));
}

#[test]
fn malformed_quantity_is_an_error() {
    let limits = Enc::default()
        .str(1, "cpu")
        .msg(2, Enc::default().str(1, "lots"));
    let spec = Enc::default().msg(2, container("c").msg(8, Enc::default().msg(1, limits)));
    let err = decode_err("v1", "Pod", Enc::default().msg(2, spec));
    assert!(err.contains("\"lots\" is not a quantity"), "{err}");
    assert!(err.contains("spec.containers[0].resources.limits"), "{err}");
}

#[test]
fn int_or_string_becomes_number_or_string() {
    let port = |target: Enc| {
        Enc::default()
            .str(1, "")
            .str(2, "TCP")
            .int(3, 80)
            .msg(4, target)
    };
    let spec = Enc::default()
        .msg(1, port(Enc::default().int(1, 0).int(2, 8080).str(3, "")))
        .msg(1, port(Enc::default().int(1, 1).int(2, 0).str(3, "http")));
    let json = decode_ok(
        "v1",
        "Service",
        Enc::default().msg(1, meta("s")).msg(2, spec),
    );
    let ports = &json["spec"]["ports"];
    assert_eq!(
        ports[0],
        json!({ "protocol": "TCP", "port": 80, "targetPort": 8080 })
    );
    assert_eq!(ports[1]["targetPort"], "http");
}

#[test]
fn int_or_string_of_unknown_type_is_an_error() {
    let port = Enc::default().int(3, 80).msg(4, Enc::default().int(1, 7));
    let err = decode_err(
        "v1",
        "Service",
        Enc::default().msg(2, Enc::default().msg(1, port)),
    );
    assert!(err.contains("IntOrString has unknown type 7"), "{err}");
}

#[test]
fn pointer_zero_values_are_kept_and_value_zeros_dropped() {
    let spec = Enc::default()
        .int(1, 0)
        .int(5, 0)
        .int(7, 0)
        .msg(4, Enc::default().str(1, ""));
    let json = decode_ok("apps/v1", "Deployment", Enc::default().msg(2, spec));
    assert_eq!(
        json["spec"],
        json!({
            "replicas": 0,
            "selector": null,
            "strategy": {},
            "template": { "metadata": {}, "spec": { "containers": null } },
        })
    );
}

#[test]
fn int64_values_stay_exact_numbers() {
    let spec = Enc::default().int(5, 1 << 53).int(4, u64::MAX);
    let json = decode_ok("v1", "Pod", Enc::default().msg(2, spec));
    assert_eq!(
        json["spec"]["activeDeadlineSeconds"],
        json!(9_007_199_254_740_992_i64)
    );
    assert_eq!(json["spec"]["terminationGracePeriodSeconds"], json!(-1));
}

#[test]
fn repeated_scalars_accept_packed_and_unpacked_encodings() {
    let mut packed = Vec::new();
    for value in [1u64, 300, 70_000] {
        push_varint(&mut packed, value);
    }
    let security = Enc::default().int(4, 5).bytes(4, &packed).int(4, 6);
    let spec = Enc::default().msg(14, security);
    let json = decode_ok("v1", "Pod", Enc::default().msg(2, spec));
    assert_eq!(
        json["spec"]["securityContext"]["supplementalGroups"],
        json!([5, 1, 300, 70_000, 6])
    );
}

#[test]
fn inline_fields_merge_into_their_parent() {
    let volume = Enc::default()
        .str(1, "scratch")
        .msg(2, Enc::default().msg(2, Enc::default().str(1, "")));
    let json = decode_ok(
        "v1",
        "Pod",
        Enc::default().msg(2, Enc::default().msg(1, volume)),
    );
    assert_eq!(
        json["spec"]["volumes"],
        json!([{ "name": "scratch", "emptyDir": {} }])
    );
}

#[test]
fn non_omitempty_zero_values_are_kept_and_absent_ones_filled() {
    let spec = Enc::default().msg(
        2,
        Enc::default().str(1, "").msg(6, Enc::default().int(3, 0)),
    );
    let json = decode_ok("v1", "Pod", Enc::default().msg(2, spec));
    assert_eq!(
        json["spec"]["containers"],
        json!([{ "name": "", "ports": [{ "containerPort": 0 }], "resources": {} }])
    );
}

#[test]
fn absent_nil_slices_and_pointers_without_omitempty_are_null() {
    let rule = Enc::default().msg(1, Enc::default().entry(1, "a", "b"));
    let object = Enc::default().msg(1, meta("agg")).msg(3, rule);
    let json = decode_ok("rbac.authorization.k8s.io/v1", "ClusterRole", object);
    assert_eq!(json["rules"], Value::Null);

    let spec = Enc::default().str(1, "api").int(4, 600);
    let json = decode_ok(
        "authentication.k8s.io/v1",
        "TokenRequest",
        Enc::default().msg(2, spec),
    );
    assert_eq!(
        json["spec"],
        json!({ "audiences": ["api"], "expirationSeconds": 600, "boundObjectRef": null })
    );
}

#[test]
fn raw_extension_embeds_json() {
    let object = Enc::default()
        .msg(2, Enc::default().bytes(1, br#"{"spec":{"replicas":2}}"#))
        .int(3, 4);
    let json = decode_ok("apps/v1", "ControllerRevision", object);
    assert_eq!(json["data"], json!({ "spec": { "replicas": 2 } }));
    assert_eq!(json["revision"], 4);
}

#[test]
fn raw_extension_that_is_not_json_is_an_error() {
    let object = Enc::default().msg(2, Enc::default().bytes(1, b"\x08\x01"));
    let err = decode_err("apps/v1", "ControllerRevision", object);
    assert!(
        err.contains("data: embedded raw object is not JSON"),
        "{err}"
    );
}

#[test]
fn managed_fields_embed_fields_v1_json() {
    let entry = Enc::default()
        .str(1, "kubectl")
        .str(2, "Update")
        .str(3, "v1")
        .msg(4, Enc::default())
        .str(6, "FieldsV1")
        .msg(7, Enc::default().bytes(1, br#"{"f:data":{}}"#))
        .str(8, "");
    let json = decode_ok(
        "v1",
        "ConfigMap",
        Enc::default().msg(1, meta("x").msg(17, entry)),
    );
    assert_eq!(
        json["metadata"]["managedFields"][0],
        json!({
            "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
            "time": null, "fieldsType": "FieldsV1", "fieldsV1": { "f:data": {} },
        })
    );
}

#[test]
fn bytes_fields_are_base64() {
    let spec = Enc::default()
        .bytes(1, b"-----BEGIN")
        .str(7, "example.com/signer");
    let json = decode_ok(
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
        Enc::default().msg(2, spec),
    );
    assert_eq!(json["spec"]["request"], "LS0tLS1CRUdJTg==");
}

#[test]
fn named_slice_wrappers_become_lists() {
    let extra = Enc::default()
        .str(1, "scopes")
        .msg(2, Enc::default().str(1, "a").str(1, "b"));
    let spec = Enc::default().str(3, "jane").msg(5, extra);
    let json = decode_ok(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        Enc::default().msg(2, spec),
    );
    assert_eq!(json["spec"]["extra"], json!({ "scopes": ["a", "b"] }));
}

#[test]
fn crd_schema_unions_and_doubles_follow_upstream_marshalling() {
    let string_schema = Enc::default().str(5, "string");
    let schema = Enc::default()
        .str(5, "object")
        .double(9, 10.0)
        .double(11, 0.5)
        .msg(30, Enc::default().int(1, 1))
        .msg(24, Enc::default().msg(1, string_schema.clone()))
        .msg(29, Enc::default().str(1, "name").msg(2, string_schema))
        .msg(36, Enc::default().bytes(1, b"{\"a\":1}"));
    let version = Enc::default()
        .str(1, "v1")
        .msg(4, Enc::default().msg(1, schema));
    let spec = Enc::default().str(1, "example.com").msg(7, version);
    let object = Enc::default()
        .msg(1, meta("things.example.com"))
        .msg(2, spec);
    let json = decode_ok(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        object,
    );
    assert_eq!(
        json["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        json!({
            "type": "object", "maximum": 10, "minimum": 0.5,
            "additionalProperties": true,
            "items": { "type": "string" },
            "properties": { "name": { "type": "string" } },
            "example": { "a": 1 },
        })
    );
}

#[test]
fn repeated_occurrences_of_a_message_field_merge() {
    let object = Enc::default()
        .msg(1, Enc::default().str(1, "x"))
        .msg(1, Enc::default().str(3, "ns").entry(11, "app", "web"));
    let json = decode_ok("v1", "ConfigMap", object);
    assert_eq!(
        json["metadata"],
        json!({ "name": "x", "namespace": "ns", "labels": { "app": "web" } })
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let object = Enc::default()
        .msg(1, meta("x"))
        .int(99, 5)
        .str(100, "later field")
        .double(101, 1.0);
    let json = decode_ok("v1", "ConfigMap", object);
    assert_eq!(
        json,
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" } })
    );
}

#[test]
fn options_kinds_decode_in_any_group_version() {
    let options = Enc::default().int(1, 0).str(4, "Foreground").str(5, "All");
    let json = decode_ok("apps/v1", "DeleteOptions", options);
    assert_eq!(
        json,
        json!({
            "apiVersion": "apps/v1", "kind": "DeleteOptions",
            "gracePeriodSeconds": 0, "propagationPolicy": "Foreground", "dryRun": ["All"],
        })
    );
}
