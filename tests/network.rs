//! The pod network's links, for real: a bridge and veth pairs programmed
//! over netlink in network namespaces this test creates (a "node" and two
//! "pods"), and TCP between the pods through the bridge. Needs root; fails
//! without it. Everything lives in the test's own namespaces, removed at
//! the end even on failure, so nothing touches the host's network.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kelp::kubelet::netns;
use kelp::network::links::{self, PodAttachment};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Namespaces removed when dropped.
struct Namespaces(Vec<PathBuf>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = netns::remove(ns);
        }
    }
}

fn dir() -> &'static Path {
    Path::new(netns::DEFAULT_NETNS_DIR)
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(
        euid,
        Some("0"),
        "this test programs network namespaces and needs root (run ./tests/run.sh as root)"
    );
}

/// A node namespace with the bridge 10.99.0.1/24 and two pods on it,
/// 10.99.0.2 (a) and 10.99.0.3 (b).
struct TwoPods {
    spaces: Namespaces,
    b: PodAttachment,
    veths: (String, String),
}

impl TwoPods {
    fn node(&self) -> &Path {
        &self.spaces.0[0]
    }
    fn pod_a(&self) -> &Path {
        &self.spaces.0[1]
    }
    fn pod_b(&self) -> &Path {
        &self.spaces.0[2]
    }
}

async fn two_pods(test: &str) -> TwoPods {
    require_root();
    let tag = format!("{}-{test}", std::process::id());
    let mut spaces = Namespaces(Vec::new());
    for role in ["node", "pod-a", "pod-b"] {
        spaces
            .0
            .push(netns::create(dir(), &format!("kelp-test-{tag}-{role}")).expect("netns"));
    }
    let gateway: ipnet::Ipv4Net = "10.99.0.1/24".parse().unwrap();
    let attach = |ns: &Path, host: u8| PodAttachment {
        netns: ns.to_path_buf(),
        address: format!("10.99.0.{host}/24").parse().unwrap(),
        gateway: gateway.addr(),
        mtu: 1450,
    };
    let (a, b) = (attach(&spaces.0[1], 2), attach(&spaces.0[2], 3));
    let _ = &a;
    let (a2, b2) = (a.clone(), b.clone());
    let veths = links::in_netns(&spaces.0[0], move |h| async move {
        let bridge = links::ensure_bridge(&h, gateway, 1450).await?;
        let va = links::attach_pod(&h, bridge, "uid-a", &a2).await?;
        let vb = links::attach_pod(&h, bridge, "uid-b", &b2).await?;
        // Again, as after a kelp restart: nothing changes, nothing fails.
        assert_eq!(links::ensure_bridge(&h, gateway, 1450).await?, bridge);
        assert_eq!(links::attach_pod(&h, bridge, "uid-a", &a2).await?, va);
        Ok((va, vb))
    })
    .await
    .expect("program the node");
    TwoPods { spaces, b, veths }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_the_bridge_reach_each_other_and_attaching_is_idempotent() {
    let pods = two_pods("bridge").await;
    let (node, pod_a, pod_b) = (
        pods.node().to_path_buf(),
        pods.pod_a().to_path_buf(),
        pods.pod_b().to_path_buf(),
    );
    let veths = pods.veths.clone();
    let b = pods.b.clone();
    assert_ne!(veths.0, veths.1);

    // TCP from pod a to pod b's address, across the bridge.
    let listener = netns::bind_tcp(&pod_b, SocketAddr::from((Ipv4Addr::new(10, 99, 0, 3), 0)))
        .await
        .expect("listen in pod b");
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut conn, peer) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).await.expect("read");
        conn.write_all(b"pong").await.expect("write");
        (peer, buf)
    });
    let mut conn = netns::connect_tcp(
        &pod_a,
        SocketAddr::from((Ipv4Addr::new(10, 99, 0, 3), port)),
        Duration::from_secs(5),
    )
    .await
    .expect("connect from pod a to pod b");
    conn.write_all(b"ping!").await.unwrap();
    let mut reply = [0u8; 4];
    conn.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"pong");
    let (peer, got) = server.await.unwrap();
    assert_eq!(&got, b"ping!");
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)),
        "pod a's own address, no NAT"
    );

    // Inside a pod: eth0 with the MTU, and the default route via the bridge.
    let inside = links::in_netns(&pod_a, |h| async move {
        Ok(links::link_index(&h, links::POD_INTERFACE).await?.is_some())
    })
    .await
    .unwrap();
    assert!(inside, "eth0 in pod a");

    // Detaching removes the pair; pod b is then unreachable.
    links::in_netns(
        &node,
        |h| async move { links::detach_pod(&h, "uid-b").await },
    )
    .await
    .expect("detach");
    let gone = links::in_netns(&node, move |h| async move {
        Ok(links::link_index(&h, &links::host_veth("uid-b"))
            .await?
            .is_none())
    })
    .await
    .unwrap();
    assert!(gone);
    let _ = b;
}

