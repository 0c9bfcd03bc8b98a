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
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "{bin} is not installed: apt-get install containerd runc (./tests/run.sh does this)"
        );
    }
}

/// Where node test dirs go (overlayfs needs a real filesystem, not overlay).
pub fn test_root() -> PathBuf {
    let root = PathBuf::from("/var/tmp/kelp-tests");
    std::fs::create_dir_all(&root).expect("create /var/tmp/kelp-tests");
    root
}

fn read_cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn kill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Kills every process started for the node under `dir` (containerd,
/// shims, containers and loggers), unmounts what is mounted under it, and
/// removes the pods' network namespaces and cgroups.
pub fn cleanup(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let pids = all_pids();
    let roots: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| read_cmdline(*p).contains(&needle))
        .collect();
    // Descendants first (containers under shims), then the roots.
    let mut doomed: Vec<u32> = Vec::new();
    for pid in &pids {
        let mut p = *pid;
        for _ in 0..32 {
            match parent_of(p) {
                Some(parent) if roots.contains(&parent) => {
                    doomed.push(*pid);
                    break;
                }
                Some(parent) if parent > 1 => p = parent,
                _ => break,
            }
        }
    }
    for pid in doomed.iter().chain(roots.iter()) {
        kill(*pid);
    }
    let uids: Vec<String> = std::fs::read_dir(dir.join("data/agent/pods"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    // Container processes that reparented away from their shim still sit in the pod cgroups.
    for uid in &uids {
        for cgroup in pod_cgroups(uid) {
            if let Ok(procs) = std::fs::read_to_string(cgroup.join("cgroup.procs")) {
                procs.lines().filter_map(|l| l.parse().ok()).for_each(kill);
            }
        }
    }
    std::thread::park_timeout(std::time::Duration::from_millis(200));
    unmount_under(dir);
    for uid in &uids {
        let ns = PathBuf::from(format!("/run/netns/kelp-{uid}"));
        let _ = nix::mount::umount2(&ns, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&ns);
        for cgroup in pod_cgroups(uid) {
            remove_tree(&cgroup);
        }
    }
}

fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let hierarchies: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for h in hierarchies
        .iter()
        .chain(std::iter::once(&PathBuf::from("/sys/fs/cgroup")))
    {
        for qos in ["", "burstable/", "besteffort/"] {
            let p = h.join(format!("kubepods/{qos}pod{uid}"));
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn unmount_under(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    for _ in 0..3 {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
