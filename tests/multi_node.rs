//! Multi-node clusters on one machine (see `common::multi_node`): agents
//! join a server with its token, pods spread over the nodes and talk
//! across the overlay, refusals are clear, and nodes survive outages.
//! They need root, containerd and runc, and fail (never skip) without them.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::multi_node::{MultiNode, host_ip};

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
      - name: httpd
        image: busybox
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /index.html, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#;

/// Ready pods of the `web` Deployment: name → (node, IP).
fn ready_web_pods(cluster: &MultiNode) -> BTreeMap<String, (String, String)> {
    let out = cluster.server.jsonpath(
        &["get", "pods", "-l", "app=web"],
        r#"{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.conditions[?(@.type=="Ready")].status} {.metadata.deletionTimestamp}{"\n"}{end}"#,
    );
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[3] == "True")
                .then(|| (f[0].to_string(), (f[1].to_string(), f[2].to_string())))
        })
        .collect()
}

fn wait_web_ready(cluster: &MultiNode, count: usize) -> BTreeMap<String, (String, String)> {
    let mut pods = BTreeMap::new();
    cluster
        .server
        .wait_for(120, &format!("{count} ready web pods"), || {
            pods = ready_web_pods(cluster);
            pods.len() == count
        });
    pods
}

fn exec_wget(cluster: &MultiNode, pod: &str, url: &str) -> String {
    let out = cluster
        .server
        .kubectl(&["exec", pod, "--", "wget", "-qO-", url]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn three_nodes_join_spread_pods_and_reach_each_other_over_vxlan() {
    let cluster = MultiNode::start(2, &[]);
    let nodes = cluster.server.jsonpath(
        &["get", "nodes"],
        r#"{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}"#,
    );
    let rows: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{nodes}");
    let cidrs: BTreeSet<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(cidrs.len(), 3, "distinct podCIDRs: {nodes}");
    for (i, name) in ["kelp-e2e", "agent-1", "agent-2"].iter().enumerate() {
        let row = rows
            .iter()
            .find(|r| r[0] == *name)
            .unwrap_or_else(|| panic!("{name} in {nodes}"));
        assert_eq!(row[2], host_ip(i), "{nodes}");
    }
    // The agents' identities are nodes: they may not read Secrets.
    let agent_kubeconfig = cluster.agents[0]
        .data_dir()
        .join("agent/kubelet.kubeconfig");
    let denied = std::process::Command::new(common::cluster::kubectl_path())
        .arg("--kubeconfig")
        .arg(&agent_kubeconfig)
        .args(["get", "secrets", "-n", "kube-system"])
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr)
            .contains("User \"system:node:agent-1\" cannot list resource \"secrets\""),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );

    cluster.server.ok_stdin(&["apply", "-f", "-"], WEB);
    let pods = wait_web_ready(&cluster, 6);
    let used: BTreeSet<&str> = pods.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(used.len(), 3, "6 pods over all three nodes: {pods:?}");

    // Pod to pod by IP, from each node to a pod on every other node.
    let by_node: BTreeMap<&str, (&str, &str)> = pods
        .iter()
        .map(|(pod, (node, ip))| (node.as_str(), (pod.as_str(), ip.as_str())))
        .collect();
    for (from_node, (from_pod, _)) in &by_node {
        for (to_node, (to_pod, to_ip)) in &by_node {
            if from_node == to_node {
                continue;
            }
            let body = exec_wget(&cluster, from_pod, &format!("http://{to_ip}:8080/"));
            assert_eq!(
                body,
                format!("hello-from-{to_pod}"),
                "{from_node} → {to_node}\n{}",
                cluster.logs()
            );
        }
    }
    // Through the Service by name, from an agent's pod: over 30 tries the
    // answers come from pods on more than one node.
    let (agent_pod, _) = by_node["agent-1"];
    let answered_by = service_answered_by(&cluster, &pods, agent_pod, 30);
    assert!(answered_by.len() >= 2, "{answered_by:?}");

    // The overlay's kernel state on agent-1: a route, neighbour and FDB
    // entry for each other node.
    let agent = &cluster.agents[0];
    let routes = in_host(&agent.netns, &["ip", "route", "show", "dev", "kelp.vxlan"]);
    for r in rows.iter().filter(|r| r[0] != "agent-1") {
        assert!(routes.contains(r[1]), "route to {} in {routes}", r[1]);
    }
    let fdb = in_host(
        &agent.netns,
        &["bridge", "fdb", "show", "dev", "kelp.vxlan"],
    );
    assert!(fdb.contains(&format!("dst {}", host_ip(0))), "{fdb}");
    assert!(fdb.contains(&format!("dst {}", host_ip(2))), "{fdb}");

    // Renewal: a node may get fresh certificates with its current client
    // certificate instead of a token, for its own name only.
    let agent_dir = cluster.agents[0].data_dir().join("agent");
    let password = std::fs::read_to_string(agent_dir.join("node-password")).unwrap();
    let renew = |name: &str| {
        let body = serde_json::json!({"nodeName": name, "nodeIp": host_ip(1), "nodePassword": password.trim()});
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--cacert"])
            .arg(agent_dir.join("server-ca.crt"))
            .arg("--cert")
            .arg(agent_dir.join("client-kubelet.crt"))
            .arg("--key")
            .arg(agent_dir.join("client-kubelet.key"))
            .args([
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
            ])
            .arg(format!(
                "https://{}:{}/v1-kelp/join",
                host_ip(0),
                cluster.server.port
            ))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let renewed = renew("agent-1");
    assert!(
        renewed.ends_with("\n200") && renewed.contains("\"clientCert\""),
        "{renewed}"
    );
    let other = renew("agent-2");
    assert!(
        other.ends_with("\n403") && other.contains("may renew only its own"),
        "{other}"
    );

    // Deleting a node removes its overlay entries on the others.
    let agent2_cidr = rows.iter().find(|r| r[0] == "agent-2").unwrap()[1].to_string();
    cluster
        .server
        .ok(&["delete", "node", "agent-2", "--wait=false"]);
    cluster
        .server
        .wait_for(30, "agent-2's route gone from agent-1", || {
            !in_host(&agent.netns, &["ip", "route", "show", "dev", "kelp.vxlan"])
                .contains(&agent2_cidr)
        });
    let fdb = in_host(
        &agent.netns,
        &["bridge", "fdb", "show", "dev", "kelp.vxlan"],
    );
    assert!(!fdb.contains(&format!("dst {}", host_ip(2))), "{fdb}");
    let neigh = in_host(&agent.netns, &["ip", "neigh", "show", "dev", "kelp.vxlan"]);
    let agent2_gateway = agent2_cidr.trim_end_matches("/24");
    assert!(!neigh.contains(&format!("{agent2_gateway} ")), "{neigh}");
}

/// The nodes whose pods answered `tries` requests from pod `from` to the
/// `web` Service by name.
fn service_answered_by(
    cluster: &MultiNode,
    pods: &BTreeMap<String, (String, String)>,
    from: &str,
    tries: usize,
) -> BTreeSet<String> {
    let mut answered_by = BTreeSet::new();
    for _ in 0..tries {
        let body = exec_wget(cluster, from, "http://web.default.svc.cluster.local/");
        let pod = body
            .strip_prefix("hello-from-")
            .unwrap_or_else(|| panic!("{body:?}"));
        answered_by.insert(pods[pod].0.clone());
    }
    answered_by
}

/// Runs a command in a host's network namespace; its stdout.
fn in_host(netns: &std::path::Path, cmd: &[&str]) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg("--")
        .args(cmd)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `kelp ARGS` (on this machine); must succeed; its trimmed stdout.
fn kelp_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kelp"))
        .args(args)
        .output()
        .expect("run kelp");
    assert!(
        out.status.success(),
        "kelp {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new agent on host `i` with `token`; waits for it to exit and returns
/// its log (it must exit with 1).
fn refused_join(cluster: &MultiNode, i: usize, name: &str, token: &str) -> String {
    let mut agent = cluster.new_agent(i, name, token, &[]);
    agent.spawn();
    let status = agent.wait_exit(30);
    let log = agent.log();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "agent should exit with 1:\n{log}"
    );
    log
}

#[test]
fn joins_are_refused_clearly_and_nodes_survive_server_restarts_and_agent_loss() {
    // Leases are renewed every 10 s: a grace period of twice that, so that
    // only a dead agent looks dead (also on a loaded machine).
    let mut cluster = MultiNode::start(
        1,
        &[
            "--node-monitor-grace-period",
            "20",
            "--agent-token",
            "agent-only-secret",
        ],
    );
    let token = cluster.token();
    let (hash, _) = token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
        .expect("K10 token");

    // A CA hash that is not the server's: refused, naming both hashes.
    let wrong_hash = "0".repeat(64);
    let log = refused_join(
        &cluster,
        10,
        "x1",
        &format!("K10{wrong_hash}::server:whatever"),
    );
    assert!(log.contains("does not match the token"), "{log}");
    assert!(log.contains(&wrong_hash) && log.contains(hash), "{log}");

    // The right CA, a wrong secret: 401, and the agent says so.
    let log = refused_join(&cluster, 11, "x2", &format!("K10{hash}::server:wrong"));
    assert!(log.contains("the server rejected the token"), "{log}");

    // Another machine under an existing node name: 403 with what to do.
    let log = refused_join(&cluster, 12, "agent-1", &token);
    assert!(log.contains("refused this node"), "{log}");
    assert!(
        log.contains("--with-node-id") && log.contains("kubectl delete node agent-1"),
        "{log}"
    );

    // Bootstrap tokens from `kelp token create`: listed, an expired one
    // is refused and says it expired, a live one joins, a deleted one is
    // gone. The agent-only secret joins too.
    let kubeconfig = cluster.server.kubeconfig.display().to_string();
    let expiring = kelp_ok(&[
        "token",
        "create",
        "--kubeconfig",
        &kubeconfig,
        "--ttl",
        "1s",
    ]);
    let live = kelp_ok(&[
        "token",
        "create",
        "--kubeconfig",
        &kubeconfig,
        "--ttl",
        "1h",
        "--description",
        "e2e agents",
    ]);
    for token in [&expiring, &live] {
        assert!(token.starts_with(&format!("K10{hash}::")), "{token}");
    }
    let live_id = &live[live.len() - 23..live.len() - 17];
    let listed = kelp_ok(&["token", "list", "--kubeconfig", &kubeconfig]);
    assert!(
        listed.contains(&live[live.len() - 23..]) && listed.contains("e2e agents"),
        "{listed}"
    );
    // park_timeout may wake early: wait until the token has surely expired.
    let expired_at = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while std::time::Instant::now() < expired_at {
        std::thread::park_timeout(expired_at - std::time::Instant::now());
    }
    let log = refused_join(&cluster, 13, "x3", &expiring);
    assert!(log.contains("expired"), "{log}");
    // Long expired: the token cleaner deletes it.
    cluster.server.ok(&[
        "create",
        "secret",
        "generic",
        "bootstrap-token-oldtkn",
        "-n",
        "kube-system",
        "--type",
        "bootstrap.kubernetes.io/token",
        "--from-literal=token-id=oldtkn",
        "--from-literal=token-secret=0123456789abcdef",
        "--from-literal=expiration=2020-01-01T00:00:00Z",
    ]);
    cluster
        .server
        .wait_for(30, "the token cleaner deletes a long-expired token", || {
            !cluster
                .server
                .kubectl(&[
                    "get",
                    "secret",
                    "-n",
                    "kube-system",
                    "bootstrap-token-oldtkn",
                ])
                .status
                .success()
        });
    let mut joined = Vec::new();
    for (i, name, token) in [
        (14, "agent-b", live.clone()),
        (15, "agent-t", "agent-only-secret".to_string()),
    ] {
        let mut agent = cluster.new_agent(i, name, &token, &[]);
        agent.spawn();
        joined.push(agent);
    }
    cluster.wait_node_ready("agent-b");
    cluster.wait_node_ready("agent-t");
    drop(joined);
    cluster.server.ok(&["delete", "node", "agent-b", "agent-t"]);
    kelp_ok(&["token", "delete", "--kubeconfig", &kubeconfig, live_id]);
    let listed = kelp_ok(&["token", "list", "--kubeconfig", &kubeconfig]);
    assert!(!listed.contains(live_id), "{listed}");

    // Rotation: the old token stops working, a joined agent restarts on
    // its stored credentials, and the new token joins.
    let data_dir = cluster.server.data_dir().display().to_string();
    let rotated = kelp_ok(&["token", "rotate", "--data-dir", &data_dir]);
    assert!(
        rotated.starts_with(&format!("K10{hash}::server:")) && rotated != token,
        "{rotated}"
    );
    let log = refused_join(&cluster, 17, "x5", &token);
    assert!(log.contains("the server rejected the token"), "{log}");
    cluster.agents[0].kill();
    cluster.agents[0].spawn();
    cluster
        .server
        .wait_for(30, "agent-1 restarts on its stored credentials", || {
            cluster.agents[0]
                .log()
                .contains("using the node credentials from the last join")
        });
    let mut fresh = cluster.new_agent(18, "agent-r", &rotated, &[]);
    fresh.spawn();
    cluster.wait_node_ready("agent-r");
    drop(fresh);
    cluster.server.ok(&["delete", "node", "agent-r"]);

    // A server that is not there (yet): the agent waits and retries.
    let nowhere = format!("https://{}:1", host_ip(0));
    let mut early = cluster.new_agent(16, "x4", &token, &["--server", &nowhere]);
    early.spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while early.log().matches("cannot join yet; retrying").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no retries logged:\n{}",
            early.log()
        );
        std::thread::park_timeout(std::time::Duration::from_millis(200));
    }
    drop(early);

    // Pods on both nodes; the server restarts: pods untouched, the agent
    // reconnects (its Lease is renewed again).
    cluster.server.ok_stdin(
        &["apply", "-f", "-"],
        &WEB.replace("replicas: 6", "replicas: 4"),
    );
    let pods = wait_web_ready(&cluster, 4);
    let on_agent: Vec<&String> = pods
        .iter()
        .filter(|(_, (n, _))| n == "agent-1")
        .map(|(p, _)| p)
        .collect();
    assert!(!on_agent.is_empty(), "{pods:?}");
    let containers = |c: &MultiNode| {
        c.server.jsonpath(
            &["get", "pods", "-l", "app=web"],
            r#"{range .items[*]}{.metadata.name}={.status.containerStatuses[0].containerID}/{.status.containerStatuses[0].restartCount} {end}"#,
        )
    };
    let before = containers(&cluster);
    let renew = |c: &MultiNode| {
        c.server.jsonpath(
            &["get", "lease", "-n", "kube-node-lease", "agent-1"],
            "{.spec.renewTime}",
        )
    };
    cluster.server.kill_and_restart();
    let after_restart = renew(&cluster);
    cluster
        .server
        .wait_for(30, "agent-1 renews its Lease after the restart", || {
            renew(&cluster) != after_restart
        });
    cluster.wait_node_ready("agent-1");
    assert_eq!(
        containers(&cluster),
        before,
        "running pods untouched by the restart"
    );
    let (pod, (_, ip)) = pods
        .iter()
        .find(|(_, (n, _))| n == "kelp-e2e")
        .expect("a pod on the server");
    let (_, (_, agent_ip)) = pods.iter().find(|(_, (n, _))| n == "agent-1").unwrap();
    let body = exec_wget(&cluster, pod, &format!("http://{agent_ip}:8080/"));
    assert!(
        body.starts_with("hello-from-"),
        "{body:?} from {pod} ({ip})\n{}",
        cluster.logs()
    );

    // The agent dies: its node goes NotReady (Unknown) and its pods come
    // back on the server's node.
    cluster.agents[0].kill();
    cluster.wait_node_status("agent-1", "Unknown", 60);
    cluster
        .server
        .wait_for(90, "web pods all back on kelp-e2e", || {
            let now = ready_web_pods(&cluster);
            now.len() == 4 && now.values().all(|(n, _)| n == "kelp-e2e")
        });
}

