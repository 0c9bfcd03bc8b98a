//! Hostile input against a real server, with real kubectl: each case is an
//! attack that once took kelp down or left it degraded.

mod common;

use common::cluster::Server;
use common::proc_stats::{cpu_seconds, rss_mib};

/// CVE-2019-1002100's class: a 1.6 KB JSON patch whose `copy` operations
/// double the object 25 times. It is refused with upstream's message,
/// memory does not grow, and the object is unchanged.
#[test]
fn a_json_patch_copy_bomb_is_refused_without_growing_memory() {
    let s = Server::start();
    let value = "x".repeat(1000);
    s.ok(&[
        "create",
        "configmap",
        "bomb",
        &format!("--from-literal=a={value}"),
    ]);
    s.ok(&["annotate", "configmap", "bomb", "seed=1"]);
    let mut ops =
        vec![serde_json::json!({"op": "copy", "from": "/data", "path": "/metadata/annotations/d"})];
    for i in 0..25 {
        ops.push(serde_json::json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}));
    }
    let patch = serde_json::to_string(&ops).expect("patch");
    let before = rss_mib(s.pid());
    let started = std::time::Instant::now();
    let err = s.fails(&["patch", "configmap", "bomb", "--type=json", "-p", &patch]);
    let took = started.elapsed();
    let grown = rss_mib(s.pid()) - before;
    println!(
        "copy bomb ({} bytes): refused in {:.1} ms (kubectl included), RSS growth {grown:.1} MiB",
        patch.len(),
        took.as_secs_f64() * 1e3
    );
    assert!(
        err.contains("Unable to complete the copy, the accumulated size increase of copy is"),
        "{err}"
    );
    assert!(grown < 50.0, "RSS grew {grown:.1} MiB");
    let annotations = s.jsonpath(&["get", "configmap", "bomb"], "{.metadata.annotations}");
    assert!(
        !annotations.contains("c0"),
        "nothing was applied: {annotations}"
    );
    // The server still serves.
    s.ok(&["get", "configmap", "bomb"]);
}

/// Thousands of idle, unauthenticated connections (nothing sent, not even
/// TLS) against a server limited to 2 048 descriptors: kelp holds at most
/// its connection budget, closes the rest at once, and still serves
/// kubectl, reads and writes alike; its store never runs out of fds.
#[test]
fn a_flood_of_idle_connections_locks_out_neither_clients_nor_the_store() {
    let s = Server::start();
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", s.pid()))
        .arg("--nofile=2048:2048")
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "lower kelp's open-file limit");
    // This process holds the other ends.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)
        .expect("raise the test's own limit");
    let addr = format!("127.0.0.1:{}", s.port);
    let opening = std::time::Instant::now();
    let flood: Vec<std::net::TcpStream> = (0..2600)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(
        flood.len() > 2048,
        "the flood opened {} connections",
        flood.len()
    );
    println!(
        "opened {} connections in {:.1} s",
        flood.len(),
        opening.elapsed().as_secs_f64()
    );
    std::thread::park_timeout(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    s.ok(&["get", "namespaces"]);
    println!(
        "{} idle connections open: kubectl get namespaces took {:.1} ms",
        flood.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    s.ok(&["create", "configmap", "after-flood", "--from-literal=a=b"]);
    assert_eq!(
        s.jsonpath(&["get", "configmap", "after-flood"], "{.data.a}"),
        "b"
    );
    let held = std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        held < 2048,
        "kelp holds {held} descriptors, under its limit"
    );
    drop(flood);
    s.ok(&["get", "configmap", "after-flood"]);
}

/// The store holds every Secret: the data dir and everything under
/// `server/` are the owner's alone, also when an older install left them
/// open (fixed at start), and another local user cannot read a Secret.
#[test]
fn the_data_dir_is_private_to_root() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = Server::start();
    s.ok(&[
        "create",
        "secret",
        "generic",
        "private",
        "--from-literal=password=kelp-hunter2-secret",
    ]);
    let data = s.data_dir();
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let db_file = data.join("server/db/db");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("server/db")), 0o700);
    assert_eq!(mode(&db_file), 0o600);
    // An install from before the rule: opened up, then restarted.
    s.stop();
    for (p, m) in [
        (&data, 0o755),
        (&data.join("server"), 0o755),
        (&data.join("server/db"), 0o755),
        (&db_file, 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
    }
    s.restart();
    s.ok(&["get", "secret", "private"]);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("server")), 0o700);
    assert_eq!(mode(&db_file), 0o600);
    // Open the temp dir around the data dir to all, as /var/lib is: only
    // kelp's own modes stand in the way.
    let parent = data.parent().expect("temp dir");
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "grep",
            "-rl",
            "kelp-hunter2-secret",
        ])
        .arg(&data)
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(
        out.stdout.is_empty(),
        "user nobody found the secret in: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `curl` as a cluster admin (a system:masters client certificate):
/// returns (HTTP status, body).
fn curl(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, String) {
    let tls = s.data_dir().join("server/tls");
    let (cert, key) =
        kelp::pki::client_cert_from_ca(&tls, "hardening-admin", &["system:masters"]).expect("cert");
    let (cert_file, key_file) = (
        s.dir.path().join("admin.crt"),
        s.dir.path().join("admin.key"),
    );
    std::fs::write(&cert_file, cert).expect("write cert");
    std::fs::write(&key_file, key).expect("write key");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "-X", method, "--cacert"])
        .arg(tls.join("server-ca.crt"))
        .arg("--cert")
        .arg(&cert_file)
        .arg("--key")
        .arg(&key_file);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{}{path}", s.port))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Media types and URL identity as upstream: a text/plain body is 415,
