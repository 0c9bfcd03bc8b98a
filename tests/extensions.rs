//! Extending the API (issue "Extending the API"): admission webhooks served
//! by a test HTTPS server in this process, an aggregated API server behind
//! an APIService, and /openapi/v2 — all driven with real kubectl against a
//! real `kelp server`.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use base64::Engine;
use common::cluster::Server;
use common::extension_server::{Answer, ExtensionServer, Seen, own_ca_tls};
use serde_json::{Value, json};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn review_of(seen: &Seen) -> Value {
    serde_json::from_slice(&seen.body).unwrap_or(Value::Null)
}

/// The AdmissionReview answer for `request` with `response` merged in.
fn respond(review: &Value, response: Value) -> Answer {
    let mut r = json!({"uid": review["request"]["uid"], "allowed": true});
    for (k, v) in response.as_object().cloned().unwrap_or_default() {
        r[k] = v;
    }
    let body =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": r});
    (200, "application/json", serde_json::to_vec(&body).unwrap())
}

/// The test's webhook: /mutate labels pods, /validate refuses ConfigMaps
/// named "forbidden".
fn webhook(seen: &Seen) -> Answer {
    let review = review_of(seen);
    let request = &review["request"];
    if seen.path.starts_with("/mutate") {
        let patch = json!([
            {"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}
        ]);
        return respond(
            &review,
            json!({
                "patchType": "JSONPatch",
                "patch": b64(&patch.to_string()),
                "warnings": ["labelled by the test webhook"],
            }),
        );
    }
    if request["name"] == "forbidden" {
        return respond(
            &review,
            json!({"allowed": false, "status": {"code": 403, "message": "configmap name is forbidden"}}),
        );
    }
    respond(&review, json!({}))
}

fn hook_config(
    kind: &str,
    name: &str,
    url: &str,
    ca: &str,
    resource: &str,
    policy: &str,
) -> String {
    let (timeout, reinvocation) = if kind == "MutatingWebhookConfiguration" {
        ("5", "\n  reinvocationPolicy: Never")
    } else {
        ("5", "")
    };
    format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\nwebhooks:\n- name: {name}\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  failurePolicy: {policy}\n  timeoutSeconds: {timeout}{reinvocation}\n  clientConfig:\n    url: {url}\n    caBundle: {}\n  rules:\n  - operations: [CREATE]\n    apiGroups: [\"\"]\n    apiVersions: [v1]\n    resources: [{resource}]\n  namespaceSelector:\n    matchExpressions:\n    - {{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}}\n",
        b64(ca)
    )
}

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
    )
}

