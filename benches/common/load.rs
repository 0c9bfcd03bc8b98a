//! Closed-loop load: clients each running operations back to back, and
//! the throughput and latency percentiles they saw.

use std::path::Path;
use std::time::{Duration, Instant};

use kube::Client;

use super::client;

/// Throughput and latency of a run.
pub struct Figures {
    /// Operations per second over the whole run.
    pub ops: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// Figures from per-operation latencies over `elapsed`.
pub fn figures(mut lat: Vec<Duration>, elapsed: Duration) -> Figures {
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Figures {
        ops: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

/// Prints one line of figures.
pub fn print(name: &str, f: &Figures) {
    println!(
        "{name:<40} {:>10.0} ops/s  p50 {:>8.3} ms  p99 {:>8.3} ms",
        f.ops,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
}

/// `clients` connections (admin clients of `kubeconfig`) each run
/// `per_client` operations of `op(client, client_index, op_index)`.
pub async fn run<F, Fut>(kubeconfig: &Path, clients: usize, per_client: usize, op: F) -> Figures
where
    F: Fn(Client, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(client(kubeconfig).await);
    }
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(c, conn)| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t = Instant::now();
                    op(conn.clone(), c, i).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    figures(all, start.elapsed())
}
