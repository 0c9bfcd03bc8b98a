//! The apiserver as real kubectl sees it: a `kelp server --disable-agent`
//! on a temp dir and a free port, driven by kubectl from PyPI.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::{Server, kubectl_path};

const APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: httpd
        image: busybox:1.36
        command: ["httpd", "-f", "-p", "8080"]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: s3cret
"#;

#[test]
fn apply_multi_document_yaml_then_unchanged_then_configured() {
    let s = Server::start();
    let out = s.ok_stdin(&["apply", "-f", "-"], APP);
    for line in [
        "deployment.apps/web created",
        "service/web created",
        "configmap/web-config created",
        "secret/web-secret created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    let again = s.ok_stdin(&["apply", "-f", "-"], APP);
    // (A Secret applied with stringData is "configured" every time, upstream too.)
    for line in [
        "deployment.apps/web unchanged",
        "service/web unchanged",
        "configmap/web-config unchanged",
    ] {
        assert!(again.contains(line), "{again}");
    }
    let changed = APP
        .replace("replicas: 2", "replicas: 4")
        .replace("greeting: hello", "greeting: bonjour");
    let out = s.ok_stdin(&["apply", "-f", "-"], &changed);
    assert!(
        out.contains("deployment.apps/web configured")
            && out.contains("configmap/web-config configured"),
        "{out}"
    );
    assert!(out.contains("service/web unchanged"), "{out}");
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    assert_eq!(
        s.ok(&["get", "cm", "web-config", "-o", "jsonpath={.data.greeting}"]),
        "bonjour"
    );
    // Generation follows spec changes only.
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );
    // Secret stringData became data.
    assert_eq!(
        s.ok(&[
            "get",
            "secret",
            "web-secret",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "czNjcmV0"
    );
    // The Service got a ClusterIP in the service CIDR and a NodePort in range.
    let ip = s.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43."), "{ip}");
    let port: u16 = s
        .ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .unwrap();
    assert!((30000..=32767).contains(&port));
}

#[test]
fn get_output_formats_and_tables() {
    let s = Server::start();
    s.ok_stdin(&["apply", "-f", "-"], APP);
    let table = s.ok(&["get", "deploy"]);
    assert!(
        table.starts_with("NAME")
            && table.contains("READY")
            && table.contains("UP-TO-DATE")
            && table.contains("web"),
        "{table}"
    );
    let wide = s.ok(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS") && wide.contains("busybox:1.36"),
        "{wide}"
    );
    let svc = s.ok(&["get", "svc"]);
    assert!(
        svc.contains("CLUSTER-IP") && svc.contains("kubernetes") && svc.contains("443/TCP"),
        "{svc}"
    );
    let yaml = s.ok(&["get", "cm", "web-config", "-o", "yaml"]);
    assert!(
        yaml.contains("greeting: hello")
            && yaml.contains("resourceVersion:")
            && yaml.contains("uid:"),
        "{yaml}"
    );
    let ns = s.ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    let names = s.ok(&["get", "cm,secret", "-o", "name"]);
    assert!(
        names.contains("configmap/web-config") && names.contains("secret/web-secret"),
        "{names}"
    );
    let describe = s.ok(&["describe", "deploy", "web"]);
    assert!(
        describe.contains("Replicas:") && describe.contains("busybox:1.36"),
        "{describe}"
    );
    let versions = s.ok(&["api-versions"]);
    assert!(
        versions.contains("apps/v1") && versions.lines().any(|l| l == "v1"),
        "{versions}"
    );
    let resources = s.ok(&["api-resources"]);
    assert!(
        resources.contains("deployments")
            && resources.contains("deploy")
            && resources.contains("apps/v1"),
        "{resources}"
    );
    let cs = s.ok(&["get", "cs"]);
    assert!(cs.contains("etcd-0") || cs.contains("store"), "{cs}");
}

#[test]
fn label_annotate_patch_scale() {
    let s = Server::start();
    s.ok_stdin(&["apply", "-f", "-"], APP);
    s.ok(&["label", "cm", "web-config", "tier=frontend"]);
    s.ok(&["annotate", "cm", "web-config", "owner=team-a"]);
    assert_eq!(
        s.ok(&["get", "cm", "-l", "tier=frontend", "-o", "name"])
            .trim(),
        "configmap/web-config"
    );
    assert_eq!(
        s.ok(&["get", "cm", "-l", "tier!=frontend", "-o", "name"])
            .trim(),
        // The root CA ConfigMap the serviceaccount controller publishes.
        "configmap/kube-root-ca.crt"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "web-config",
            "-o",
            "jsonpath={.metadata.annotations.owner}"
        ]),
        "team-a"
    );
    s.ok(&[
        "patch",
        "cm",
        "web-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"extra":"1"}}"#,
    ]);
    s.ok(&[
        "patch",
        "cm",
        "web-config",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/extra","value":"2"}]"#,
    ]);
    assert_eq!(
        s.ok(&["get", "cm", "web-config", "-o", "jsonpath={.data.extra}"]),
        "2"
    );
    s.ok(&["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"httpd","image":"busybox:1.37"}]}}}}"#]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "busybox:1.37"
    );
    // Strategic merge kept the other container fields.
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}"
        ]),
        "8080"
    );
    s.ok(&["scale", "deploy", "web", "--replicas", "5"]);
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    let err = s.fails(&[
        "patch",
        "cm",
        "web-config",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/data/extra","value":"9"}]"#,
    ]);
    assert!(
        err.contains("The request is invalid") && err.contains("test failed"),
        "{err}"
    );
}

