//! End-to-end tests of the node agent: a single-node `kelp server` running
//! pods on a private containerd with runc, driven with real kubectl.
//! They need root, containerd and runc, and fail (never skip) without them.
//! The busybox image is built from Debian's busybox-static and imported the
//! airgap way (an archive in `<data>/agent/images/`).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::{Server, kubectl_path};

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: busybox
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && echo started && exec httpd -f -v -p 8080 -h /www"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /index.html, port: http}
          periodSeconds: 1
"#;

fn pods_of(server: &Server, selector: &str) -> Vec<String> {
    server
        .jsonpath(
            &["get", "pods", "-l", selector],
            "{.items[*].metadata.name}",
        )
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn wait_ready(server: &Server, selector: &str, count: usize) -> Vec<String> {
    server.wait_for(90, &format!("{count} ready pods {selector}"), || {
        let ready = server.jsonpath(
            &["get", "pods", "-l", selector],
            r#"{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        );
        ready.lines().filter(|l| *l == "True").count() == count
    });
    pods_of(server, selector)
}

/// The kubelet's own API (:10250) asks the apiserver whether a caller may
/// use `nodes/proxy` (a SubjectAccessReview), as upstream's webhook mode:
/// a client certificate from the cluster CA is not enough by itself.
fn kubelet_api_is_authorized(server: &Server, pod: &str) {
    let tls = server.data_dir().join("server/tls");
    let container = server.jsonpath(&["get", "pod", pod], "{.spec.containers[0].name}");
    let url = format!(
        "https://127.0.0.1:{}/containerLogs/default/{pod}/{container}",
        server.kubelet_port.expect("kubelet port")
    );
    let call = |user: &str| {
        let (cert, key) = kelp::pki::client_cert_from_ca(&tls, user, &[]).unwrap();
        let (cert_file, key_file) = (
            server.dir.path().join(format!("{user}.crt")),
            server.dir.path().join(format!("{user}.key")),
        );
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--cacert"])
            .arg(tls.join("server-ca.crt"))
            .arg("--cert")
            .arg(&cert_file)
            .arg("--key")
            .arg(&key_file)
            .arg(&url)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    server.ok(&[
        "create",
        "clusterrole",
        "node-logs",
        "--verb=get",
        "--resource=nodes/proxy",
    ]);
    server.ok(&[
        "create",
        "clusterrolebinding",
        "ops-node-logs",
        "--clusterrole=node-logs",
        "--user=ops",
    ]);
    let allowed = call("ops");
    assert!(
        allowed.contains("started") && allowed.ends_with("200"),
        "{allowed}"
    );
    let refused = call("mallory");
    assert!(
        refused.contains("Forbidden (user=mallory, verb=get, resource=nodes, subresource=proxy)")
            && refused.ends_with("403"),
        "{refused}"
    );
}

/// The built-in pod network: each pod has its own address from the node's
/// podCIDR on eth0, and reaches the other pod by it through the bridge.
fn pods_reach_each_other_by_ip(server: &Server, pods: &[String]) {
    let cidr = server.jsonpath(&["get", "node", "kelp-e2e"], "{.spec.podCIDR}");
    let net: ipnet::Ipv4Net = cidr.parse().expect("node podCIDR");
    let ips: Vec<std::net::Ipv4Addr> = pods
        .iter()
        .map(|p| {
            let ip = server.jsonpath(&["get", "pod", p], "{.status.podIP}");
            ip.parse()
                .unwrap_or_else(|_| panic!("pod {p} has podIP {ip:?}"))
        })
        .collect();
    assert!(ips.iter().all(|ip| net.contains(ip)), "{ips:?} in {net}");
    assert_ne!(ips[0], ips[1]);
    let eth0 = server.ok(&[
        "exec", &pods[0], "--", "busybox", "ip", "-4", "addr", "show", "eth0",
    ]);
    assert!(
        eth0.contains(&format!("inet {}/{}", ips[0], net.prefix_len())),
        "{eth0}"
    );
    let body = server.ok(&[
        "exec",
        &pods[0],
        "--",
        "wget",
        "-qO-",
        &format!("http://{}:8080/", ips[1]),
    ]);
    assert_eq!(body.trim(), format!("hello-from-{}", pods[1]));
    cluster_dns_answers(server, pods);
    services_answer_through_the_proxy(server, pods);
}

/// An HTTP GET from the test (inside the node's namespace); the body, or
/// empty when nothing answers.
fn http_get(addr: &str) -> String {
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = conn.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body
}

/// The service proxy: a ClusterIP by DNS name (full and short), balanced
/// over both pods, hairpin (a pod through its own Service), NodePort and
/// LoadBalancer on the node's address, a refusal for a Service without
/// endpoints, the API through `kubernetes.default.svc` with the pod's
/// token, and ExternalName in DNS.
fn services_answer_through_the_proxy(server: &Server, pods: &[String]) {
    server.ok_stdin(
        &["apply", "--validate=false", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-lb"},
             "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 8081, "targetPort": 8080}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nothing"},
             "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
             "spec": {"type": "ExternalName", "externalName": "example.org"}}]}"#,
    );
    let exec = |pod: &str, cmd: &[&str]| {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(cmd);
        let o = server.kubectl(&args);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let mut last = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !last.starts_with("hello-from-web-") {
        assert!(
            std::time::Instant::now() < deadline,
            "the web Service by its DNS name: {last}"
        );
        last = exec(
            &pods[0],
            &["wget", "-qO-", "http://web.default.svc.cluster.local/"],
        );
    }
    // Random balancing reaches both pods, and a pod reaches itself through
    // its own Service (hairpin); 40 tries miss one with p = 2^-39.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let body = exec(&pods[0], &["wget", "-qO-", "http://web/"]);
        seen.insert(body.trim().to_string());
        if seen.len() == 2 {
            break;
        }
    }
    let expected: std::collections::BTreeSet<String> =
        pods.iter().map(|p| format!("hello-from-{p}")).collect();
    assert_eq!(seen, expected, "both pods, the caller included");

    let node_port = server.jsonpath(&["get", "svc", "web"], "{.spec.ports[0].nodePort}");
    let body = http_get(&format!("{}:{node_port}", common::cluster::UPLINK_IP));
    assert!(body.contains("hello-from-web-"), "NodePort: {body}");

    server.wait_for(30, "the LoadBalancer ingress is the node's address", || {
        server.jsonpath(
            &["get", "svc", "web-lb"],
            "{.status.loadBalancer.ingress[0].ip}",
        ) == common::cluster::UPLINK_IP
    });
    let body = http_get(&format!("{}:8081", common::cluster::UPLINK_IP));
    assert!(body.contains("hello-from-web-"), "LoadBalancer: {body}");

    let refused = exec(&pods[0], &["wget", "-qO-", "http://nothing/"]);
    assert!(refused.contains("refused"), "{refused}");

    let api = exec(
        &pods[0],
        &[
            "sh",
            "-c",
            "wget -qO- --no-check-certificate \
             --header \"Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)\" \
             https://kubernetes.default.svc/api",
        ],
    );
    // busybox's TLS client cannot complete a handshake with kelp's
    // apiserver (alert 40): the apiserver's refusal is what shows that the
    // pod reached it through the Service (a missing rule
    // would time out, no endpoint would be refused). The token itself is
    // checked by the authentication tests.
    assert!(
        api.contains("\"kind\":\"APIVersions\"") || api.contains("TLS error from peer"),
        "{api}"
    );
    // The whole way, with a TLS client that can: curl inside the pod's
    // network namespace, with the pod's own token and CA, to
    // kubernetes.default.svc at the address the pod's DNS gives: the
    // apiserver sees the pod's service account.
    let lookup = exec(
        &pods[0],
        &[
            "busybox",
            "nslookup",
            "kubernetes.default.svc.cluster.local",
        ],
    );
    let api_ip = lookup
        .split("Name:")
        .nth(1)
        .and_then(|after| {
            after
                .lines()
                .find_map(|l| l.trim().strip_prefix("Address:"))
        })
        .map(|a| a.trim().to_string())
        .unwrap_or_else(|| panic!("{lookup}"));
    let uid = server.jsonpath(&["get", "pod", &pods[0]], "{.metadata.uid}");
    let secret = |file: &str| {
        exec(
            &pods[0],
            &[
                "cat",
                &format!("/var/run/secrets/kubernetes.io/serviceaccount/{file}"),
            ],
        )
    };
    let dir = server.dir.path();
    std::fs::write(dir.join("pod-ca.crt"), secret("ca.crt")).unwrap();
    let token = secret("token");
    let review = Command::new("nsenter")
        .arg(format!("--net=/run/netns/kelp-{uid}"))
        .args(["--", "curl", "-sS", "--max-time", "10", "--resolve"])
        .arg(format!("kubernetes.default.svc.cluster.local:443:{api_ip}"))
        .arg("--cacert")
        .arg(dir.join("pod-ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args(["-H", "Content-Type: application/json", "-X", "POST"])
        .args(["-d", r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#])
        .arg("https://kubernetes.default.svc.cluster.local/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .output()
        .expect("curl");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&review.stdout),
        String::from_utf8_lossy(&review.stderr)
    );
    assert!(
        said.contains("system:serviceaccount:default:default"),
        "{said}"
    );

    let ext = exec(
        &pods[0],
        &[
            "busybox",
            "nslookup",
            "-type=CNAME",
            "ext.default.svc.cluster.local",
        ],
    );
    assert!(ext.contains("example.org"), "{ext}");
}

/// Node-local cluster DNS: Service names (short, as the search path
/// completes them, and full), a headless Service's pod addresses, NXDOMAIN
/// for what does not exist.
fn cluster_dns_answers(server: &Server, pods: &[String]) {
    server.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-headless"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]}}"#,
    );
    let out = |args: &[&str]| {
        let o = server.kubectl(args);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    // The node starts answering once its pod network is up.
    server.wait_for(30, "kubernetes.default in cluster DNS", || {
        out(&[
            "exec",
            &pods[0],
            "--",
            "busybox",
            "nslookup",
            "kubernetes.default",
        ])
        .contains("10.43.0.1")
    });
    // Reverse: the ClusterIP's name (PTR), as CoreDNS answers in k3s.
    let reverse = out(&["exec", &pods[0], "--", "busybox", "nslookup", "10.43.0.1"]);
    assert!(
        reverse.contains("kubernetes.default.svc.cluster.local"),
        "{reverse}"
    );
    server.wait_for(30, "the headless Service's pods in DNS", || {
        let out = server.kubectl(&[
            "exec",
            &pods[0],
            "--",
            "busybox",
            "nslookup",
            "web-headless.default.svc.cluster.local",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        pods.iter().all(|p| {
            let ip = server.jsonpath(&["get", "pod", p], "{.status.podIP}");
            !ip.is_empty() && text.contains(&ip)
        })
    });
    let body = server.ok(&[
        "exec",
        &pods[0],
        "--",
        "wget",
        "-qO-",
        "http://web-headless:8080/",
    ]);
    assert!(body.starts_with("hello-from-web-"), "{body}");
    let missing = out(&[
        "exec",
        &pods[0],
        "--",
        "busybox",
        "nslookup",
        "nope.default.svc.cluster.local",
    ]);
    assert!(
        missing.contains("NXDOMAIN") || missing.contains("can't find"),
        "{missing}"
    );
}

/// The two `web` pods, Ready, behind a ClusterIP Service `web` on port 80.
fn web_behind_a_service(server: &Server) -> Vec<String> {
    server.ok_stdin(&["apply", "-f", "-"], WEB);
    server.ok(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    wait_ready(server, "app=web", 2)
}

/// A host whose iptables FORWARD policy is DROP (as Docker leaves it):
/// kelp adds flannel's two ACCEPT rules for the cluster CIDR, so routed
/// pod traffic (here pod → Service → pod) still flows.
#[test]
fn a_forward_drop_policy_does_not_cut_pods_off() {
    let server = Server::start_node_on(
        common::cluster::UPLINK_IP,
        |_| {
            common::cluster::add_uplink();
            let status = Command::new("iptables")
                .args(["-w", "-P", "FORWARD", "DROP"])
                .status()
                .expect("iptables (package iptables) runs");
            assert!(status.success(), "iptables -P FORWARD DROP");
        },
        &[],
    );
    let pods = web_behind_a_service(&server);
    let rules = || {
        let out = Command::new("iptables")
            .args(["-w", "-S", "FORWARD"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    server.wait_for(30, "kelp's FORWARD accept rules", || {
        rules().matches("kelp: pod traffic").count() == 2
    });
    let listed = rules();
    assert!(listed.contains("-P FORWARD DROP"), "{listed}");
    assert!(
        listed.contains("-s 10.42.0.0/16") && listed.contains("-d 10.42.0.0/16"),
        "{listed}"
    );
    // Bounded: a dropped packet would leave wget waiting for minutes.
    for _ in 0..6 {
        let body = server.ok(&[
            "exec",
            &pods[0],
            "--",
            "busybox",
            "timeout",
            "10",
            "wget",
            "-qO-",
            "http://web/",
        ]);
        assert!(body.starts_with("hello-from-web-"), "{body}");
    }
    // `kelp reset` takes them out again (and stops the node).
    let d = server.dir.path();
    let out = Command::new(env!("CARGO_BIN_EXE_kelp"))
        .arg("reset")
        .arg("--data-dir")
        .arg(d.join("data"))
        .arg("--run-dir")
        .arg(d.join("run"))
        .arg("--pod-log-dir")
        .arg(d.join("pod-logs"))
        .output()
        .expect("kelp reset");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("the FORWARD accept rules"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!rules().contains("kelp: pod traffic"), "{}", rules());
}

/// `--flannel-backend=none`: pods get their network from the CNI plugins
/// configured in `<data>/agent/etc/cni/net.d` (here Debian's bridge and
/// host-local), and Services and DNS still work.
#[test]
fn byo_cni_networks_pods_with_the_bridge_plugin() {
    assert!(
        std::path::Path::new("/usr/lib/cni/bridge").is_file(),
        "the CNI bridge plugin is missing: apt-get install containernetworking-plugins (./tests/run.sh does this)"
    );
    let server = Server::start_node(&["--flannel-backend", "none"]);
    let agent = server.data_dir().join("agent");
    let conf_dir = agent.join("etc/cni/net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "byo",
        "plugins": [{
            "type": "bridge", "bridge": "cni0", "isGateway": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.88.0.0/16"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": agent.join("cni/ipam"),
            },
        }],
    });
    std::fs::write(conf_dir.join("10-byo.conflist"), conf.to_string()).unwrap();
    let pods = web_behind_a_service(&server);
    let ips: Vec<String> = pods
        .iter()
        .map(|p| server.jsonpath(&["get", "pod", p], "{.status.podIP}"))
        .collect();
    assert!(ips.iter().all(|ip| ip.starts_with("10.88.")), "{ips:?}");
    let exec = |pod: &str, url: &str| {
        server
            .ok(&["exec", pod, "--", "wget", "-qO-", url])
            .trim()
            .to_string()
    };
    assert_eq!(
        exec(&pods[0], &format!("http://{}:8080/", ips[1])),
        format!("hello-from-{}", pods[1])
    );
    let body = exec(&pods[0], "http://web.default.svc.cluster.local/");
    assert!(body.starts_with("hello-from-web-"), "{body:?}");
    // Deleting a pod runs the plugins' DEL: host-local frees its address.
    let ipam_dir = agent.join("cni/ipam/byo");
    let held = || {
        std::fs::read_dir(&ipam_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("10.88."))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(held(), 2);
    // The Deployment and ReplicaSet go first, so that nothing replaces
    // the pods, which then stop at once rather than after 30 s.
    server.ok(&["delete", "deployment", "web", "--cascade=orphan"]);
    server.ok(&["delete", "rs", "-l", "app=web", "--cascade=orphan"]);
    server.ok(&["delete", "pods", "-l", "app=web", "--grace-period=1"]);
    server.wait_for(60, "host-local addresses released", || held() == 0);
}

#[test]
fn deployment_runs_and_kubectl_logs_exec_port_forward_and_cp_work() {
    let server = Server::start_node(&[]);
    server.ok_stdin(&["apply", "-f", "-"], WEB);
    let pods = wait_ready(&server, "app=web", 2);
    let pod = &pods[0];

    // logs
    let logs = server.ok(&["logs", pod]);
    assert!(logs.contains("started"), "{logs}");
    kubelet_api_is_authorized(&server, pod);
    pods_reach_each_other_by_ip(&server, &pods);
    // exec: /etc/hostname is the pod name; exit codes come through.
    assert_eq!(
        server
            .ok(&["exec", pod, "--", "cat", "/etc/hostname"])
            .trim(),
        pod.as_str()
    );
    let out = server.kubectl(&["exec", pod, "--", "sh", "-c", "echo to-stderr >&2; exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-stderr"));
    // stdin goes through
    let echoed = server.ok_stdin(&["exec", "-i", pod, "--", "cat"], "via-stdin\n");
    assert_eq!(echoed, "via-stdin\n");

    // port-forward to the pod's port 8080 (inside its network namespace)
    let local = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut forward = Command::new(kubectl_path())
        .args(["--kubeconfig"])
        .arg(&server.kubeconfig)
        .args([
            "port-forward",
            &format!("pod/{pod}"),
            &format!("{local}:8080"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = String::new();
    server.wait_for(30, "port-forward answers", || {
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", local)) else {
            return false;
        };
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = conn.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n");
        body.clear();
        let _ = conn.read_to_string(&mut body);
        body.contains("hello-from-")
    });
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(body.contains(&format!("hello-from-{pod}")), "{body}");

    // The apiserver proxies to a pod's port, and to a Service's named port.
    let proxied = server.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{pod}:8080/proxy/index.html"),
    ]);
    assert_eq!(proxied.trim(), format!("hello-from-{pod}"));
    server.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "proxied"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}"#,
    );
    server.wait_for(30, "the service proxy answers", || {
        server
            .kubectl(&[
                "get",
                "--raw",
                "/api/v1/namespaces/default/services/http:proxied:http/proxy/index.html",
            ])
            .stdout
            .starts_with(b"hello-from-web-")
    });

    // cp both ways (kubectl cp runs tar in the container)
    let local_file = server.dir.path().join("upload.txt");
    std::fs::write(&local_file, "copied-in\n").unwrap();
    server.ok(&[
        "cp",
        local_file.to_str().unwrap(),
        &format!("{pod}:/tmp/upload.txt"),
    ]);
    assert_eq!(
        server.ok(&["exec", pod, "--", "cat", "/tmp/upload.txt"]),
        "copied-in\n"
    );
    let back = server.dir.path().join("index.html");
    server.ok(&[
        "cp",
        &format!("{pod}:/www/index.html"),
        back.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&back).unwrap().trim(),
        format!("hello-from-{pod}")
    );

    // kubectl run -i: stdin reaches the container's main process (attach)
    // and its output comes back; --rm deletes the pod afterwards.
    let out = server.ok_stdin(
        &[
            "run",
            "reader",
            "-i",
            "--rm",
            "--restart=Never",
            "--image=busybox",
            "--image-pull-policy=Never",
            "--",
            "sh",
            "-c",
            "read line; echo got-$line",
        ],
        "hello\n",
    );
    assert!(out.contains("got-hello"), "{out}");

    // logs -f follows until the container exits
    server.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "counter"}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
            "command": ["sh", "-c", "sleep 2; for i in 1 2 3; do echo line-$i; sleep 1; done"]}]}}"#,
    );
    server.wait_for(60, "counter running", || {
        server.jsonpath(&["get", "pod", "counter"], "{.status.phase}") == "Running"
    });
    let followed = server.ok(&["logs", "-f", "counter"]);
    assert_eq!(followed, "line-1\nline-2\nline-3\n");
    server.wait_for(30, "counter succeeded", || {
        server.jsonpath(&["get", "pod", "counter"], "{.status.phase}") == "Succeeded"
    });
    let reason = server.jsonpath(
        &["get", "pod", "counter"],
        "{.status.containerStatuses[0].state.terminated.reason}",
    );
    assert_eq!(reason, "Completed");

    // The kubelet writes pod status as `kubelet` (its field manager).
    let managers = server.jsonpath(&["get", "pod", pod], "{.metadata.managedFields[*].manager}");
    assert!(managers.split(' ').any(|m| m == "kubelet"), "{managers}");

    // kubectl debug adds an ephemeral container the kubelet runs in the
    // pod's namespaces.
    server.ok(&[
        "debug",
        pod,
        "--image=busybox",
        "--image-pull-policy=Never",
        "-c",
        "dbg",
        "--",
        "sh",
        "-c",
        "hostname > /tmp/seen; sleep 300",
    ]);
    server.wait_for(60, "the ephemeral container running", || {
        !server
            .jsonpath(
                &["get", "pod", pod],
                "{.status.ephemeralContainerStatuses[0].state.running.startedAt}",
            )
            .is_empty()
    });
    assert_eq!(
        server
            .ok(&["exec", pod, "-c", "dbg", "--", "cat", "/tmp/seen"])
            .trim(),
        pod.as_str()
    );
    let err = server.fails(&["debug", pod, "--image=busybox", "-c", "dbg"]);
    assert!(err.contains("dbg"), "{err}");
}

