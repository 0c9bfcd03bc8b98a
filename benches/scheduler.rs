//! Scheduler throughput in the scheduler_perf "SchedulingBasic" shape:
//! 5 000 fake nodes (`kelp sim nodes`, no containers) and 10 000 pods with
//! small requests, created as fast as the API takes them; prints pods/s
//! bound (first create → last binding observed by a watch) and the
//! server's RSS and CPU while it ran. `KELP_BENCH_SCALE=0.1` for a quick run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Process, client};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

fn proc_stat(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    (rss, ticks / 100.0)
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

fn main() {
    let scale = common::scale();
    let nodes = ((5000.0 * scale) as usize).max(10);
    let pods = ((10_000.0 * scale) as usize).max(20);
    let dir = tempfile::tempdir_in("target").expect("temp dir");
    let (server, kubeconfig) = common::start_server(dir.path());
    let pid = server.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let admin = client(&kubeconfig).await;
        let sim = Process(
            Command::new(env!("CARGO_BIN_EXE_kelp"))
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
                futures::stream::iter(0..pods)
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
        let mut first_bind = None;
        while bound.len() < pods {
            match tokio::time::timeout(Duration::from_secs(60), watch.next()).await {
                Ok(Some(Ok(WatchEvent::Modified(p)))) | Ok(Some(Ok(WatchEvent::Added(p)))) => {
                    if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                        first_bind.get_or_insert_with(Instant::now);
                        bound.insert(p.metadata.name.unwrap_or_default());
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        let elapsed = start.elapsed();
        let created = creator.await.expect("creator").duration_since(start);
        let (rss1, cpu1) = proc_stat(pid);
        println!("scheduler benchmark: {nodes} nodes, {pods} pods (scale {scale})");
        println!("{:<44} {:>10}", "pods bound", bound.len());
        println!(
            "{:<44} {:>10.0} pods/s",
            "throughput (first create -> last bind)",
            bound.len() as f64 / elapsed.as_secs_f64()
        );
        println!(
            "{:<44} {:>10.0} pods/s",
            "API create rate",
            pods as f64 / created.as_secs_f64()
        );
        println!(
            "{:<44} {:>10.1} MiB -> {:.1} MiB",
            "server RSS before -> after", rss0, rss1
        );
        println!(
            "{:<44} {:>10.2} s over {:.2} s wall ({:.0}% of one core)",
            "server CPU",
            cpu1 - cpu0,
            elapsed.as_secs_f64(),
            (cpu1 - cpu0) / elapsed.as_secs_f64() * 100.0
        );
        drop(sim);
    });
    drop(server);
}
