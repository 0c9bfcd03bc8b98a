//! Hostile input against a real server, with real kubectl: each case is an
//! attack that once took kelp down or left it degraded.

mod common;

use common::cluster::Server;

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

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