#[test]
fn url_webhooks_mutate_a_pod_and_deny_a_configmap_with_upstreams_message() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = own_ca_tls(dir.path(), &[], &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let hooks = ExtensionServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), tls, webhook);
    let base = format!("https://127.0.0.1:{}", hooks.addr.port());
    let s = Server::start();
    s.ok_stdin(
        &["apply", "-f", "-"],
        &hook_config(
            "MutatingWebhookConfiguration",
            "label.kelp.io",
            &format!("{base}/mutate"),
            &ca,
            "pods",
            "Fail",
        ),
    );
    s.ok_stdin(
        &["apply", "-f", "-"],
        &hook_config(
            "ValidatingWebhookConfiguration",
            "deny.kelp.io",
            &format!("{base}/validate"),
            &ca,
            "configmaps",
            "Fail",
        ),
    );
    let out = s.kubectl_stdin(&["create", "-f", "-"], &pod("web"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Warning: labelled by the test webhook"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.jsonpath(&["get", "pod", "web"], "{.metadata.labels.mutated}"),
        "yes"
    );
    let err = s.fails(&["create", "configmap", "forbidden"]);
    assert!(
        err.contains(
            "admission webhook \"deny.kelp.io\" denied the request: configmap name is forbidden"
        ),
        "{err}"
    );
    s.ok(&["create", "configmap", "fine"]);
    // What the webhooks were sent.
    let requests = hooks.requests();
    let mutate = requests
        .iter()
        .find(|r| r.path.starts_with("/mutate"))
        .expect("the mutating webhook was called");
    assert!(mutate.path.contains("timeout=5s"), "{}", mutate.path);
    let review = review_of(mutate);
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["request"]["operation"], "CREATE");
    assert_eq!(
        review["request"]["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(review["request"]["namespace"], "default");
    assert_eq!(review["request"]["object"]["metadata"]["name"], "web");
    assert!(review["request"]["userInfo"]["username"].is_string());
    // kube-system is outside the namespaceSelector: no call.
    let before = hooks.requests().len();
    s.ok(&["create", "configmap", "forbidden", "-n", "kube-system"]);
    assert_eq!(hooks.requests().len(), before);
}

#[test]
fn a_webhook_that_is_down_follows_its_failure_policy() {
    // A port that refuses, and one that accepts but never answers.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (_, ca) = own_ca_tls(dir.path(), &[], &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let s = Server::start();
    s.ok_stdin(
        &["apply", "-f", "-"],
        &hook_config(
            "ValidatingWebhookConfiguration",
            "closed.kelp.io",
            &format!("https://127.0.0.1:{refused}/validate"),
            &ca,
            "configmaps",
            "Fail",
        ),
    );
    let err = s.fails(&["create", "configmap", "a"]);
    assert!(
        err.contains("failed calling webhook \"closed.kelp.io\""),
        "{err}"
    );
    assert!(err.contains("Internal error occurred"), "{err}");
    s.ok(&["delete", "validatingwebhookconfiguration", "closed.kelp.io"]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &hook_config(
            "ValidatingWebhookConfiguration",
            "silent.kelp.io",
            &format!("https://127.0.0.1:{silent_port}/validate"),
            &ca,
            "configmaps",
            "Ignore",
        ),
    );
    s.ok(&["create", "configmap", "b"]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &hook_config(
            "MutatingWebhookConfiguration",
            "silent-fail.kelp.io",
            &format!("https://127.0.0.1:{silent_port}/mutate"),
            &ca,
            "configmaps",
            "Fail",
        ),
    );
    let err = s.fails(&["create", "configmap", "c"]);
    assert!(
        err.contains("failed calling webhook \"silent-fail.kelp.io\""),
        "{err}"
    );
    assert!(err.contains("context deadline exceeded"), "{err}");
    // The webhook configurations themselves are never sent to webhooks,
    // so a broken one can always be removed.
    s.ok(&[
        "delete",
        "mutatingwebhookconfiguration",
        "silent-fail.kelp.io",
    ]);
    drop(silent);
}

/// The test's aggregated API server for `metrics.test.io/v1beta1`: its
/// discovery document, and a list of samples that names the caller it was
/// told about.
fn aggregated_server(seen: &Seen) -> Answer {
    let path = seen.path.split('?').next().unwrap_or_default();
    let body = match path {
        "/apis/metrics.test.io/v1beta1" => json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.test.io/v1beta1",
            "resources": [{"name": "samples", "singularName": "sample", "namespaced": true,
                           "kind": "Sample", "verbs": ["get", "list"]}]
        }),
        "/apis/metrics.test.io/v1beta1/namespaces/default/samples" => json!({
            "kind": "SampleList", "apiVersion": "metrics.test.io/v1beta1", "metadata": {},
            "items": [{"metadata": {"name": "for", "namespace": "default"},
                       "caller": seen.header("x-remote-user").unwrap_or("nobody")}]
        }),
        _ => return (404, "application/json", b"{}".to_vec()),
    };
    (200, "application/json", serde_json::to_vec(&body).unwrap())
}

