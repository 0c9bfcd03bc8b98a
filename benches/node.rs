//! Node agent figures: cold start to node Ready, pod startup latency
//! (create → Running seen by a watch) for 30 pods on one node with the image
//! already imported, and the RSS of kelp and its containerd idle and with
//! those pods. Needs root, containerd and runc, like the end-to-end tests.
//!
//! `cargo bench --bench node`

#[allow(dead_code)]
#[path = "../tests/common/busybox_image.rs"]
mod busybox_image;
mod common;
#[path = "../tests/common/node.rs"]
mod node;

use node::NodeDir;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};

/// Pods started at full scale.
const FULL_PODS: usize = 30;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// RSS of containerd (kelp's child) and of all shims under `dir`, MiB.
fn runtime_rss(dir: &std::path::Path) -> (f64, f64, usize) {
    let needle = dir.to_string_lossy().into_owned();
    let (mut containerd, mut shims, mut count) = (0.0, 0.0, 0);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if !cmd.contains(&needle) {
            continue;
        }
        if cmd.contains("containerd-shim") {
            shims += common::rss_mib(pid);
            count += 1;
        } else if cmd.starts_with("containerd ") || cmd.contains("/containerd --config") {
            containerd += common::rss_mib(pid);
        }
    }
    (containerd, shims, count)
}

fn main() {
    node::require_node_prerequisites();
    node::block_on_in_own_netns(run());
}

async fn run() {
    let pod_count = ((FULL_PODS as f64 * common::scale()).round() as usize).max(3);
    let idle_wait = if pod_count < FULL_PODS { 1 } else { 10 };
    let dir = NodeDir::new();
    let images = dir.path().join("data/agent/images");
    std::fs::create_dir_all(&images).unwrap();
    busybox_image::write_busybox_image(
        &images.join("busybox.tar"),
        "docker.io/library/busybox:latest",
        busybox_image::ImageFormat::DockerArchive,
    )
    .unwrap();
    let started = Instant::now();
    let (server, kubeconfig) = common::spawn_server(dir.path(), Some("kelp-bench"));
    let pid = server.0.id();
    while !kubeconfig.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = common::client(&kubeconfig).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node_ready = loop {
        if common::node_is_ready(&nodes, "kelp-bench").await {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "node not Ready in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "node Ready after start: {:.0} ms",
        node_ready.as_secs_f64() * 1000.0
    );
    tokio::time::sleep(Duration::from_secs(idle_wait)).await;
    let (cd_idle, _, _) = runtime_rss(dir.path());
    let kelp_idle = common::rss_mib(pid);
    println!(
        "idle RSS: kelp (server+agent) {kelp_idle:.1} MiB, containerd {cd_idle:.1} MiB, total {:.1} MiB",
        kelp_idle + cd_idle
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut running: HashMap<String, Instant> = HashMap::new();
    let watch = watcher::watcher(pods.clone(), watcher::Config::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        futures::pin_mut!(watch);
        while let Some(Ok(e)) = watch.next().await {
            if let Event::Apply(p) | Event::InitApply(p) = e
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            {
                let _ = tx.send((p.metadata.name.unwrap_or_default(), Instant::now()));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut created: HashMap<String, Instant> = HashMap::new();
    for i in 0..pod_count {
        let name = format!("bench-{i}");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never", "command": ["sleep", "100000"]}]},
        }))
        .unwrap();
        created.insert(name, Instant::now());
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        // A steady 10 pods/s, like upstream's density test with a QPS limit.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while running.len() < pod_count && Instant::now() < deadline {
        if let Ok(Some((name, at))) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await
        {
            running.entry(name).or_insert(at);
        }
    }
    let mut latencies: Vec<f64> = running
        .iter()
        .filter_map(|(n, at)| {
            created
                .get(n)
                .map(|c| at.duration_since(*c).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    if latencies.len() != pod_count {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for p in pods
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            eprintln!(
                "{} {:?} node={:?}",
                p.metadata.name.unwrap_or_default(),
                p.status.and_then(|s| s.conditions),
                p.spec.and_then(|s| s.node_name)
            );
        }
        let n = nodes.get("kelp-bench").await.ok();
        eprintln!(
            "node: {:?} {:?}",
            n.as_ref().and_then(|n| n.spec.clone()),
            n.and_then(|n| n.status).map(|s| s.conditions)
        );
        panic!(
            "only {} of {pod_count} pods reached Running; server log tail:\n{}",
            latencies.len(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
    println!(
        "pod startup (create -> Running by watch), {pod_count} pods: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (upstream SLO p99 <= 5000 ms)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    tokio::time::sleep(Duration::from_secs(idle_wait.min(5))).await;
    let (cd, shims, shim_count) = runtime_rss(dir.path());
    let kelp = common::rss_mib(pid);
    println!(
        "RSS with {pod_count} pods: kelp {kelp:.1} MiB, containerd {cd:.1} MiB, {shim_count} shims {shims:.1} MiB (runc's, one per container)"
    );
    let _ = pods
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    let wait_gone = Instant::now();
    while pods
        .list(&ListParams::default())
        .await
        .map(|l| !l.items.is_empty())
        .unwrap_or(false)
        && wait_gone.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    completed_jobs(&client, &dir, pod_count).await;
    drop(server);
}

/// What completed pods keep: `count` Job pods run to completion, then the
/// shims, rootfs mounts and runtime RSS left while the pods still exist.
async fn completed_jobs(client: &kube::Client, dir: &NodeDir, count: usize) {
    use k8s_openapi::api::batch::v1::Job;
    let count = count.max(3) * 100 / FULL_PODS.max(1);
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "done"},
        "spec": {"completions": count, "parallelism": 10, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never", "command": ["true"]}]
        }}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = jobs
            .get("done")
            .await
            .ok()
            .and_then(|j| j.status?.succeeded)
            .unwrap_or(0);
        if done as usize >= count {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job: {done} of {count} completed in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cd, shims, shim_count) = runtime_rss(dir.path());
    let needle = dir.path().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle) && l.contains("/rootfs "))
        .count();
    println!(
        "{count} completed Job pods kept: {shim_count} shims ({shims:.1} MiB), {mounts} rootfs mounts, containerd {cd:.1} MiB"
    );
}
