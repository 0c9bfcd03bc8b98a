//! Flags shared by `kelp server` and `kelp agent`: the node's identity and
//! its container runtime.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use super::flag_values::{Label, Taint};

/// Where the config file is and where kelp keeps its state.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Config file (keys are long flag names).
    #[arg(short = 'c', long, env = "KELP_CONFIG", value_name = "FILE", default_value = super::config_file::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Directory for all state.
    #[arg(
        short = 'd',
        long,
        env = "KELP_DATA_DIR",
        value_name = "DIR",
        default_value = "/var/lib/kelp"
    )]
    pub data_dir: PathBuf,
    /// Log at debug level.
    #[arg(long, env = "KELP_DEBUG", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub debug: bool,
}

/// The node's identity and runtime.
#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    /// Node name (default: the hostname).
    #[arg(long, env = "KELP_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// IP address to advertise for the node (default: the first non-loopback address).
    #[arg(long, env = "KELP_NODE_IP", value_name = "IP")]
    pub node_ip: Option<IpAddr>,
    /// Label to register the node with, key=value (repeatable).
    #[arg(
        long,
        env = "KELP_NODE_LABEL",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub node_label: Vec<Label>,
    /// Taint to register the node with, key[=value]:Effect (repeatable).
    #[arg(
        long,
        env = "KELP_NODE_TAINT",
        value_name = "TAINT",
        value_delimiter = ','
    )]
    pub node_taint: Vec<Taint>,
    /// Use this containerd socket instead of starting containerd.
    #[arg(long, env = "KELP_CONTAINER_RUNTIME_ENDPOINT", value_name = "SOCKET")]
    pub container_runtime_endpoint: Option<PathBuf>,
    /// Port of the kubelet's HTTPS server (logs, exec, port-forward).
    #[arg(
        long,
        env = "KELP_KUBELET_PORT",
        value_name = "PORT",
        default_value_t = 10250,
        hide = true
    )]
    pub kubelet_port: u16,
    /// Where the node keeps runtime state, logs and pod namespaces.
    #[command(flatten)]
    pub dirs: NodeDirs,
    /// Kubelet setting, KEY=VALUE (repeatable); kelp's kubelet understands
    /// `max-pods`, `eviction-hard` (e.g. `eviction-hard=nodefs.available<1Gi`),
    /// `image-gc-high-threshold`, `image-gc-low-threshold` and
    /// `image-minimum-gc-age`.
    #[arg(long, env = "KELP_KUBELET_ARG", value_name = "KEY=VALUE")]
    pub kubelet_arg: Vec<String>,
    /// Registry mirrors, rewrites, auth and TLS (k3s's registries.yaml
    /// format); read again whenever it changes.
    #[arg(
        long,
        env = "KELP_PRIVATE_REGISTRY",
        value_name = "FILE",
        default_value = crate::kubelet::registry::config::DEFAULT_REGISTRIES_FILE
    )]
    pub private_registry: PathBuf,
}

/// Where a node keeps its runtime state, pod logs and pod network
/// namespaces (`kelp reset` needs them too).
#[derive(Debug, Args, Clone)]
pub struct NodeDirs {
    /// Runtime state: containerd socket and exec FIFOs (tests run several nodes on one host).
    #[arg(
        long,
        env = "KELP_RUN_DIR",
        value_name = "DIR",
        default_value = "/run/kelp",
        hide = true
    )]
    pub run_dir: PathBuf,
    /// Where pod logs go.
    #[arg(
        long,
        env = "KELP_POD_LOG_DIR",
        value_name = "DIR",
        default_value = "/var/log/pods",
        hide = true
    )]
    pub pod_log_dir: PathBuf,
    /// Where pod network namespaces are bind-mounted.
    #[arg(
        long,
        env = "KELP_NETNS_DIR",
        value_name = "DIR",
        default_value = "/run/netns",
        hide = true
    )]
    pub netns_dir: PathBuf,
}

/// What `--kubelet-arg` values set.
#[derive(Debug, Clone, Default)]
pub struct KubeletArgs {
    /// `max-pods`.
    pub max_pods: Option<u32>,
    /// `eviction-hard`.
    pub eviction_hard: crate::kubelet::node::eviction::EvictionHard,
    /// `image-gc-high-threshold`, `image-gc-low-threshold`, `image-minimum-gc-age`.
    pub image_gc: crate::kubelet::image_gc::ImageGcSettings,
}

impl NodeArgs {
    /// The node's name: `--node-name`, else the hostname.
    pub fn name(&self) -> String {
        self.node_name.clone().unwrap_or_else(super::host::hostname)
    }

