//! The control plane heals itself: controllers running inside a real
//! `kelp server`, driven with kubectl and fake nodes.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Server;

/// Polls `check` for up to 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn owned_cm(name: &str, owner: &str, uid: &str, block: bool) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","ownerReferences":[{{"apiVersion":"v1","kind":"ConfigMap","name":"{owner}","uid":"{uid}","blockOwnerDeletion":{block}}}]}},"data":{{"a":"b"}}}}"#
    )
}

fn owner_with_dependents(s: &Server, owner: &str) {
    s.ok(&["create", "cm", owner, "--from-literal=a=b"]);
    let uid = s.ok(&["get", "cm", owner, "-o", "jsonpath={.metadata.uid}"]);
    for i in 0..3 {
        s.ok_stdin(
            &["create", "-f", "-"],
            &owned_cm(&format!("{owner}-dep{i}"), owner, &uid, i == 0),
        );
    }
}

fn exists(s: &Server, name: &str) -> bool {
    s.kubectl(&["get", "cm", name]).status.success()
}

#[test]
fn garbage_collector_honours_propagation_policies() {
    let s = Server::start();
    owner_with_dependents(&s, "bg");
    s.ok(&["delete", "cm", "bg"]);
    eventually("background deletion of dependents", || {
        (0..3).all(|i| !exists(&s, &format!("bg-dep{i}")))
    });

    owner_with_dependents(&s, "fg");
    // kubectl waits for the owner to disappear, which foreground deletion
    // allows only after every dependent is gone.
    s.ok(&[
        "delete",
        "cm",
        "fg",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    assert!(!exists(&s, "fg"));
    assert!((0..3).all(|i| !exists(&s, &format!("fg-dep{i}"))));

    owner_with_dependents(&s, "or");
    s.ok(&["delete", "cm", "or", "--cascade=orphan", "--timeout=30s"]);
    assert!(!exists(&s, "or"));
    for i in 0..3 {
        let refs = s.ok(&[
            "get",
            "cm",
            &format!("or-dep{i}"),
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ]);
        assert!(
            refs.is_empty() || refs == "[]",
            "orphaned dependent keeps no reference to its owner: {refs}"
        );
    }
}

#[test]
fn namespace_delete_removes_everything_in_it() {
    let s = Server::start();
    s.ok(&["create", "namespace", "doomed"]);
    s.ok(&["create", "cm", "c", "-n", "doomed", "--from-literal=a=b"]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "x",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    s.ok(&[
        "create",
        "deployment",
        "d",
        "-n",
        "doomed",
        "--image=busybox:1.36",
    ]);
    eventually("default service account", || {
        s.kubectl(&["get", "sa", "default", "-n", "doomed"])
            .status
            .success()
    });
    s.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    assert!(
        s.fails(&["get", "namespace", "doomed"])
            .contains("NotFound")
    );
    let left = s.ok(&["get", "cm,secret,deploy,sa", "-n", "doomed", "-o", "name"]);
    assert_eq!(left.trim(), "");
}

#[test]
fn nodes_get_pod_cidrs_and_services_get_endpoints() {
    let s = Server::start();
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_kelp"))
        .args(["sim", "nodes", "--count", "3", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("three nodes with pod CIDRs", || {
        let cidrs = String::from_utf8_lossy(
            &s.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"])
                .stdout,
        )
        .into_owned();
        let list: Vec<&str> = cidrs.split_whitespace().collect();
        list.len() == 3
            && list.iter().collect::<std::collections::HashSet<_>>().len() == 3
            && list
                .iter()
                .all(|c| c.starts_with("10.42.") && c.ends_with("/24"))
    });
    // A pod bound to a sim node turns Ready; the Service's endpoints follow.
    s.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: sim-0
  containers: [{name: c, image: busybox:1.36, ports: [{containerPort: 8080, name: http}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#,
    );
    eventually("ready endpoint", || {
        let out = s.kubectl(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[0].targetRef.name}:{.subsets[0].ports[0].port}",
        ]);
        String::from_utf8_lossy(&out.stdout) == "web:8080"
    });
    eventually("endpointslice", || {
        let out = s.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[0].endpoints[0].conditions.ready}",
        ]);
        String::from_utf8_lossy(&out.stdout) == "true"
    });
    let _ = sim.kill();
    let _ = sim.wait();
}
