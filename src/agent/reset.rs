//! `kelp reset`: what `kubeadm reset` does for a kubeadm node, for kelp.
//!
//! It stops everything kelp started on this machine and removes what it
//! programmed, in an order that keeps anything from coming back: first
//! kelp's own processes (a server or agent would restart containerd and
//! re-create pods), then containerd, the shims and the containers under
//! them; then the pods' cgroups, mounts and network namespaces; then
//! kelp's links (the bridge, the VXLAN device, the pods' veths), overlay
//! routes, nftables table and any FORWARD ACCEPT rules it added. With `remove_data` the data, run and pod
//! log directories go too. Nothing that kelp did not create is touched:
//! processes are matched by kelp's directories or binary, links by
//! kelp's names, routes by kelp's route protocol, and the one nftables
//! table is kelp's.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::RouteProtocol;

/// What to reset.
#[derive(Debug, Clone)]
pub struct ResetConfig {
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--run-dir`.
    pub run_dir: PathBuf,
    /// `--pod-log-dir`.
    pub pod_log_dir: PathBuf,
    /// `--netns-dir`.
    pub netns_dir: PathBuf,
    /// Also delete the data, run and pod log directories (uninstall).
    pub remove_data: bool,
}

/// What was removed, for the user.
#[derive(Debug, Default)]
pub struct ResetReport {
    /// Processes killed.
    pub processes: usize,
    /// Pods whose cgroups, mounts and namespaces were removed.
    pub pods: usize,
    /// Links deleted.
    pub links: usize,
    /// Overlay routes deleted.
    pub routes: usize,
    /// Whether kelp's nftables table was deleted.
    pub nftables_table: bool,
    /// Whether kelp's ACCEPT rules in iptables' FORWARD chain were removed.
    pub forward_rules: bool,
    /// Steps that failed (reset goes on after a failure).
    pub problems: Vec<String>,
}

/// Resets this machine (see the module docs). Needs root.
pub async fn reset(config: &ResetConfig) -> ResetReport {
    let mut report = stop_node(config);
    remove_dead_shim_sockets(Path::new(SHIM_SOCKET_DIR));
    if let Err(e) = remove_network(&mut report).await {
        report.problems.push(e);
    }
    if config.remove_data {
        for uid in pod_uids(&config.data_dir.join("agent/pods")) {
            remove_pod_logs(&config.pod_log_dir, &uid, &mut report);
        }
        for dir in [&config.data_dir, &config.run_dir] {
            if let Err(e) = remove_dir(dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                report.problems.push(format!("{}: {e}", dir.display()));
            }
        }
        release_netns_dir(&config.netns_dir);
    }
    report
}

/// Where containerd 1.6's shims put their sockets, whatever containerd's
/// own address: a fixed path in the shim.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";

/// Removes the sockets of shims that are gone (killed shims leave them),
/// then the directories if empty. A socket that still accepts belongs to
/// a live shim (of kelp's or another containerd) and stays.
fn remove_dead_shim_sockets(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let refused = matches!(
            std::os::unix::net::UnixStream::connect(&path),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        );
        if refused {
            let _ = std::fs::remove_file(&path);
        }
    }
    let _ = std::fs::remove_dir(dir);
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

/// Deletes `dir`; if it is a mount point (a data disk the user mounted
/// there), only its contents: the mount is the user's, not kelp's.
fn remove_dir(dir: &Path) -> std::io::Result<()> {
    if !is_mount_point(dir) {
        return std::fs::remove_dir_all(dir);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if std::fs::symlink_metadata(&path)?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Whether something is mounted at `dir` (a device change, as mountpoint(1)
/// decides; a bind mount of the same file system shows in mountinfo).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let device_change = match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev(),
        _ => false,
    };
    device_change || mount_points().iter().any(|p| Path::new(p) == dir)
}

fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Undoes what creating the first pod namespace did to the netns directory
/// (iproute2's convention: bound onto itself and made shared), once no
/// namespace is left in it. `ip netns add` redoes it when needed.
fn release_netns_dir(dir: &Path) {
    let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if !empty {
        return;
    }
    if mount_points().iter().any(|p| Path::new(p) == dir) {
        let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir(dir);
}

/// The part of [`reset`] that leaves the network alone: kills the node's
/// processes, and removes its pods' cgroups, mounts and network
/// namespaces. Tests use it to clean up a node whose namespace they drop.
pub fn stop_node(config: &ResetConfig) -> ResetReport {
    let mut report = ResetReport::default();
    let pods = pod_uids(&config.data_dir.join("agent/pods"));
    report.processes = kill_processes(config);
    for uid in &pods {
        for cgroup in pod_cgroups(uid) {
            kill_cgroup(&cgroup);
            remove_tree(&cgroup);
        }
    }
    unmount_under(&config.data_dir);
    unmount_under(&config.run_dir);
    for uid in &pods {
        let netns = config.netns_dir.join(format!("kelp-{uid}"));
        if netns.exists()
            && let Err(e) = crate::kubelet::netns::remove(&netns)
        {
            report.problems.push(format!("{}: {e}", netns.display()));
        }
    }
    report.pods = pods.len();
    report
}

/// The UIDs of the pods this node ran (their directories).
fn pod_uids(pods_dir: &Path) -> Vec<String> {
    std::fs::read_dir(pods_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The mount namespace `pid` is in (`mnt:[inode]`), if it can be read.
fn mount_namespace(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
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

/// Whether `pid` is a kelp server or agent (this binary) of this
/// machine's default directories or of `config`'s.
fn is_kelp_node(
    pid: u32,
    args: &[String],
    config: &ResetConfig,
    own_exe: &Option<PathBuf>,
) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let same_binary = exe.is_some() && exe == *own_exe;
    let role = args.get(1).map(String::as_str);
    let data = config.data_dir.to_string_lossy();
    let names_other_dir = args
        .iter()
        .position(|a| a == "--data-dir" || a == "-d")
        .and_then(|i| args.get(i + 1))
        .is_some_and(|d| *d != data);
    same_binary && matches!(role, Some("server" | "agent")) && !names_other_dir
}

/// Kills kelp's processes, then everything that mentions its data or run
/// directory (containerd, shims, loggers), then their descendants
/// (containers). Returns how many.
fn kill_processes(config: &ResetConfig) -> usize {
    let me = std::process::id();
    let own_exe = std::fs::read_link("/proc/self/exe").ok();
    let dirs = [
        config.data_dir.to_string_lossy().into_owned(),
        config.run_dir.to_string_lossy().into_owned(),
    ];
    // Paths name different files in another mount namespace (another
    // install in a container, a test host), so only processes that see
    // this namespace's directories are kelp's; their containers, which
    // have namespaces of their own, are found as descendants below.
    let own_mounts = mount_namespace(me);
    let pids = all_pids();
    let mut roots = Vec::new();
    let candidates: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| *p != me && mount_namespace(*p) == own_mounts)
        .collect();
    for pid in candidates.iter().copied() {
        let args = cmdline(pid);
        if is_kelp_node(pid, &args, config, &own_exe) {
            kill(pid);
            roots.push(pid);
        }
    }
    let kelps = roots.clone();
    for pid in candidates.iter().copied().filter(|p| !kelps.contains(p)) {
        let args = cmdline(pid);
        if args
            .iter()
            .any(|a| dirs.iter().any(|d| a.contains(d.as_str())))
        {
            roots.push(pid);
        }
    }
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
    // Children first, so that no shim reaps and restarts anything.
    for pid in doomed.iter().chain(roots.iter()) {
        if *pid != me {
            kill(*pid);
        }
    }
    std::thread::park_timeout(std::time::Duration::from_millis(200));
    doomed.len() + roots.len()
}

/// A pod's cgroup directories, in every mounted hierarchy (v1 and v2).
fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    let root = PathBuf::from("/sys/fs/cgroup");
    let mut hierarchies: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    hierarchies.push(root);
    let mut out = Vec::new();
    for h in &hierarchies {
        for qos in ["", "burstable/", "besteffort/"] {
            let p = h.join(format!("kubepods/{qos}pod{uid}"));
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

/// Kills what still runs in a cgroup (containers whose shim died first).
fn kill_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                kill_cgroup(&e.path());
            }
        }
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        procs.lines().filter_map(|l| l.parse().ok()).for_each(kill);
    }
}

/// Removes a cgroup directory tree, leaves first (cgroupfs allows only
/// rmdir of empty groups).
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

/// Lazily unmounts every mount point under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    for _ in 0..3 {
        let mut points: Vec<String> = mount_points()
            .into_iter()
            // Strictly below: `dir` itself may be a disk the user mounted.
            .filter(|p| p.starts_with(&format!("{prefix}/")))
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

fn remove_pod_logs(log_dir: &Path, uid: &str, report: &mut ResetReport) {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_string_lossy()
            .ends_with(&format!("_{uid}"))
            && let Err(err) = std::fs::remove_dir_all(e.path())
        {
            report
                .problems
                .push(format!("{}: {err}", e.path().display()));
        }
    }
}

/// Deletes the pods' veths (the bridge's ports), the bridge, the VXLAN
/// device, overlay routes and the nftables table, in this namespace.
async fn remove_network(report: &mut ResetReport) -> Result<(), String> {
    let h = crate::network::links::connect().map_err(|e| e.to_string())?;
    let links: Vec<_> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| format!("list links: {e}"))?;
    let name_of = |l: &rtnetlink::packet_route::link::LinkMessage| {
        l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
    };
    let bridge = links
        .iter()
        .find(|l| name_of(l).as_deref() == Some(crate::network::links::BRIDGE))
        .map(|l| l.header.index);
    for link in &links {
        let name = name_of(link).unwrap_or_default();
        let on_bridge = bridge.is_some()
            && link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::Controller(i) if Some(*i) == bridge));
        let ours = on_bridge
            || name == crate::network::links::BRIDGE
            || name == crate::network::overlay::VXLAN_DEVICE;
        if !ours {
            continue;
        }
        match h.link().del(link.header.index).execute().await {
            Ok(()) => report.links += 1,
            // A pod's veth goes with the pod's namespace.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == nix::libc::ENODEV => {}
            Err(e) => report.problems.push(format!("delete link {name}: {e}")),
        }
    }
    let routes: Vec<_> = h
        .route()
        .get(RouteMessageBuilder::<std::net::Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| format!("list routes: {e}"))?;
    for route in routes {
        if route.header.protocol != RouteProtocol::Other(crate::network::overlay::ROUTE_PROTOCOL) {
            continue;
        }
        match h.route().del(route).execute().await {
            Ok(()) => report.routes += 1,
            // Routes through a deleted device went with it.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == nix::libc::ESRCH => {}
            Err(e) => report.problems.push(format!("delete route: {e}")),
        }
    }
    report.forward_rules = crate::network::forward_policy::remove().await;
    let mut batch = crate::network::nftables::Batch::new(crate::network::service_proxy::TABLE);
    batch.delete_table();
    match batch.commit() {
        Ok(()) => report.nftables_table = true,
        Err(e) if crate::network::nftables::is_missing(&e) => {}
        Err(e) => report.problems.push(format!("delete nftables table: {e}")),
    }
    Ok(())
}
