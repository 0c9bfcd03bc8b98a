//! What encryption at rest costs: durable creates (and point reads) of
//! 1 KiB Secrets through the sled store, plain against AES-GCM sealed, in
//! the same run, plus the cost of one seal+open on its own.
//!
//! `cargo bench --bench secrets_encryption`; `KELP_BENCH_SCALE=0.2` for a
//! quicker, noisier run.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kelp::store::Store;
use kelp::store::encryption::{EncryptingStore, EncryptionConfiguration, Key, Keyring};
use kelp::store::sled::{SledConfig, SledStore};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

async fn run<S: Store>(store: &S, n: usize, value: &Bytes) -> (Vec<Duration>, Vec<Duration>) {
    let mut writes = Vec::with_capacity(n);
    let mut reads = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("/registry/core/secrets/default/s{i}");
        let t = Instant::now();
        store.create(&key, value.clone()).await.expect("create");
        writes.push(t.elapsed());
        let t = Instant::now();
        let (kv, _) = store.get(&key).await.expect("get");
        reads.push(t.elapsed());
        assert_eq!(kv.expect("present").value, *value);
    }
    writes.sort();
    reads.sort();
    (writes, reads)
}

fn main() {
    let n = ((2000.0 * common::scale()) as usize).max(100);
    let dir =
        tempfile::tempdir_in(std::env::var("KELP_BENCH_DIR").unwrap_or_else(|_| "target".into()))
            .expect("temp dir");
    let config = dir.path().join("encryption-config.json");
    EncryptionConfiguration::for_secrets(Key::generate("bench").expect("key"))
        .write(&config)
        .expect("write config");
    let keyring = Arc::new(Keyring::load(&config).expect("load"));
    let value = Bytes::from(vec![b'x'; 1024]);

    let t = Instant::now();
    let rounds = 100_000;
    for _ in 0..rounds {
        let key = "/registry/core/secrets/default/s";
        let sealed = keyring.encrypt(key, value.clone()).expect("seal");
        let opened = keyring.decrypt(key, sealed).expect("open");
        assert_eq!(opened.len(), value.len());
    }
    let seal_open = t.elapsed() / rounds;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (plain, sealed) = rt.block_on(async {
        let plain = SledStore::open(SledConfig::new(dir.path().join("plain"))).expect("open");
        let plain_figures = run(&plain, n, &value).await;
        drop(plain);
        let inner = SledStore::open(SledConfig::new(dir.path().join("sealed"))).expect("open");
        let sealed = EncryptingStore::new(inner, keyring.clone());
        let sealed_figures = run(&sealed, n, &value).await;
        (plain_figures, sealed_figures)
    });
    println!(
        "secrets encryption benchmark: {n} sequential 1 KiB Secrets, durable creates + point reads"
    );
    println!("seal+open of one 1 KiB value (AES-256-GCM): {seal_open:?}");
    for (name, p, s) in [
        ("create", &plain.0, &sealed.0),
        ("get", &plain.1, &sealed.1),
    ] {
        let (p50p, p50s) = (percentile(p, 0.5), percentile(s, 0.5));
        let (p99p, p99s) = (percentile(p, 0.99), percentile(s, 0.99));
        println!(
            "{name:<7} plain p50 {p50p:>10.1?} p99 {p99p:>10.1?} | encrypted p50 {p50s:>10.1?} p99 {p99s:>10.1?} | p50 ratio {:.2}x",
            p50s.as_secs_f64() / p50p.as_secs_f64()
        );
    }
}