#[test]
fn an_apiservice_backed_by_a_service_is_proxied_with_the_callers_identity_and_discovered() {
    // kelp reaches the aggregated server through a Service's Endpoints,
    // which may not be loopback: both live in a namespace of this test's.
    let s = Server::start_in_netns(&[]);
    let uplink: IpAddr = common::cluster::UPLINK_IP.parse().unwrap();
    // Its serving certificate and the client CA it checks callers against
    // are the cluster's: only the apiserver's front-proxy certificate gets in.
    let tls = kelp::pki::kubelet_serving_tls(&s.data_dir().join("server/tls"), &[uplink])
        .expect("a serving certificate from the cluster CA");
    let backend = ExtensionServer::start(SocketAddr::new(uplink, 0), tls, aggregated_server);
    let manifests = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: sample-api\n  namespace: kube-system\nspec:\n  ports:\n  - port: 443\n    targetPort: {port}\n---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: sample-api\n  namespace: kube-system\nsubsets:\n- addresses:\n  - ip: {uplink}\n  ports:\n  - port: {port}\n---\napiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata:\n  name: v1beta1.metrics.test.io\nspec:\n  group: metrics.test.io\n  version: v1beta1\n  insecureSkipTLSVerify: true\n  groupPriorityMinimum: 100\n  versionPriority: 100\n  service:\n    name: sample-api\n    namespace: kube-system\n    port: 443\n",
        port = backend.addr.port()
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifests);
    s.ok(&[
        "wait",
        "--for=condition=Available",
        "--timeout=60s",
        "apiservice/v1beta1.metrics.test.io",
    ]);
    let samples = s.ok(&[
        "get",
        "--raw",
        "/apis/metrics.test.io/v1beta1/namespaces/default/samples",
    ]);
    let samples: Value = serde_json::from_str(&samples).expect("the backend's JSON");
    let admin = s.jsonpath(&["auth", "whoami"], "{.status.userInfo.username}");
    assert_eq!(samples["items"][0]["caller"], admin.as_str());
    let proxied = backend
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/samples"))
        .expect("the list reached the backend");
    assert!(proxied.header("authorization").is_none());
    assert!(
        proxied
            .headers
            .iter()
            .any(|(n, v)| n == "x-remote-group" && v == "system:masters"),
        "{:?}",
        proxied.headers
    );
    // Discovery, legacy and aggregated (kubectl uses the latter).
    let resources = s.ok(&["api-resources", "--api-group=metrics.test.io"]);
    assert!(resources.contains("samples"), "{resources}");
    assert!(resources.contains("Sample"), "{resources}");
    let versions = s.ok(&["api-versions"]);
    assert!(versions.contains("metrics.test.io/v1beta1"), "{versions}");
    // Built-in groups have local APIServices; extension servers learn how
    // to trust the proxy from kube-system's configmap.
    assert_eq!(
        s.jsonpath(
            &["get", "apiservice", "v1.apps"],
            "{.status.conditions[0].reason}"
        ),
        "Local"
    );
    let names = s.jsonpath(
        &[
            "get",
            "configmap",
            "-n",
            "kube-system",
            "extension-apiserver-authentication",
        ],
        "{.data.requestheader-allowed-names}",
    );
    assert_eq!(names, "[\"front-proxy-client\"]");
    // The backend goes away: the APIService says so and requests get 503.
    drop(backend);
    s.wait_for(60, "the APIService to become unavailable", || {
        s.jsonpath(
            &["get", "apiservice", "v1beta1.metrics.test.io"],
            "{.status.conditions[0].status}",
        ) == "False"
    });
    let err = s.fails(&[
        "get",
        "--raw",
        "/apis/metrics.test.io/v1beta1/namespaces/default/samples",
    ]);
    assert!(
        err.contains("ServiceUnavailable") || err.contains("service unavailable"),
        "{err}"
    );
}

const POLICIES: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit
spec:
  failurePolicy: Fail
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  variables:
  - name: limit
    expression: "int(params.data.maxReplicas)"
  validations:
  - expression: "object.spec.replicas <= variables.limit"
    messageExpression: "'replicas must be at most ' + string(variables.limit)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-default
spec:
  policyName: replica-limit
  validationActions: [Deny]
  paramRef: {name: limits, namespace: default, parameterNotFoundAction: Deny}
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: default}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: no-latest
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: [v1]
      operations: [CREATE]
      resources: [pods]
  validations:
  - expression: "object.spec.containers.all(c, !c.image.endsWith(':latest'))"
    message: latest tag used
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: no-latest
spec:
  policyName: no-latest
  validationActions: [Warn]
"#;

