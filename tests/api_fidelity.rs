//! API fidelity found by clients not written here (issue "Admission
//! plugins, the missing core controllers, and API fidelity"): each test is
//! named after the behaviour, driven with real kubectl or kube-rs against a
//! real `kelp server`.

mod common;

use common::cluster::Server;
use common::sim::SimNodes;
use serde_json::Value;

fn json_of(s: &Server, args: &[&str]) -> Value {
    let out = s.ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

const TEMPLATE: &str = r#"{"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}"#;

#[test]
fn non_omitempty_status_fields_are_always_present() {
    let s = Server::start();
    let created = |manifest: String| -> Value {
        let out = s.ok_stdin(&["create", "-f", "-", "-o", "json"], &manifest);
        serde_json::from_str(&out).expect("json")
    };
    let rs = created(format!(
        r#"{{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {{"name": "w"}},
            "spec": {{"replicas": 0, "selector": {{"matchLabels": {{"app": "w"}}}}, "template": {TEMPLATE}}}}}"#
    ));
    assert_eq!(rs["status"]["replicas"], 0, "{rs}");
    let ds = created(format!(
        r#"{{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {{"name": "w"}},
            "spec": {{"selector": {{"matchLabels": {{"app": "w"}}}}, "template": {TEMPLATE}}}}}"#
    ));
    for f in [
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
    ] {
        assert_eq!(ds["status"][f], 0, "{f}: {ds}");
    }
    let sts = created(format!(
        r#"{{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {{"name": "w"}},
            "spec": {{"replicas": 0, "serviceName": "w", "selector": {{"matchLabels": {{"app": "w"}}}}, "template": {TEMPLATE}}}}}"#
    ));
    assert_eq!(sts["status"]["replicas"], 0, "{sts}");
    let rc = created(format!(
        r#"{{"apiVersion": "v1", "kind": "ReplicationController", "metadata": {{"name": "w"}},
            "spec": {{"replicas": 0, "selector": {{"app": "w"}}, "template": {TEMPLATE}}}}}"#
    ));
    assert_eq!(rc["status"]["replicas"], 0, "{rc}");
    let hpa = created(
        r#"{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "w"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "w"}, "maxReplicas": 3}}"#
            .to_string(),
    );
    assert_eq!(hpa["status"]["desiredReplicas"], 0, "{hpa}");
}

#[test]
fn unknown_fields_are_dropped_after_the_warning() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["create", "--validate=warn", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}, "bogus": 1}"#,
    );
    assert!(out.status.success());
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(warned.contains("unknown field \"bogus\""), "{warned}");
    let stored = json_of(&s, &["get", "cm", "c", "-o", "json"]);
    assert!(stored.get("bogus").is_none(), "{stored}");
    assert_eq!(stored["data"]["a"], "b");
}

#[test]
fn resource_version_zero_on_update_is_unconditional() {
    let s = Server::start();
    s.ok(&["create", "configmap", "c", "--from-literal=a=1"]);
    let rv = s.ok(&[
        "get",
        "cm",
        "c",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    s.ok_stdin(
        &["replace", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "0"}, "data": {"a": "2"}}"#,
    );
    assert_eq!(s.ok(&["get", "cm", "c", "-o", "jsonpath={.data.a}"]), "2");
    let now = s.ok(&[
        "get",
        "cm",
        "c",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_ne!(now, rv);
}

#[test]
fn a_server_dry_run_returns_the_stored_resource_version() {
    let s = Server::start();
    s.ok(&["create", "configmap", "c", "--from-literal=a=2"]);
    let rv = s.ok(&[
        "get",
        "cm",
        "c",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let dry = json_of(
        &s,
        &[
            "patch",
            "cm",
            "c",
            "--dry-run=server",
            "-p",
            r#"{"data":{"a":"3"}}"#,
            "-o",
            "json",
        ],
    );
    assert_eq!(dry["data"]["a"], "3");
    assert_eq!(dry["metadata"]["resourceVersion"], rv.as_str(), "{dry}");
    assert_eq!(s.ok(&["get", "cm", "c", "-o", "jsonpath={.data.a}"]), "2");
}

#[test]
fn validation_errors_name_the_object() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 0}]}}"#,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("The Service \"web\" is invalid"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_found_always_carries_details() {
    let s = Server::start();
    let c = s.kube_client().await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(c.clone(), "default");
    match pods.get("nope").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            let details = status.details.expect("details on a missing object");
            assert_eq!(details.name, "nope");
            assert_eq!(details.kind, "pods");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    let req = http::Request::get("/api/v1/namespaces/default/pods/nope/ephemeralcontainerz")
        .body(Vec::new())
        .unwrap();
    match c.request_text(req).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            assert!(
                status.details.is_some(),
                "details on an unknown path: {status:?}"
            );
        }
        other => panic!("expected a 404, got {other:?}"),
    }
}