/// Runs `work` on a thread inside `ns` (nftables programs the namespace
/// its socket is opened in).
fn in_ns<T: Send>(ns: &Path, work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(ns).expect("open netns");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            work()
        })
        .join()
        .expect("netns thread")
    })
}

/// The `hairpin-endpoints` set's block in a listing.
fn hairpin_set(listed: &str) -> &str {
    let start = listed
        .find("set hairpin-endpoints {")
        .unwrap_or_else(|| panic!("no hairpin set in {listed}"));
    let block = &listed[start..];
    &block[..block.find('}').unwrap_or(block.len())]
}

fn nft_list(ns: &Path) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["nft", "list", "ruleset"])
        .output()
        .expect("nft (package nftables) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const PROXY_SERVICES: &str = "
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.43.0.20
  ports: [{port: 80, targetPort: 8080, protocol: TCP, nodePort: 30080}]
";

const PROXY_SLICE: &str = "
metadata: {name: web-x, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.99.0.3]
  nodeName: n1
  conditions: {ready: true}
";

/// sessionAffinity ClientIP, in the kernel: a Service over both pods
/// (each answering with its own letter on 8081); ten connections from the
/// node all reach the same pod (at random, all ten alike has odds 1 in
/// 512), and the affinity sets exist.
async fn sticky_sessions_stay_on_one_endpoint(
    pods: &TwoPods,
    ctx: &kelp::network::service_proxy::ProxyContext,
) {
    use kelp::network::service_proxy::{ProxyTable, service_rules};
    let mut servers = Vec::new();
    for (netns, ip, letter) in [
        (pods.pod_a(), Ipv4Addr::new(10, 99, 0, 2), b"a"),
        (pods.pod_b(), Ipv4Addr::new(10, 99, 0, 3), b"b"),
    ] {
        let listener = netns::bind_tcp(netns, SocketAddr::from((ip, 8081)))
            .await
            .expect("listen");
        servers.push(tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let _ = conn.write_all(letter).await;
            }
        }));
    }
    let sticky: k8s_openapi::api::core::v1::Service = serde_yaml::from_str(
        "
metadata: {name: sticky, namespace: default}
spec:
  clusterIP: 10.43.0.22
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8081, protocol: TCP}]
",
    )
    .unwrap();
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_yaml::from_str(
        "
metadata: {name: sticky-x, namespace: default, labels: {kubernetes.io/service-name: sticky}}
addressType: IPv4
ports: [{port: 8081, protocol: TCP}]
endpoints:
- {addresses: [10.99.0.2], nodeName: n1, conditions: {ready: true}}
- {addresses: [10.99.0.3], nodeName: n1, conditions: {ready: true}}
",
    )
    .unwrap();
    // Its own table view: only this Service changes.
    let mut table = ProxyTable::new(ctx.clone(), true);
    let changed: std::collections::HashMap<String, _> = [(
        "default/sticky".to_string(),
        service_rules(&sticky, &[&slice], ctx),
    )]
    .into();
    let batch = table.update(&changed);
    in_ns(pods.node(), move || batch.commit()).expect("commit the sticky Service");
    table.committed(changed);
    let listed = nft_list(pods.node());
    assert_eq!(listed.matches("set affinity-").count(), 2, "{listed}");
    let mut answers = Vec::new();
    for _ in 0..10 {
        let mut conn = netns::connect_tcp(
            pods.node(),
            SocketAddr::from((Ipv4Addr::new(10, 43, 0, 22), 80)),
            Duration::from_secs(5),
        )
        .await
        .expect("connect to the sticky Service");
        let mut letter = [0u8; 1];
        conn.read_exact(&mut letter).await.expect("an answer");
        answers.push(letter[0]);
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    // The Service goes, and its sets with it.
    let gone: std::collections::HashMap<String, _> =
        [("default/sticky".to_string(), Default::default())].into();
    let batch = table.update(&gone);
    in_ns(pods.node(), move || batch.commit()).expect("delete the sticky Service");
    let listed = nft_list(pods.node());
    assert!(
        !listed.contains("affinity-") && !listed.contains("sticky"),
        "{listed}"
    );
    for server in servers {
        server.abort();
    }
}

