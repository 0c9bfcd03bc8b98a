//! SD-card wear: bytes an idle single-node cluster writes to disk per hour.
//!
//! A server with its node (data dir on disk, not tmpfs) is started, left
//! to settle, then watched for a window: the `write_bytes` of kelp and of
//! the containerd and shims it started (from /proc/PID/io: bytes the
//! process caused to be written to storage), and the store's revision
//! (one per write kelp makes to its store). k3s documents 23–39 MB/hour
//! for a fresh idle single node; it is not installed here, so that figure
//! is the docs', not measured in this run. Target: ≤ 5 MB/hour.
//! Needs root, containerd and runc.
//!
//! `cargo bench --bench disk_writes` (21 minutes: 11 to settle, 10
//! measured).

#[allow(dead_code)]
#[path = "../tests/common/busybox_image.rs"]
mod busybox_image;
mod common;
#[path = "../tests/common/node.rs"]
mod node;

use node::NodeDir;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, ListParams};

/// The measured window at full scale.
const WINDOW: Duration = Duration::from_secs(600);
/// Left alone before the window: start-up writes are not idle wear, and
/// neither is the one-off compaction of the start-up history (the
/// bootstrap RBAC and the rest, ~600 events, dropped in one batch once
/// they are 5 + 5 minutes old), which would add MBs to a 10-minute window.
const SETTLE: Duration = Duration::from_secs(660);

/// Bytes written to storage by kelp (`pid`) and by every process whose
/// command line names `dir` (containerd, shims): (kelp, runtime).
fn written(pid: u32, dir: &Path) -> (u64, u64) {
    let io = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("write_bytes: "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let needle = dir.to_string_lossy().into_owned();
    let mut runtime = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if p == pid {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if cmd.contains(&needle) {
            runtime += io(p);
        }
    }
    (io(pid), runtime)
}

/// The store's current revision, from a list's resourceVersion.
async fn revision(client: &kube::Client) -> u64 {
    let cms: Api<ConfigMap> = Api::all(client.clone());
    cms.list_metadata(&ListParams::default().limit(1))
        .await
        .ok()
        .and_then(|l| l.metadata.resource_version)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn main() {
    node::require_node_prerequisites();
    node::block_on_in_own_netns(run());
}

async fn run() {
    let scale = common::scale();
    let window = WINDOW.mul_f64(scale).max(Duration::from_secs(5));
    let settle = SETTLE.mul_f64(scale).max(Duration::from_secs(2));
    // On disk (test_root is under /var/tmp): a tmpfs would hide the writes.
    let dir = NodeDir::new();
    let (server, kubeconfig) = common::spawn_server(dir.path(), Some("kelp-wear"));
    let pid = server.0.id();
    let started = Instant::now();
    while !kubeconfig.exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no kubeconfig");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = common::client(&kubeconfig).await;
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        if common::node_is_ready(&nodes, "kelp-wear").await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "node not Ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(settle).await;
    let (kelp0, runtime0) = written(pid, dir.path());
    let rev0 = revision(&client).await;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let (kelp1, runtime1) = written(pid, dir.path());
    let rev1 = revision(&client).await;
    let hours = t0.elapsed().as_secs_f64() / 3600.0;
    let per_hour = |bytes: u64| bytes as f64 / 1e6 / hours;
    let (kelp, runtime) = (kelp1 - kelp0, runtime1 - runtime0);
    println!(
        "idle disk writes over {:.0} s: kelp {:.2} MB/hour, containerd+shims {:.2} MB/hour, total {:.2} MB/hour (target <= 5; k3s docs: 23-39)",
        t0.elapsed().as_secs_f64(),
        per_hour(kelp),
        per_hour(runtime),
        per_hour(kelp + runtime)
    );
    println!(
        "store writes: {:.0} per hour ({} in the window)",
        (rev1 - rev0) as f64 / hours,
        rev1 - rev0
    );
    drop(server);
}
