//! Service proxy figures: 5 000 Services with 10 endpoints each (50 000
//! endpoints), programmed into kelp's nftables table in a network
//! namespace this benchmark creates. It prints the full resync (rules
//! computed, encoded and committed in one transaction, with the process's
//! CPU time, the kernel's work included), the table's size, and the
//! latency of single EndpointSlice changes from the changed object to the
//! kernel's acknowledgement of the rule (p50/p99; target p99 ≤ 50 ms):
//! 200 that replace the endpoints' addresses (a rollout), and 200 that
//! add or remove one endpoint (a scale), which rewrites the rule.
//! The informer's delivery of the change is not included: the api bench
//! measures watch delivery. Needs root.
//!
//! `cargo bench --bench service_proxy`

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kelp::network::service_proxy::{ProxyContext, ProxyTable, service_rules};

const FULL_SERVICES: usize = 5000;
const ENDPOINTS_PER_SERVICE: usize = 10;
const FULL_CHANGES: usize = 200;

fn service(i: usize) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": format!("ns-{}", i % 50)},
        "spec": {
            "type": if i.is_multiple_of(10) { "NodePort" } else { "ClusterIP" },
            "clusterIP": format!("10.43.{}.{}", 1 + i / 250, i % 250 + 1),
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30000 + i / 10}],
        },
    }))
    .expect("service")
}

fn slice(i: usize, generation: usize) -> EndpointSlice {
    slice_of(i, generation, ENDPOINTS_PER_SERVICE)
}

/// Service `i`'s slice with `count` endpoints; `generation` moves their
/// addresses (a rollout replaces pods).
fn slice_of(i: usize, generation: usize, count: usize) -> EndpointSlice {
    let endpoints: Vec<_> = (0..count)
        .map(|e| {
            let n = i * ENDPOINTS_PER_SERVICE + e + generation * 7;
            serde_json::json!({
                "addresses": [format!("10.42.{}.{}", (n / 250) % 256, n % 250 + 2)],
                "nodeName": format!("node-{}", n % 20),
                "conditions": {"ready": true},
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("svc-{i}-x"),
            "namespace": format!("ns-{}", i % 50),
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

fn cpu_seconds() -> f64 {
    common::cpu_seconds(std::process::id())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn main() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "the service proxy benchmark programs nftables in a network namespace: run it as root"
    );
    let scale = common::scale();
    let services = ((FULL_SERVICES as f64 * scale) as usize).max(10);
    let changes = ((FULL_CHANGES as f64 * scale) as usize).max(10);
    // Everything happens in a namespace of the benchmark's own.
    let _netns = kelp::kubelet::netns::EnteredNetns::new(
        std::path::Path::new(kelp::kubelet::netns::DEFAULT_NETNS_DIR),
        &format!("kelp-bench-proxy-{}", std::process::id()),
    )
    .expect("a network namespace for the benchmark");
    let ctx = ProxyContext {
        node_name: "node-0".into(),
        cluster_cidr: "10.42.0.0/16".parse().unwrap(),
        served_locally: None,
    };
    let objects: Vec<(String, Service, EndpointSlice)> = (0..services)
        .map(|i| {
            let svc = service(i);
            let key = format!("ns-{}/svc-{i}", i % 50);
            (key, svc, slice(i, 0))
        })
        .collect();
    println!(
        "service proxy benchmark: {services} Services x {ENDPOINTS_PER_SERVICE} endpoints (scale {scale})"
    );

    let mut table = ProxyTable::new(ctx.clone(), true);
    let cpu = cpu_seconds();
    let started = Instant::now();
    let all: HashMap<String, _> = objects
        .iter()
        .map(|(k, s, e)| (k.clone(), service_rules(s, &[e], &ctx)))
        .collect();
    let computed = started.elapsed();
    let batch = table.full_sync(&all);
    let (messages, bytes) = (batch.len(), batch.encoded_len());
    batch.commit().expect("commit the full table");
    let full = started.elapsed();
    let cpu = cpu_seconds() - cpu;
    table.committed_full(all);
    let (chains, rules, elements) = table.size();
    println!(
        "full resync                        {:>8.1} ms (rules computed in {:.1} ms), CPU {:.2} s",
        full.as_secs_f64() * 1e3,
        computed.as_secs_f64() * 1e3,
        cpu
    );
    println!(
        "rule set                           {chains} chains, {rules} rules, {elements} map elements; {messages} messages, {:.1} MiB",
        bytes as f64 / (1 << 20) as f64
    );

    // Pods replaced (same number of endpoints, new addresses), then
    // scaled (one endpoint more or less): the rule changes only then.
    for (label, count_of) in [
        (
            "EndpointSlice change (new addresses)",
            (|_| ENDPOINTS_PER_SERVICE) as fn(usize) -> usize,
        ),
        ("EndpointSlice change (scaled +-1)   ", |n| {
            ENDPOINTS_PER_SERVICE + 1 - n % 2 * 2
        }),
    ] {
        let mut latencies = Vec::with_capacity(changes);
        for n in 0..changes {
            let i = (n * 7919) % services;
            let (key, svc, _) = &objects[i];
            let changed_slice = slice_of(i, n + 1, count_of(n));
            let started = Instant::now();
            let changed: HashMap<String, _> =
                [(key.clone(), service_rules(svc, &[&changed_slice], &ctx))].into();
            let batch = table.update(&changed);
            batch.commit().expect("commit an update");
            latencies.push(started.elapsed());
            table.committed(changed);
        }
        latencies.sort();
        println!(
            "{label} -> rule live  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {changes} changes (target p99 <= 50 ms)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
    }
}
