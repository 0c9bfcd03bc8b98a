//! Admission plugins and the controllers behind them (issue "Admission
//! plugins, the missing core controllers, and API fidelity"), driven with
//! real kubectl against a real `kelp server`; pods run on `kelp sim nodes`
//! where they must be Ready.

mod common;

use common::cluster::Server;
use common::sim::SimNodes;

fn get(s: &Server, args: &[&str], path: &str) -> String {
    let mut all: Vec<&str> = vec!["get"];
    all.extend_from_slice(args);
    let jsonpath = format!("jsonpath={path}");
    all.extend_from_slice(&["-o", &jsonpath]);
    String::from_utf8_lossy(&s.kubectl(&all).stdout).into_owned()
}

fn pod_yaml(name: &str, extra_spec: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra_spec}  containers:\n  - name: c\n    image: busybox\n{resources}"
    )
}

#[test]
fn limit_ranger_defaults_requests_and_limits_and_refuses_what_exceeds_max() {
    let s = Server::start();
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: lr\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m}\n    defaultRequest: {cpu: 100m}\n    max: {cpu: \"1\"}\n",
    );
    s.ok_stdin(&["create", "-f", "-"], &pod_yaml("web", "", ""));
    assert_eq!(
        get(
            &s,
            &["pod", "web"],
            "{.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.limits.cpu}"
        ),
        "100m 500m"
    );
    assert_eq!(
        get(
            &s,
            &["pod", "web"],
            "{.metadata.annotations.kubernetes\\.io/limit-ranger}"
        ),
        "LimitRanger plugin set: cpu request for container c; cpu limit for container c"
    );
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        &pod_yaml("big", "", "    resources:\n      limits: {cpu: \"2\"}\n"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{err}"
    );
}

#[test]
fn resource_quota_blocks_a_second_pod_with_upstreams_message_and_frees_on_delete() {
    let s = Server::start();
    s.ok(&["create", "namespace", "team"]);
    s.ok(&[
        "create",
        "quota",
        "q",
        "-n",
        "team",
        "--hard=pods=1,count/configmaps=5",
    ]);
    s.wait_for(30, "quota status", || {
        get(&s, &["quota", "q", "-n", "team"], "{.status.used.pods}") == "0"
    });
    s.ok_stdin(&["create", "-n", "team", "-f", "-"], &pod_yaml("a", "", ""));
    let out = s.kubectl_stdin(&["create", "-n", "team", "-f", "-"], &pod_yaml("b", "", ""));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("pods \"b\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"),
        "{err}"
    );
    s.ok(&["create", "configmap", "c1", "-n", "team"]);
    s.wait_for(30, "configmaps counted", || {
        get(
            &s,
            &["quota", "q", "-n", "team"],
            "{.status.used.count/configmaps}",
        ) == "2"
    });
    // Deleting the pod gives its slot back (the controller recounts).
    s.ok(&["delete", "pod", "a", "-n", "team", "--wait=false"]);
    s.wait_for(30, "usage back to zero", || {
        get(&s, &["quota", "q", "-n", "team"], "{.status.used.pods}") == "0"
    });
    s.ok_stdin(&["create", "-n", "team", "-f", "-"], &pod_yaml("b", "", ""));
    // A quota on cpu requires every container to state it.
    s.ok(&[
        "create",
        "quota",
        "compute",
        "-n",
        "team",
        "--hard=requests.cpu=1",
    ]);
    s.wait_for(30, "compute quota status", || {
        !get(
            &s,
            &["quota", "compute", "-n", "team"],
            "{.status.used.requests\\.cpu}",
        )
        .is_empty()
    });
    let out = s.kubectl_stdin(&["create", "-n", "team", "-f", "-"], &pod_yaml("c", "", ""));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed quota: compute: must specify requests.cpu for: c"),
        "{err}"
    );
}

#[test]
fn priority_classes_resolve_into_pods_and_unknown_ones_are_refused() {
    let s = Server::start();
    assert_eq!(
        get(
            &s,
            &[
                "priorityclass",
                "system-node-critical",
                "system-cluster-critical"
            ],
            "{.items[*].value}"
        ),
        "2000001000 2000000000"
    );
    s.ok_stdin(
        &["create", "-f", "-"],
        &pod_yaml("crit", "  priorityClassName: system-node-critical\n", ""),
    );
    assert_eq!(
        get(
            &s,
            &["pod", "crit"],
            "{.spec.priority} {.spec.preemptionPolicy}"
        ),
        "2000001000 PreemptLowerPriority"
    );
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        &pod_yaml("lost", "  priorityClassName: nope\n", ""),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pods \"lost\" is forbidden: no PriorityClass with name nope was found"),
        "{err}"
    );
    s.ok(&[
        "create",
        "priorityclass",
        "high",
        "--value=1000",
        "--global-default=true",
    ]);
    s.ok_stdin(&["create", "-f", "-"], &pod_yaml("plain", "", ""));
    assert_eq!(
        get(
            &s,
            &["pod", "plain"],
            "{.spec.priorityClassName} {.spec.priority}"
        ),
        "high 1000"
    );
    let err = s.fails(&[
        "create",
        "priorityclass",
        "other",
        "--value=5",
        "--global-default=true",
    ]);
    assert!(
        err.contains("PriorityClass high is already marked as default. Only one default can exist"),
        "{err}"
    );
}

