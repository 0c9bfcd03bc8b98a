//! Image pulls from a real registry (Debian's `docker-registry`, the CNCF
//! distribution registry) on the node's loopback, into a real node's
//! containerd, driven with kubectl: anonymous, htpasswd auth through
//! imagePullSecrets, a registries.yaml mirror for docker.io, a rewrite, by
//! digest, single-flight for ten pods, the failure reasons, and image GC.
//! Images are multi-platform (the host's and another), built from Debian's
//! busybox-static and pushed with skopeo. Needs root, containerd, runc,
//! docker-registry and skopeo; fails (never skips) without them.

mod common;

use std::path::Path;

use common::busybox_image::{marked_busybox_layer, oci_host_arch, write_oci_dir};
use common::cluster::Server;
use common::registry::{Auth, FlakyProxy, Registry};

/// The other platform every test image also carries.
fn other_arch() -> &'static str {
    if oci_host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// Builds a two-platform busybox layout tagged `1.0` whose layer is marked
/// with `marker` (new marker, new digests).
fn layout(dir: &Path, marker: &str) -> common::busybox_image::OciDirImage {
    let layer = marked_busybox_layer(marker).expect("busybox layer");
    write_oci_dir(dir, "1.0", &[layer], &[oci_host_arch(), other_arch()], true)
        .expect("write OCI layout")
}

/// Runs `kelp images ARGS` against the node's containerd: (success, stdout+stderr).
fn kelp_images(s: &Server, args: &[&str]) -> (bool, String) {
    let run_dir = s.data_dir().parent().expect("dir").join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kelp"))
        .arg("images")
        .args(args)
        .arg("--run-dir")
        .arg(&run_dir)
        .output()
        .expect("kelp images runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The names `kelp images list` shows.
fn image_names(s: &Server) -> String {
    let (ok, out) = kelp_images(s, &["list", "--quiet"]);
    assert!(ok, "{out}");
    out
}

fn pod(name: &str, image: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  {extra}
  containers:
  - name: c
    image: "{image}"
    command: ["sh", "-c", "cat /etc/kelp-marker; echo; sleep 100000"]
"#
    )
}

/// [`pod`] with `imagePullPolicy: Always`: the image is resolved at the
/// registry even when the node has it.
fn pod_always(name: &str, image: &str, extra: &str) -> String {
    pod(name, image, extra).replace(
        &format!("image: \"{image}\""),
        &format!("image: \"{image}\"\n    imagePullPolicy: Always"),
    )
}

fn wait_running(s: &Server, name: &str) {
    s.wait_for(90, &format!("pod {name} Running"), || {
        s.jsonpath(&["get", "pod", name], "{.status.phase}") == "Running"
    });
}

fn events(s: &Server, name: &str) -> String {
    s.jsonpath(
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
        ],
        r#"{range .items[*]}{.reason}: {.message}{"\n"}{end}"#,
    )
}

fn waiting_reason(s: &Server, name: &str) -> String {
    s.jsonpath(
        &["get", "pod", name],
        "{.status.containerStatuses[0].state.waiting.reason}",
    )
}

/// Waits until the pod's container waits with one of `reasons`; returns its events.
fn wait_failed(s: &Server, name: &str, reasons: &[&str]) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !reasons.contains(&waiting_reason(s, name).as_str()) {
        assert!(
            std::time::Instant::now() < deadline,
            "pod {name} never waited with {reasons:?}:\n{}\nevents:\n{}",
            s.jsonpath(&["get", "pod", name], "{.status}"),
            events(s, name)
        );
        std::thread::park_timeout(std::time::Duration::from_millis(300));
    }
    let mut ev = String::new();
    s.wait_for(30, &format!("a Failed event for {name}"), || {
        ev = events(s, name);
        ev.contains("Failed")
    });
    ev
}

