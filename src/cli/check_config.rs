//! `kelp check-config`: does this host have what a kelp node needs?
//!
//! The preflight that kubeadm's guides have people do by hand, and that
//! `k3s check-config` does for k3s: kernel features, cgroups, swap,
//! forwarding, the container runtime, free ports, disk space, and the
//! Raspberry Pi boot flags. Each line is PASS, WARN or FAIL with a hint
//! saying what to do; any FAIL makes the command exit 1, so an install
//! script or a provisioning tool can stop early. It only reads /proc,
//! /sys, /lib/modules and the data dir's file system, runs `--version` of
//! the runtime binaries, and binds the ports for an instant; it changes
//! nothing.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::kubelet::cgroup_mounts::CgroupMounts;

/// Flags of `kelp check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Data directory whose file system must have room for images and the store.
    #[arg(
        short = 'd',
        long,
        env = "KELP_DATA_DIR",
        value_name = "DIR",
        default_value = "/var/lib/kelp"
    )]
    data_dir: PathBuf,
}

/// Free space below which the data dir fails the check: images, the store
/// and logs of a small node need about this much.
const DISK_FAIL_BYTES: u64 = 1 << 30;
/// Free space below which it warns (the kubelet's default hard eviction
/// starts near here on small cards).
const DISK_WARN_BYTES: u64 = 5 << 30;
/// The oldest containerd kelp drives (CRI-less, through its gRPC API).
const CONTAINERD_MIN: (u32, u32) = (1, 6);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Pass => "PASS",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        })
    }
}

/// One line of the report.
struct Check {
    name: String,
    level: Level,
    /// What was found (a version, a size), shown on every line.
    found: String,
    /// What to do, shown when the line is not a pass.
    hint: String,
}

impl Check {
    fn new(name: impl Into<String>, level: Level, found: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level,
            found: found.into(),
            hint: String::new(),
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = hint.into();
        self
    }

    /// `Pass` when `ok`, else `otherwise`, with `hint` for that case.
    fn expect(name: &str, ok: bool, otherwise: Level, hint: &str) -> Check {
        if ok {
            Check::new(name, Level::Pass, "")
        } else {
            Check::new(name, otherwise, "missing").hint(hint)
        }
    }
}

pub(super) fn run(args: CheckConfigArgs) -> anyhow::Result<()> {
    let host = Host::read();
    let checks = checks(&host, &args.data_dir);
    for c in &checks {
        let mut line = format!("{:<5} {:<28}", c.level, c.name);
        if !c.found.is_empty() {
            line.push(' ');
            line.push_str(&c.found);
        }
        if c.level != Level::Pass && !c.hint.is_empty() {
            line.push_str(": ");
            line.push_str(&c.hint);
        }
        println!("{}", line.trim_end());
    }
    let count = |l| checks.iter().filter(|c| c.level == l).count();
    let (fails, warns) = (count(Level::Fail), count(Level::Warn));
    if fails > 0 {
        anyhow::bail!("{fails} check(s) failed and {warns} warned; see the hints above");
    }
    println!("this host can run a kelp node ({warns} warning(s))");
    Ok(())
}

/// What the checks read from the host, once.
struct Host {
    filesystems: String,
    cgroup_v2_controllers: Option<String>,
    cgroup_v1: String,
    cgroup_mount_problem: Option<String>,
    /// `/proc/device-tree/model` (a Raspberry Pi names itself there).
    board: Option<String>,
    /// The kernel's build configuration (`/proc/config.gz`), where the
    /// kernel exposes it: built-in features have no module to look for.
    kernel_config: String,
}

impl Host {
    fn read() -> Host {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        Host {
            filesystems: read("/proc/filesystems").unwrap_or_default(),
            cgroup_v2_controllers: read("/sys/fs/cgroup/cgroup.controllers"),
            cgroup_v1: read("/proc/cgroups").unwrap_or_default(),
            cgroup_mount_problem: match CgroupMounts::of_this_process() {
                Ok(m) => m.problem(),
                Err(e) => Some(format!("cannot read /proc/self/mountinfo: {e}")),
            },
            board: read("/proc/device-tree/model")
                .map(|m| m.trim_end_matches('\0').trim().to_string()),
            kernel_config: read_kernel_config(),
        }
    }