#[test]
fn version_has_build_stamps_and_health_checks_list_themselves() {
    let s = Server::start();
    let v = json_of(&s, &["get", "--raw", "/version"]);
    assert_ne!(v["buildDate"], "1970-01-01T00:00:00Z", "{v}");
    assert!(
        v["buildDate"].as_str().is_some_and(|d| d.ends_with('Z')),
        "{v}"
    );
    assert!(v.get("gitCommit").is_some(), "{v}");
    let readyz = s.ok(&["get", "--raw", "/readyz?verbose"]);
    assert!(readyz.contains("[+]etcd ok"), "{readyz}");
    assert!(readyz.contains("[+]informer-sync ok"), "{readyz}");
    assert!(
        readyz.trim_end().ends_with("readyz check passed"),
        "{readyz}"
    );
    let livez = s.ok(&["get", "--raw", "/livez?verbose"]);
    assert!(livez.contains("[+]ping ok"), "{livez}");
    assert!(livez.trim_end().ends_with("livez check passed"), "{livez}");
    assert_eq!(s.ok(&["get", "--raw", "/readyz"]), "ok");
}

#[test]
fn paged_lists_without_selectors_carry_remaining_item_count() {
    let s = Server::start();
    s.ok(&["create", "namespace", "many"]);
    for i in 0..6 {
        s.ok(&["create", "configmap", &format!("c{i}"), "-n", "many"]);
    }
    // kube-root-ca.crt makes seven.
    s.wait_for(30, "kube-root-ca.crt", || {
        s.kubectl(&["get", "cm", "kube-root-ca.crt", "-n", "many"])
            .status
            .success()
    });
    let page = json_of(
        &s,
        &["get", "--raw", "/api/v1/namespaces/many/configmaps?limit=2"],
    );
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        page["metadata"]["remainingItemCount"], 5,
        "{}",
        page["metadata"]
    );
    let filtered = json_of(
        &s,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/many/configmaps?limit=2&labelSelector=x!%3Dy",
        ],
    );
    assert!(filtered["metadata"].get("remainingItemCount").is_none());
}

#[test]
fn the_kubelet_writes_as_kubelet_and_the_scheduler_records_scheduled_events() {
    let s = Server::start();
    // Sim nodes write with their own client; the kelp scheduler's events
    // and the field managers of in-process components are what is checked.
    let _nodes = SimNodes::start(&s, "f-", 2, &[]);
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ]);
    s.wait_for(60, "two running", || {
        s.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ])
        .lines()
        .count()
            == 2
    });
    let nodes = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    let mut nodes: Vec<&str> = nodes.split(' ').collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(
        nodes.len(),
        2,
        "the first replicas spread over both nodes: {nodes:?}"
    );
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector=reason=Scheduled",
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        events
            .lines()
            .filter(|l| l.starts_with("Successfully assigned default/web-"))
            .count(),
        2,
        "{events}"
    );
    let managers = s.ok(&[
        "get",
        "rs",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("kube-controller-manager"), "{managers}");
}

