//! The control plane heals itself: controllers running inside a real
//! `kelp server`, driven with kubectl and fake nodes.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Server;
use common::sim::SimNodes;

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
    let sim = SimNodes::start(&s, "sim-", 3, &[]);
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
    drop(sim);
}

/// Remote addresses of the TCP connections `pid` holds (its own sockets
/// only: fds matched to /proc/<pid>/net/tcp{,6} inodes).
fn tcp_peers(pid: u32) -> Vec<String> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut peers = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && inodes.contains(f[9]) {
                peers.push(f[2].to_string());
            }
        }
    }
    peers
}

/// Whether a /proc/net/tcp{,6} address (hex `IP:PORT`) is loopback or unset.
fn is_local(hex_addr: &str) -> bool {
    let ip = hex_addr.split(':').next().unwrap_or_default();
    match ip.len() {
        // IPv4, little-endian: 127.x.x.x has 7F as its last byte.
        8 => ip.ends_with("7F") || ip == "00000000",
        // IPv6: ::1, ::, or ::ffff:127.x.x.x.
        _ => {
            ip == "00000000000000000000000001000000"
                || ip.chars().all(|c| c == '0')
                || (ip.starts_with("0000000000000000FFFF0000") && ip.ends_with("7F"))
        }
    }
}

#[test]
fn sim_node_pods_answer_exec_with_a_clear_error_on_loopback() {
    let s = Server::start();
    let sim = SimNodes::start(&s, "sim-", 2, &[]);
    eventually("sim-0 with a pod CIDR", || {
        !s.kubectl(&["get", "node", "sim-0", "-o", "jsonpath={.spec.podCIDR}"])
            .stdout
            .is_empty()
    });
    for name in ["a", "b"] {
        s.ok(&[
            "run",
            name,
            "--image=busybox",
            r#"--overrides={"spec":{"nodeName":"sim-0"}}"#,
        ]);
    }
    eventually("both pods Running with IPs", || {
        let out = s.kubectl(&["get", "pods", "-o", "jsonpath={.items[*].status.podIP}"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count()
            == 2
    });
    let cidr = s.ok(&["get", "node", "sim-0", "-o", "jsonpath={.spec.podCIDR}"]);
    let prefix = cidr.trim_end_matches("0/24").to_string();
    let ips = s.ok(&["get", "pods", "-o", "jsonpath={.items[*].status.podIP}"]);
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert!(
        ips.iter().all(|ip| ip.starts_with(&prefix)),
        "{ips:?} not in {cidr}"
    );
    assert_ne!(ips[0], ips[1], "each pod gets its own IP");
    let address = s.ok(&[
        "get",
        "node",
        "sim-0",
        "-o",
        r#"jsonpath={.status.addresses[?(@.type=="InternalIP")].address}"#,
    ]);
    assert_eq!(address, "127.0.0.1");

    let exec = s.kubectl(&["exec", "a", "--", "true"]);
    let err = String::from_utf8_lossy(&exec.stderr).into_owned();
    assert!(!exec.status.success());
    assert!(err.contains("sim node: no containers run here"), "{err}");
    let logs = s.kubectl(&["logs", "a"]);
    let err = String::from_utf8_lossy(&logs.stderr).into_owned();
    assert!(err.contains("sim node: no containers run here"), "{err}");
    // The apiserver keeps its kubelet connections open for reuse: every
    // peer it has is on this machine.
    let peers = tcp_peers(s.pid());
    assert!(!peers.is_empty(), "no sockets seen for the server");
    let remote: Vec<&String> = peers.iter().filter(|p| !is_local(p)).collect();
    assert!(
        remote.is_empty(),
        "server connected off this machine: {remote:?}"
    );
    drop(sim);
}
