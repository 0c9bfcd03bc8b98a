//! Hostile clients against a real `kelp server --disable-agent` (release
//! build), the figures of issue "Hardening":
//!
//! 1. The JSON-patch copy bomb (CVE-2019-1002100's class): time from
//!    sending the 1.6 KB patch to its refusal, and the server's RSS growth.
//! 2. 20 000 idle unauthenticated TCP connections (nothing sent, not even
//!    TLS): the latency of an authenticated `GET` on a new connection (TLS
//!    handshake included) and on a kept-alive one, against the same with no
//!    flood, in the same run. Once with kelp's own descriptor limit and
//!    once with kelp held to 4 096 descriptors by prlimit, where its
//!    connection budget must evict the flood to let the client in.
//! 3. A strategic merge patch adding 30 000 containers: time and server
//!    CPU until it is refused.
//!
//! No figure is asserted; each is printed. `KELP_BENCH_SCALE` scales the
//! flood and the sample counts.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{cpu_seconds, rss_mib, wait_ready};

use kube::{Client, Config};
use serde_json::json;

/// Percentile of sorted durations, in ms.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// (p50, p99, max) in ms.
fn summary(mut lat: Vec<Duration>) -> (f64, f64, f64) {
    lat.sort();
    (pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 1.0))
}

async fn send(client: &Client, request: http::Request<Vec<u8>>) -> (u16, String) {
    match client.request_text(request).await {
        Ok(text) => (200, text),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(e) => (0, e.to_string()),
    }
}

fn request(method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(body)
        .expect("request")
}

/// The copy bomb, `rounds` times.
async fn copy_bomb(client: &Client, pid: u32, rounds: usize) {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bomb", "annotations": {"seed": "1"}},
        "data": {"a": "x".repeat(1000)}});
    let (code, text) = send(
        client,
        request(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            cm.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!(code, 200, "create the configmap: {text}");
    let mut ops = vec![json!({"op": "copy", "from": "/data", "path": "/metadata/annotations/d"})];
    for i in 0..25 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}));
    }
    let patch = serde_json::to_vec(&ops).expect("patch");
    let before = rss_mib(pid);
    let mut peak = before;
    let mut lat = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let (code, text) = send(
            client,
            request(
                "PATCH",
                "/api/v1/namespaces/default/configmaps/bomb",
                "application/json-patch+json",
                patch.clone(),
            ),
        )
        .await;
        lat.push(t.elapsed());
        assert_eq!(code, 422, "the bomb must be refused: {text}");
        peak = peak.max(rss_mib(pid));
    }
    let (p50, p99, max) = summary(lat);
    println!(
        "copy bomb ({} bytes) x{rounds}: refused in p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; server RSS {before:.1} -> peak {peak:.1} MiB (growth {:.1} MiB)",
        patch.len(),
        peak - before
    );
}

/// A strategic merge patch adding 30 000 containers to a Deployment.
async fn huge_smp(client: &Client, pid: u32) {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "big"},
        "spec": {"selector": {"matchLabels": {"app": "big"}},
            "template": {"metadata": {"labels": {"app": "big"}},
                "spec": {"containers": [{"name": "busybox", "image": "busybox"}]}}}});
    let (code, text) = send(
        client,
        request(
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            "application/json",
            deployment.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!(code, 200, "create the deployment: {text}");
    let containers: Vec<serde_json::Value> = (0..30_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
        .collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}}).to_string();
    let cpu = cpu_seconds(pid);
    let t = Instant::now();
    let (code, text) = send(
        client,
        request(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/big",
            "application/strategic-merge-patch+json",
            patch.clone().into_bytes(),
        ),
    )
    .await;
    let took = t.elapsed();
    let cpu = cpu_seconds(pid) - cpu;
    let why: String = text.chars().take(100).collect();
    println!(
        "SMP adding 30000 containers ({} bytes): answered {code} in {:.1} ms, server CPU {:.3} s ({why}…)",
        patch.len(),
        took.as_secs_f64() * 1e3,
        cpu
    );
}

/// `n` authenticated GETs, each on a new connection (a new client, so a
/// new TCP connection and TLS handshake), and `n` on one kept connection.
async fn get_latencies(config: &Config, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let get = || http::Request::get("/api/v1/namespaces/default").body(Vec::new());
    let mut fresh = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let client = Client::try_from(config.clone()).expect("client");
        let (code, text) = send(&client, get().expect("request")).await;
        fresh.push(t.elapsed());
        assert_eq!(code, 200, "GET on a new connection: {text}");
    }
    let kept_client = Client::try_from(config.clone()).expect("client");
    send(&kept_client, get().expect("request")).await;
    let mut kept = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let (code, text) = send(&kept_client, get().expect("request")).await;
        kept.push(t.elapsed());
        assert_eq!(code, 200, "GET on a kept connection: {text}");
    }
    (fresh, kept)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The idle flood against the server at `port`, with `label` naming kelp's