#[test]
fn pods_run_from_a_real_registry_with_auth_mirrors_rewrites_and_digests() {
    let work = tempfile::tempdir_in(common::node::test_root()).expect("temp dir");
    let registries = work.path().join("registries.yaml");
    let registries_flag = registries.display().to_string();
    // The node runs in its own network namespace; from here on this
    // thread (and the registries it starts) share it, so loopback is the node's.
    let s = Server::start_node(&["--private-registry", &registries_flag]);

    let open = Registry::start(&work.path().join("open"), None);
    let one = layout(&work.path().join("layout-one"), "one");
    open.push(&work.path().join("layout-one"), "1.0", "tools/busybox");
    open.push(&work.path().join("layout-one"), "1.0", "library/busybox");

    // Anonymous, by tag.
    let image = format!("{}/tools/busybox:1.0", open.host);
    s.ok_stdin(&["apply", "-f", "-"], &pod("anon", &image, ""));
    wait_running(&s, "anon");
    let ev = events(&s, "anon");
    assert!(
        ev.contains(&format!("Pulling: Pulling image \"{image}\"")),
        "{ev}"
    );
    assert!(
        ev.contains(&format!(
            "Pulled: Successfully pulled image \"{image}\" in "
        )) && ev.contains("Image size: "),
        "{ev}"
    );
    assert_eq!(
        s.ok(&["logs", "anon"]).trim(),
        "one",
        "the container runs the pulled layer"
    );
    let image_id = s.jsonpath(
        &["get", "pod", "anon"],
        "{.status.containerStatuses[0].imageID}",
    );
    assert!(
        image_id.ends_with(&one.index_digest),
        "imageID {image_id} names the repo digest {}",
        one.index_digest
    );
    assert_eq!(open.blob_gets("tools/busybox", &one.layer_digests[0]), 1);
    assert_eq!(open.blob_gets("tools/busybox", &one.config_digest), 1);

    // A Docker v2 schema 2 manifest (no index).
    open.push_docker_v2s2(&work.path().join("layout-one"), "1.0", "docker/busybox");
    let raw = open.raw_manifest("docker/busybox:1.0");
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "skopeo pushed a schema 2 manifest: {raw}"
    );
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("schema2", &format!("{}/docker/busybox:1.0", open.host), ""),
    );
    wait_running(&s, "schema2");

    // By digest.
    let by_digest = format!("{}/tools/busybox@{}", open.host, one.index_digest);
    s.ok_stdin(&["apply", "-f", "-"], &pod("digest", &by_digest, ""));
    wait_running(&s, "digest");

    // Through a registries.yaml mirror for docker.io: `busybox:1.0` is
    // docker.io/library/busybox:1.0, which only the mirror has here (no
    // internet). And a rewrite: registry.example/team/* is tools/* on the mirror.
    std::fs::write(
        &registries,
        format!(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://{h}\"]\n  registry.example:\n    endpoint: [\"http://{h}\"]\n    rewrite:\n      \"^team/(.*)\": \"tools/$1\"\n",
            h = open.host
        ),
    )
    .expect("write registries.yaml");
    s.ok_stdin(&["apply", "-f", "-"], &pod("mirrored", "busybox:1.0", ""));
    wait_running(&s, "mirrored");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("rewritten", "registry.example/team/busybox:1.0", ""),
    );
    wait_running(&s, "rewritten");
    let log = open.log();
    assert!(
        log.contains("\"GET /v2/library/busybox/manifests/1.0 "),
        "the mirror served docker.io/library/busybox"
    );
    assert!(
        log.contains("\"HEAD /v2/tools/busybox/manifests/1.0 ")
            || log
                .matches("\"GET /v2/tools/busybox/manifests/1.0 ")
                .count()
                >= 2,
        "the rewrite reached tools/busybox on the mirror"
    );

    // htpasswd auth: with the pod's pull secret it runs; without, the
    // registry's 401 is in the events; with a wrong password too.
    let private = Registry::start(&work.path().join("private"), Some("alice:s3cret"));
    let three = layout(&work.path().join("layout-private"), "private");
    private.push(
        &work.path().join("layout-private"),
        "1.0",
        "private/busybox",
    );
    let image = format!("{}/private/busybox:1.0", private.host);
    for (name, password) in [("pull-ok", "s3cret"), ("pull-bad", "wrong")] {
        s.ok(&[
            "create",
            "secret",
            "docker-registry",
            name,
            &format!("--docker-server={}", private.host),
            "--docker-username=alice",
            &format!("--docker-password={password}"),
        ]);
    }
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("authed", &image, "imagePullSecrets: [{name: pull-ok}]"),
    );
    wait_running(&s, "authed");
    assert_eq!(
        private.blob_gets("private/busybox", &three.layer_digests[0]),
        1
    );
    s.ok_stdin(&["apply", "-f", "-"], &pod_always("no-secret", &image, ""));
    let ev = wait_failed(&s, "no-secret", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(
        ev.contains(&format!("Failed to pull image \"{image}\"")),
        "{ev}"
    );
    assert!(
        ev.contains("401") || ev.contains("nauthorized"),
        "the registry's 401 is shown: {ev}"
    );
    assert!(ev.contains("Error: ErrImagePull"), "{ev}");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod_always("bad-secret", &image, "imagePullSecrets: [{name: pull-bad}]"),
    );
    let ev = wait_failed(&s, "bad-secret", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(ev.contains("401") || ev.contains("nauthorized"), "{ev}");
    // Back-off follows.
    s.wait_for(60, "ImagePullBackOff", || {
        waiting_reason(&s, "no-secret") == "ImagePullBackOff"
    });

    // Token auth (distribution's `auth: token`): the pull secret's
    // credentials go to the token server named in the registry's
    // WWW-Authenticate challenge, and the bearer token to the registry.
    let tokened = Registry::start_with(&work.path().join("token"), Auth::Token("bob:t0ken"), false);
    let four = layout(&work.path().join("layout-token"), "token");
    tokened.push(&work.path().join("layout-token"), "1.0", "team/busybox");
    s.ok(&[
        "create",
        "secret",
        "docker-registry",
        "pull-token",
        &format!("--docker-server={}", tokened.host),
        "--docker-username=bob",
        "--docker-password=t0ken",
    ]);
    let token_image = format!("{}/team/busybox:1.0", tokened.host);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod(
            "token-authed",
            &token_image,
            "imagePullSecrets: [{name: pull-token}]",
        ),
    );
    wait_running(&s, "token-authed");
    assert_eq!(tokened.blob_gets("team/busybox", &four.layer_digests[0]), 1);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod_always(
            "token-denied",
            &token_image,
            "imagePullSecrets: [{name: pull-bad}]",
        ),
    );
    let ev = wait_failed(&s, "token-denied", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(
        ev.contains("401 Unauthorized"),
        "the registry's 401 is shown: {ev}"
    );

    // A registry that drops the connection mid-layer: the download resumes
    // with a Range request and the pod runs.
    let flaky = FlakyProxy::start(&open.host, 100 * 1024);
    let resumed = layout(&work.path().join("layout-resume"), "resume");
    open.push(&work.path().join("layout-resume"), "1.0", "resume/busybox");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("resumed", &format!("{}/resume/busybox:1.0", flaky.host), ""),
    );
    wait_running(&s, "resumed");
    assert_eq!(
        flaky.cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the proxy cut one response"
    );
    assert_eq!(s.ok(&["logs", "resumed"]).trim(), "resume");
    let partial = format!(
        "\"GET /v2/resume/busybox/blobs/{} ",
        resumed.layer_digests[0]
    );
    assert!(
        open.log()
            .lines()
            .any(|l| l.contains(&partial) && l.contains("\" 206 ")),
        "the layer was resumed with a range request:\n{}",
        open.log()
    );

    // A blob whose bytes do not match its digest is refused, and said so.
    let corrupt = layout(&work.path().join("layout-corrupt"), "corrupt");
    open.push(
        &work.path().join("layout-corrupt"),
        "1.0",
        "corrupt/busybox",
    );
    let hex = corrupt.layer_digests[0].trim_start_matches("sha256:");
    let blob = work
        .path()
        .join("open/storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let len = std::fs::metadata(&blob).expect("stored layer").len() as usize;
    std::fs::write(&blob, vec![0x5a; len]).expect("corrupt the stored layer");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("corrupt", &format!("{}/corrupt/busybox:1.0", open.host), ""),
    );
    let ev = wait_failed(&s, "corrupt", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(ev.contains("digest") && ev.contains(hex), "{ev}");

    // registries.yaml `configs:`: auth and a CA for an HTTPS registry,
    // with no pull secret in the pod. Without the CA the pull fails.
    let tls_dir = work.path().join("tls");
    let secure = Registry::start_with(&tls_dir, Auth::Htpasswd("carol:c0nfig"), true);
    secure.push(&work.path().join("layout-one"), "1.0", "secure/busybox");
    let secure_image = format!("{}/secure/busybox:1.0", secure.host);
    s.ok_stdin(&["apply", "-f", "-"], &pod("untrusted", &secure_image, ""));
    let ev = wait_failed(
        &s,
        "untrusted",
        &["ErrImagePull", "RegistryUnavailable", "ImagePullBackOff"],
    );
    assert!(
        ev.contains(&format!("https://{}", secure.host)) && ev.contains("certificate"),
        "the HTTPS attempt's certificate error is shown: {ev}"
    );
    let mirrors = std::fs::read_to_string(&registries).expect("registries.yaml");
    std::fs::write(
        &registries,
        format!(
            "{mirrors}configs:\n  \"{}\":\n    auth:\n      username: carol\n      password: c0nfig\n    tls:\n      ca_file: {}\n",
            secure.host,
            tls_dir.join("ca.pem").display()
        ),
    )
    .expect("write registries.yaml");
    s.ok(&["delete", "pod", "untrusted", "--wait=true"]);
    s.ok_stdin(&["apply", "-f", "-"], &pod("trusted", &secure_image, ""));
    wait_running(&s, "trusted");

    // A service account's pull secrets reach its pods.
    s.ok(&["create", "serviceaccount", "puller"]);
    s.ok(&[
        "patch",
        "serviceaccount",
        "puller",
        "-p",
        r#"{"imagePullSecrets":[{"name":"pull-ok"}]}"#,
    ]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod_always("sa-authed", &image, "serviceAccountName: puller"),
    );
    wait_running(&s, "sa-authed");
    assert_eq!(
        s.jsonpath(
            &["get", "pod", "sa-authed"],
            "{.spec.imagePullSecrets[0].name}"
        ),
        "pull-ok"
    );

    // The CLI pulls and removes.
    let images = |args: &[&str]| kelp_images(&s, args);
    let list = || images(&["list", "--quiet"]).1;
    open.push(&work.path().join("layout-one"), "1.0", "cli/busybox");
    let by_cli = format!("{}/cli/busybox:1.0", open.host);
    let (ok, out) = images(&["pull", &by_cli]);
    assert!(ok && out.contains(&format!("pulled {by_cli}")), "{out}");
    assert!(list().contains(&by_cli));
    let (ok, out) = images(&["rm", &by_cli]);
    assert!(ok && out.contains(&format!("deleted {by_cli}")), "{out}");
    assert!(!list().contains(&by_cli));
    let (ok, out) = images(&["rm", "no/such:image"]);
    assert!(!ok && out.contains("no such image"), "{out}");
    let (ok, out) = images(&["pull", "Bad Name"]);
    assert!(!ok && out.contains("invalid reference format"), "{out}");

    // Failure reasons.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod(
            "missing-tag",
            &format!("{}/tools/busybox:nope", open.host),
            "",
        ),
    );
    let ev = wait_failed(&s, "missing-tag", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(ev.contains("not found"), "{ev}");
    let foreign = work.path().join("layout-foreign");
    write_oci_dir(
        &foreign,
        "1.0",
        &[marked_busybox_layer("foreign").expect("layer")],
        &[other_arch(), "s390x"],
        true,
    )
    .expect("foreign layout");
    open.push(&foreign, "1.0", "foreign/busybox");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("foreign", &format!("{}/foreign/busybox:1.0", open.host), ""),
    );
    let ev = wait_failed(&s, "foreign", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(
        ev.contains("platforms found") && ev.contains(&format!("linux/{}", other_arch())),
        "{ev}"
    );
    s.ok_stdin(&["apply", "-f", "-"], &pod("bad-name", "Busy Box:1", ""));
    s.wait_for(60, "InvalidImageName", || {
        waiting_reason(&s, "bad-name") == "InvalidImageName"
    });
    let unreachable = format!("127.0.0.1:{}/x/y:1", common::cluster::free_port());
    s.ok_stdin(&["apply", "-f", "-"], &pod("down", &unreachable, ""));
    let ev = wait_failed(&s, "down", &["RegistryUnavailable", "ImagePullBackOff"]);
    assert!(ev.contains("unavailable"), "{ev}");
}