#[test]
fn server_side_apply_and_dry_run_and_diff() {
    let s = Server::start();
    let out = s.ok_stdin(&["apply", "--server-side", "-f", "-"], APP);
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let managers = s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
        "--show-managed-fields",
    ]);
    assert!(managers.contains("kubectl"), "{managers}");
    // A different manager changing replicas conflicts without --force-conflicts.
    let other = APP.replace("replicas: 2", "replicas: 3");
    let err = String::from_utf8_lossy(
        &s.kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "-f",
                "-",
            ],
            &other,
        )
        .stderr,
    )
    .into_owned();
    assert!(err.contains("conflict"), "{err}");
    s.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &other,
    );
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    // --dry-run=server persists nothing.
    let out = s.ok(&[
        "create",
        "cm",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
    ]);
    assert!(
        out.contains("configmap/dry created (server dry run)"),
        "{out}"
    );
    assert!(s.fails(&["get", "cm", "dry"]).contains("NotFound"));
    // diff: exit 1 with a change, 0 without.
    let changed = APP.replace("greeting: hello", "greeting: hi");
    let diff = s.kubectl_stdin(&["diff", "-f", "-"], &changed);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(String::from_utf8_lossy(&diff.stdout).contains("greeting: hi"));
}

#[test]
fn validation_errors_are_statuses() {
    let s = Server::start();
    let bad_field = APP.replace("  replicas: 2", "  replicas: 2\n  bogusField: 1");
    let err = String::from_utf8_lossy(
        &s.kubectl_stdin(&["apply", "--validate=strict", "-f", "-"], &bad_field)
            .stderr,
    )
    .into_owned();
    assert!(err.contains("bogusField"), "{err}");
    let mismatch = APP.replace(
        "      labels: {app: web}\n    spec:",
        "      labels: {app: other}\n    spec:",
    );
    let err = String::from_utf8_lossy(&s.kubectl_stdin(&["apply", "-f", "-"], &mismatch).stderr)
        .into_owned();
    assert!(err.contains("Invalid") && err.contains("selector"), "{err}");
    let err = s.fails(&["get", "pod", "nope"]);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );
    let err = s.fails(&["create", "cm", "UPPER", "--from-literal=a=b"]);
    assert!(
        err.contains("Invalid") && err.contains("metadata.name"),
        "{err}"
    );
    s.ok(&["create", "cm", "x", "--from-literal=a=b"]);
    let err = s.fails(&["create", "cm", "x", "--from-literal=a=b"]);
    assert!(err.contains("configmaps \"x\" already exists"), "{err}");
    let err = s.fails(&[
        "create",
        "cm",
        "y",
        "-n",
        "missing-ns",
        "--from-literal=a=b",
    ]);
    assert!(err.contains("namespaces \"missing-ns\" not found"), "{err}");
}