/// Connects to `to` from inside `from`; the peer address the server saw,
/// or the connect error.
async fn call(
    from: &Path,
    to: SocketAddr,
    peers: &mut tokio::sync::mpsc::UnboundedReceiver<SocketAddr>,
) -> std::io::Result<std::net::IpAddr> {
    let mut conn = netns::connect_tcp(from, to, Duration::from_secs(5)).await?;
    conn.write_all(b"ping!").await?;
    let mut reply = [0u8; 4];
    conn.read_exact(&mut reply).await?;
    assert_eq!(&reply, b"pong");
    let peer = tokio::time::timeout(Duration::from_secs(5), peers.recv())
        .await
        .expect("the server saw the connection")
        .expect("server running");
    Ok(peer.ip())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_proxy_balances_nats_hairpins_and_rejects_through_nftables() {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kelp::network::nftables::Batch;
    use kelp::network::service_proxy::{ProxyContext, ProxyTable, TABLE, service_rules};
    use std::collections::HashMap;

    let pods = two_pods("proxy").await;
    let listener = netns::bind_tcp(
        pods.pod_b(),
        SocketAddr::from((Ipv4Addr::new(10, 99, 0, 3), 8080)),
    )
    .await
    .expect("listen in pod b");
    let (peer_tx, mut peers) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut conn, peer)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 5];
            if conn.read_exact(&mut buf).await.is_ok() {
                let _ = conn.write_all(b"pong").await;
                let _ = peer_tx.send(peer);
            }
        }
    });

    let ctx = ProxyContext {
        node_name: "n1".into(),
        cluster_cidr: "10.99.0.0/16".parse().unwrap(),
        served_locally: None,
    };
    let web: Service = serde_yaml::from_str(PROXY_SERVICES).unwrap();
    let empty: Service = serde_yaml::from_str(
        &PROXY_SERVICES
            .replace("name: web", "name: empty")
            .replace("10.43.0.20", "10.43.0.21")
            .replace("30080", "30081"),
    )
    .unwrap();
    let slice: EndpointSlice = serde_yaml::from_str(PROXY_SLICE).unwrap();
    let mut table = ProxyTable::new(ctx.clone(), true);
    let all: HashMap<String, _> = [
        (
            "default/web".to_string(),
            service_rules(&web, &[&slice], &ctx),
        ),
        (
            "default/empty".to_string(),
            service_rules(&empty, &[], &ctx),
        ),
    ]
    .into();
    // The node's uplink: a veth pair whose far end nobody answers on,
    // holding the default route, as a node's network interface would.
    for args in [
        "link add kelp-ul0 type veth peer name kelp-ul1",
        "addr add 10.200.0.2/24 dev kelp-ul0",
        "link set kelp-ul0 up",
        "link set kelp-ul1 up",
        "route add default via 10.200.0.1",
    ] {
        let status = std::process::Command::new("nsenter")
            .arg(format!("--net={}", pods.node().display()))
            .arg("ip")
            .args(args.split(' '))
            .status()
            .expect("ip (package iproute2) runs");
        assert!(status.success(), "ip {args}");
    }
    let batch = table.full_sync(&all);
    in_ns(pods.node(), move || {
        // As the pod network does on a node: the node routes for its pods.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("ip_forward in the node");
        batch.commit()
    })
    .expect("commit the full table");
    table.committed_full(all);
    let listed = nft_list(pods.node());
    assert!(listed.contains("table ip kelp"), "{listed}");
    assert!(listed.contains("service-ips"), "{listed}");
    // Endpoints live in a data map and the hairpin set, not in chains.
    assert!(listed.contains("map endpoints-"), "{listed}");
    assert!(hairpin_set(&listed).contains("elements"), "{listed}");
    assert!(!listed.contains("chain endpoint-"), "{listed}");

    let cluster_ip = SocketAddr::from((Ipv4Addr::new(10, 43, 0, 20), 80));
    // Pod a reaches pod b through the ClusterIP, keeping its own address.
    let peer = call(pods.pod_a(), cluster_ip, &mut peers)
        .await
        .expect("pod a → ClusterIP");
    assert_eq!(peer, std::net::IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)));
    // Hairpin: pod b reaches itself through its Service, masqueraded to
    // the gateway so that the reply comes back through the node.
    let peer = call(pods.pod_b(), cluster_ip, &mut peers)
        .await
        .expect("hairpin");
    assert_eq!(peer, std::net::IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)));
    // NodePort on the node's own address, from the node.
    let node_port = SocketAddr::from((Ipv4Addr::new(10, 99, 0, 1), 30080));
    call(pods.node(), node_port, &mut peers)
        .await
        .expect("NodePort from the node");
    sticky_sessions_stay_on_one_endpoint(&pods, &ctx).await;
    // A Service without endpoints is refused at once, not left to time out.
    let refused = netns::connect_tcp(
        pods.pod_a(),
        SocketAddr::from((Ipv4Addr::new(10, 43, 0, 21), 80)),
        Duration::from_secs(5),
    )
    .await
    .expect_err("no endpoints");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );

    // The endpoint goes: only that Service's rules change, and it rejects.
    let changed: HashMap<String, _> =
        [("default/web".to_string(), service_rules(&web, &[], &ctx))].into();
    let batch = table.update(&changed);
    in_ns(pods.node(), move || batch.commit()).expect("commit the update");
    table.committed(changed);
    let refused = netns::connect_tcp(pods.pod_a(), cluster_ip, Duration::from_secs(5))
        .await
        .expect_err("endpoint removed");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let listed = nft_list(pods.node());
    assert!(
        !listed.contains("map endpoints-"),
        "endpoint map removed: {listed}"
    );
    assert!(
        !hairpin_set(&listed).contains("elements"),
        "hairpin pair removed: {listed}"
    );
    // And comes back.
    let changed: HashMap<String, _> = [(
        "default/web".to_string(),
        service_rules(&web, &[&slice], &ctx),
    )]
    .into();
    let batch = table.update(&changed);
    in_ns(pods.node(), move || batch.commit()).expect("commit the update");
    table.committed(changed);
    call(pods.pod_a(), cluster_ip, &mut peers)
        .await
        .expect("endpoint back");
    // Deleting the Service leaves nothing of it.
    let changed: HashMap<String, _> = [("default/web".to_string(), Default::default())].into();
    let batch = table.update(&changed);
    in_ns(pods.node(), move || batch.commit()).expect("commit the deletion");
    let listed = nft_list(pods.node());
    assert!(!listed.contains("default/web"), "{listed}");

    // The table goes as a whole.
    let mut reset = Batch::new(TABLE);
    reset.add_table().delete_table();
    in_ns(pods.node(), move || reset.commit()).expect("delete the table");
    assert!(!nft_list(pods.node()).contains("kelp"));
    server.abort();
}