#[test]
fn probes_restart_limits_volumes_and_graceful_delete() {
    let server = Server::start_node(&[]);
    server.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
    ]);
    server.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ]);
    server.ok_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "1000"]
    livenessProbe:
      exec: {command: ["cat", "/nonexistent"]}
      periodSeconds: 1
      failureThreshold: 1
  terminationGracePeriodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"]
    resources: {limits: {memory: 32Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: consumer}
spec:
  terminationGracePeriodSeconds: 3
  volumes:
  - {name: cm, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds}}
  - {name: scratch, emptyDir: {}}
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
    env:
    - {name: COLOR, valueFrom: {configMapKeyRef: {name: settings, key: color}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    envFrom:
    - secretRef: {name: creds}
    volumeMounts:
    - {name: cm, mountPath: /etc/settings}
    - {name: sec, mountPath: /etc/creds}
    - {name: scratch, mountPath: /scratch}
---
apiVersion: v1
kind: Pod
metadata: {name: initialized}
spec:
  volumes:
  - {name: shared, emptyDir: {medium: Memory}}
  - name: token
    projected:
      sources:
      - serviceAccountToken: {path: token, audience: e2e}
      - downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  initContainers:
  - name: first
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "echo from-init > /shared/msg"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "1000"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
    - {name: token, mountPath: /var/run/secrets/e2e}
"#,
    );
    // init containers run first; emptyDir (Memory) is shared; a projected
    // service-account token and downward API file are mounted
    server.wait_for(60, "initialized running", || {
        server.jsonpath(&["get", "pod", "initialized"], "{.status.phase}") == "Running"
    });
    assert_eq!(
        server.jsonpath(
            &["get", "pod", "initialized"],
            "{.status.initContainerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );
    assert_eq!(
        server.ok(&["exec", "initialized", "--", "cat", "/shared/msg"]),
        "from-init\n"
    );
    let mounts = server.ok(&["exec", "initialized", "--", "cat", "/proc/mounts"]);
    let shared = mounts
        .lines()
        .find(|l| l.contains(" /shared "))
        .unwrap_or_default();
    assert!(shared.starts_with("tmpfs "), "{mounts}");
    let token = server.ok(&[
        "exec",
        "initialized",
        "--",
        "cat",
        "/var/run/secrets/e2e/token",
    ]);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    // every pod gets its service account's credentials where in-cluster
    // clients look (the ServiceAccount admission plugin's volume)
    let sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let ns = server.ok(&[
        "exec",
        "initialized",
        "--",
        "cat",
        &format!("{sa_dir}/namespace"),
    ]);
    assert_eq!(ns, "default");
    let ca = server.ok(&[
        "exec",
        "initialized",
        "--",
        "cat",
        &format!("{sa_dir}/ca.crt"),
    ]);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let sa_token = server.ok(&[
        "exec",
        "initialized",
        "--",
        "cat",
        &format!("{sa_dir}/token"),
    ]);
    // the token alone (no client certificate) authenticates against the
    // apiserver as the pod's service account, bound to the pod; RBAC gives
    // the default account nothing beyond discovery and self-review
    let as_pod = |args: &[&str]| {
        Command::new(kubectl_path())
            .args(["--kubeconfig", "/dev/null", "--insecure-skip-tls-verify"])
            .arg(format!("--server=https://127.0.0.1:{}", server.port))
            .arg(format!("--token={}", sa_token.trim()))
            .args(args)
            .output()
            .unwrap()
    };
    let whoami = as_pod(&["auth", "whoami", "-o", "jsonpath={.status.userInfo}"]);
    let info = String::from_utf8_lossy(&whoami.stdout);
    assert!(
        info.contains("system:serviceaccount:default:default")
            && info.contains("authentication.kubernetes.io/pod-name")
            && info.contains("initialized"),
        "{info} {}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    let seen = as_pod(&["get", "namespace", "default", "-o", "name"]);
    assert!(
        String::from_utf8_lossy(&seen.stderr).contains(
            "namespaces \"default\" is forbidden: User \"system:serviceaccount:default:default\""
        ),
        "{}",
        String::from_utf8_lossy(&seen.stderr)
    );

    // configMap/secret volumes and env
    server.wait_for(60, "consumer running", || {
        server.jsonpath(&["get", "pod", "consumer"], "{.status.phase}") == "Running"
    });
    assert_eq!(
        server.ok(&[
            "exec",
            "consumer",
            "--",
            "cat",
            "/etc/settings/color",
            "/etc/creds/password"
        ]),
        "blues3cret"
    );
    let env = server.ok(&[
        "exec",
        "consumer",
        "--",
        "sh",
        "-c",
        "echo $COLOR $password $POD_NAME",
    ]);
    assert_eq!(env.trim(), "blue s3cret consumer");
    server.ok(&["exec", "consumer", "--", "sh", "-c", "echo hi > /scratch/f"]);

    // a failing liveness probe restarts the container, then CrashLoopBackOff
    server.wait_for(90, "CrashLoopBackOff", || {
        let restarts: i64 = server
            .jsonpath(
                &["get", "pod", "unhealthy"],
                "{.status.containerStatuses[0].restartCount}",
            )
            .parse()
            .unwrap_or(0);
        let waiting = server.jsonpath(
            &["get", "pod", "unhealthy"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        restarts >= 2 && waiting == "CrashLoopBackOff"
    });
    let events = server.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=unhealthy",
    ]);
    assert!(
        events.contains("Unhealthy") && events.contains("Liveness probe failed"),
        "{events}"
    );
    // the previous attempt's log is still there; a pod that never restarted has none
    server.ok(&["logs", "unhealthy", "--previous"]);
    let err = server.fails(&["logs", "initialized", "-c", "c", "--previous"]);
    assert!(err.contains("previous terminated container"), "{err}");

    // over its memory limit: OOMKilled
    server.wait_for(90, "hog OOMKilled", || {
        server.jsonpath(
            &["get", "pod", "hog"],
            "{.status.containerStatuses[0].state.terminated.reason}",
        ) == "OOMKilled"
    });
    assert_eq!(
        server.jsonpath(&["get", "pod", "hog"], "{.status.phase}"),
        "Failed"
    );
    assert_eq!(
        server.jsonpath(
            &["get", "pod", "hog"],
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "137"
    );

    // delete: the container ignores SIGTERM, so it is SIGKILLed after its 3 s grace
    let id = server.jsonpath(
        &["get", "pod", "consumer"],
        "{.status.containerStatuses[0].containerID}",
    );
    let id = id.trim_start_matches("containerd://").to_string();
    assert!(!id.is_empty());
    let started = std::time::Instant::now();
    server.ok(&["delete", "pod", "consumer", "--timeout=60s"]);
    let took = started.elapsed();
    assert!(
        server.kubectl(&["get", "pod", "consumer"]).status.code() == Some(1),
        "pod object is gone"
    );
    // No process of that container is left.
    let leftovers = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("cgroup"))
                .unwrap_or_default()
                .contains(&id)
        })
        .count();
    assert_eq!(leftovers, 0, "container processes left after delete");
    eprintln!("graceful delete of a TERM-ignoring container with a 3 s grace took {took:?}");
}

#[test]
fn restarting_kelp_keeps_pods_running_and_static_pods_get_mirrors() {
    let mut server = Server::start_node(&[]);
    std::fs::create_dir_all(server.dir.path().join("data/agent/pod-manifests")).unwrap();
    std::fs::write(
        server.dir.path().join("data/agent/pod-manifests/static-web.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  namespace: kube-system\nspec:\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolicy: Never\n    command: [\"sleep\", \"100000\"]\n",
    )
    .unwrap();
    server.ok_stdin(&["apply", "-f", "-"], WEB);
    let pods = wait_ready(&server, "app=web", 2);
    server.wait_for(60, "static pod mirror running", || {
        server.jsonpath(
            &["get", "pod", "-n", "kube-system", "static-web-kelp-e2e"],
            "{.status.phase}",
        ) == "Running"
    });
    let mirror = server.jsonpath(
        &["get", "pod", "-n", "kube-system", "static-web-kelp-e2e"],
        "{.metadata.annotations}",
    );
    assert!(mirror.contains("kubernetes.io/config.mirror"), "{mirror}");
    let ids_before = server.jsonpath(
        &["get", "pods", "-l", "app=web"],
        "{.items[*].status.containerStatuses[0].containerID}",
    );
    let ips_before = server.jsonpath(
        &["get", "pods", "-l", "app=web"],
        "{.items[*].status.podIP}",
    );

    server.kill_and_restart();
    // The old status still says Ready; wait for the new kubelet itself
    // (through the apiserver's nodes/proxy).
    server.wait_for(60, "kubelet healthz", || {
        server
            .kubectl(&["get", "--raw", "/api/v1/nodes/kelp-e2e/proxy/healthz"])
            .status
            .success()
    });
    // Same containers, never restarted, still Ready.
    let after = wait_ready(&server, "app=web", 2);
    assert_eq!(after, pods);
    let ids_after = server.jsonpath(
        &["get", "pods", "-l", "app=web"],
        "{.items[*].status.containerStatuses[0].containerID}",
    );
    assert_eq!(ids_after, ids_before);
    // Their addresses are kept (IPAM is on disk), and still reach them.
    let ips_after = server.jsonpath(
        &["get", "pods", "-l", "app=web"],
        "{.items[*].status.podIP}",
    );
    assert_eq!(ips_after, ips_before);
    let second_ip = ips_after.split(' ').nth(1).unwrap_or_default().to_string();
    let body = server.ok(&[
        "exec",
        &pods[0],
        "--",
        "wget",
        "-qO-",
        &format!("http://{second_ip}:8080/"),
    ]);
    assert!(body.starts_with("hello-from-"), "{body}");
    let restarts = server.jsonpath(
        &["get", "pods", "-l", "app=web"],
        "{.items[*].status.containerStatuses[0].restartCount}",
    );
    assert_eq!(restarts, "0 0");
    assert_eq!(
        server
            .ok(&["exec", &pods[0], "--", "cat", "/etc/hostname"])
            .trim(),
        pods[0]
    );

    // Removing the manifest stops the static pod and its mirror goes.
    std::fs::remove_file(
        server
            .dir
            .path()
            .join("data/agent/pod-manifests/static-web.yaml"),
    )
    .unwrap();
    server.wait_for(60, "mirror pod removed", || {
        server
            .kubectl(&["get", "pod", "-n", "kube-system", "static-web-kelp-e2e"])
            .status
            .code()
            == Some(1)
    });
}

/// A container that exited gives back its runtime resources at once (the
/// task is deleted: no shim, no rootfs mount), while its exit code, status
/// and logs stay, also across a kelp restart. A deleted pod's log
/// directory goes with it.
#[test]
fn exited_containers_release_shim_and_rootfs_but_keep_status_and_logs() {
    let mut server = Server::start_node(&[]);
    server.ok_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: done}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "echo finished-output; exit 3"]
"#,
    );
    server.wait_for(60, "pod done Failed", || {
        server.jsonpath(&["get", "pod", "done"], "{.status.phase}") == "Failed"
    });
    let id = server
        .jsonpath(
            &["get", "pod", "done"],
            "{.status.containerStatuses[0].containerID}",
        )
        .trim_start_matches("containerd://")
        .to_string();
    assert!(!id.is_empty());
    let shim_for = |id: &str| {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .any(|cmd| cmd.contains("containerd-shim") && cmd.contains(id))
    };
    let mounted = |id: &str| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(id) && l.contains("rootfs"))
    };
    server.wait_for(30, "the exited task released", || {
        !shim_for(&id) && !mounted(&id)
    });
    let exit = |s: &Server| {
        s.jsonpath(
            &["get", "pod", "done"],
            "{.status.containerStatuses[0].state.terminated.exitCode}",
        )
    };
    assert_eq!(exit(&server), "3");
    assert_eq!(server.ok(&["logs", "done"]).trim(), "finished-output");
    // After a restart, the exit is read back from the container record.
    server.kill_and_restart();
    server.wait_node_ready();
    std::thread::park_timeout(Duration::from_secs(2));
    assert_eq!(exit(&server), "3");
    assert_eq!(
        server.jsonpath(
            &["get", "pod", "done"],
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Error"
    );
    assert_eq!(server.ok(&["logs", "done"]).trim(), "finished-output");
    let uid = server.jsonpath(&["get", "pod", "done"], "{.metadata.uid}");
    let logs = server
        .dir
        .path()
        .join("pod-logs")
        .join(format!("default_done_{uid}"));
    assert!(
        logs.exists(),
        "{} exists while the pod does",
        logs.display()
    );
    server.ok(&["delete", "pod", "done", "--wait=true"]);
    server.wait_for(30, "the pod's log directory removed", || !logs.exists());
}
