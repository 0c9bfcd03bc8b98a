//! Scheduler and workload controllers together on fake nodes (`kelp sim
//! nodes`): placement, rollouts, unschedulable pods, jobs, node loss.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::Server;
use common::sim::SimNodes;

fn sim(s: &Server, prefix: &str, count: usize) -> SimNodes {
    SimNodes::start(s, prefix, count, &[])
}

fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(200));
    }
}

fn text(s: &Server, args: &[&str]) -> String {
    String::from_utf8_lossy(&s.kubectl(args).stdout).into_owned()
}

/// Running pods per node for a label selector.
fn placement(s: &Server, selector: &str) -> HashMap<String, usize> {
    let out = text(
        s,
        &[
            "get",
            "pods",
            "-l",
            selector,
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
        ],
    );
    let mut m = HashMap::new();
    for node in out.lines().filter(|l| !l.is_empty()) {
        *m.entry(node.to_string()).or_insert(0) += 1;
    }
    m
}

fn wait_nodes(s: &Server, n: usize) {
    eventually("nodes", 30, || {
        text(s, &["get", "nodes", "-o", "name"]).lines().count() >= n
    });
}

#[test]
fn deployment_spreads_rolls_and_undoes() {
    let s = Server::start();
    let _nodes = sim(&s, "sim-", 3);
    wait_nodes(&s, 3);
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.36",
        "--replicas=30",
    ]);
    eventually("30 running pods", 60, || {
        placement(&s, "app=web").values().sum::<usize>() == 30
    });
    let spread = placement(&s, "app=web");
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(spread.values().all(|n| *n >= 5), "uneven spread {spread:?}");
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    // Sample the rollout: never more than replicas + maxSurge (25% of 30
    // → 8) pods, never fewer than replicas - maxUnavailable (25% → 7)
    // available.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (kubeconfig, stop) = (s.kubeconfig.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = Command::new(common::cluster::kubectl_path())
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args([
                        "get",
                        "deploy",
                        "web",
                        "-o",
                        "jsonpath={.status.replicas},{.status.availableReplicas}",
                    ])
                    .output()
                    .expect("kubectl");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if let Some((total, available)) = text.split_once(',')
                    && let (Ok(t), Ok(a)) = (total.parse::<i64>(), available.parse::<i64>())
                {
                    samples.push((t, a));
                }
            }
            samples
        })
    };
    s.ok(&["set", "image", "deployment/web", "busybox=busybox:1.37"]);
    s.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    assert!(
        samples.len() > 3,
        "too few samples of the rollout: {samples:?}"
    );
    for (total, available) in &samples {
        assert!(*total <= 38, "surge exceeded: {samples:?}");
        assert!(*available >= 23, "unavailability exceeded: {samples:?}");
    }
    let images = text(
        &s,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
    );
    assert!(
        images.split_whitespace().all(|i| i == "busybox:1.37"),
        "{images}"
    );
    let history = s.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    s.ok(&["rollout", "undo", "deployment/web"]);
    s.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "busybox:1.36"
    );
    // Foreground deletion removes ReplicaSets and pods before the Deployment.
    s.ok(&[
        "delete",
        "deployment",
        "web",
        "--cascade=foreground",
        "--timeout=90s",
    ]);
    assert_eq!(
        text(&s, &["get", "rs,pods", "-l", "app=web", "-o", "name"]).trim(),
        ""
    );
}

#[test]
fn unschedulable_pods_wait_with_an_upstream_style_event() {
    let s = Server::start();
    let _nodes = sim(&s, "sim-", 3);
    wait_nodes(&s, 3);
    s.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  containers: [{name: c, image: busybox:1.36, resources: {requests: {cpu: "100"}}}]
"#,
    );
    eventually("FailedScheduling event", 30, || {
        text(
            &s,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=huge,reason=FailedScheduling",
                "-o",
                "jsonpath={.items[*].message}",
            ],
        )
        .contains("0/3 nodes are available: 3 Insufficient cpu")
    });
    assert_eq!(
        s.ok(&["get", "pod", "huge", "-o", "jsonpath={.status.phase}"]),
        "Pending"
    );
    assert_eq!(
        s.ok(&["get", "pod", "huge", "-o", "jsonpath={.spec.nodeName}"]),
        ""
    );
}

