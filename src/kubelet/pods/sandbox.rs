//! What a pod's containers share: its directory on the host, its network
//! namespace, its /etc/hosts, /etc/hostname and /etc/resolv.conf, and its
//! cgroup parent.
//!
//! Upstream's kubelet asks the CRI for a "sandbox" (a pause container that
//! holds the namespaces). kelp holds the network namespace as a bind-mounted
//! netns file instead, so no pause image is needed and a pod needs no
//! process of its own; containers join it by path. Each container keeps its
//! own PID and IPC namespaces (as with `shareProcessNamespace: false`).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use crate::kubelet::netns;

/// Node-wide settings a sandbox needs.
#[derive(Clone, Debug)]
pub struct SandboxSettings {
    /// `<data>/agent/pods`.
    pub pods_dir: PathBuf,
    /// Where named netns files live (/run/netns).
    pub netns_dir: PathBuf,
    /// Cluster DNS server.
    pub cluster_dns: String,
    /// Cluster domain.
    pub cluster_domain: String,
    /// The node's name (hostname of hostNetwork pods).
    pub node_name: String,
}

/// A pod's shared resources on this node.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// `<pods_dir>/<uid>`.
    pub dir: PathBuf,
    /// Network namespace path; None for hostNetwork pods.
    pub netns: Option<PathBuf>,
    /// Hostname inside containers.
    pub hostname: String,
    /// cgroup parent (`/kubepods/<qos>/pod<uid>`).
    pub cgroup_parent: String,
}

/// Why a sandbox cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Creating the network namespace failed.
    #[error("cannot create the pod network namespace: {0}")]
    Netns(String),
    /// Writing the pod's files failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

fn uid_of(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// The netns name of a pod (what `ip netns list` shows).
pub fn netns_name(uid: &str) -> String {
    format!("kelp-{uid}")
}

/// Whether the pod uses the node's network.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// Creates (or finds, after a kelp restart) the sandbox of `pod`.
pub fn ensure(pod: &Pod, settings: &SandboxSettings) -> Result<Sandbox, SandboxError> {
    let uid = uid_of(pod);
    let dir = settings.pods_dir.join(uid);
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).map_err(|source| SandboxError::Io {
        path: etc.clone(),
        source,
    })?;
    let host_net = host_network(pod);
    let netns = if host_net {
        None
    } else {
        let path = settings.netns_dir.join(netns_name(uid));
        if path.exists() {
            Some(path)
        } else {
            Some(
                netns::create(&settings.netns_dir, &netns_name(uid))
                    .map_err(|e| SandboxError::Netns(e.to_string()))?,
            )
        }
    };
    let hostname = hostname(pod, settings, host_net);
    let write = |name: &str, body: String| {
        let path = etc.join(name);
        std::fs::write(&path, body).map_err(|source| SandboxError::Io { path, source })
    };
    write("hostname", format!("{hostname}\n"))?;
    write("hosts", hosts_file(pod, &hostname, settings))?;
    write("resolv.conf", resolv_conf(pod, settings, host_net))?;
    Ok(Sandbox {
        dir,
        netns,
        hostname,
        cgroup_parent: cgroup_parent(pod),
    })
}

/// Removes the sandbox: netns, cgroups and the pod directory.
pub fn remove(uid: &str, settings: &SandboxSettings, qos_parent: Option<&str>) {
    let ns = settings.netns_dir.join(netns_name(uid));
    if let Err(e) = netns::remove(&ns) {
        tracing::warn!(netns = %ns.display(), error = %e, "cannot remove pod netns");
    }
    if let Some(parent) = qos_parent {
        remove_cgroups(parent);
    }
    super::volumes::teardown(&settings.pods_dir.join(uid));
}