#[test]
fn validating_admission_policies_deny_and_warn_with_params_from_a_configmap() {
    let s = Server::start();
    s.ok(&[
        "create",
        "configmap",
        "limits",
        "--from-literal=maxReplicas=3",
    ]);
    s.ok_stdin(&["apply", "-f", "-"], POLICIES);
    let listed = s.ok(&["get", "validatingadmissionpolicies"]);
    assert!(listed.contains("VALIDATIONS"), "{listed}");
    let err = s.fails(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=5",
    ]);
    assert!(
        err.contains("ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-default' denied request: replicas must be at most 3"),
        "{err}"
    );
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ]);
    // Other namespaces are outside the binding.
    s.ok(&["create", "namespace", "other"]);
    s.ok(&[
        "create",
        "deployment",
        "big",
        "-n",
        "other",
        "--image=busybox",
        "--replicas=9",
    ]);
    // Warn: the pod is created, with the warning.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: tagged\nspec:\n  containers:\n  - name: c\n    image: busybox:latest\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Validation failed for ValidatingAdmissionPolicy 'no-latest' with binding 'no-latest': latest tag used"),
        "{stderr}"
    );
    // Without its param the binding denies (parameterNotFoundAction Deny).
    s.ok(&["delete", "configmap", "limits"]);
    let err = s.fails(&[
        "create",
        "deployment",
        "small",
        "--image=busybox",
        "--replicas=1",
    ]);
    assert!(
        err.contains("failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"),
        "{err}"
    );
}

/// A CRD whose v1 (stored) says `color` and whose v2 says `colour`,
/// converted by the webhook at `url`.
fn gizmo_crd(url: &str, ca: &str) -> String {
    let version = |name: &str, storage: bool, field: &str| {
        json!({"name": name, "served": true, "storage": storage,
            "additionalPrinterColumns": [{"name": "Paint", "type": "string", "jsonPath": format!(".spec.{field}")}],
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {field: {"type": "string"}}}}}}})
    };
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.test.kelp.io"},
        "spec": {"group": "test.kelp.io", "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "conversion": {"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {"url": url, "caBundle": b64(ca)}}},
            "versions": [version("v1", true, "color"), version("v2", false, "colour")]}})
    .to_string()
}

/// The test's conversion webhook: renames `color` <-> `colour`, labels
/// what it converted, and tries to change the resourceVersion (which the
/// apiserver must not take).
fn converter(seen: &Seen) -> Answer {
    let review = review_of(seen);
    let desired = review["request"]["desiredAPIVersion"]
        .as_str()
        .unwrap_or_default();
    let converted: Vec<Value> = review["request"]["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut obj| {
            let spec = obj["spec"].as_object_mut().cloned().unwrap_or_default();
            let paint = spec.get("color").or_else(|| spec.get("colour")).cloned();
            let field = if desired.ends_with("/v2") {
                "colour"
            } else {
                "color"
            };
            obj["spec"] = json!({});
            if let Some(paint) = paint {
                obj["spec"][field] = paint;
            }
            obj["apiVersion"] = json!(desired);
            obj["metadata"]["labels"]["converted-to"] = json!(desired.rsplit('/').next());
            obj["metadata"]["resourceVersion"] = json!("999999");
            obj
        })
        .collect();
    let body = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "response": {"uid": review["request"]["uid"], "convertedObjects": converted,
            "result": {"status": "Success"}}});
    (200, "application/json", serde_json::to_vec(&body).unwrap())
}

