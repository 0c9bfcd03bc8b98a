//! What the whole-system benchmarks share: a `kelp server --disable-agent`
//! child on a free loopback port, an admin kube-rs client, RSS readings.
#![allow(dead_code)]

pub mod load;
// The dns, join and overlay benches also include tests/common whole (as
// `testkit`), so this small file is compiled twice there; one source is
// worth that.
#[allow(clippy::duplicate_mod)]
#[path = "../../tests/common/proc_stats.rs"]
mod proc_stats;
#[allow(unused_imports)] // not every benchmark reads both
pub use proc_stats::{cpu_seconds, rss_mib};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The scale a benchmark runs at, 1.0 being the sizes its doc names.
///
/// `cargo bench` passes `--bench` to the binary: full scale. `cargo test
/// --benches` (the quick mode `tests/run.sh` runs in CI) does not: every
/// benchmark then runs to its end at [`QUICK_SCALE`] in seconds, so none can
/// rot unnoticed. `KELP_BENCH_SCALE` overrides both.
pub fn scale() -> f64 {
    if let Some(s) = std::env::var("KELP_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    if std::env::args().any(|a| a == "--bench") {
        1.0
    } else {
        println!("quick mode (run by `cargo test --benches`): scale {QUICK_SCALE}");
        QUICK_SCALE
    }
}

/// The scale of the quick mode: big enough to go through every step.
pub const QUICK_SCALE: f64 = 0.01;

/// The kelp binary to run: `KELP_BENCH_BIN` (say, a `--profile profiling`
/// build to record with perf), else the one cargo built for this bench.
pub fn kelp_bin() -> PathBuf {
    std::env::var_os("KELP_BENCH_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kelp")), PathBuf::from)
}

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kelp server --disable-agent` on a free port with its data in
/// `dir`; returns the process and the kubeconfig path it will write.
pub fn start_server(dir: &Path) -> (Process, PathBuf) {
    spawn_server(dir, None)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Starts `kelp server` with data in `dir`: control plane only, or with a
/// node named `node` whose runtime state, logs and kubelet port are private
/// to `dir` (needs root).
pub fn spawn_server(dir: &Path, node: Option<&str>) -> (Process, PathBuf) {
    spawn_server_with(dir, node, &[])
}

/// [`spawn_server`] with extra flags.
pub fn spawn_server_with(dir: &Path, node: Option<&str>, extra: &[&str]) -> (Process, PathBuf) {
    let kubeconfig = dir.join("kubeconfig.yaml");
    let config = dir.join("config.yaml");
    std::fs::write(&config, "").expect("config");
    let mut command = Command::new(kelp_bin());
    command.args([
        "server",
        "--bind-address",
        "127.0.0.1",
        "--node-ip",
        "127.0.0.1",
    ]);
    match node {
        None => {
            command.arg("--disable-agent");
        }
        Some(name) => {
            command
                .args([
                    "--node-name",
                    name,
                    "--kubelet-port",
                    &free_port().to_string(),
                    // The tests are about pods, not about this machine's
                    // disk: report DiskPressure only when really short.
                    "--kubelet-arg",
                    "eviction-hard=nodefs.available<512Mi",
                ])
                .arg("--run-dir")
                .arg(dir.join("run"))
                .arg("--pod-log-dir")
                .arg(dir.join("pod-logs"));
        }
    }
    let child = command
        .args(extra)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--https-listen-port")
        .arg(free_port().to_string())
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).map_or(Stdio::null(), Stdio::from))
        .spawn()
        .expect("start kelp server");
    (Process(child), kubeconfig)
}

/// Whether node `name` exists and reports Ready=True.
pub async fn node_is_ready(
    nodes: &kube::Api<k8s_openapi::api::core::v1::Node>,
    name: &str,
) -> bool {
    nodes
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|n| n.status?.conditions)
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// An admin client from the server's kubeconfig.
pub async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// Waits (at most 30 s) until the server behind `kubeconfig` answers
/// `/readyz` with ok; returns an admin client.
pub async fn wait_ready(kubeconfig: &Path) -> Client {
    let t0 = std::time::Instant::now();
    loop {
        if kubeconfig.exists()
            && let Ok(c) =
                tokio::time::timeout(std::time::Duration::from_secs(1), client(kubeconfig)).await
        {
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            if c.request_text(req).await.is_ok_and(|t| t == "ok") {
                return c;
            }
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "server not ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A multi-threaded runtime for a benchmark's clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