#[test]
fn default_toleration_seconds_are_added_to_new_pods() {
    let s = Server::start();
    s.ok_stdin(&["create", "-f", "-"], &pod_yaml("p", "", ""));
    assert_eq!(
        get(
            &s,
            &["pod", "p"],
            "{range .spec.tolerations[*]}{.key}={.effect}/{.tolerationSeconds} {end}"
        )
        .trim(),
        "node.kubernetes.io/not-ready=NoExecute/300 node.kubernetes.io/unreachable=NoExecute/300"
    );
}

#[test]
fn claims_without_a_class_get_the_default_storage_class() {
    let s = Server::start();
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: std\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: example.com/none\n",
    );
    let claim = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {{storage: 1Gi}}\n"
        )
    };
    s.ok_stdin(&["create", "-f", "-"], &claim("data", ""));
    s.ok_stdin(
        &["create", "-f", "-"],
        &claim("none", "  storageClassName: \"\"\n"),
    );
    assert_eq!(get(&s, &["pvc", "data"], "{.spec.storageClassName}"), "std");
    assert_eq!(get(&s, &["pvc", "none"], "{.spec.storageClassName}"), "");
}

#[test]
fn a_pod_naming_a_missing_service_account_is_refused() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        &pod_yaml("ghostly", "  serviceAccountName: ghost\n", ""),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "pods \"ghostly\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{err}"
    );
}

#[test]
fn pod_disruption_budget_status_is_kept_and_kubectl_drain_waits_for_it() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "pdb-", 2, &[]);
    s.wait_for(30, "two nodes", || {
        get(&s, &["nodes"], "{.items[*].metadata.name}")
            .split(' ')
            .count()
            == 2
    });
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ]);
    s.ok(&[
        "create",
        "poddisruptionbudget",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]);
    s.wait_for(60, "budget status", || {
        get(
            &s,
            &["pdb", "web"],
            "{.status.expectedPods}/{.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}",
        ) == "2/2/2/0"
    });
    assert_eq!(
        get(
            &s,
            &["pdb", "web"],
            "{.status.conditions[0].type}={.status.conditions[0].reason}"
        ),
        "DisruptionAllowed=InsufficientPods"
    );
    let node = get(&s, &["pods", "-l", "app=web"], "{.items[0].spec.nodeName}");
    let victim = get(&s, &["pods", "-l", "app=web"], "{.items[0].metadata.name}");
    let out = s.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=7s"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "drain should time out: {text}");
    assert!(
        text.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{text}"
    );
    assert!(text.contains("will retry after 5s"), "{text}");
    s.ok(&["get", "pod", &victim]);
    // With room in the budget the drain goes through.
    s.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        "{\"spec\":{\"minAvailable\":1}}",
    ]);
    s.wait_for(30, "one disruption allowed", || {
        get(&s, &["pdb", "web"], "{.status.disruptionsAllowed}") == "1"
    });
    s.ok(&["drain", &node, "--ignore-daemonsets", "--timeout=30s"]);
    s.wait_for(30, "the evicted pod gone", || {
        !s.kubectl(&["get", "pod", &victim]).status.success()
    });
}

#[test]
fn a_high_priority_pod_preempts_a_low_one_on_a_full_node() {
    let s = Server::start();
    let _nodes = SimNodes::start(&s, "small-", 1, &["--cpu", "1"]);
    s.wait_for(30, "the node", || {
        !get(&s, &["nodes"], "{.items[*].metadata.name}").is_empty()
    });
    s.ok(&["create", "priorityclass", "low", "--value=10"]);
    s.ok(&["create", "priorityclass", "high", "--value=1000"]);
    let cpu = "    resources:\n      requests: {cpu: 800m}\n";
    s.ok_stdin(
        &["create", "-f", "-"],
        &pod_yaml("low", "  priorityClassName: low\n", cpu),
    );
    s.wait_for(30, "low running", || {
        get(&s, &["pod", "low"], "{.status.phase}") == "Running"
    });
    s.ok_stdin(
        &["create", "-f", "-"],
        &pod_yaml("high", "  priorityClassName: high\n", cpu),
    );
    s.wait_for(60, "high bound to the node", || {
        get(&s, &["pod", "high"], "{.spec.nodeName}") == "small-0"
    });
    assert!(
        !s.kubectl(&["get", "pod", "low"]).status.success(),
        "the low pod was preempted"
    );
    let events = s.ok(&[
        "get",
        "events",
        "-o",
        "jsonpath={range .items[*]}{.reason}:{.message}{\"\\n\"}{end}",
    ]);
    assert!(events.contains("Preempted:Preempted by pod"), "{events}");
    assert!(
        events.contains("Scheduled:Successfully assigned default/high to small-0"),
        "{events}"
    );
}
