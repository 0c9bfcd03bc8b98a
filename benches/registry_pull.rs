//! Registry pull figures, against a real `docker-registry` on loopback:
//!
//! 1. Pull time of a ~100 MB four-layer image into containerd (kelp's
//!    puller: fetch, verify, store, unpack) against `skopeo copy` of the
//!    same image into a directory, in one run, as a ratio. The transfer
//!    phase alone (every byte in the content store) is reported too, since
//!    skopeo does not unpack.
//! 2. Single-flight: ten concurrent pulls of one image on one node (one
//!    download per layer), against ten pulls that cannot share (ten
//!    containerd namespaces, which do not see each other's content): wall
//!    time and layer downloads counted in the registry's access log.
//!
//! Needs root and containerd (it runs its own containerd under a temp dir).
//! `cargo bench --bench registry_pull`

#[allow(dead_code)]
#[path = "../tests/common/busybox_image.rs"]
mod busybox_image;
mod common;
#[path = "../tests/common/node.rs"]
mod node;
#[path = "../tests/common/registry.rs"]
mod registry;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kelp::kubelet::containerd::images::PullProgress;
use kelp::kubelet::containerd::{ContainerdConfig, Runtime, SupervisedContainerd};
use kelp::kubelet::registry::{ImagePuller, PullPolicy};

/// Layers of the full-scale image, and the bytes of each.
const LAYERS: usize = 4;
const LAYER_BYTES: f64 = 25.0 * 1024.0 * 1024.0;
/// Rounds of each measurement (the median is reported).
const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A layer: one file of `bytes` pseudo-random, half-compressible data.
fn layer(i: usize, bytes: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(bytes);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1);
    while data.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Every other 8-byte word repeats: gzip halves it, like real layers.
        data.extend_from_slice(&x.to_le_bytes());
        data.extend_from_slice(&[b'k'; 8]);
    }
    data.truncate(bytes);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, format!("data/layer-{i}.bin"), &data[..])
        .expect("tar");
    b.into_inner().expect("tar")
}

fn main() {
    node::require_node_prerequisites();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    let scale = common::scale();
    let layer_bytes = ((LAYER_BYTES * scale) as usize).max(64 * 1024);
    let dir = tempfile::tempdir_in(node::test_root()).expect("dir");
    let root = dir.path();
    let layout = root.join("layout");
    let layers: Vec<Vec<u8>> = (0..LAYERS).map(|i| layer(i, layer_bytes)).collect();
    let image = busybox_image::write_oci_dir(
        &layout,
        "1",
        &layers,
        &[busybox_image::oci_host_arch()],
        true,
    )
    .expect("layout");
    drop(layers);
    let reg = registry::Registry::start(&root.join("registry"), None);
    reg.push(&layout, "1", "bench/big");
    let reference = format!("{}/bench/big:1", reg.host);
    println!(
        "image: {LAYERS} layers, {:.1} MB compressed ({:.1} MB uncompressed)",
        image.layers_size as f64 / 1e6,
        (layer_bytes * LAYERS) as f64 / 1e6
    );

    let containerd = SupervisedContainerd::start(ContainerdConfig {
        root: root.join("containerd"),
        state: root.join("run/containerd"),
        socket: root.join("run/containerd/containerd.sock"),
    })
    .await
    .expect("containerd");
    let socket = containerd.socket().to_path_buf();
    let runtime = Runtime::connect(&socket, "k8s.io").await.expect("connect");
    let registries = root.join("registries.yaml");
    let puller = ImagePuller::new(runtime.clone(), registries.clone());

    // 1. kelp pull vs skopeo copy, alternating.
    let (mut kelp_total, mut kelp_transfer, mut skopeo) = (vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let out = root.join(format!("skopeo-{round}"));
        let t = Instant::now();
        let status = std::process::Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("dir:{}", out.display()))
            .status()
            .expect("skopeo runs");
        assert!(status.success(), "skopeo copy");
        skopeo.push(t.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&out);

        let progress = Arc::new(PullProgress::default());
        let watcher = {
            let progress = progress.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                loop {
                    let total = progress.total.load(Ordering::Relaxed);
                    if total > 0 && progress.done.load(Ordering::Relaxed) >= total {
                        return t.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let t = Instant::now();
        let (info, report) = puller
            .pull(&reference, &[], &progress)
            .await
            .expect("kelp pull");
        kelp_total.push(t.elapsed().as_secs_f64());
        kelp_transfer.push(watcher.await.expect("watcher").as_secs_f64());
        assert!(
            report.fetched > image.layers_size,
            "a pull into an empty store fetches every layer and the config"
        );
        runtime.remove_image(&info.name).await.expect("remove");
    }
    let (k, kt, s) = (median(kelp_total), median(kelp_transfer), median(skopeo));
    println!(
        "pull {:.0} MB: kelp {:.0} ms (transfer {:.0} ms, then unpack), skopeo copy to dir {:.0} ms; ratio kelp/skopeo {:.2} (transfer only {:.2}; target <= 1.2)",
        image.layers_size as f64 / 1e6,
        k * 1e3,
        kt * 1e3,
        s * 1e3,
        k / s,
        kt / s
    );

    // 2. Single-flight: ten pulls at once in one namespace...
    let gets_before = layer_gets(&reg, &image);
    let t = Instant::now();
    let pulls = (0..10).map(|_| puller.ensure(&reference, PullPolicy::IfNotPresent, &[]));
    for r in futures::future::join_all(pulls).await {
        r.expect("pull");
    }
    let shared = t.elapsed().as_secs_f64();
    let shared_gets = layer_gets(&reg, &image) - gets_before;
    // ...against ten namespaces, which cannot share content.
    let gets_before = layer_gets(&reg, &image);
    let mut pullers = Vec::new();
    for i in 0..10 {
        let rt = Runtime::connect(&socket, &format!("bench-{i}"))
            .await
            .expect("connect");
        pullers.push(ImagePuller::new(rt, registries.clone()));
    }
    let t = Instant::now();
    let pulls = pullers
        .iter()
        .map(|p| p.ensure(&reference, PullPolicy::IfNotPresent, &[]));
    for r in futures::future::join_all(pulls).await {
        r.expect("pull");
    }
    let separate = t.elapsed().as_secs_f64();
    let separate_gets = layer_gets(&reg, &image) - gets_before;
    println!(
        "10 concurrent pulls: single-flight {:.0} ms, {shared_gets} layer downloads; unshared {:.0} ms, {separate_gets} layer downloads; time ratio {:.2}",
        shared * 1e3,
        separate * 1e3,
        shared / separate
    );
    let _ = std::io::stdout().flush();
    containerd.shutdown().await;
}

fn layer_gets(reg: &registry::Registry, image: &busybox_image::OciDirImage) -> usize {
    image
        .layer_digests
        .iter()
        .map(|d| reg.blob_gets("bench/big", d))
        .sum()
}