#[test]
fn stale_update_conflicts() {
    let s = Server::start();
    s.ok(&["create", "cm", "c", "--from-literal=a=1"]);
    let stale = s.ok(&["get", "cm", "c", "-o", "json"]);
    s.ok(&[
        "patch",
        "cm",
        "c",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"a":"2"}}"#,
    ]);
    let edited = stale.replace("\"a\": \"1\"", "\"a\": \"3\"");
    let out = s.kubectl_stdin(&["replace", "-f", "-"], &edited);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("Conflict")
            && err.contains("the object has been modified"),
        "{err}"
    );
}

#[test]
fn watch_sees_added_modified_deleted() {
    let s = Server::start();
    let mut watcher = Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args([
            "get",
            "cm",
            "-w",
            "--output-watch-events",
            "-o",
            "custom-columns=TYPE:.type,NAME:.object.metadata.name,V:.object.data.v",
            "--no-headers",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::park_timeout(Duration::from_millis(700));
    s.ok(&["create", "cm", "w1", "--from-literal=v=1"]);
    s.ok(&[
        "patch",
        "cm",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"v":"2"}}"#,
    ]);
    s.ok(&["delete", "cm", "w1"]);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains("w1") => seen.push(
                line.split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            ),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let events: Vec<(String, String)> = seen
        .iter()
        .map(|f| (f[0].clone(), f.get(2).cloned().unwrap_or_default()))
        .collect();
    assert_eq!(
        events,
        vec![
            ("ADDED".into(), "1".into()),
            ("MODIFIED".into(), "2".into()),
            ("DELETED".into(), "2".into())
        ],
        "{seen:?}"
    );
}

