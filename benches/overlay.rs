//! Pod-to-pod TCP across two nodes over the VXLAN overlay, against the same
//! transfer between the two node namespaces directly (the underlay), in
//! one run: throughput and round-trip latency, as ratios. The sender and
//! receiver are this bench's own threads, entered into the two pods'
//! network namespaces (or the two nodes'): the same code on both paths,
//! and only the network differs (busybox's `nc` moves 1 KiB and stops). The target is ≥ 90 % of the
//! underlay's throughput (flannel's VXLAN is commonly 45–90 %). Nodes are
//! the multi-node test harness's: host namespaces on a switch namespace,
//! joined by veth. Needs root, containerd and runc.
//!
//! `cargo bench --bench overlay`

mod common;
#[allow(unused_imports)]
#[path = "../tests/common/mod.rs"]
mod testkit;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use testkit::multi_node::{MultiNode, host_ip};

/// MiB sent per transfer at full scale.
const FULL_MIB: f64 = 2048.0;
/// Transfers per path (the median counts).
const ROUNDS: usize = 3;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sink}
spec:
  nodeName: kelp-e2e
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: source}
spec:
  nodeName: agent-1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sleep", "3600"]}
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `work` on a thread inside the network namespace at `netns`.
fn in_netns<T: Send + 'static>(
    netns: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let netns = netns.to_path_buf();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).expect("netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        work()
    })
}

/// Sends `bytes` from `from` to a receiver in `to` listening on `dest`;
/// MB/s from the first byte sent to the last one received.
fn transfer(to: &Path, from: &Path, dest: SocketAddrV4, bytes: u64) -> f64 {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = in_netns(to, move || {
        let listener = TcpListener::bind(("0.0.0.0", dest.port())).expect("bind");
        ready_tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n as u64,
                Err(e) => panic!("receive: {e}"),
            }
        }
        (got, Instant::now())
    });
    ready_rx.recv().expect("receiver ready");
    let sender = in_netns(from, move || {
        let mut conn = TcpStream::connect(dest).expect("connect");
        let buf = vec![0x5au8; 1 << 20];
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < bytes {
            let n = (bytes - sent).min(buf.len() as u64) as usize;
            conn.write_all(&buf[..n]).expect("send");
            sent += n as u64;
        }
        conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
        started
    });
    let started = sender.join().expect("sender");
    let (got, finished) = receiver.join().expect("receiver");
    assert_eq!(got, bytes, "every byte arrives");
    bytes as f64 / (finished - started).as_secs_f64() / 1e6
}

/// Median round trip (µs) of `n` one-byte request/answer exchanges on
/// one connection (Nagle off).
fn round_trip(to: &Path, from: &Path, dest: SocketAddrV4, n: usize) -> f64 {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let echo = in_netns(to, move || {
        let listener = TcpListener::bind(("0.0.0.0", dest.port())).expect("bind");
        ready_tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_nodelay(true).expect("nodelay");
        let mut b = [0u8; 1];
        while conn.read_exact(&mut b).is_ok() {
            conn.write_all(&b).expect("echo");
        }
    });
    ready_rx.recv().expect("echo ready");
    let client = in_netns(from, move || {
        let mut conn = TcpStream::connect(dest).expect("connect");
        conn.set_nodelay(true).expect("nodelay");
        let mut b = [1u8; 1];
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            conn.write_all(&b).expect("ping");
            conn.read_exact(&mut b).expect("pong");
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times
    });
    let times = client.join().expect("client");
    echo.join().expect("echo");
    median(times)
}

fn main() {
    testkit::node::require_node_prerequisites();
    let mib = (FULL_MIB * common::scale()).max(64.0).round() as u64;
    let bytes = mib << 20;
    let cluster = MultiNode::start(1, &[]);
    cluster.server.ok_stdin(&["apply", "-f", "-"], PODS);
    cluster.server.wait_for(60, "pods Running", || {
        cluster
            .server
            .jsonpath(&["get", "pods"], "{.items[*].status.phase}")
            == "Running Running"
    });
    let pod = |name: &str| -> (PathBuf, std::net::Ipv4Addr) {
        let uid = cluster
            .server
            .jsonpath(&["get", "pod", name], "{.metadata.uid}");
        let ip = cluster
            .server
            .jsonpath(&["get", "pod", name], "{.status.podIP}");
        (
            PathBuf::from(format!("/run/netns/kelp-{uid}")),
            ip.parse().expect("pod IP"),
        )
    };
    let (sink_ns, sink_ip) = pod("sink");
    let (source_ns, _) = pod("source");
    let server_host = cluster.server_netns();
    let agent_host = cluster.agents[0].netns.clone();
    let underlay_ip: std::net::Ipv4Addr = host_ip(0).parse().expect("host IP");
    let mut pod_rates = Vec::new();
    let mut host_rates = Vec::new();
    for round in 0..ROUNDS {
        let port = 5000 + round as u16;
        pod_rates.push(transfer(
            &sink_ns,
            &source_ns,
            SocketAddrV4::new(sink_ip, port),
            bytes,
        ));
        host_rates.push(transfer(
            &server_host,
            &agent_host,
            SocketAddrV4::new(underlay_ip, port),
            bytes,
        ));
        println!(
            "round {round}: pod→pod over VXLAN {:.0} MB/s, node→node {:.0} MB/s",
            pod_rates[round], host_rates[round]
        );
    }
    let (pod_rate, host_rate) = (median(pod_rates), median(host_rates));
    println!(
        "throughput ({mib} MiB per transfer, median of {ROUNDS}): pod→pod over VXLAN {pod_rate:.0} MB/s, node→node {host_rate:.0} MB/s, ratio {:.2} (target ≥ 0.90)",
        pod_rate / host_rate
    );
    let exchanges = ((20_000.0 * common::scale()) as usize).max(500);
    let pod_rtt = round_trip(
        &sink_ns,
        &source_ns,
        SocketAddrV4::new(sink_ip, 6000),
        exchanges,
    );
    let host_rtt = round_trip(
        &server_host,
        &agent_host,
        SocketAddrV4::new(underlay_ip, 6000),
        exchanges,
    );
    println!(
        "round trip (median of {exchanges} one-byte TCP exchanges): pod→pod {pod_rtt:.1} µs, node→node {host_rtt:.1} µs, ratio {:.2}",
        pod_rtt / host_rtt
    );
}
