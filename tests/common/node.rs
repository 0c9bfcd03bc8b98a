//! What end-to-end tests with a real node need: root, containerd and runc
//! (missing ones fail the test, never skip it), and a cleanup that leaves
//! nothing behind when a test ends or panics: kelp's containerd, its shims
//! and their containers, mounts under the test dir, pod network
//! namespaces and pod cgroups.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Panics with what to install unless the machine can run pods.
pub fn require_node_prerequisites() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "end-to-end node tests need root (run ./tests/run.sh as root)"
    );
    for bin in ["containerd", "runc"] {
        require_binary(bin, "containerd runc");
    }
}

/// Panics with the package to install unless `bin` is on PATH.
pub fn require_binary(bin: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{bin} is not installed: apt-get install {package} (./tests/run.sh does this)"
    );
}

/// Where node test dirs go (overlayfs needs a real filesystem, not overlay).
pub fn test_root() -> PathBuf {
    let root = PathBuf::from("/var/tmp/kelp-tests");
    std::fs::create_dir_all(&root).expect("create /var/tmp/kelp-tests");
    root
}

/// Kills every process started for the node under `dir` (containerd,
/// shims, containers and loggers), unmounts what is mounted under it, and
/// removes the pods' network namespaces and cgroups.
pub fn cleanup(dir: &Path) {
    let config = kelp::agent::reset::ResetConfig {
        data_dir: dir.join("data"),
        run_dir: dir.join("run"),
        pod_log_dir: dir.join("pod-logs"),
        netns_dir: PathBuf::from(kelp::kubelet::netns::DEFAULT_NETNS_DIR),
        remove_data: false,
    };
    kelp::agent::reset::stop_node(&config);
}

/// Unmounts a test tmpfs, also when the test panics.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `24m`) at `path`.
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mount a {size} tmpfs at {}",
            path.display()
        );
        Tmpfs(path.to_path_buf())
    }
}

/// Fills the filesystem holding `dir` with a file `name` until a write
/// fails; returns its path (remove it to free the space).
pub fn fill_disk(dir: &Path, name: &str) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create filler");
    let chunk = vec![0x5au8; 256 << 10];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A node's directory under [`test_root`], [`cleanup`]ed when dropped (so
/// also when a benchmark or test panics).
pub struct NodeDir(tempfile::TempDir);

impl NodeDir {
    /// A fresh directory.
    pub fn new() -> NodeDir {
        NodeDir(tempfile::tempdir_in(test_root()).expect("node dir"))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        cleanup(self.0.path());
    }
}

/// Runs `future` to its end inside a new network namespace of its own,
/// entered before the runtime's threads exist so that they (and a server
/// they start) share it: the node's bridge and pod links never touch the
/// host's network.
pub fn block_on_in_own_netns<F: std::future::Future>(future: F) -> F::Output {
    let _netns = kelp::kubelet::netns::EnteredNetns::new(
        Path::new(kelp::kubelet::netns::DEFAULT_NETNS_DIR),
        &format!("kelp-bench-{}", std::process::id()),
    )
    .expect("a network namespace for the node");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}
