//! Store benchmark: kelp's sled store against a real etcd, same run.
//!
//! `cargo bench --bench store` starts Debian's `etcd` on loopback ports
//! with a temp data dir, loads both stores the same way and prints ops/s
//! and p50/p99 latency per workload, and the kelp/etcd throughput ratio:
//!
//! - durable single writes of 512-byte values from 1, 16 and 64 writers
//! - point reads (etcd: linearizable, its default; kelp reads durable state)
//! - a 1000-key prefix range
//! - watch fan-out: 100 watchers, each must see every write
//!
//! kelp is measured in-process (it is embedded in the apiserver); etcd over
//! gRPC on loopback, which is how the apiserver reaches it. Set
//! `KELP_BENCH_SCALE=0.2` for a quicker, noisier run.

use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use bytes::Bytes;
use etcd_client::{Client, GetOptions, WatchOptions};
use futures::StreamExt;
use kelp::store::sled::{SledConfig, SledStore};
use kelp::store::{RangeRequest, Store};

type BenchResult<T> = Result<T, String>;

/// One side of the comparison.
trait Target: Clone + Send + Sync + 'static {
    fn fresh(&self) -> impl Future<Output = BenchResult<Self>> + Send;
    fn put(&mut self, key: String, value: Bytes) -> impl Future<Output = BenchResult<()>> + Send;
    fn get(&mut self, key: String) -> impl Future<Output = BenchResult<usize>> + Send;
    fn range(&mut self, prefix: String) -> impl Future<Output = BenchResult<usize>> + Send;
    /// Starts a watcher that returns, per key suffix index, when it saw it.
    fn watcher(
        &self,
        prefix: String,
        count: usize,
    ) -> impl Future<Output = BenchResult<tokio::task::JoinHandle<Vec<Instant>>>> + Send;
}

#[derive(Clone)]
struct Kelp(SledStore);

