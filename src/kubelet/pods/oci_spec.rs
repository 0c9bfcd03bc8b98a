//! The OCI runtime spec (runc's config.json) for one container of a pod.
//!
//! This is what containerd's CRI plugin would generate from the pod: the
//! process from command/args over the image's entrypoint/cmd, the
//! environment, mounts for volumes and the pod's /etc files, cgroup limits
//! from resources, and the securityContext. Building it here, as a plain
//! JSON value from plain inputs, keeps it testable without containerd.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};

use super::volumes::PreparedVolume;
use crate::client::quantity;
use crate::kubelet::containerd::ImageConfig;

/// Why a container's spec cannot be built (a CreateContainerConfigError).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// No command in the pod nor the image.
    #[error("no command specified")]
    NoCommand,
    /// A volumeMount names a volume the pod does not have.
    #[error("volume {0:?} not found")]
    UnknownVolume(String),
    /// Some other field cannot be honoured.
    #[error("{0}")]
    Invalid(String),
}

/// Everything the spec is built from.
pub struct SpecInput<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container.
    pub container: &'a Container,
    /// The image's own config.
    pub image: &'a ImageConfig,
    /// Resolved environment.
    pub env: &'a [(String, String)],
    /// Prepared volumes by name.
    pub volumes: &'a BTreeMap<String, PreparedVolume>,
    /// Directory with the pod's `hosts`, `hostname`, `resolv.conf`.
    pub etc_dir: &'a Path,
    /// Per-container-attempt termination message file.
    pub termination_log: Option<&'a Path>,
    /// The pod's network namespace (None = host network).
    pub netns: Option<&'a Path>,
    /// cgroup path for runc (cgroupfs driver).
    pub cgroup_path: String,
    /// The hostname inside the container.
    pub hostname: &'a str,
}

/// The capabilities containerd grants by default.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability runc 1.1 knows (what `privileged` grants).
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The process args: command/args over the image's entrypoint/cmd, with
/// `$(VAR)` expansion, per upstream's rules.
pub fn process_args(
    container: &Container,
    image: &ImageConfig,
    env: &[(String, String)],
) -> Result<Vec<String>, SpecError> {
    let expand =
        |v: &Vec<String>| -> Vec<String> { v.iter().map(|a| super::env::expand(a, env)).collect() };
    let command = container.command.as_ref().filter(|c| !c.is_empty());
    let args = container.args.as_ref().filter(|a| !a.is_empty());
    let argv = match (command, args) {
        (Some(c), Some(a)) => [expand(c), expand(a)].concat(),
        (Some(c), None) => expand(c),
        (None, Some(a)) => [image.entrypoint.clone(), expand(a)].concat(),
        (None, None) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    };
    if argv.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(argv)
}

/// uid and gid for the process: securityContext (container over pod), else
/// the image's numeric `User`.
pub fn user(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
) -> Result<(i64, i64), SpecError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let (mut uid, mut gid) = (0_i64, 0_i64);
    if !image.user.is_empty() {
        let (u, g) = image.user.split_once(':').unwrap_or((&image.user, ""));
        uid = match u {
            "root" => 0,
            u => u.parse().map_err(|_| {
                SpecError::Invalid(format!(
                    "image user {u:?} is a name; kelp needs a numeric user (set securityContext.runAsUser)"
                ))
            })?,
        };
        if let Ok(g) = g.parse() {
            gid = g;
        }
    }
    if let Some(u) = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user))
    {
        uid = u;
    }
    if let Some(g) = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group))
    {
        gid = g;
    }
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root));
    if non_root == Some(true) && uid == 0 {
        return Err(SpecError::Invalid(
            "container has runAsNonRoot and image will run as root".into(),
        ));
    }
    Ok((uid, gid))
}