#[test]
fn a_conversion_webhook_converts_between_a_crds_versions_and_its_failure_is_upstreams_500() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = own_ca_tls(dir.path(), &[], &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let hook = ExtensionServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), tls, converter);
    let url = format!("https://127.0.0.1:{}/convert", hook.addr.port());
    let s = Server::start();
    s.ok_stdin(&["apply", "-f", "-"], &gizmo_crd(&url, &ca));
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/gizmos.test.kelp.io",
    ]);
    // Written in v2: stored as v1 by the webhook.
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: test.kelp.io/v2\nkind: Gizmo\nmetadata:\n  name: g\nspec:\n  colour: red\n",
    );
    let creates: Vec<Value> = hook.requests().iter().map(review_of).collect();
    let to_storage = creates
        .iter()
        .find(|r| r["request"]["desiredAPIVersion"] == "test.kelp.io/v1")
        .expect("the create was converted to the storage version");
    assert_eq!(to_storage["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(to_storage["kind"], "ConversionReview");
    assert_eq!(to_storage["request"]["objects"][0]["spec"]["colour"], "red");
    assert_eq!(
        to_storage["request"]["objects"][0]["apiVersion"],
        "test.kelp.io/v2"
    );
    // Each version reads its own shape; labels follow the webhook, the
    // resourceVersion does not.
    assert_eq!(
        s.jsonpath(&["get", "gizmos.v1.test.kelp.io", "g"], "{.spec.color}"),
        "red"
    );
    assert_eq!(
        s.jsonpath(
            &["get", "gizmos.v2.test.kelp.io", "g"],
            "{.apiVersion} {.spec.colour} {.metadata.labels.converted-to}"
        ),
        "test.kelp.io/v2 red v2"
    );
    let rv = s.jsonpath(
        &["get", "gizmos.v2.test.kelp.io", "g"],
        "{.metadata.resourceVersion}",
    );
    assert_ne!(rv, "999999");
    assert_eq!(
        s.jsonpath(
            &["get", "gizmos.v1.test.kelp.io", "g"],
            "{.metadata.resourceVersion}"
        ),
        rv
    );
    // A list in v2 goes through one review.
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: test.kelp.io/v1\nkind: Gizmo\nmetadata:\n  name: h\nspec:\n  color: blue\n",
    );
    let before = hook.requests().len();
    let list: Value = serde_json::from_str(&s.ok(&[
        "get",
        "--raw",
        "/apis/test.kelp.io/v2/namespaces/default/gizmos",
    ]))
    .unwrap();
    assert_eq!(list["apiVersion"], "test.kelp.io/v2");
    let paints: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["spec"]["colour"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(paints, ["red", "blue"]);
    assert_eq!(hook.requests().len(), before + 1, "one review for the list");
    // A merge patch through v2.
    s.ok(&[
        "patch",
        "gizmos.v2.test.kelp.io",
        "h",
        "--type=merge",
        "-p",
        r#"{"spec":{"colour":"green"}}"#,
    ]);
    assert_eq!(
        s.jsonpath(&["get", "gizmos.v1.test.kelp.io", "h"], "{.spec.color}"),
        "green"
    );
    // A watch in v2 carries converted objects.
    let events = s.ok(&[
        "get",
        "--raw",
        "/apis/test.kelp.io/v2/namespaces/default/gizmos?watch=1&timeoutSeconds=2",
    ]);
    assert!(events.contains(r#""colour":"green""#), "{events}");
    assert!(!events.contains(r#""color""#), "{events}");
    // The Table of v2 fills v2's printer column from converted objects.
    let table = s.ok(&["get", "gizmos.v2.test.kelp.io"]);
    assert!(
        table.contains("PAINT") && table.contains("red") && table.contains("green"),
        "{table}"
    );
    // The webhook gone: upstream's 500 for v2; v1 needs no conversion.
    drop(hook);
    let err = s.fails(&["get", "gizmos.v2.test.kelp.io", "g"]);
    assert!(
        err.contains(&format!(
            "Internal error occurred: conversion webhook for test.kelp.io/v1, Kind=Gizmo failed: Post \"{url}?timeout=30s\""
        )),
        "{err}"
    );
    assert_eq!(
        s.jsonpath(&["get", "gizmos.v1.test.kelp.io", "g"], "{.spec.color}"),
        "red"
    );
    // A CRD's conversion settings are checked as upstream checks them.
    let bad = gizmo_crd("http://127.0.0.1:1/convert", &ca).replace("gizmos.test", "gadgets.test");
    let bad = bad
        .replace("\"gizmos\"", "\"gadgets\"")
        .replace("\"gizmo\"", "\"gadget\"")
        .replace("\"Gizmo\"", "\"Gadget\"")
        .replace("[\"v1\"]", "[\"v9\"]");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("spec.conversion.webhookClientConfig.url: Invalid value: \"http://127.0.0.1:1/convert\": 'https' is the only allowed URL scheme"),
        "{err}"
    );
    assert!(
        err.contains("spec.conversion.conversionReviewVersions: Invalid value: []string{\"v9\"}: must include at least one of v1, v1beta1"),
        "{err}"
    );
}