    /// Whether `CONFIG_<option>` is built in or a module.
    fn kernel_config(&self, option: &str) -> bool {
        self.kernel_config.lines().any(|l| {
            l.strip_prefix("CONFIG_")
                .and_then(|l| l.strip_prefix(option))
                .is_some_and(|rest| rest == "=y" || rest == "=m")
        })
    }

    fn is_raspberry_pi(&self) -> bool {
        self.board
            .as_deref()
            .is_some_and(|b| b.contains("Raspberry Pi"))
    }

    /// cgroup v2 lists controllers in cgroup.controllers; v1 (and hybrid)
    /// hosts list them, with an enabled flag, in /proc/cgroups.
    fn has_controller(&self, name: &str) -> bool {
        self.cgroup_v2_controllers
            .as_deref()
            .is_some_and(|v2| v2.split_whitespace().any(|c| c == name))
            || self.cgroup_v1.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 4 && f[0] == name && f[3] == "1"
            })
    }
}

fn checks(host: &Host, data_dir: &Path) -> Vec<Check> {
    let mut out = vec![system(host)];
    out.extend(kernel_features(host));
    out.extend(cgroups(host));
    out.push(swap());
    out.push(ip_forward());
    out.push(runtime_binary(
        "containerd",
        &["--version"],
        Some(CONTAINERD_MIN),
        "apt-get install containerd (or pass --container-runtime-endpoint, or run `kelp server --disable-agent`)",
    ));
    out.push(runtime_binary(
        "runc",
        &["--version"],
        None,
        "apt-get install runc",
    ));
    out.push(Check::expect(
        "iptables",
        in_path("iptables").is_some(),
        Level::Fail,
        "apt-get install iptables (kelp accepts pod traffic in the FORWARD chain)",
    ));
    out.extend(ports());
    out.push(disk(data_dir));
    out
}

fn system(host: &Host) -> Check {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut found = format!("{} linux {}", std::env::consts::ARCH, release.trim());
    if let Some(board) = &host.board {
        found.push_str(&format!(", {board}"));
    }
    if let Some(mib) = super::node_args::memory_mib() {
        let max_pods = super::node_args::max_pods_for_memory(Some(mib));
        found.push_str(&format!(", {mib} MiB memory, max-pods {max_pods}"));
        if mib < 900 {
            return Check::new("system", Level::Warn, found).hint(
                "under 1 GiB of memory: keep workloads small, and agents rather than servers on such boards",
            );
        }
    }
    Check::new("system", Level::Pass, found)
}

fn kernel_features(host: &Host) -> Vec<Check> {
    // module_available looks in /sys/module first.
    let module = |name: &str, config: &str| module_available(name) || host.kernel_config(config);
    vec![
        Check::expect(
            "overlay filesystem",
            host.filesystems.contains("overlay") || module("overlay", "OVERLAY_FS"),
            Level::Fail,
            "modprobe overlay (containerd's snapshotter)",
        ),
        Check::expect(
            "network namespaces",
            Path::new("/proc/self/ns/net").exists(),
            Level::Fail,
            "the kernel needs CONFIG_NET_NS",
        ),
        Check::expect(
            "bridge",
            module("bridge", "BRIDGE"),
            Level::Fail,
            "modprobe bridge (the pod bridge kelp0)",
        ),
        Check::expect(
            "veth",
            module("veth", "VETH"),
            Level::Fail,
            "modprobe veth (one pair per pod)",
        ),
        Check::expect(
            "nf_tables",
            module("nf_tables", "NF_TABLES"),
            Level::Fail,
            "modprobe nf_tables (the service proxy and masquerading)",
        ),
        Check::expect(
            "br_netfilter",
            Path::new("/proc/sys/net/bridge").exists()
                || module("br_netfilter", "BRIDGE_NETFILTER"),
            Level::Warn,
            "modprobe br_netfilter (pods reaching a Service backed by a pod on the same node)",
        ),
        Check::expect(
            "vxlan",
            module("vxlan", "VXLAN"),
            Level::Warn,
            "modprobe vxlan (pod traffic between nodes; a single node does without)",
        ),
    ]
}