/// `Accept: text/html` is 406, and a patch or apply that renames the
/// object is 400 instead of a 200 that silently drops the change.
#[test]
fn media_types_and_renames_get_upstreams_answers() {
    let s = Server::start();
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m"},"data":{"a":"b"}}"#;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, body) = curl(&s, "POST", path, &["Content-Type: text/plain"], Some(cm));
    assert_eq!(code, 415, "{body}");
    assert!(
        body.contains("\"reason\":\"UnsupportedMediaType\""),
        "{body}"
    );
    // No Content-Type at all is JSON, as upstream's NegotiateInputSerializer.
    let (code, body) = curl(&s, "POST", path, &["Content-Type:"], Some(cm));
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl(
        &s,
        "GET",
        &format!("{path}/m"),
        &["Accept: text/html"],
        None,
    );
    assert_eq!(code, 406, "{body}");
    assert!(
        body.contains("only the following media types are accepted: application/json"),
        "{body}"
    );
    let (code, _) = curl(
        &s,
        "GET",
        &format!("{path}/m"),
        &["Accept: text/html, */*;q=0.1"],
        None,
    );
    assert_eq!(code, 200);
    let err = s.fails(&[
        "patch",
        "configmap",
        "m",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/metadata/name","value":"other"}]"#,
    ]);
    assert!(
        err.contains("the name of the object (other) does not match the name on the URL (m)"),
        "{err}"
    );
    let (code, body) = curl(
        &s,
        "PATCH",
        &format!("{path}/m?fieldManager=t"),
        &["Content-Type: application/apply-patch+yaml"],
        Some(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"renamed"},"data":{"a":"b"}}"#,
        ),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("does not match the name on the URL (m)"),
        "{body}"
    );
    assert_eq!(s.jsonpath(&["get", "configmap", "m"], "{.data.a}"), "b");
}

/// A strategic merge patch that adds 30 000 containers to a Deployment is
/// refused (the object would pass etcd's 1.5 MiB limit: 413, as upstream)
/// without a long burn of CPU: list merges and managed-field comparisons
/// once took 27 s on it, from quadratic lookups.
#[test]
fn a_huge_strategic_merge_patch_is_refused_cheaply() {
    let s = Server::start();
    s.ok(&["create", "deployment", "big", "--image=busybox:1.36"]);
    let containers: Vec<serde_json::Value> = (0..30_000)
        .map(|i| serde_json::json!({"name": format!("c{i}"), "image": "busybox"}))
        .collect();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": containers}}}});
    let file = s.dir.path().join("smp.json");
    std::fs::write(&file, patch.to_string()).expect("write patch");
    let cpu_before = cpu_seconds(s.pid());
    let started = std::time::Instant::now();
    let out = s.kubectl(&[
        "patch",
        "deployment",
        "big",
        "--type=strategic",
        "--patch-file",
        file.to_str().expect("path"),
    ]);
    let took = started.elapsed();
    let cpu = cpu_seconds(s.pid()) - cpu_before;
    println!(
        "SMP with 30000 containers ({} bytes): answered in {:.0} ms, server CPU {cpu:.2} s",
        patch.to_string().len(),
        took.as_secs_f64() * 1e3
    );
    assert!(!out.status.success(), "the patch must be refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Invalid") || err.contains("invalid") || err.contains("too large"),
        "{err}"
    );
    assert_eq!(
        s.jsonpath(
            &["get", "deployment", "big"],
            "{.spec.template.spec.containers[*].name}"
        ),
        "busybox"
    );
}