fn hostname(pod: &Pod, settings: &SandboxSettings, host_net: bool) -> String {
    if host_net {
        return settings.node_name.clone();
    }
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    // A hostname is at most 63 characters and may not end in '-' or '.'.
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

fn hosts_file(pod: &Pod, hostname: &str, settings: &SandboxSettings) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_else(|| "127.0.1.1".into());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    match spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        Some(sub) => out.push_str(&format!(
            "{ip}\t{hostname}.{sub}.{ns}.svc.{}\t{hostname}\n",
            settings.cluster_domain
        )),
        None => out.push_str(&format!("{ip}\t{hostname}\n")),
    }
    let aliases = spec
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            out.push_str(&format!(
                "{}\t{}\n",
                alias.ip,
                alias.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    out
}

fn resolv_conf(pod: &Pod, settings: &SandboxSettings, host_net: bool) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.clone())
        .unwrap_or_else(|| "ClusterFirst".into());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let d = &settings.cluster_domain;
    let host_conf = || std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut servers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let cluster_first =
        policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host_net);
    if cluster_first {
        servers.push(settings.cluster_dns.clone());
        searches.extend([format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()]);
        options.push("ndots:5".into());
    } else if policy != "None" {
        for line in host_conf().lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => servers.extend(words.map(str::to_string)),
                Some("search") => searches.extend(words.map(str::to_string)),
                Some("options") => options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
    }
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(cfg.nameservers.clone().unwrap_or_default());
        searches.extend(cfg.searches.clone().unwrap_or_default());
        for opt in cfg.options.clone().unwrap_or_default() {
            let name = opt.name.unwrap_or_default();
            options.retain(|o| o.split(':').next() != Some(name.as_str()));
            options.push(match opt.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in servers.iter().take(3) {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// `/kubepods[/burstable|/besteffort]/pod<uid>` (cgroupfs layout).
pub fn cgroup_parent(pod: &Pod) -> String {
    let spec = pod
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(s).unwrap_or_default());
    let qos = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.clone())
        .unwrap_or_else(|| crate::client::pod_qos::qos_class(spec.as_ref()).to_string());
    let uid = uid_of(pod);
    match qos.as_str() {
        "Guaranteed" => format!("/kubepods/pod{uid}"),
        "Burstable" => format!("/kubepods/burstable/pod{uid}"),
        _ => format!("/kubepods/besteffort/pod{uid}"),
    }
}

/// Removes a pod's cgroup directory in every v1 hierarchy (and the v2
/// tree); runc removes the containers' own cgroups but not their parent.
fn remove_cgroups(parent: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let rel = parent.trim_start_matches('/');
    let mut roots: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        let dir = root.join(rel);
        if dir.is_dir() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// The container's cgroup path under the pod's parent.
pub fn container_cgroup(sandbox: &Sandbox, container_id: &str) -> String {
    format!("{}/{container_id}", sandbox.cgroup_parent)
}

/// Whether `path` is an existing netns file (for adoption after restart).
pub fn netns_exists(path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> SandboxSettings {
        SandboxSettings {
            pods_dir: "/tmp".into(),
            netns_dir: "/run/netns".into(),
            cluster_dns: "10.43.0.10".into(),
            cluster_domain: "cluster.local".into(),
            node_name: "node1".into(),
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"}, "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn cluster_first_resolv_conf_searches_the_namespace() {
        let conf = resolv_conf(&pod(json!({"containers": []})), &settings(), false);
        assert_eq!(
            conf,
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
        let custom = pod(
            json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]}}),
        );
        assert_eq!(
            resolv_conf(&custom, &settings(), false),
            "nameserver 1.1.1.1\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_file_names_the_pod_and_its_subdomain() {
        let p = pod(
            json!({"containers": [], "hostname": "h", "subdomain": "sub", "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]}),
        );
        let hosts = hosts_file(&p, "h", &settings());
        assert!(
            hosts.contains("127.0.1.1\th.sub.shop.svc.cluster.local\th\n"),
            "{hosts}"
        );
        assert!(hosts.contains("1.2.3.4\ta\tb\n"));
    }

    #[test]
    fn cgroup_parent_follows_qos() {
        let p = pod(
            json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
        );
        assert_eq!(cgroup_parent(&p), "/kubepods/podu1");
        let b = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(cgroup_parent(&b), "/kubepods/besteffort/podu1");
    }
}