#[test]
fn delete_with_finalizers_and_collections() {
    let s = Server::start();
    s.ok_stdin(&["apply", "-f", "-"], APP);
    s.ok(&["delete", "svc", "web"]);
    assert!(s.fails(&["get", "svc", "web"]).contains("NotFound"));
    // An object with a finalizer is only marked, until the finalizer goes.
    s.ok(&["create", "cm", "keep", "--from-literal=a=b"]);
    s.ok(&[
        "patch",
        "cm",
        "keep",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.ok(&["delete", "cm", "keep", "--wait=false"]);
    let stamp = s.ok(&[
        "get",
        "cm",
        "keep",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!stamp.is_empty());
    s.ok(&[
        "patch",
        "cm",
        "keep",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(s.fails(&["get", "cm", "keep"]).contains("NotFound"));
    // deletecollection by label.
    s.ok(&["create", "cm", "a1", "--from-literal=a=b"]);
    s.ok(&["label", "cm", "a1", "batch=x"]);
    s.ok(&["create", "cm", "a2", "--from-literal=a=b"]);
    s.ok(&["label", "cm", "a2", "batch=x"]);
    s.ok(&["delete", "cm", "-l", "batch=x"]);
    assert_eq!(s.ok(&["get", "cm", "-l", "batch=x", "-o", "name"]), "");
    // Preconditions: a stale uid refuses the delete.
    let raw = s.kubectl_stdin(
        &[
            "delete",
            "--raw",
            "/api/v1/namespaces/default/configmaps/web-config",
            "-f",
            "-",
        ],
        r#"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"not-the-uid"}}"#,
    );
    assert!(!raw.status.success());
    assert!(String::from_utf8_lossy(&raw.stderr).contains("Precondition failed"));
    assert!(
        s.ok(&["get", "cm", "web-config", "-o", "name"])
            .contains("web-config")
    );
}

#[test]
fn explain_uses_served_openapi() {
    let s = Server::start();
    let out = s.ok(&["explain", "pod.spec.containers"]);
    assert!(
        out.contains("KIND:") && out.contains("Pod") && out.contains("image"),
        "{out}"
    );
    let out = s.ok(&["explain", "deployment.spec.replicas"]);
    assert!(
        out.contains("integer") || out.contains("<integer>"),
        "{out}"
    );
}

#[test]
fn anonymous_requests_reach_only_public_endpoints() {
    let s = Server::start();
    let anon = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-sk",
                "-o",
                "/dev/stderr",
                "-w",
                "%{http_code}",
                &format!("https://127.0.0.1:{}{path}", s.port),
            ])
            .output()
            .expect("curl (tests/run.sh installs it)");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(anon("/readyz"), ("200".into(), "ok".into()));
    assert_eq!(anon("/version").0, "200");
    assert!(anon("/cacerts").1.contains("BEGIN CERTIFICATE"));
    // As upstream with anonymous auth on: anonymous requests are authorized
    // like any other, and RBAC (system:public-info-viewer) lets them reach
    // only health and version.
    let (code, body) = anon("/api/v1/namespaces");
    assert_eq!(code, "403");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            status["kind"].as_str(),
            status["reason"].as_str(),
            status["code"].as_i64(),
            status["message"].as_str(),
        ),
        (
            Some("Status"),
            Some("Forbidden"),
            Some(403),
            Some(
                "namespaces is forbidden: User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
            )
        )
    );
    let (code, body) = anon("/api");
    assert_eq!(code, "403", "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/api\""
    );
    drop(s);
    // --anonymous-auth=false: no credentials, no entry (401), except the CA
    // bundle that joining agents fetch first.
    let s = Server::start_with(&["--anonymous-auth=false"]);
    let anon = |path: &str| {
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://127.0.0.1:{}{path}", s.port))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(anon("/version"), "401");
    assert_eq!(anon("/api/v1/namespaces"), "401");
    assert_eq!(anon("/cacerts"), "200");
}

#[test]
fn oversized_and_malformed_bodies_get_statuses() {
    let s = Server::start();
    let huge = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"x\":\"{}\"}}}}",
        "a".repeat(4 << 20)
    );
    let path = s.dir.path().join("big.json");
    std::fs::write(&path, huge).unwrap();
    let err = String::from_utf8_lossy(
        &s.kubectl(&["create", "--validate=false", "-f", path.to_str().unwrap()])
            .stderr,
    )
    .into_owned();
    assert!(
        err.contains("too large")
            || err.contains("RequestEntityTooLarge")
            || err.contains("larger than"),
        "{err}"
    );
    let raw = s.kubectl_stdin(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            "-",
        ],
        "{not json",
    );
    let err = String::from_utf8_lossy(&raw.stderr).into_owned();
    assert!(
        !raw.status.success() && (err.contains("BadRequest") || err.contains("error decoding")),
        "{err}"
    );
}