    /// How this node runs, in `cluster` (the server's settings), with the
    /// kubelet serving `tls` on this node's port.
    pub fn node_config(
        &self,
        data_dir: &std::path::Path,
        name: String,
        ip: IpAddr,
        cluster: &crate::client::join_protocol::ClusterSettings,
        tls: std::sync::Arc<rustls::ServerConfig>,
    ) -> anyhow::Result<crate::agent::NodeConfig> {
        use crate::network::overlay::Backend;
        let kubelet_args = self.kubelet_args()?;
        let backend = Backend::parse(&cluster.flannel_backend).ok_or_else(|| {
            anyhow::anyhow!(
                "the server's flannel backend {:?} is unknown to this kelp (upgrade the agent)",
                cluster.flannel_backend
            )
        })?;
        let cluster_cidr = match cluster.cluster_cidr.parse::<ipnet::IpNet>() {
            Ok(ipnet::IpNet::V4(net)) => net,
            _ => anyhow::bail!(
                "cluster CIDR {:?} is not an IPv4 network: kelp's pod network is IPv4 only",
                cluster.cluster_cidr
            ),
        };
        let cluster_dns = match cluster.cluster_dns {
            IpAddr::V4(ip) => cluster.builtin_dns.then_some(ip),
            IpAddr::V6(_) if !cluster.builtin_dns => None,
            IpAddr::V6(_) => anyhow::bail!("cluster DNS needs an IPv4 --cluster-dns"),
        };
        let agent_dir = data_dir.join("agent");
        let kubelet = crate::kubelet::KubeletConfig {
            node: crate::kubelet::node::NodeSettings {
                name,
                ip,
                labels: self
                    .node_label
                    .iter()
                    .map(|l| (l.key.clone(), l.value.clone()))
                    .collect(),
                taints: self
                    .node_taint
                    .iter()
                    .map(|t| (t.key.clone(), t.value.clone(), format!("{:?}", t.effect)))
                    .collect(),
                max_pods: kubelet_args
                    .max_pods
                    .unwrap_or_else(|| max_pods_for_memory(memory_mib())),
                kubelet_port: self.kubelet_port,
                data_dir: agent_dir.clone(),
                runtime_version: String::new(),
                eviction_hard: kubelet_args.eviction_hard,
            },
            agent_dir,
            container_runtime_endpoint: self.container_runtime_endpoint.clone(),
            run_dir: self.dirs.run_dir.clone(),
            log_root: self.dirs.pod_log_dir.clone(),
            netns_dir: self.dirs.netns_dir.clone(),
            // Pods' nameserver even when kelp's DNS is off (another DNS
            // may serve the address), as upstream's --cluster-dns.
            cluster_dns: cluster.cluster_dns.to_string(),
            cluster_domain: cluster.cluster_domain.clone(),
            kubernetes_service_ip: cluster.kubernetes_service_ip.to_string(),
            tls,
            pod_network_overhead: backend.pod_network_overhead(),
            registries_file: self.private_registry.clone(),
            image_gc: kubelet_args.image_gc,
        };
        Ok(crate::agent::NodeConfig {
            kubelet,
            cluster_cidr,
            cluster_dns,
            cluster_domain: cluster.cluster_domain.clone(),
            kube_proxy: cluster.kube_proxy,
            backend,
        })
    }

    /// Parses `--kubelet-arg` values; unknown keys are errors naming the flag.
    pub fn kubelet_args(&self) -> anyhow::Result<KubeletArgs> {
        let mut out = KubeletArgs::default();
        for arg in &self.kubelet_arg {
            let arg = arg.trim_start_matches("--");
            let (key, value) = arg.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--kubelet-arg {arg:?}: expected KEY=VALUE, e.g. max-pods=110")
            })?;
            match key {
                "max-pods" => {
                    out.max_pods = Some(value.parse().map_err(|_| {
                        anyhow::anyhow!("--kubelet-arg max-pods={value}: expected a whole number")
                    })?)
                }
                "eviction-hard" => {
                    out.eviction_hard =
                        crate::kubelet::node::eviction::EvictionHard::parse(value)
                            .map_err(|e| anyhow::anyhow!("--kubelet-arg eviction-hard: {e}"))?
                }
                "image-gc-high-threshold" | "image-gc-low-threshold" => {
                    let percent: u8 =
                        value.parse().ok().filter(|p| *p <= 100).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--kubelet-arg {key}={value}: expected a percentage from 0 to 100"
                            )
                        })?;
                    if key == "image-gc-high-threshold" {
                        out.image_gc.high_threshold = percent;
                    } else {
                        out.image_gc.low_threshold = percent;
                    }
                }
                "image-minimum-gc-age" => {
                    let nanos = crate::client::cron_schedule::parse_go_duration(value)
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "--kubelet-arg image-minimum-gc-age={value}: expected a duration such as 2m or 30s"
                            )
                        })?;
                    out.image_gc.minimum_age =
                        std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
                }
                other => anyhow::bail!(
                    "--kubelet-arg {other}: kelp's kubelet understands max-pods, eviction-hard, image-gc-high-threshold, image-gc-low-threshold and image-minimum-gc-age"
                ),
            }
        }
        out.image_gc
            .validate()
            .map_err(|e| anyhow::anyhow!("--kubelet-arg: {e}"))?;
        Ok(out)
    }
}

/// Upstream's default pod limit, for machines with room for it.
const UPSTREAM_MAX_PODS: u32 = 110;

/// The default `max-pods` for a machine with `mib` of memory: upstream's
/// 110 where that fits, fewer on small boards. Each pod costs a shim and
/// runc state (~8 MiB) before its workload, and kelp with containerd
/// takes ~80 MiB: a 1 GB Raspberry Pi that admits 110 pods is driven into
/// the OOM killer instead of the scheduler saying no. One pod per 24 MiB
/// keeps a third of memory for workloads.
pub fn max_pods_for_memory(mib: Option<u64>) -> u32 {
    match mib {
        Some(mib) => (mib / 24).clamp(16, UPSTREAM_MAX_PODS as u64) as u32,
        None => UPSTREAM_MAX_PODS,
    }
}

/// This machine's memory (MemTotal), MiB.
pub(super) fn memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod small_board_tests {
    use super::max_pods_for_memory;

    #[test]
    fn max_pods_shrinks_on_small_boards_only() {
        // A 1 GB Raspberry Pi shows ~910 MiB.
        assert_eq!(max_pods_for_memory(Some(910)), 37);
        assert_eq!(max_pods_for_memory(Some(1900)), 79);
        assert_eq!(max_pods_for_memory(Some(4096)), 110);
        assert_eq!(max_pods_for_memory(Some(24105)), 110);
        assert_eq!(max_pods_for_memory(Some(256)), 16);
        assert_eq!(max_pods_for_memory(None), 110);
    }
}