/// Builds the spec.
pub fn build(input: &SpecInput<'_>) -> Result<Value, SpecError> {
    let c = input.container;
    let args = process_args(c, input.image, input.env)?;
    let (uid, gid) = user(input.pod, c, input.image)?;
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let caps = capabilities(c, privileged);
    let mut env: Vec<String> = input.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut image_env: Vec<String> = input
        .image
        .env
        .iter()
        .filter(|e| {
            let key = e.split('=').next().unwrap_or("");
            !input.env.iter().any(|(k, _)| k == key)
        })
        .cloned()
        .collect();
    if !image_env.iter().any(|e| e.starts_with("PATH="))
        && !input.env.iter().any(|(k, _)| k == "PATH")
    {
        image_env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    image_env.push(format!("HOSTNAME={}", input.hostname));
    image_env.append(&mut env);
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(input.image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let supplemental: Vec<i64> = input
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default();
    let tty = c.tty.unwrap_or(false);
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "mount"}),
    ];
    if let Some(path) = input.netns {
        namespaces.push(json!({"type": "uts"}));
        namespaces.push(json!({"type": "network", "path": path}));
    }
    let mut linux = json!({
        "cgroupsPath": input.cgroup_path,
        "resources": resources(c, privileged)?,
        "namespaces": namespaces,
    });
    if !privileged {
        linux["maskedPaths"] = json!([
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi"
        ]);
        linux["readonlyPaths"] = json!([
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]);
    }
    Ok(json!({
        "ociVersion": "1.0.2-dev",
        "hostname": input.hostname,
        "process": {
            "terminal": tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": supplemental},
            "args": args,
            "env": image_env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": !privileged && !sc.and_then(|s| s.allow_privilege_escalation).unwrap_or(true),
            "oomScoreAdj": 0,
        },
        "root": {"path": "rootfs", "readonly": sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false)},
        "mounts": mounts(input, privileged)?,
        "linux": linux,
    }))
}

fn capabilities(c: &Container, privileged: bool) -> Vec<String> {
    if privileged {
        return ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    let norm = |s: &String| {
        let s = s.to_uppercase();
        if s.starts_with("CAP_") {
            s
        } else {
            format!("CAP_{s}")
        }
    };
    let spec = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref());
    let add: Vec<String> = spec
        .and_then(|c| c.add.as_ref())
        .map(|v| v.iter().map(norm).collect())
        .unwrap_or_default();
    let drop: Vec<String> = spec
        .and_then(|c| c.drop.as_ref())
        .map(|v| v.iter().map(norm).collect())
        .unwrap_or_default();
    let mut caps: Vec<String> = if add.iter().any(|c| c == "CAP_ALL") {
        ALL_CAPS.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .chain(add)
            .collect()
    };
    if drop.iter().any(|c| c == "CAP_ALL") {
        caps.clear();
    }
    caps.retain(|c| !drop.contains(c));
    caps.sort();
    caps.dedup();
    caps
}

/// cgroup limits as containerd's CRI plugin sets them on cgroup v1.
fn resources(c: &Container, privileged: bool) -> Result<Value, SpecError> {
    let res = c.resources.as_ref();
    let get = |limits: bool, name: &str| {
        res.and_then(|r| {
            if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        })
        .and_then(|m| m.get(name))
        .map(|q| q.0.clone())
    };
    let bad = |q: &str| SpecError::Invalid(format!("invalid quantity {q:?}"));
    let mut out = json!({"devices": [{"allow": privileged, "access": "rwm"}]});
    // Requests default to limits (the API does this too; static pods skip it).
    let cpu_request = get(false, "cpu").or_else(|| get(true, "cpu"));
    let shares = match cpu_request {
        Some(q) => (quantity::parse_milli_value(&q).map_err(|_| bad(&q))? * 1024 / 1000).max(2),
        None => 2,
    };
    let mut cpu = json!({"shares": shares});
    if let Some(q) = get(true, "cpu") {
        let milli = quantity::parse_milli_value(&q).map_err(|_| bad(&q))?;
        cpu["quota"] = json!((milli * 100).max(1000));
        cpu["period"] = json!(100_000);
    }
    out["cpu"] = cpu;
    if let Some(q) = get(true, "memory") {
        let bytes = quantity::parse_value(&q).map_err(|_| bad(&q))?;
        out["memory"] = json!({"limit": bytes, "swap": bytes});
    }
    Ok(out)
}

