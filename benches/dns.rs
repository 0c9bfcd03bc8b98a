//! Node-local cluster DNS under load: a node with 1 000 Services, and
//! clients on the node sending A queries for random Service names to
//! `--cluster-dns` (10.43.0.10) over UDP, each waiting for its answer before
//! the next (a closed loop, like resolvers in pods). Prints queries/s and
//! the latency p50/p99. Needs root, containerd and runc (a real node in a
//! network namespace of its own).
//!
//! `cargo bench --bench dns`

mod common;
#[allow(unused_imports)]
#[path = "../tests/common/mod.rs"]
mod testkit;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use testkit::cluster::Server;

/// Services at full scale.
const FULL_SERVICES: usize = 1_000;
/// Queries at full scale.
const FULL_QUERIES: usize = 200_000;
/// Clients querying at once.
const CLIENTS: usize = 4;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One A query for `name`; its latency in µs, or None without a
/// NOERROR answer holding a record.
fn ask(socket: &UdpSocket, id: u16, name: &str) -> Option<f64> {
    let mut q = Message::query();
    q.metadata.id = id;
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).ok()?, RecordType::A));
    let bytes = q.to_bytes().ok()?;
    let started = Instant::now();
    socket.send(&bytes).ok()?;
    let mut buf = [0u8; 1500];
    loop {
        let n = socket.recv(&mut buf).ok()?;
        let reply = Message::from_bytes(&buf[..n]).ok()?;
        if reply.metadata.id != id {
            continue;
        }
        let ok = reply.metadata.response_code == ResponseCode::NoError && !reply.answers.is_empty();
        return ok.then(|| started.elapsed().as_secs_f64() * 1e6);
    }
}

fn services(count: usize) -> String {
    let items: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i}"), "namespace": "default"},
                "spec": {"ports": [{"port": 80}], "selector": {"app": format!("a{i}")}},
            })
        })
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

fn main() {
    testkit::node::require_node_prerequisites();
    let scale = common::scale();
    let service_count = ((FULL_SERVICES as f64 * scale).round() as usize).max(20);
    let queries = ((FULL_QUERIES as f64 * scale).round() as usize).max(2_000);
    // The node (and so this thread, and the client threads it starts) in a
    // network namespace of its own: 10.43.0.10 is that node's.
    let server = Server::start_node(&[]);
    server.ok_stdin(
        &["apply", "--validate=false", "-f", "-"],
        &services(service_count),
    );
    let probe = UdpSocket::bind("0.0.0.0:0").expect("socket");
    probe
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    probe.connect("10.43.0.10:53").expect("connect");
    let last = format!("svc-{}.default.svc.cluster.local.", service_count - 1);
    server.wait_for(60, "DNS answers for every Service", || {
        ask(&probe, 1, &last).is_some()
    });

    let started = Instant::now();
    let per_client = queries / CLIENTS;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("0.0.0.0:0").expect("socket");
                socket
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                socket.connect("10.43.0.10:53").expect("connect");
                let mut state = 0x9e37_79b9_u32.wrapping_mul(c as u32 + 1);
                let mut times = Vec::with_capacity(per_client);
                let mut failed = 0usize;
                for i in 0..per_client {
                    // xorshift: a cheap spread over the Services.
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    let name = format!(
                        "svc-{}.default.svc.cluster.local.",
                        state as usize % service_count
                    );
                    match ask(&socket, i as u16, &name) {
                        Some(t) => times.push(t),
                        None => failed += 1,
                    }
                }
                (times, failed)
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut failed = 0;
    for c in clients {
        let (t, f) = c.join().expect("client");
        times.extend(t);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    println!(
        "cluster DNS, {service_count} Services, {CLIENTS} clients, {} queries: {:.0} queries/s, p50 {:.0} µs, p99 {:.0} µs, {failed} unanswered",
        times.len() + failed,
        times.len() as f64 / elapsed,
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    assert_eq!(failed, 0, "every query is answered");
}
