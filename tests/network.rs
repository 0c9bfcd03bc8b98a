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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_the_bridge_reach_each_other_and_attaching_is_idempotent() {
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
    let tag = std::process::id();
    let mut spaces = Namespaces(Vec::new());
    for role in ["node", "pod-a", "pod-b"] {
        spaces
            .0
            .push(netns::create(dir(), &format!("kelp-test-{tag}-{role}")).expect("netns"));
    }
    let (node, pod_a, pod_b) = (
        spaces.0[0].clone(),
        spaces.0[1].clone(),
        spaces.0[2].clone(),
    );
    let gateway: ipnet::Ipv4Net = "10.99.0.1/24".parse().unwrap();
    let attach = |ns: PathBuf, host: u8| PodAttachment {
        netns: ns,
        address: format!("10.99.0.{host}/24").parse().unwrap(),
        gateway: gateway.addr(),
        mtu: 1450,
    };
    let (a, b) = (attach(pod_a.clone(), 2), attach(pod_b.clone(), 3));
    let (a2, b2) = (a.clone(), b.clone());
    let veths = links::in_netns(&node, move |h| async move {
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