#[test]
fn ten_pods_of_one_image_fetch_each_layer_once() {
    let work = tempfile::tempdir_in(common::node::test_root()).expect("temp dir");
    let s = Server::start_node(&[]);
    let open = Registry::start(&work.path().join("open"), None);
    let fleet = layout(&work.path().join("layout-fleet"), "fleet");
    open.push(&work.path().join("layout-fleet"), "1.0", "fleet/busybox");
    let deploy = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: fleet}}
spec:
  replicas: 10
  selector: {{matchLabels: {{app: fleet}}}}
  template:
    metadata: {{labels: {{app: fleet}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: {}/fleet/busybox:1.0
        command: ["sleep", "100000"]
"#,
        open.host
    );
    s.ok_stdin(&["apply", "-f", "-"], &deploy);
    s.wait_for(120, "10 fleet pods Running", || {
        let phases = s.jsonpath(
            &["get", "pods", "-l", "app=fleet"],
            "{.items[*].status.phase}",
        );
        phases
            .split_whitespace()
            .filter(|p| *p == "Running")
            .count()
            == 10
    });
    for digest in fleet.layer_digests.iter().chain([&fleet.config_digest]) {
        assert_eq!(
            open.blob_gets("fleet/busybox", digest),
            1,
            "blob {digest} fetched once for ten pods\n{}",
            open.log()
        );
    }
}

#[test]
fn image_gc_removes_unused_images_when_the_disk_is_over_the_threshold() {
    let work = tempfile::tempdir_in(common::node::test_root()).expect("temp dir");
    // Any usage is over 1 %: every unused, unpinned image is collected.
    let s = Server::start_node(&[
        "--kubelet-arg",
        "image-gc-high-threshold=1",
        "--kubelet-arg",
        "image-gc-low-threshold=0",
        "--kubelet-arg",
        "image-minimum-gc-age=0s",
    ]);
    let mut s = s;
    let open = Registry::start(&work.path().join("open"), None);
    layout(&work.path().join("layout-gc"), "gc");
    open.push(&work.path().join("layout-gc"), "1.0", "gc/busybox");
    open.push(&work.path().join("layout-gc"), "1.0", "listed/busybox");
    // Airgap image lists are pulled at start, and pinned.
    let listed = format!("{}/listed/busybox:1.0", open.host);
    std::fs::write(
        s.data_dir().join("agent/images/extra.txt"),
        format!("# pre-pulled at start\n{listed}\n"),
    )
    .expect("write the image list");
    s.restart();
    s.wait_node_ready();
    s.wait_for(60, "the listed image pre-pulled", || {
        image_names(&s).contains(&listed)
    });
    let image = format!("{}/gc/busybox:1.0", open.host);
    s.ok_stdin(&["apply", "-f", "-"], &pod("user", &image, ""));
    wait_running(&s, "user");
    let full = format!("{}/gc/busybox:1.0", open.host);
    // In use: kept through several GC passes.
    std::thread::park_timeout(std::time::Duration::from_secs(12));
    assert!(image_names(&s).contains(&full), "an image in use is kept");
    s.ok(&["delete", "pod", "user", "--wait=true"]);
    s.wait_for(60, "the unused image collected", || {
        !image_names(&s).contains(&full)
    });
    // Airgap images (archives and lists) are pinned: they stay.
    let left = image_names(&s);
    assert!(
        left.contains("docker.io/library/busybox:latest") && left.contains(&listed),
        "pinned airgap images are never collected: {left}"
    );
}

/// Incompressible bytes (xorshift), so the layer is as big on the wire as on disk.
fn noise(bytes: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(bytes + 8);
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(bytes);
    out
}

#[test]
fn a_full_disk_during_a_pull_is_a_clean_error_and_leaves_nothing_half_written() {
    common::node::require_node_prerequisites();
    let work = tempfile::tempdir_in(common::node::test_root()).expect("temp dir");
    let small = work.path().join("small");
    let _tmpfs = common::node::Tmpfs::mount(&small, "24m");
    let reg = Registry::start(&work.path().join("registry"), None);
    let busybox = std::fs::read("/bin/busybox").expect("busybox");
    let big = noise(40 << 20);
    let layer =
        common::busybox_image::layer_tar_with(&busybox, &[("big.bin", &big)]).expect("layer");
    drop(big);
    write_oci_dir(
        &work.path().join("big"),
        "1",
        &[layer],
        &[oci_host_arch()],
        true,
    )
    .expect("layout");
    reg.push(&work.path().join("big"), "1", "big/busybox");
    let small_layout = work.path().join("small-layout");
    layout(&small_layout, "fits");
    reg.push(&small_layout, "1.0", "small/busybox");

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            use kelp::kubelet::containerd::images::PullProgress;
            let containerd = kelp::kubelet::containerd::SupervisedContainerd::start(
                kelp::kubelet::containerd::ContainerdConfig {
                    root: small.join("containerd"),
                    state: work.path().join("run/containerd"),
                    socket: work.path().join("run/containerd/containerd.sock"),
                },
            )
            .await
            .expect("containerd on the small disk");
            let runtime =
                kelp::kubelet::containerd::Runtime::connect(containerd.socket(), "k8s.io")
                    .await
                    .expect("connect");
            let puller = kelp::kubelet::registry::ImagePuller::new(
                runtime.clone(),
                work.path().join("registries.yaml"),
            );
            let image = format!("{}/big/busybox:1", reg.host);
            let failure = puller
                .pull(&image, &[], &PullProgress::default())
                .await
                .expect_err("a 40 MB layer cannot fit on a 24 MB disk");
            assert_eq!(failure.reason, "ErrImagePull");
            assert!(
                failure.message.contains("no space left on device"),
                "the error names the full disk: {}",
                failure.message
            );
            assert!(runtime.image(&image).await.expect("lookup").is_none());
            let ingest = small.join("containerd/io.containerd.content.v1.content/ingest");
            let left: Vec<_> = std::fs::read_dir(&ingest)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "no partial download left behind: {left:?}");
            // The store still works: a small image pulls and runs its lookups.
            let fits = format!("{}/small/busybox:1.0", reg.host);
            puller
                .pull(&fits, &[], &PullProgress::default())
                .await
                .expect("a small image pulls after the failure");
            assert!(runtime.image(&fits).await.expect("lookup").is_some());
            containerd.shutdown().await;
        });
}
