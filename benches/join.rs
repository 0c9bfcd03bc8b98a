//! Cold start of a multi-node cluster: a `kelp server` and two `kelp
//! agent`s, each in a host namespace of its own on one switch namespace
//! (the multi-node test harness). Times, per round: server start → API
//! ready, → server node Ready; agent start (at API ready) → agent node
//! Ready; and cold → all three nodes Ready (the target is ≤ 3 s; k3s takes
//! tens of seconds). Needs root, containerd and runc.
//!
//! `cargo bench --bench join`

mod common;
#[allow(unused_imports)]
#[path = "../tests/common/mod.rs"]
mod testkit;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use testkit::multi_node::{Lan, host_ip};

/// Rounds at full scale (each is a whole cold start).
const FULL_ROUNDS: usize = 5;
const AGENTS: usize = 2;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    testkit::node::require_node_prerequisites();
    let rounds = ((FULL_ROUNDS as f64 * common::scale()).round() as usize).max(1);
    let mut api_ready = Vec::new();
    let mut server_ready = Vec::new();
    let mut agent_ready = Vec::new();
    let mut all_ready = Vec::new();
    for _ in 0..rounds {
        let round = round();
        println!(
            "round: API {:.0} ms, server node Ready {:.0} ms, agents Ready {:?} ms after their start, all 3 Ready {:.0} ms",
            round.api,
            round.server_node,
            round.agents.iter().map(|a| a.round()).collect::<Vec<_>>(),
            round.all
        );
        api_ready.push(round.api);
        server_ready.push(round.server_node);
        agent_ready.extend(round.agents);
        all_ready.push(round.all);
    }
    println!("cold start → API ready: median {:.0} ms", median(api_ready));
    println!(
        "cold start → server node Ready: median {:.0} ms",
        median(server_ready)
    );
    println!(
        "kelp agent start → node Ready: median {:.0} ms",
        median(agent_ready)
    );
    println!(
        "cold → 3-node cluster all Ready: median {:.0} ms (target ≤ 3000 ms) over {rounds} rounds",
        median(all_ready)
    );
}

struct Round {
    api: f64,
    server_node: f64,
    agents: Vec<f64>,
    all: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One cold start, on fresh namespaces and directories (set up before the
/// clock starts); everything is removed afterwards.
fn round() -> Round {
    let lan = Lan::new();
    let hosts: Vec<_> = (0..=AGENTS).map(|i| lan.host(i)).collect();
    let dirs: Vec<tempfile::TempDir> = (0..=AGENTS)
        .map(|_| tempfile::tempdir_in(testkit::node::test_root()).expect("dir"))
        .collect();
    let _cleanup = Cleanup(dirs.iter().map(|d| d.path().to_path_buf()).collect());
    // The bench's own threads live in the server's host, so that the admin
    // client reaches it (and nothing else) on loopback.
    let entered = std::thread::spawn({
        let server_host = hosts[0].clone();
        let server_dir = dirs[0].path().to_path_buf();
        let agents: Vec<(std::path::PathBuf, std::path::PathBuf)> = hosts[1..]
            .iter()
            .cloned()
            .zip(dirs[1..].iter().map(|d| d.path().to_path_buf()))
            .collect();
        move || {
            let ns = std::fs::File::open(&server_host).expect("server host");
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(cold_start(server_dir, agents))
        }
    });
    let round = entered.join().expect("round");
    drop(lan);
    round
}

async fn cold_start(
    server_dir: std::path::PathBuf,
    agents: Vec<(std::path::PathBuf, std::path::PathBuf)>,
) -> Round {
    let started = Instant::now();
    let (_server, kubeconfig) = common::spawn_server_with(
        &server_dir,
        Some("server"),
        &["--node-ip", &host_ip(0), "--bind-address", "0.0.0.0"],
    );
    while !kubeconfig.exists() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let client = common::client(&kubeconfig).await;
    while client.apiserver_version().await.is_err() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let api = started.elapsed();
    let port = kube::config::Kubeconfig::read_from(&kubeconfig)
        .ok()
        .and_then(|k| k.clusters.first()?.cluster.as_ref()?.server.clone())
        .and_then(|s| s.rsplit(':').next()?.parse::<u16>().ok())
        .expect("the server's port");
    let token = std::fs::read_to_string(server_dir.join("data/server/token"))
        .expect("token")
        .trim()
        .to_string();
    let agents_started = Instant::now();
    let _agents: Vec<common::Process> = agents
        .iter()
        .enumerate()
        .map(|(i, (host, dir))| {
            std::fs::write(dir.join("config.yaml"), "").expect("config");
            let child = Command::new("nsenter")
                .arg(format!("--net={}", host.display()))
                .arg("--")
                .arg(common::kelp_bin())
                .args([
                    "agent",
                    "--server",
                    &format!("https://{}:{port}", host_ip(0)),
                ])
                .args([
                    "--token",
                    &token,
                    "--node-name",
                    &format!("agent-{}", i + 1),
                ])
                .args(["--node-ip", &host_ip(i + 1)])
                .args(["--kubelet-arg", "eviction-hard=nodefs.available<512Mi"])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--run-dir")
                .arg(dir.join("run"))
                .arg("--pod-log-dir")
                .arg(dir.join("pod-logs"))
                .arg("--config")
                .arg(dir.join("config.yaml"))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(dir.join("agent.log")).map_or(Stdio::null(), Stdio::from),
                )
                .spawn()
                .expect("start kelp agent");
            common::Process(child)
        })
        .collect();
    let nodes: Api<Node> = Api::all(client);
    let names: Vec<String> = std::iter::once("server".to_string())
        .chain((1..=AGENTS).map(|i| format!("agent-{i}")))
        .collect();
    let mut ready_at: Vec<Option<Instant>> = vec![None; names.len()];
    while ready_at.iter().any(Option::is_none) {
        if started.elapsed() > Duration::from_secs(60) {
            let logs: Vec<String> = agents
                .iter()
                .map(|(_, dir)| std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default())
                .collect();
            panic!(
                "nodes not Ready in 60 s: {ready_at:?}\n{}",
                logs.join("\n---\n")
            );
        }
        if let Ok(list) = nodes.list(&Default::default()).await {
            for node in list.items {
                let ready = node
                    .status
                    .and_then(|s| s.conditions)
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if let Some(i) = names
                    .iter()
                    .position(|n| Some(n) == node.metadata.name.as_ref())
                    && ready
                    && ready_at[i].is_none()
                {
                    ready_at[i] = Some(Instant::now());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at = |i: usize| ready_at[i].expect("ready");
    Round {
        api: ms(api),
        server_node: ms(at(0) - started),
        agents: (1..=AGENTS).map(|i| ms(at(i) - agents_started)).collect(),
        all: ms(ready_at.iter().flatten().max().copied().expect("ready") - started),
    }
}

/// Kills every process of a round and removes its directories' mounts
/// and pod state, also when the round panics.
struct Cleanup(Vec<std::path::PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in &self.0 {
            testkit::node::cleanup(dir);
        }
    }
}
