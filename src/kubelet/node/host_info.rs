//! What the node reports about its machine: capacity, addresses and
//! `nodeInfo`, read from /proc and /etc the way the upstream kubelet's
//! cadvisor-backed machine info does, without cadvisor.
//!
//! Every read is best effort: a missing file yields an empty string or a
//! conservative figure rather than an error, because a node that cannot
//! read /etc/machine-id must still register.

use std::path::Path;

/// Machine facts the Node object carries.
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// Logical CPUs.
    pub cpus: usize,
    /// Physical memory in bytes (MemTotal).
    pub memory_bytes: u64,
    /// Size of the filesystem holding the kubelet's data dir, in bytes.
    pub ephemeral_storage_bytes: u64,
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME of /etc/os-release.
    pub os_image: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// /proc/sys/kernel/random/boot_id.
    pub boot_id: String,
    /// GOARCH-style architecture name (amd64, arm64, arm).
    pub architecture: &'static str,
}

impl HostInfo {
    /// Reads the machine facts; `data_dir` decides which filesystem counts
    /// as ephemeral storage.
    pub fn read(data_dir: &Path) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            cpus,
            memory_bytes: mem_total().unwrap_or(0),
            ephemeral_storage_bytes: fs_size(data_dir).unwrap_or(0),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image: os_image(),
            machine_id: read_trimmed("/etc/machine-id"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            architecture: go_arch(),
        }
    }
}

/// The architecture as Kubernetes names it (Go's GOARCH).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn mem_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn fs_size(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(stat.blocks() as u64 * stat.fragment_size() as u64)
}

/// Free bytes on the filesystem holding `path` (for DiskPressure).
pub fn fs_available(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// MemAvailable in bytes (for MemoryPressure).
pub fn mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn os_image() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let info = HostInfo::read(Path::new("/tmp"));
        assert!(info.cpus >= 1);
        assert!(info.memory_bytes > 64 << 20, "{info:?}");
        assert!(info.ephemeral_storage_bytes > 0);
        assert!(!info.kernel_version.is_empty());
        assert_eq!(info.architecture, go_arch());
    }
}
