//! `kelp check-config`: does this host have what a kelp node needs?
//!
//! Like `k3s check-config`, it looks at the running kernel and the tools
//! kelp drives, prints one line per check, and fails if a required one is
//! missing. It only reads files under /proc, /sys and /lib/modules and
//! searches PATH; it changes nothing.

use std::borrow::Cow;
use std::path::Path;

use clap::Args;

use crate::kubelet::cgroup_mounts::CgroupMounts;

/// Flags of `kelp check-config` (none yet).
#[derive(Debug, Args)]
pub struct CheckConfigArgs {}

struct Check {
    name: &'static str,
    required: bool,
    ok: bool,
    hint: Cow<'static, str>,
}

pub(super) fn run(_args: CheckConfigArgs) -> anyhow::Result<()> {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    // cgroup v2 lists controllers in cgroup.controllers; v1 (and hybrid)
    // hosts list them, with an enabled flag, in /proc/cgroups.
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    let v1 = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let has_controller = |c: &str| {
        v2.split_whitespace().any(|x| x == c)
            || v1.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 4 && f[0] == c && f[3] == "1"
            })
    };
    let mount_problem = match CgroupMounts::of_this_process() {
        Ok(m) => m.problem(),
        Err(e) => Some(format!("cannot read /proc/self/mountinfo: {e}")),
    };
    let checks = [
        Check {
            name: "cgroups",
            required: true,
            ok: !v2.is_empty() || !v1.is_empty(),
            hint: "mount cgroupfs (v2 preferred)".into(),
        },
        Check {
            name: "cgroup mounts",
            required: true,
            ok: mount_problem.is_none(),
            hint: mount_problem.clone().unwrap_or_default().into(),
        },
        Check {
            name: "cgroup controller cpu",
            required: true,
            ok: has_controller("cpu"),
            hint: "enable the cpu controller".into(),
        },
        Check {
            name: "cgroup controller memory",
            required: true,
            ok: has_controller("memory"),
            hint: "boot with cgroup_enable=memory".into(),
        },
        Check {
            name: "cgroup controller pids",
            required: true,
            ok: has_controller("pids"),
            hint: "enable the pids controller".into(),
        },
        Check {
            name: "overlay filesystem",
            required: true,
            ok: filesystems.contains("overlay") || module_available("overlay"),
            hint: "modprobe overlay".into(),
        },
        Check {
            name: "network namespaces",
            required: true,
            ok: Path::new("/proc/self/ns/net").exists(),
            hint: "kernel needs CONFIG_NET_NS".into(),
        },
        Check {
            name: "bridge",
            required: true,
            ok: Path::new("/sys/module/bridge").exists() || module_available("bridge"),
            hint: "modprobe bridge (the pod bridge kelp0)".into(),
        },
        Check {
            name: "veth",
            required: true,
            ok: Path::new("/sys/module/veth").exists() || module_available("veth"),
            hint: "modprobe veth (one pair per pod)".into(),
        },
        Check {
            name: "nf_tables",
            required: false,
            ok: Path::new("/sys/module/nf_tables").exists() || module_available("nf_tables"),
            hint: "modprobe nf_tables (the service proxy and masquerading)".into(),
        },
        Check {
            name: "ip_forward",
            required: true,
            ok: Path::new("/proc/sys/net/ipv4/ip_forward").exists(),
            hint: "kernel needs IPv4 forwarding (kelp switches it on)".into(),
        },
        Check {
            name: "bridge netfilter",
            required: false,
            ok: Path::new("/proc/sys/net/bridge").exists() || module_available("br_netfilter"),
            hint: "modprobe br_netfilter (Services reached from pods on the same node need it)"
                .into(),
        },
        Check {
            name: "vxlan",
            required: false,
            ok: Path::new("/sys/module/vxlan").exists() || module_available("vxlan"),
            hint: "modprobe vxlan (needed for multi-node pod networking)".into(),
        },
        Check {
            name: "iptables",
            required: true,
            ok: in_path("iptables"),
            hint: "apt-get install iptables".into(),
        },
        Check {
            name: "containerd",
            required: false,
            ok: in_path("containerd"),
            hint: "apt-get install containerd, or pass --container-runtime-endpoint".into(),
        },
        Check {
            name: "runc",
            required: true,
            ok: in_path("runc"),
            hint: "apt-get install runc".into(),
        },
    ];
    let mut missing = 0;
    for c in &checks {
        let status = match (c.ok, c.required) {
            (true, _) => "ok",
            (false, true) => "missing",
            (false, false) => "missing (optional)",
        };
        if c.ok {
            println!("{:<32} {status}", c.name);
        } else {
            println!("{:<32} {status}: {}", c.name, c.hint);
        }
        if !c.ok && c.required {
            missing += 1;
        }
    }
    if missing > 0 {
        anyhow::bail!("{missing} required check(s) failed; see the hints above");
    }
    println!("this host can run a kelp node");
    Ok(())
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

fn in_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}