/// descriptor limit.
async fn idle_flood(
    config: &Config,
    pid: u32,
    port: u16,
    connections: usize,
    samples: usize,
    label: &str,
) {
    let (fresh_ref, kept_ref) = get_latencies(config, samples).await;
    // The flood is held by child processes (this benchmark re-run as a
    // holder), so that no process needs more descriptors than a stock
    // hard limit allows.
    let opening = Instant::now();
    let holders: Vec<FloodHolder> = (0..FLOOD_HOLDERS)
        .map(|_| FloodHolder::open(port, connections / FLOOD_HOLDERS))
        .collect();
    let (opened_count, refused) = holders
        .iter()
        .fold((0, 0), |(o, r), h| (o + h.opened, r + h.refused));
    let opened = opening.elapsed();
    let held = open_fds(pid);
    let (fresh, kept) = get_latencies(config, samples).await;
    let held_after = open_fds(pid);
    let (f50, f99, fmax) = summary(fresh);
    let (k50, k99, kmax) = summary(kept);
    let (rf50, rf99, _) = summary(fresh_ref);
    let (rk50, rk99, _) = summary(kept_ref);
    println!(
        "idle flood, kelp {label}: {opened_count} connections opened in {:.2} s ({refused} refused); kelp holds {held} fds before the samples, {held_after} after",
        opened.as_secs_f64()
    );
    println!(
        "  authenticated GET, new connection:  p50 {f50:.2} ms, p99 {f99:.2} ms, max {fmax:.2} ms; no flood p50 {rf50:.2} / p99 {rf99:.2} ms; p99 ratio {:.2}",
        f99 / rf99
    );
    println!(
        "  authenticated GET, kept connection: p50 {k50:.2} ms, p99 {k99:.2} ms, max {kmax:.2} ms; no flood p50 {rk50:.2} / p99 {rk99:.2} ms; p99 ratio {:.2}",
        k99 / rk99
    );
    drop(holders);
    // Let kelp see the flood go before the next round.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Processes holding the flood between them.
const FLOOD_HOLDERS: usize = 4;
/// The environment variable that makes this binary a flood holder.
const HOLDER_ENV: &str = "KELP_BENCH_FLOOD_HOLDER";

/// A child process holding idle connections open until it is dropped.
struct FloodHolder {
    child: std::process::Child,
    opened: usize,
    refused: usize,
}

impl FloodHolder {
    /// Starts a holder with `count` connections to `port`; returns once
    /// they are open.
    fn open(port: u16, count: usize) -> FloodHolder {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .env(HOLDER_ENV, format!("{port}:{count}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start a flood holder");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the holder reports");
        let mut counts = line.split_whitespace().map(|n| n.parse().unwrap_or(0));
        let (opened, refused) = (counts.next().unwrap_or(0), counts.next().unwrap_or(0));
        FloodHolder {
            child,
            opened,
            refused,
        }
    }
}

impl Drop for FloodHolder {
    fn drop(&mut self) {
        // Closing its stdin ends it; kill in case it is stuck.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The holder's side: open the connections, report "opened refused",
/// hold them until stdin closes.
fn hold_flood(spec: &str) {
    use std::io::{Read, Write};
    let (port, count) = spec.split_once(':').expect("port:count");
    let (port, count): (u16, usize) = (port.parse().expect("port"), count.parse().expect("count"));
    raise_own_fd_limit(count as u64 + 64);
    let addr = format!("127.0.0.1:{port}");
    let mut flood = Vec::with_capacity(count);
    let mut refused = 0usize;
    while flood.len() + refused < count {
        match TcpStream::connect(&addr) {
            Ok(s) => flood.push(s),
            Err(_) => refused += 1,
        }
    }
    println!("{} {refused}", flood.len());
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn raise_own_fd_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    // Root may raise the hard limit too (up to fs.nr_open).
    if setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn prlimit(pid: u32, nofile: u64) {
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={nofile}:{nofile}"))
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit --nofile={nofile}");
}

async fn config_of(kubeconfig: &Path) -> Config {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config")
}

fn main() {
    if let Ok(spec) = std::env::var(HOLDER_ENV) {
        return hold_flood(&spec);
    }
    let scale = common::scale();
    let connections = ((20_000.0 * scale) as usize).max(200);
    let samples = ((200.0 * scale) as usize).max(10);
    let bombs = ((50.0 * scale) as usize).max(3);
    // As much as the hard limit allows, for the server (a child inherits
    // it); the flood's ends are in holder processes.
    raise_own_fd_limit(connections as u64 + 8192);
    let dir = tempfile::tempdir_in("target").expect("temp dir");
    let (server, kubeconfig) = common::start_server(dir.path());
    let pid = server.0.id();
    let rt = common::runtime();
    rt.block_on(async {
        let admin = wait_ready(&kubeconfig).await;
        println!("hostile-client benchmark (scale {scale}); server pid {pid}");
        copy_bomb(&admin, pid, bombs).await;
        huge_smp(&admin, pid).await;
        let config = config_of(&kubeconfig).await;
        let port = config.cluster_url.port_u16().expect("port");
        let limit = std::fs::read_to_string(format!("/proc/{pid}/limits"))
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
            })
            .unwrap_or_default();
        idle_flood(
            &config,
            pid,
            port,
            connections,
            samples,
            &format!("at its own limit of {limit} fds"),
        )
        .await;
        prlimit(pid, 4096);
        idle_flood(&config, pid, port, connections, samples, "held to 4096 fds").await;
    });
}