#[test]
fn kubectl_create_subcommands_and_tokens() {
    // These send protobuf bodies (client-go typed clients).
    let s = Server::start();
    s.ok(&["create", "namespace", "team"]);
    s.ok(&[
        "create",
        "deployment",
        "api",
        "-n",
        "team",
        "--image=busybox:1.36",
        "--replicas=3",
        "--port=8080",
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "api",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "api",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}"
        ]),
        "8080"
    );
    s.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team",
        "--from-literal=user=admin",
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "secret",
            "creds",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.user}"
        ]),
        "YWRtaW4="
    );
    s.ok(&[
        "create",
        "job",
        "once",
        "-n",
        "team",
        "--image=busybox:1.36",
        "--",
        "true",
    ]);
    s.ok(&[
        "create",
        "cronjob",
        "nightly",
        "-n",
        "team",
        "--image=busybox:1.36",
        "--schedule=0 3 * * *",
        "--",
        "true",
    ]);
    s.ok(&["create", "quota", "q", "-n", "team", "--hard=pods=10"]);
    s.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "team",
        "--verb=get,list",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "reader",
        "-n",
        "team",
        "--role=reader",
        "--serviceaccount=team:bot",
    ]);
    s.ok(&["create", "serviceaccount", "bot", "-n", "team"]);
    s.ok(&[
        "create",
        "service",
        "clusterip",
        "api",
        "-n",
        "team",
        "--tcp=80:8080",
    ]);
    let all = s.ok(&["get", "all", "-n", "team", "-o", "name"]);
    for want in [
        "deployment.apps/api",
        "service/api",
        "job.batch/once",
        "cronjob.batch/nightly",
    ] {
        assert!(all.contains(want), "{all}");
    }
    let token = s.ok(&["create", "token", "bot", "-n", "team"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let server = format!("https://127.0.0.1:{}", s.port);
    let as_bot = |what: &str| {
        std::process::Command::new(kubectl_path())
            .args([
                "--server",
                &server,
                "--insecure-skip-tls-verify",
                "--token",
                token,
            ])
            .args(["get", what, "-n", "team"])
            .env("HOME", s.dir.path())
            .output()
            .unwrap()
    };
    let pods = as_bot("pods");
    assert!(
        pods.status.success(),
        "{}",
        String::from_utf8_lossy(&pods.stderr)
    );
    // The role grants pods only.
    let cms = as_bot("cm");
    assert!(
        String::from_utf8_lossy(&cms.stderr).contains(
            "configmaps is forbidden: User \"system:serviceaccount:team:bot\" cannot list resource \"configmaps\""
        ),
        "{}",
        String::from_utf8_lossy(&cms.stderr)
    );
}

#[test]
fn paging_selectors_and_watch_list_semantics() {
    let s = Server::start();
    for i in 0..7 {
        s.ok(&[
            "create",
            "cm",
            &format!("page{i}"),
            &format!("--from-literal=i={i}"),
        ]);
    }
    // --chunk-size pages through limit/continue; the result is whole.
    let names = s.ok(&["get", "cm", "--chunk-size=2", "-o", "name"]);
    assert_eq!(
        names
            .lines()
            .filter(|l| l.starts_with("configmap/page"))
            .count(),
        7,
        "{names}"
    );
    let page = s.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=3&fieldSelector=metadata.name%21%3Dkube-root-ca.crt",
    ]);
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("continue token")
        .to_string();
    let rest = s.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps?limit=100&fieldSelector=metadata.name%21%3Dkube-root-ca.crt&continue={token}"),
    ]);
    let rest: serde_json::Value = serde_json::from_str(&rest).unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 4);
    assert_eq!(
        rest["metadata"]["resourceVersion"],
        page["metadata"]["resourceVersion"]
    );
    // Field selectors: supported ones filter, unsupported ones are 400s.
    let one = s.ok(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=page3",
        "-o",
        "name",
    ]);
    assert_eq!(one.trim(), "configmap/page3");
    let err = s.fails(&["get", "cm", "--field-selector", "data.i=3"]);
    assert!(err.contains("field label not supported"), "{err}");
    let err = s.fails(&["get", "cm", "-l", "a in (b"]);
    assert!(
        err.contains("BadRequest") || err.contains("unable to parse"),
        "{err}"
    );
    // sendInitialEvents: every object as ADDED, then the initial-events-end bookmark.
    let raw = s.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1&fieldSelector=metadata.name%21%3Dkube-root-ca.crt",
    ]);
    let events: Vec<serde_json::Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let added = events.iter().filter(|e| e["type"] == "ADDED").count();
    assert_eq!(added, 7, "{raw}");
    let end = events.iter().position(|e| {
        e["type"] == "BOOKMARK"
            && e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
    });
    assert_eq!(end, Some(7), "{raw}");
}

#[test]
fn kube_dns_service_exists_for_compatibility_unless_dns_is_disabled() {
    let s = Server::start();
    assert_eq!(
        s.jsonpath(
            &["get", "svc", "-n", "kube-system", "kube-dns"],
            "{.spec.clusterIP} {.spec.ports[*].name}"
        ),
        "10.43.0.10 dns dns-tcp"
    );
    drop(s);
    let s = Server::start_with(&["--disable", "coredns"]);
    let out = s.kubectl(&["get", "svc", "-n", "kube-system", "kube-dns"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}