/// TX checksum offload goes off on a VXLAN device over ethtool netlink
/// (flannel's `ethtool -K flannel.1 tx-checksum-ip-generic off`), checked
/// with the real `ethtool`.
#[test]
fn tx_checksum_offload_is_turned_off_over_ethtool_netlink() {
    require_root();
    let ns = Namespaces(vec![
        netns::create(dir(), &format!("kelp-test-{}-ethtool", std::process::id())).expect("netns"),
    ]);
    let ethtool_k = |dev: &str| {
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", ns.0[0].display()))
            .args(["ethtool", "-k", dev])
            .output()
            .expect("ethtool (package ethtool) runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let status = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.0[0].display()))
        .args([
            "ip",
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "1",
            "dstport",
            "8472",
            "nolearning",
        ])
        .status()
        .expect("ip runs");
    assert!(status.success(), "create a vxlan device");
    assert!(
        ethtool_k("vx0").contains("tx-checksum-ip-generic: on"),
        "the kernel's default is on: {}",
        ethtool_k("vx0")
    );
    in_ns(&ns.0[0], || {
        kelp::network::ethtool::disable_features("vx0", &[kelp::network::ethtool::TX_CHECKSUM])
            .expect("features set")
    });
    assert!(
        ethtool_k("vx0").contains("tx-checksum-ip-generic: off"),
        "{}",
        ethtool_k("vx0")
    );
    let err = in_ns(&ns.0[0], || {
        kelp::network::ethtool::disable_features("nope0", &[kelp::network::ethtool::TX_CHECKSUM])
    })
    .expect_err("no such device");
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENODEV), "{err}");
}