#[test]
fn events_k8s_io_and_core_events_are_one_store() {
    let s = Server::start();
    s.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Tested", "message": "from core", "type": "Normal"}"#,
    );
    let listed = s.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}:{.regarding.name}:{.note}{\"\\n\"}{end}",
    ]);
    assert!(listed.contains("e1:p:from core"), "{listed}");
    s.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
            "regarding": {"kind": "Pod", "name": "q", "namespace": "default"},
            "reason": "Tested", "note": "from events.k8s.io", "type": "Normal",
            "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Testing",
            "reportingController": "tests", "reportingInstance": "tests-1"}"#,
    );
    let core = s.ok(&[
        "get",
        "events",
        "e2",
        "-o",
        "jsonpath={.involvedObject.name}:{.message}",
    ]);
    assert_eq!(core, "q:from events.k8s.io");
    let selected = s.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector=regarding.name=q",
        "-o",
        "name",
    ]);
    assert_eq!(selected.trim(), "event.events.k8s.io/e2");
}

#[test]
fn autoscaling_v1_is_served_alongside_v2_and_the_hpa_reports_status() {
    let s = Server::start();
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=1",
    ]);
    s.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=4",
        "--cpu-percent=50",
    ]);
    let v1 = json_of(
        &s,
        &[
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "-o",
            "json",
        ],
    );
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50, "{v1}");
    let v2 = json_of(
        &s,
        &[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "json",
        ],
    );
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    // Below minReplicas: the controller scales the target up, then reports
    // that it cannot get metrics.
    s.wait_for(60, "scaled to the minimum", || {
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]) == "2"
    });
    s.wait_for(60, "status conditions", || {
        let conditions = s.ok(&[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "jsonpath={range .status.conditions[*]}{.type}={.reason} {end}",
        ]);
        conditions.contains("AbleToScale=")
            && conditions.contains("ScalingActive=FailedGetResourceMetric")
    });
    assert_eq!(
        s.ok(&[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "jsonpath={.status.currentReplicas}/{.status.desiredReplicas}"
        ]),
        "2/2"
    );
    // A v1 patch goes through conversion and keeps the v2-only fields.
    s.ok(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxReplicas":5}}"#,
    ]);
    let v2 = json_of(
        &s,
        &[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "json",
        ],
    );
    assert_eq!(v2["spec"]["maxReplicas"], 5);
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["name"], "cpu");
}

#[test]
fn replication_controllers_keep_their_replicas_and_adopt_orphans() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "rc-", 1, &[]);
    s.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "r"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}"#,
    );
    s.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
            "spec": {"replicas": 3, "selector": {"app": "r"},
                "template": {"metadata": {"labels": {"app": "r"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}"#,
    );
    s.wait_for(60, "three ready replicas", || {
        s.ok(&[
            "get",
            "rc",
            "r",
            "-o",
            "jsonpath={.status.replicas}/{.status.readyReplicas}",
        ]) == "3/3"
    });
    let owner = s.ok(&[
        "get",
        "pod",
        "orphan",
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}",
    ]);
    assert_eq!(owner, "ReplicationController", "the orphan was adopted");
    assert_eq!(
        s.ok(&["get", "pods", "-l", "app=r", "-o", "name"])
            .lines()
            .count(),
        3
    );
    s.ok(&["scale", "rc", "r", "--replicas=1"]);
    s.wait_for(60, "scaled down", || {
        s.ok(&["get", "pods", "-l", "app=r", "-o", "name"])
            .lines()
            .count()
            == 1
    });
}

#[test]
fn tokens_bound_to_a_secret_or_a_pod_carry_the_claim_and_die_with_it() {
    use base64::Engine;
    let s = Server::start();
    s.ok(&[
        "create",
        "secret",
        "generic",
        "anchor",
        "--from-literal=a=b",
    ]);
    let token = s.ok(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Secret",
        "--bound-object-name=anchor",
    ]);
    let token = token.trim();
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("json claims");
    assert_eq!(
        claims["kubernetes.io"]["secret"]["name"], "anchor",
        "{claims}"
    );
    let uid = s.ok(&["get", "secret", "anchor", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(claims["kubernetes.io"]["secret"]["uid"], uid.as_str());
    // curl, not kubectl: the admin kubeconfig's client certificate would
    // authenticate kubectl whatever the token.
    let with_token = |t: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {t}"))
            .arg(format!("https://127.0.0.1:{}/api", s.port))
            .output()
            .expect("curl (tests/run.sh installs it)");
        String::from_utf8_lossy(&out.stdout) == "200"
    };
    assert!(
        with_token(token),
        "the bound token works while the secret exists"
    );
    s.ok(&["delete", "secret", "anchor"]);
    s.wait_for(30, "the token revoked", || !with_token(token));
    let err = s.fails(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Secret",
        "--bound-object-name=missing",
    ]);
    assert!(err.contains("secrets \"missing\" not found"), "{err}");
    // The same for a pod.
    s.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}"#,
    );
    let token = s.ok(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=holder",
    ]);
    let token = token.trim();
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("json claims");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "holder", "{claims}");
    assert!(
        with_token(token),
        "the pod-bound token works while the pod exists"
    );
    s.ok(&["delete", "pod", "holder", "--wait=false"]);
    s.wait_for(30, "the pod-bound token revoked", || !with_token(token));
}

