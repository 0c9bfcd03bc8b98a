//! API server benchmark: a real `kelp server --disable-agent` (release
//! build) on loopback, driven by kube-rs clients.
//!
//! Prints: time from process start to /readyz = ok; RSS after start;
//! p50/p99 latency and throughput of create, get, list (1000 objects) and
//! watch delivery with 1, 16 and 64 concurrent clients; create latency at a
//! steady 200 req/s; RSS after 10 000 ConfigMaps.
//! `KELP_BENCH_SCALE=0.2` for a quicker run.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::load::{Figures, figures, print, run};
use common::{client, rss_mib};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("payload".to_string(), "x".repeat(200))].into()),
        ..Default::default()
    }
}

async fn make_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

async fn watch_delivery(kubeconfig: &Path, watchers: usize, events: usize, ns: &str) -> Figures {
    let admin = client(kubeconfig).await;
    make_namespace(&admin, ns).await;
    let mut handles = Vec::new();
    for _ in 0..watchers {
        let api: Api<ConfigMap> = Api::namespaced(client(kubeconfig).await, ns);
        let mut stream = api
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watch")
            .boxed();
        handles.push(tokio::spawn(async move {
            let mut seen = vec![None; events];
            let mut n = 0;
            while n < events {
                match stream.next().await {
                    Some(Ok(WatchEvent::Added(o))) => {
                        if let Some(i) = o
                            .metadata
                            .name
                            .and_then(|n| n.strip_prefix("w").and_then(|x| x.parse::<usize>().ok()))
                        {
                            seen[i] = Some(Instant::now());
                            n += 1;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api: Api<ConfigMap> = Api::namespaced(admin, ns);
    let start = Instant::now();
    let mut sent = Vec::with_capacity(events);
    for i in 0..events {
        sent.push(Instant::now());
        api.create(&PostParams::default(), &cm(&format!("w{i}")))
            .await
            .expect("create");
    }
    let mut lat = Vec::new();
    for h in handles {
        let seen = tokio::time::timeout(Duration::from_secs(60), h)
            .await
            .expect("watchers stalled")
            .expect("watcher");
        lat.extend(
            seen.iter()
                .zip(&sent)
                .filter_map(|(s, t)| s.map(|s| s.saturating_duration_since(*t))),
        );
    }
    figures(lat, start.elapsed())
}

fn main() {
    let scale = common::scale();
    let n = |base: usize| ((base as f64 * scale) as usize).max(16);
    let dir = tempfile::tempdir_in("target").expect("temp dir");
    let t0 = Instant::now();
    let (server, kubeconfig) = common::start_server(dir.path());
    let pid = server.0.id();
    let rt = common::runtime();
    rt.block_on(async {
        let ready = loop {
            if kubeconfig.exists()
                && let Ok(c) =
                    tokio::time::timeout(Duration::from_secs(1), client(&kubeconfig)).await
            {
                let req = http::Request::get("/readyz")
                    .body(Vec::new())
                    .expect("request");
                if c.request_text(req).await.is_ok_and(|t| t == "ok") {
                    break t0.elapsed();
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "server not ready");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        println!("api benchmark (scale {scale}); server pid {pid}");
        println!(
            "{:<40} {:>10.1} ms",
            "process start -> /readyz ok",
            ready.as_secs_f64() * 1e3
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("{:<40} {:>10.1} MiB", "RSS after start", rss_mib(pid));
        let admin = client(&kubeconfig).await;
        for (i, clients) in [1usize, 16, 64].into_iter().enumerate() {
            let ns = format!("create{i}");
            make_namespace(&admin, &ns).await;
            let f = run(
                &kubeconfig,
                clients,
                (n(2000) / clients).max(1),
                move |c, w, k| {
                    let ns = ns.clone();
                    async move {
                        let api: Api<ConfigMap> = Api::namespaced(c, &ns);
                        api.create(&PostParams::default(), &cm(&format!("c{w}-{k}")))
                            .await
                            .expect("create");
                    }
                },
            )
            .await;
            print(&format!("create, {clients} client(s)"), &f);
        }
        // The single client of the first create round made c0-0 .. c0-{n(2000)-1}.
        let gettable = n(2000).min(100);
        for clients in [1usize, 16, 64] {
            let f = run(
                &kubeconfig,
                clients,
                (n(4000) / clients).max(1),
                move |c, w, k| async move {
                    let api: Api<ConfigMap> = Api::namespaced(c, "create0");
                    api.get(&format!("c0-{}", (w * 31 + k * 7) % gettable))
                        .await
                        .expect("get");
                },
            )
            .await;
            print(&format!("get, {clients} client(s)"), &f);
        }
        make_namespace(&admin, "list").await;
        let lister: Api<ConfigMap> = Api::namespaced(admin.clone(), "list");
        let listed = n(1000);
        for i in 0..listed {
            lister
                .create(&PostParams::default(), &cm(&format!("l{i}")))
                .await
                .expect("create");
        }
        for clients in [1usize, 16, 64] {
            let f = run(
                &kubeconfig,
                clients,
                (n(200) / clients).max(2),
                move |c, _, _| async move {
                    let api: Api<ConfigMap> = Api::namespaced(c, "list");
                    let l = api.list(&ListParams::default()).await.expect("list");
                    // The namespace also holds what controllers publish into
                    // every namespace (kube-root-ca.crt).
                    let ours = l.items.iter().filter(|c| {
                        c.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with('l'))
                    });
                    assert_eq!(ours.count(), listed);
                },
            )
            .await;
            print(&format!("list {listed}, {clients} client(s)"), &f);
        }
        for (i, watchers) in [1usize, 16, 64].into_iter().enumerate() {
            let f = watch_delivery(&kubeconfig, watchers, n(500), &format!("watch{i}")).await;
            print(&format!("watch delivery, {watchers} watcher(s)"), &f);
        }
        // Steady 200 creates/s (the latency target), open loop.
        make_namespace(&admin, "steady").await;
        let steady: Api<ConfigMap> = Api::namespaced(client(&kubeconfig).await, "steady");
        let total = n(2000);
        let mut ticker = tokio::time::interval(Duration::from_millis(5));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..total {
            ticker.tick().await;
            let api = steady.clone();
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                api.create(&PostParams::default(), &cm(&format!("s{i}")))
                    .await
                    .expect("create");
                t.elapsed()
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.push(t.await.expect("task"));
        }
        print("create at 200 req/s", &figures(lat, start.elapsed()));
        // Fill to 10 000 ConfigMaps in all.
        let existing = Api::<ConfigMap>::all(admin.clone())
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len();
        make_namespace(&admin, "fill").await;
        let fill_to = n(10_000).saturating_sub(existing);
        let _ = run(
            &kubeconfig,
            16,
            fill_to.div_ceil(16),
            |c, w, k| async move {
                let api: Api<ConfigMap> = Api::namespaced(c, "fill");
                api.create(&PostParams::default(), &cm(&format!("f{w}-{k}")))
                    .await
                    .expect("create");
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let count = Api::<ConfigMap>::all(admin.clone())
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len();
        println!(
            "{:<40} {:>10.1} MiB ({count} ConfigMaps)",
            "RSS after filling with ConfigMaps",
            rss_mib(pid)
        );
    });
    drop(server);
}