#[test]
fn host_gw_routes_pods_between_nodes() {
    let cluster = MultiNode::start(1, &["--flannel-backend", "host-gw"]);
    cluster.server.ok_stdin(
        &["apply", "-f", "-"],
        &WEB.replace("replicas: 6", "replicas: 2"),
    );
    let pods = wait_web_ready(&cluster, 2);
    let nodes: BTreeSet<&str> = pods.values().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes.len(), 2, "{pods:?}");
    let mut it = pods.iter();
    let (a, _) = it.next().unwrap();
    let (b, (_, b_ip)) = it.next().unwrap();
    assert_eq!(
        exec_wget(&cluster, a, &format!("http://{b_ip}:8080/")),
        format!("hello-from-{b}")
    );
    // Through the Service by name, from each pod: over 20 tries the answers
    // come from the pods on both nodes, so the proxied traffic crosses the
    // host-gw routes both ways.
    for from in pods.keys() {
        let answered_by = service_answered_by(&cluster, &pods, from, 20);
        assert_eq!(answered_by.len(), 2, "from {from}: {answered_by:?}");
    }
    let server_cidr = cluster
        .server
        .jsonpath(&["get", "node", "kelp-e2e"], "{.spec.podCIDR}");
    let routes = in_host(&cluster.agents[0].netns, &["ip", "route"]);
    assert!(
        routes.contains(&format!(
            "{server_cidr} via {} dev kelp-ul0 proto 251",
            host_ip(0)
        )),
        "{routes}"
    );
    assert!(!routes.contains("kelp.vxlan"), "{routes}");
}