#[test]
fn taints_selectors_and_anti_affinity_are_honoured() {
    let s = Server::start();
    let _nodes = sim(&s, "sim-", 3);
    wait_nodes(&s, 3);
    s.ok(&["taint", "node", "sim-2", "dedicated=gpu:NoSchedule"]);
    s.ok(&["label", "node", "sim-1", "disk=ssd"]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: plain}
spec:
  replicas: 6
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec: {containers: [{name: c, image: busybox:1.36}]}
---
apiVersion: v1
kind: Pod
metadata: {name: tolerant, labels: {app: tolerant}}
spec:
  nodeSelector: {kubernetes.io/hostname: sim-2}
  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]
  containers: [{name: c, image: busybox:1.36}]
---
apiVersion: v1
kind: Pod
metadata: {name: ssd, labels: {app: ssd}}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: c, image: busybox:1.36}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: apart}
spec:
  replicas: 3
  selector: {matchLabels: {app: apart}}
  template:
    metadata: {labels: {app: apart}}
    spec:
      tolerations: [{key: dedicated, operator: Exists}]
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: apart}}
            topologyKey: kubernetes.io/hostname
      containers: [{name: c, image: busybox:1.36}]
"#,
    );
    eventually("all placed", 60, || {
        placement(&s, "app=plain").values().sum::<usize>() == 6
            && placement(&s, "app=apart").values().sum::<usize>() == 3
            && placement(&s, "app in (tolerant,ssd)")
                .values()
                .sum::<usize>()
                == 2
    });
    assert!(
        !placement(&s, "app=plain").contains_key("sim-2"),
        "untolerated taint ignored"
    );
    assert_eq!(
        s.ok(&["get", "pod", "tolerant", "-o", "jsonpath={.spec.nodeName}"]),
        "sim-2"
    );
    assert_eq!(
        s.ok(&["get", "pod", "ssd", "-o", "jsonpath={.spec.nodeName}"]),
        "sim-1"
    );
    let apart = placement(&s, "app=apart");
    assert_eq!(apart.len(), 3, "anti-affinity: {apart:?}");
}

#[test]
fn job_with_completions_and_parallelism_completes() {
    let s = Server::start();
    let _nodes = sim(&s, "sim-", 2);
    wait_nodes(&s, 2);
    s.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: five}
spec:
  completions: 5
  parallelism: 2
  template:
    metadata: {annotations: {kelp.io/sim-exit-code: "0"}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox:1.36, command: ["true"]}]
"#,
    );
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/five",
        "--timeout=60s",
    ]);
    assert_eq!(
        s.ok(&["get", "job", "five", "-o", "jsonpath={.status.succeeded}"]),
        "5"
    );
}

#[test]
fn pods_leave_a_node_that_stops_renewing_its_lease() {
    let s = Server::start_with(&[
        "--node-monitor-grace-period",
        "4",
        "--default-unreachable-toleration-seconds",
        "2",
    ]);
    let _stays = sim(&s, "stay-", 1);
    let lost = sim(&s, "lost-", 1);
    wait_nodes(&s, 2);
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.36",
        "--replicas=6",
    ]);
    eventually("6 running", 60, || {
        placement(&s, "app=web").values().sum::<usize>() == 6
    });
    assert!(
        placement(&s, "app=web").contains_key("lost-0"),
        "no pod landed on the node to lose"
    );
    drop(lost);
    eventually("node unknown", 60, || {
        text(
            &s,
            &[
                "get",
                "node",
                "lost-0",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        ) == "Unknown"
    });
    eventually("pods recreated on the remaining node", 90, || {
        let p = placement(&s, "app=web");
        p.get("stay-0") == Some(&6)
    });
}