#[test]
fn finished_jobs_go_after_their_ttl() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "ttl-", 1, &[]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "brief"},
            "spec": {"ttlSecondsAfterFinished": 1, "template": {
                "metadata": {"annotations": {"kelp.io/sim-exit-code": "0"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}"#,
    );
    s.wait_for(60, "the finished job deleted", || {
        !s.kubectl(&["get", "job", "brief"]).status.success()
    });
    s.wait_for(60, "its pods deleted", || {
        s.ok(&["get", "pods", "-l", "job-name=brief", "-o", "name"])
            .trim()
            .is_empty()
    });
}

#[test]
fn the_bootstrap_signer_signs_cluster_info_for_each_signing_token() {
    use base64::Engine;
    let s = Server::start();
    s.ok(&[
        "create",
        "secret",
        "generic",
        "bootstrap-token-abcdef",
        "-n",
        "kube-system",
        "--type=bootstrap.kubernetes.io/token",
        "--from-literal=token-id=abcdef",
        "--from-literal=token-secret=0123456789abcdef",
        "--from-literal=usage-bootstrap-signing=true",
    ]);
    let mut signature = String::new();
    s.wait_for(30, "the signature", || {
        signature = s
            .kubectl(&[
                "get",
                "cm",
                "cluster-info",
                "-n",
                "kube-public",
                "-o",
                "jsonpath={.data.jws-kubeconfig-abcdef}",
            ])
            .stdout
            .iter()
            .map(|b| *b as char)
            .collect();
        !signature.is_empty()
    });
    let kubeconfig = s.ok(&[
        "get",
        "cm",
        "cluster-info",
        "-n",
        "kube-public",
        "-o",
        "jsonpath={.data.kubeconfig}",
    ]);
    assert!(
        kubeconfig.contains("certificate-authority-data:"),
        "{kubeconfig}"
    );
    // Check it as a joining client would: HS256 over header.payload.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (header, sig) = signature.split_once("..").expect("detached JWS");
    let signed = format!("{header}.{}", b64.encode(&kubeconfig));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"0123456789abcdef");
    ring::hmac::verify(&key, signed.as_bytes(), &b64.decode(sig).unwrap())
        .expect("the signature verifies with the token secret");
    // Anyone may read it: discovery happens before the client has credentials.
    let out = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
            s.port
        ))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn json_bodies_keep_go_field_order_and_end_with_a_newline() {
    let s = Server::start();
    s.ok_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "data": {"b": "2", "a": "1"},
            "metadata": {"namespace": "default", "labels": {"z": "1"}, "name": "ordered"}}"#,
    );
    let one = s.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps/ordered",
    ]);
    assert!(
        one.starts_with(r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"ordered","namespace":"default","uid":"#),
        "{one}"
    );
    assert!(one.contains(r#""labels":{"z":"1"}"#), "{one}");
    assert!(
        one.ends_with("\"data\":{\"a\":\"1\",\"b\":\"2\"}}\n"),
        "{one}"
    );
    let list = s.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=500",
    ]);
    assert!(
        list.starts_with(r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"#),
        "{list}"
    );
    assert!(list.ends_with("]}\n"), "{list}");
    assert!(
        list.contains(r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"ordered","namespace":"default""#),
        "{list}"
    );
    assert_eq!(
        list.matches("\"apiVersion\"").count(),
        5,
        "each apiVersion once: {list}"
    );
}