#[test]
fn kelp_reset_leaves_nothing_of_the_node_behind() {
    let mut cluster = MultiNode::start(1, &[]);
    cluster.server.ok_stdin(
        &["apply", "-f", "-"],
        &WEB.replace("replicas: 6", "replicas: 4"),
    );
    let pods = wait_web_ready(&cluster, 4);
    let uids: Vec<String> = pods
        .iter()
        .filter(|(_, (node, _))| node == "agent-1")
        .map(|(pod, _)| {
            cluster
                .server
                .jsonpath(&["get", "pod", pod], "{.metadata.uid}")
        })
        .collect();
    assert!(!uids.is_empty(), "pods on agent-1: {pods:?}");
    let agent = &mut cluster.agents[0];
    let root = agent.dir.path().to_path_buf();
    let data = agent.data_dir();
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", agent.netns.display()))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_kelp"))
        .args(["reset", "--remove-data", "--data-dir"])
        .arg(&data)
        .arg("--run-dir")
        .arg(root.join("run"))
        .arg("--pod-log-dir")
        .arg(root.join("pod-logs"))
        .output()
        .expect("kelp reset");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        agent.wait_exit(10).is_some(),
        "the agent was stopped: {said}"
    );

    // No process mentions the node's directories; nothing is mounted there.
    let needle = root.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(&needle), "left running: {cmdline}");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&needle), "{mounts}");
    // No link, route or nftables table of kelp's in the node's namespace.
    let links = in_host(&agent.netns, &["ip", "-o", "link"]);
    for name in ["kelp0", "kelp.vxlan", "veth"] {
        assert!(!links.contains(name), "{links}");
    }
    let routes = in_host(&agent.netns, &["ip", "route"]);
    assert!(
        !routes.contains("proto 251") && !routes.contains("10.42."),
        "{routes}"
    );
    let rules = in_host(&agent.netns, &["nft", "list", "ruleset"]);
    assert!(!rules.contains("table ip kelp"), "{rules}");
    // No pod namespace, cgroup or file.
    for uid in &uids {
        assert!(!std::path::Path::new(&format!("/run/netns/kelp-{uid}")).exists());
        for qos in ["", "burstable/", "besteffort/"] {
            let cgroup = format!("/sys/fs/cgroup/kubepods/{qos}pod{uid}");
            assert!(!std::path::Path::new(&cgroup).exists(), "{cgroup}");
        }
    }
    assert!(!data.exists() && !root.join("run").exists(), "data removed");
    let logs: Vec<_> = std::fs::read_dir(root.join("pod-logs"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(logs.is_empty(), "{logs:?}");
}
