//! Scheduler throughput in the scheduler_perf "SchedulingBasic" shape:
//! 5 000 fake nodes (`kelp sim nodes`, no containers) and 10 000 pods with
//! small requests, created as fast as the API takes them; prints pods/s
//! bound (first create → last binding observed by a watch) and the
//! server's RSS and CPU while it ran; then fills the same cluster to 100 000
//! pods and prints the same figures (the memory target: ≤ 2 GiB).
//! `KELP_BENCH_SCALE=0.1` for a quick run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Process, client};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

fn proc_stat(pid: u32) -> (f64, f64) {
    (common::rss_mib(pid), common::cpu_seconds(pid))
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i}"), "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }))
    .expect("pod")
}

/// What one round of pod creation measured.
struct Phase {
    bound: usize,
    elapsed: Duration,
    created: Duration,
    rss: (f64, f64),
    cpu: f64,
}

impl Phase {
    fn print(&self, name: &str) {
        println!("{name}:");
        println!("  {:<42} {:>10}", "pods bound", self.bound);
        println!(
            "  {:<42} {:>10.0} pods/s",
            "throughput (first create -> last bind)",
            self.bound as f64 / self.elapsed.as_secs_f64()
        );
        println!(
            "  {:<42} {:>10.0} pods/s",
            "API create rate",
            self.bound as f64 / self.created.as_secs_f64()
        );
        println!(
            "  {:<42} {:>10.1} MiB -> {:.1} MiB",
            "server RSS before -> after", self.rss.0, self.rss.1
        );
        println!(
            "  {:<42} {:>10.2} s over {:.2} s wall ({:.0}% of one core)",
            "server CPU",
            self.cpu,
            self.elapsed.as_secs_f64(),
            self.cpu / self.elapsed.as_secs_f64() * 100.0
        );
    }
}

/// Creates pods `first..first + count` (64 at a time) and waits until a
/// watch has seen each of them bound.
async fn bind_phase(pod_api: &Api<Pod>, pid: u32, first: usize, count: usize) -> Phase {
    let (rss0, cpu0) = proc_stat(pid);
    let rv = pod_api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut watch = pod_api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    let start = Instant::now();
    let creator = {
        let pod_api = pod_api.clone();
        tokio::spawn(async move {
            futures::stream::iter(first..first + count)
                .map(|i| {
                    let api = pod_api.clone();
                    async move {
                        api.create(&PostParams::default(), &pod(i))
                            .await
                            .map(|_| ())
                    }
                })
                .buffer_unordered(64)
                .try_collect::<Vec<()>>()
                .await
                .expect("create pods");
            Instant::now()
        })
    };
    let mut bound = std::collections::HashSet::new();
    let mut last_rv = rv;
    while bound.len() < count {
        match tokio::time::timeout(Duration::from_secs(60), watch.next()).await {
            Ok(Some(Ok(WatchEvent::Modified(p)))) | Ok(Some(Ok(WatchEvent::Added(p)))) => {
                if let Some(rv) = &p.metadata.resource_version {
                    last_rv.clone_from(rv);
                }
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                    bound.insert(p.metadata.name.unwrap_or_default());
                }
            }
            Ok(Some(Ok(_))) => {}
            // A long watch may end (server timeout); go on from where it was.
            Ok(None) | Ok(Some(Err(_))) => {
                watch = pod_api
                    .watch(&WatchParams::default(), &last_rv)
                    .await
                    .expect("watch")
                    .boxed();
            }
            Err(_) => break,
        }
    }
    let elapsed = start.elapsed();
    let created = creator.await.expect("creator").duration_since(start);
    let (rss1, cpu1) = proc_stat(pid);
    Phase {
        bound: bound.len(),
        elapsed,
        created,
        rss: (rss0, rss1),
        cpu: cpu1 - cpu0,
    }
}

fn main() {
    let scale = common::scale();
    let nodes = ((5000.0 * scale) as usize).max(10);
    let pods = ((10_000.0 * scale) as usize).max(20);
    let big_pods = (100_000.0 * scale) as usize;
    let dir = tempfile::tempdir_in("target").expect("temp dir");
    let (server, kubeconfig) = common::start_server(dir.path());
    let pid = server.0.id();
    let rt = common::runtime();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let admin = client(&kubeconfig).await;
        let sim = Process(
            Command::new(common::kelp_bin())
                .args([
                    "sim",
                    "nodes",
                    "--count",
                    &nodes.to_string(),
                    "--lease-interval",
                    "30",
                ])
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start kelp sim"),
        );
        let node_api: Api<Node> = Api::all(admin.clone());
        loop {
            let n = node_api
                .list(&ListParams::default().limit(1))
                .await
                .map(|l| l.items.len())
                .unwrap_or(0);
            if n > 0 {
                let all = node_api
                    .list(&ListParams::default())
                    .await
                    .expect("nodes")
                    .items
                    .len();
                if all >= nodes {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let pod_api: Api<Pod> = Api::namespaced(admin.clone(), "default");
        println!("scheduler benchmark: {nodes} nodes (scale {scale})");
        let phase = bind_phase(&pod_api, pid, 0, pods).await;
        phase.print(&format!("{pods} pods"));
        // The memory target: the same cluster filled to ten times as many pods.
        let more = big_pods.saturating_sub(pods);
        if more > 0 {
            let phase = bind_phase(&pod_api, pid, pods, more).await;
            phase.print(&format!("{pods} -> {big_pods} pods"));
        }
        drop(sim);
    });
    drop(server);
}