fn cgroups(host: &Host) -> Vec<Check> {
    let version = match (&host.cgroup_v2_controllers, host.cgroup_v1.is_empty()) {
        (Some(_), _) => Check::new("cgroups", Level::Pass, "v2 (unified)"),
        (None, false) => Check::new("cgroups", Level::Pass, "v1"),
        (None, true) => Check::new("cgroups", Level::Fail, "none mounted")
            .hint("mount cgroup2 on /sys/fs/cgroup (systemd does this at boot)"),
    };
    let mounts = match &host.cgroup_mount_problem {
        None => Check::new("cgroups visible", Level::Pass, "in this mount namespace"),
        Some(problem) => Check::new("cgroups visible", Level::Fail, problem.clone()).hint(
            "run kelp in the host's mount namespace (nsenter --net=… rather than `ip netns exec`, which hides cgroups)",
        ),
    };
    let pi_hint = if host.is_raspberry_pi() {
        " (Raspberry Pi: append `cgroup_memory=1 cgroup_enable=memory` to the one line of /boot/firmware/cmdline.txt, or /boot/cmdline.txt on older images, and reboot)"
    } else {
        " (boot with cgroup_enable=memory)"
    };
    let mut out = vec![version, mounts];
    for (controller, level, why) in [
        ("cpu", Level::Fail, "CPU requests and limits"),
        ("memory", Level::Fail, "memory limits and eviction"),
        ("pids", Level::Fail, "pid limits"),
        ("cpuset", Level::Warn, "pinned CPUs"),
    ] {
        let name = format!("cgroup controller {controller}");
        out.push(if host.has_controller(controller) {
            Check::new(name, Level::Pass, "")
        } else {
            let extra = if controller == "memory" { pi_hint } else { "" };
            Check::new(name, level, "not enabled").hint(format!("enable it for {why}{extra}"))
        });
    }
    out
}

fn swap() -> Check {
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    let kib: u64 = swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    if kib == 0 {
        Check::new("swap", Level::Pass, "off")
    } else {
        Check::new("swap", Level::Warn, format!("on ({} MiB)", kib / 1024)).hint(
            "pods' memory limits do not cover swap; `swapoff -a` and remove it from /etc/fstab (or dphys-swapfile on a Pi) for predictable eviction",
        )
    }
}

fn ip_forward() -> Check {
    match std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward") {
        Ok(v) if v.trim() == "1" => Check::new("ip_forward", Level::Pass, "on"),
        Ok(_) => Check::new("ip_forward", Level::Warn, "off").hint(
            "kelp switches it on at start; to keep it on: sysctl -w net.ipv4.ip_forward=1 in /etc/sysctl.d",
        ),
        Err(_) => Check::new("ip_forward", Level::Fail, "missing")
            .hint("the kernel needs IPv4 forwarding"),
    }
}

/// A runtime binary on PATH, with its version (at least `min`, if given).
fn runtime_binary(
    name: &str,
    version_args: &[&str],
    min: Option<(u32, u32)>,
    install: &str,
) -> Check {
    let Some(path) = in_path(name) else {
        return Check::new(name, Level::Fail, "missing").hint(install);
    };
    let output = std::process::Command::new(&path)
        .args(version_args)
        .stdin(std::process::Stdio::null())
        .output();
    let text = match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            return Check::new(
                name,
                Level::Fail,
                format!("{} fails ({})", path.display(), o.status),
            )
            .hint(install);
        }
        Err(e) => {
            return Check::new(
                name,
                Level::Fail,
                format!("cannot run {}: {e}", path.display()),
            )
            .hint(install);
        }
    };
    let version = version_in(&text);
    let found = match version {
        Some((major, minor, patch)) => format!("{major}.{minor}.{patch} ({})", path.display()),
        None => format!("unknown version ({})", path.display()),
    };
    match (version, min) {
        (Some((major, minor, _)), Some(min)) if (major, minor) < min => {
            Check::new(name, Level::Fail, found)
                .hint(format!("kelp needs {name} {}.{} or newer", min.0, min.1))
        }
        _ => Check::new(name, Level::Pass, found),
    }
}

/// The first `X.Y.Z` in a `--version` text.
fn version_in(text: &str) -> Option<(u32, u32, u32)> {
    text.split(|c: char| c.is_whitespace() || c == 'v' || c == '+' || c == '-' || c == '~')
        .find_map(|word| {
            let mut parts = word.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            let patch = parts.next()?.parse().ok()?;
            Some((major, minor, patch))
        })
}