/// With the store's disk almost full, writes get a 507 before sled can
/// meet a real ENOSPC; reads and deletes go on, and writes come back by
/// themselves once space is freed. (The data dir is a 160 MiB tmpfs.)
#[test]
fn writes_stop_with_a_507_before_the_disk_is_full_and_come_back() {
    use std::io::Write;
    let work = tempfile::tempdir_in(common::node::test_root()).expect("temp dir");
    let data = work.path().join("data");
    let _tmpfs = common::node::Tmpfs::mount(&data, "160m");
    let data_flag = data.display().to_string();
    let s = Server::start_with(&["--data-dir", &data_flag]);
    s.ok(&["create", "configmap", "before", "--from-literal=a=b"]);
    // Fill the disk to 32 MiB short of full (below the 64 MiB reserve).
    let st = nix::sys::statvfs::statvfs(&data).expect("statvfs");
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    let fill = free.saturating_sub(32 << 20);
    let filler = data.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..fill / (1 << 20) {
        f.write_all(&chunk).expect("fill");
    }
    drop(f);
    std::thread::park_timeout(std::time::Duration::from_millis(1500));
    let err = s.fails(&["create", "configmap", "after", "--from-literal=a=b"]);
    assert!(err.contains("insufficient storage"), "{err}");
    assert_eq!(
        s.jsonpath(&["get", "configmap", "before"], "{.data.a}"),
        "b"
    );
    s.ok(&["delete", "configmap", "before"]);
    std::fs::remove_file(&filler).expect("free the space");
    std::thread::park_timeout(std::time::Duration::from_millis(1500));
    s.ok(&["create", "configmap", "after", "--from-literal=a=b"]);
    assert!(s.log().contains("refusing writes until space is freed"));
    // Both changes are Events, as kubectl shows them.
    let reasons = s.jsonpath(
        &["get", "events", "-n", "kube-system"],
        "{.items[*].reason}",
    );
    assert!(reasons.contains("InsufficientStorage"), "{reasons}");
    assert!(reasons.contains("StorageAvailable"), "{reasons}");
}

/// With the apiserver's 507 guard off, a really full disk under the store:
/// the write gets a 500 that says why (the store refuses before sled can
/// meet ENOSPC), /readyz reports the store, writes come back by
/// themselves once space is freed (no restart), SIGTERM still stops kelp
/// while the store is failing, and nothing acknowledged is lost.
#[test]
fn a_real_enospc_is_a_clear_500_and_the_store_recovers_without_a_restart() {
    let work = tempfile::tempdir_in(common::node::test_root()).expect("temp dir");
    let data = work.path().join("data");
    let _tmpfs = common::node::Tmpfs::mount(&data, "160m");
    let data_flag = data.display().to_string();
    let mut s = Server::start_with(&["--data-dir", &data_flag, "--store-reserve", "0"]);
    s.ok(&["create", "configmap", "before", "--from-literal=a=b"]);
    let readyz = |s: &Server| {
        let out = s.kubectl(&["get", "--raw", "/readyz"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let big = "x".repeat(100 << 10);
    let literal = format!("--from-literal=v={big}");

    // Round 1: fail, then recover in place.
    let filler = common::node::fill_disk(&data, "filler");
    let mut n = 0;
    let err = loop {
        let out = s.kubectl(&["create", "configmap", &format!("big{n}"), &literal]);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        n += 1;
        assert!(n < 400, "the disk never filled up");
    };
    assert!(
        err.contains("not enough free space") || err.contains("No space left"),
        "{err}"
    );
    eprintln!("write error: {err}");
    let (ready, why) = readyz(&s);
    eprintln!("readyz: {why}");
    assert!(!ready, "/readyz must fail while the store cannot write");
    assert!(why.contains("etcd failed"), "{why}");
    std::fs::remove_file(&filler).expect("free space");
    s.wait_for(30, "writes to come back", || {
        s.kubectl(&["create", "configmap", "after", "--from-literal=a=b"])
            .status
            .success()
    });
    assert!(readyz(&s).0, "ready again");
    for i in 0..n {
        s.ok(&["get", "configmap", &format!("big{i}")]);
    }

    // Round 2: SIGTERM while the store is failing still stops kelp.
    let filler = common::node::fill_disk(&data, "filler");
    s.wait_for(30, "a write to fail", || {
        !s.kubectl(&["create", "configmap", "doomed", &literal])
            .status
            .success()
    });
    let status = s.terminate(std::time::Duration::from_secs(30));
    assert!(
        status.is_some(),
        "kelp did not stop on SIGTERM with a failed store"
    );
    std::fs::remove_file(&filler).expect("free space");
    s.restart();
    s.ok(&["get", "configmap", "before", "after"]);
    for i in 0..n {
        s.ok(&["get", "configmap", &format!("big{i}")]);
    }
    assert!(s.log().contains("store writes refused"));
}