impl Target for Kelp {
    async fn fresh(&self) -> BenchResult<Self> {
        Ok(self.clone())
    }
    async fn put(&mut self, key: String, value: Bytes) -> BenchResult<()> {
        // Every benchmark key is new, so a create is the equivalent of an
        // etcd put (one durable write either way).
        self.0
            .create(&key, value)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    async fn get(&mut self, key: String) -> BenchResult<usize> {
        let (kv, _) = self.0.get(&key).await.map_err(|e| e.to_string())?;
        Ok(kv.map_or(0, |kv| kv.value.len()))
    }
    async fn range(&mut self, prefix: String) -> BenchResult<usize> {
        let r = self
            .0
            .range(RangeRequest {
                prefix,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.kvs.len())
    }
    async fn watcher(
        &self,
        prefix: String,
        count: usize,
    ) -> BenchResult<tokio::task::JoinHandle<Vec<Instant>>> {
        let mut w = self
            .0
            .watch(&prefix, self.0.current_revision())
            .map_err(|e| e.to_string())?;
        Ok(tokio::spawn(async move {
            let mut seen = vec![None; count];
            let mut n = 0;
            while n < count {
                let Some(Ok(ev)) = w.next().await else { break };
                if let Some(i) = index_of(&ev.key) {
                    seen[i] = Some(Instant::now());
                    n += 1;
                }
            }
            seen.into_iter()
                .map(|t| t.unwrap_or_else(Instant::now))
                .collect()
        }))
    }
}

#[derive(Clone)]
struct Etcd {
    endpoint: String,
    client: Client,
}

impl Target for Etcd {
    async fn fresh(&self) -> BenchResult<Self> {
        let client = Client::connect([self.endpoint.as_str()], None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Etcd {
            endpoint: self.endpoint.clone(),
            client,
        })
    }
    async fn put(&mut self, key: String, value: Bytes) -> BenchResult<()> {
        self.client
            .put(key, value.to_vec(), None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    async fn get(&mut self, key: String) -> BenchResult<usize> {
        let r = self
            .client
            .get(key, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.kvs().first().map_or(0, |kv| kv.value().len()))
    }
    async fn range(&mut self, prefix: String) -> BenchResult<usize> {
        let r = self
            .client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.kvs().len())
    }
    async fn watcher(
        &self,
        prefix: String,
        count: usize,
    ) -> BenchResult<tokio::task::JoinHandle<Vec<Instant>>> {
        let mut client = self.client.clone();
        let mut stream = client
            .watch(prefix, Some(WatchOptions::new().with_prefix()))
            .await
            .map_err(|e| e.to_string())?;
        // The first message confirms the watch is registered.
        stream.message().await.map_err(|e| e.to_string())?;
        Ok(tokio::spawn(async move {
            let mut seen = vec![None; count];
            let mut n = 0;
            while n < count {
                let Ok(Some(msg)) = stream.message().await else {
                    break;
                };
                for ev in msg.events() {
                    if let Some(i) = ev.kv().and_then(|kv| kv.key_str().ok()).and_then(index_of) {
                        seen[i] = Some(Instant::now());
                        n += 1;
                    }
                }
            }
            seen.into_iter()
                .map(|t| t.unwrap_or_else(Instant::now))
                .collect()
        }))
    }
}

fn index_of(key: &str) -> Option<usize> {
    key.rsplit('/').next()?.parse().ok()
}

/// Throughput and latency of one workload.
#[derive(Clone, Copy, Default)]
struct Figures {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn figures(mut latencies: Vec<Duration>, elapsed: Duration, ops: usize) -> Figures {
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Figures {
        ops_per_sec: ops as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

/// Runs `per_worker` calls of `op` on each of `workers` connections.
async fn run_workers<T, F, Fut>(
    target: &T,
    workers: usize,
    per_worker: usize,
    op: F,
) -> BenchResult<Figures>
where
    T: Target,
    F: Fn(T, usize, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = BenchResult<T>> + Send,
{
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(target.fresh().await?);
    }
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, mut conn)| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_worker);
                for i in 0..per_worker {
                    let t = Instant::now();
                    conn = op(conn, w, i).await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, String>(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok(figures(all, start.elapsed(), workers * per_worker))
}

async fn suite<T: Target>(target: &T, scale: f64) -> BenchResult<Vec<(String, Figures)>> {
    let n = |base: usize| ((base as f64 * scale) as usize).max(10);
    let value = Bytes::from(vec![b'x'; 512]);
    let mut out = Vec::new();
    for (writers, total) in [(1, n(3000)), (16, n(16_000)), (64, n(32_000))] {
        let v = value.clone();
        let f = run_workers(target, writers, total / writers, move |mut c, w, i| {
            let v = v.clone();
            async move {
                c.put(format!("/bench/w{writers}/{w}/{i}"), v).await?;
                Ok(c)
            }
        })
        .await?;
        out.push((format!("put 512B, {writers} writer(s)"), f));
    }
    // Reads: 1000 keys under one prefix for point reads and the range.
    let mut loader = target.fresh().await?;
    for i in 0..1000 {
        loader
            .put(format!("/bench/range/{i:04}"), value.clone())
            .await?;
    }
    for readers in [1, 16] {
        let f = run_workers(
            target,
            readers,
            n(20_000) / readers,
            |mut c, w, i| async move {
                let got = c
                    .get(format!("/bench/range/{:04}", (w * 7919 + i * 31) % 1000))
                    .await?;
                if got != 512 {
                    return Err(format!("read returned {got} bytes"));
                }
                Ok(c)
            },
        )
        .await?;
        out.push((format!("get, {readers} reader(s)"), f));
    }
    let f = run_workers(target, 1, n(300), |mut c, _, _| async move {
        let got = c.range("/bench/range/".into()).await?;
        if got != 1000 {
            return Err(format!("range returned {got} keys"));
        }
        Ok(c)
    })
    .await?;
    out.push(("range 1000 keys".into(), f));
    out.push((
        "watch fan-out 100 watchers".into(),
        fan_out(target, 100, n(1000)).await?,
    ));
    Ok(out)
}

/// One writer puts `events` keys; 100 watchers each must see all of them.
/// Latency is put start → seen, over every (event, watcher) pair.
async fn fan_out<T: Target>(target: &T, watchers: usize, events: usize) -> BenchResult<Figures> {
    let mut handles = Vec::new();
    for _ in 0..watchers {
        handles.push(target.watcher("/bench/fan/".into(), events).await?);
    }
    let mut writer = target.fresh().await?;
    let value = Bytes::from(vec![b'y'; 512]);
    let start = Instant::now();
    let mut sent = Vec::with_capacity(events);
    for i in 0..events {
        sent.push(Instant::now());
        writer.put(format!("/bench/fan/{i}"), value.clone()).await?;
    }
    let mut latencies = Vec::with_capacity(events * watchers);
    for h in handles {
        let seen = tokio::time::timeout(Duration::from_secs(120), h)
            .await
            .map_err(|_| "watchers stalled".to_string())?
            .map_err(|e| e.to_string())?;
        latencies.extend(
            seen.iter()
                .zip(&sent)
                .map(|(s, t)| s.saturating_duration_since(*t)),
        );
    }
    Ok(figures(latencies, start.elapsed(), events * watchers))
}

struct EtcdProcess(Child);

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

async fn start_etcd(dir: &std::path::Path) -> BenchResult<(EtcdProcess, Etcd)> {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir)
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args([
            "--initial-cluster",
            &format!("bench={peer_url}"),
            "--log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start etcd (apt-get install etcd-server): {e}"))?;
    let process = EtcdProcess(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = Client::connect([client_url.as_str()], None).await
            && c.status().await.is_ok()
        {
            return Ok((
                process,
                Etcd {
                    endpoint: client_url,
                    client: c,
                },
            ));
        }
        if Instant::now() > deadline {
            return Err("etcd did not become ready in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let scale = common::scale();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result: BenchResult<()> = rt.block_on(async {
        let dir = tempfile::tempdir_in(
            std::env::var("KELP_BENCH_DIR").unwrap_or_else(|_| "target".into()),
        )
        .map_err(|e| e.to_string())?;
        let kelp = Kelp(
            SledStore::open(SledConfig::new(dir.path().join("kelp"))).map_err(|e| e.to_string())?,
        );
        let kelp_figures = suite(&kelp, scale).await?;
        drop(kelp);
        let (_etcd_process, etcd) = start_etcd(&dir.path().join("etcd")).await?;
        let etcd_figures = suite(&etcd, scale).await?;
        println!(
            "store benchmark (scale {scale}); latencies in ms; ratio = kelp ops/s / etcd ops/s"
        );
        println!(
            "{:<30} {:>11} {:>8} {:>8} | {:>11} {:>8} {:>8} | {:>7}",
            "workload", "kelp ops/s", "p50", "p99", "etcd ops/s", "p50", "p99", "ratio"
        );
        for ((name, k), (_, e)) in kelp_figures.iter().zip(&etcd_figures) {
            println!(
                "{:<30} {:>11.0} {:>8} {:>8} | {:>11.0} {:>8} {:>8} | {:>6.2}x",
                name,
                k.ops_per_sec,
                ms(k.p50),
                ms(k.p99),
                e.ops_per_sec,
                ms(e.p50),
                ms(e.p99),
                k.ops_per_sec / e.ops_per_sec
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