fn mounts(input: &SpecInput<'_>, privileged: bool) -> Result<Vec<Value>, SpecError> {
    let sys_opts = if privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut m = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let bind = |src: &Path, dst: &str, ro: bool| {
        let mut opts = vec!["rbind", "rprivate"];
        opts.push(if ro { "ro" } else { "rw" });
        json!({"destination": dst, "type": "bind", "source": src, "options": opts})
    };
    let mounted: Vec<&str> = input
        .container
        .volume_mounts
        .iter()
        .flatten()
        .map(|v| v.mount_path.as_str())
        .collect();
    for file in ["hosts", "hostname", "resolv.conf"] {
        let dst = format!("/etc/{file}");
        if !mounted.contains(&dst.as_str()) {
            m.push(bind(&input.etc_dir.join(file), &dst, false));
        }
    }
    if let Some(log) = input.termination_log {
        let dst = input
            .container
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        m.push(bind(log, &dst, false));
    }
    for vm in input.container.volume_mounts.iter().flatten() {
        let vol = input
            .volumes
            .get(&vm.name)
            .ok_or_else(|| SpecError::UnknownVolume(vm.name.clone()))?;
        let mut src = vol.host_path.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.starts_with('/') || sub.split('/').any(|c| c == "..") {
                return Err(SpecError::Invalid(format!(
                    "subPath {sub:?} must be a relative path inside the volume"
                )));
            }
            src = src.join(sub);
            if !src.exists() {
                std::fs::create_dir_all(&src)
                    .map_err(|e| SpecError::Invalid(format!("subPath {sub:?}: {e}")))?;
            }
        }
        let ro = vm.read_only.unwrap_or(false) || vol.read_only;
        m.push(bind(&src, &vm.mount_path, ro));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/bin".into(), "FROM_IMAGE=1".into()],
            working_dir: "/work".into(),
            user: String::new(),
            exposed_ports: vec![],
        }
    }

    fn container(v: Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn command_and_args_follow_upstream_rules() {
        let env = vec![("X".to_string(), "1".to_string())];
        let none = container(json!({"name": "c"}));
        assert_eq!(
            process_args(&none, &image(), &env).unwrap(),
            ["/entry", "default"]
        );
        let args = container(json!({"name": "c", "args": ["a$(X)"]}));
        assert_eq!(
            process_args(&args, &image(), &env).unwrap(),
            ["/entry", "a1"]
        );
        let cmd = container(json!({"name": "c", "command": ["sh"], "args": ["-c", "x"]}));
        assert_eq!(
            process_args(&cmd, &image(), &env).unwrap(),
            ["sh", "-c", "x"]
        );
        let empty = ImageConfig {
            entrypoint: vec![],
            cmd: vec![],
            ..image()
        };
        assert!(matches!(
            process_args(&none, &empty, &env),
            Err(SpecError::NoCommand)
        ));
    }

    #[test]
    fn capabilities_add_and_drop() {
        let c = container(
            json!({"name": "c", "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["KILL"]}}}),
        );
        let caps = capabilities(&c, false);
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        let all_dropped =
            container(json!({"name": "c", "securityContext": {"capabilities": {"drop": ["ALL"]}}}));
        assert!(capabilities(&all_dropped, false).is_empty());
        assert_eq!(capabilities(&all_dropped, true).len(), ALL_CAPS.len());
    }

    #[test]
    fn limits_become_cgroup_values() {
        let c = container(
            json!({"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}),
        );
        let r = resources(&c, false).unwrap();
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["shares"], 512);
        let bad = container(json!({"name": "c"}));
        assert_eq!(resources(&bad, false).unwrap()["cpu"]["shares"], 2);
    }

    #[test]
    fn security_context_user_wins_over_image_and_non_root_is_enforced() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [], "securityContext": {"runAsUser": 1000}}})).unwrap();
        let c = container(json!({"name": "c", "securityContext": {"runAsGroup": 7}}));
        assert_eq!(user(&pod, &c, &image()).unwrap(), (1000, 7));
        let root_pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
                .unwrap();
        let nr = container(json!({"name": "c", "securityContext": {"runAsNonRoot": true}}));
        assert!(user(&root_pod, &nr, &image()).is_err());
    }
}