fn ports() -> Vec<Check> {
    let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let mut out = Vec::new();
    for (port, what, flag) in [
        (6443u16, "the apiserver", "--https-listen-port"),
        (10250, "the kubelet", "--kubelet-port"),
    ] {
        let name = format!("port {port}/tcp");
        out.push(match TcpListener::bind(any(port)) {
            Ok(_) => Check::new(name, Level::Pass, "free"),
            Err(e) => Check::new(name, Level::Warn, format!("in use ({e})")).hint(format!(
                "{what} listens here: stop what holds it (is kelp already running?) or choose {flag}"
            )),
        });
    }
    out.push(match UdpSocket::bind(any(8472)) {
        Ok(_) => Check::new("port 8472/udp", Level::Pass, "free"),
        Err(e) => Check::new("port 8472/udp", Level::Warn, format!("in use ({e})")).hint(
            "the VXLAN overlay uses it: stop what holds it (is kelp or flannel already running?)",
        ),
    });
    out
}

fn disk(data_dir: &Path) -> Check {
    // Before the first start the data dir does not exist yet: its file
    // system is that of the nearest existing parent.
    let existing = data_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let name = "disk space";
    let stat = match nix::sys::statvfs::statvfs(existing) {
        Ok(s) => s,
        Err(e) => {
            return Check::new(
                name,
                Level::Warn,
                format!("cannot stat {}: {e}", existing.display()),
            );
        }
    };
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let found = format!("{} MiB free under {}", free >> 20, data_dir.display());
    let hint = format!(
        "images, the store and logs need room: free space there or choose --data-dir (at least {} GiB, {} GiB recommended)",
        DISK_FAIL_BYTES >> 30,
        DISK_WARN_BYTES >> 30
    );
    if free < DISK_FAIL_BYTES {
        Check::new(name, Level::Fail, found).hint(hint)
    } else if free < DISK_WARN_BYTES {
        Check::new(name, Level::Warn, found).hint(hint)
    } else {
        Check::new(name, Level::Pass, found)
    }
}

fn read_kernel_config() -> String {
    use std::io::Read;
    let Ok(file) = std::fs::File::open("/proc/config.gz") else {
        return String::new();
    };
    let mut text = String::new();
    // A kernel config is ~200 KiB; the bound keeps a strange file harmless.
    let _ = flate2::read::GzDecoder::new(file)
        .take(8 << 20)
        .read_to_string(&mut text);
    text
}

fn module_available(name: &str) -> bool {
    if Path::new("/sys/module").join(name).exists() {
        return true;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dep = Path::new("/lib/modules")
        .join(release.trim())
        .join("modules.dep");
    std::fs::read_to_string(dep).is_ok_and(|deps| {
        deps.lines().any(|l| {
            l.split(':')
                .next()
                .and_then(|p| p.rsplit('/').next())
                .is_some_and(|f| f.starts_with(&format!("{name}.ko")))
        })
    })
}

fn in_path(binary: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_runtime_banners() {
        assert_eq!(
            version_in("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n"),
            Some((1, 6, 20))
        );
        assert_eq!(
            version_in("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n"),
            Some((1, 1, 5))
        );
        assert_eq!(version_in("containerd v2.0.0 abc"), Some((2, 0, 0)));
        assert_eq!(version_in("no version here"), None);
    }

    #[test]
    fn memory_hint_names_the_pi_cmdline_on_a_pi() {
        let host = Host {
            filesystems: String::new(),
            cgroup_v2_controllers: Some("cpu pids".into()),
            cgroup_v1: String::new(),
            cgroup_mount_problem: None,
            board: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
            kernel_config: String::new(),
        };
        let checks = cgroups(&host);
        let memory = checks
            .iter()
            .find(|c| c.name == "cgroup controller memory")
            .unwrap();
        assert_eq!(memory.level, Level::Fail);
        assert!(
            memory.hint.contains("cgroup_memory=1 cgroup_enable=memory"),
            "{}",
            memory.hint
        );
        let cpu = checks
            .iter()
            .find(|c| c.name == "cgroup controller cpu")
            .unwrap();
        assert_eq!(cpu.level, Level::Pass);
    }
}
