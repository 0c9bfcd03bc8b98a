//! `kelp sim nodes`: fake nodes for tests and benchmarks (like kwok).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::flag_values::Label;
use crate::sim::{self, SimConfig};

/// Flags of `kelp sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Register N fake nodes that renew their Leases and report bound pods
    /// Running without running any container. For tests and benchmarks only.
    Nodes {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        count: usize,
        /// Node name prefix.
        #[arg(long, default_value = "sim-")]
        prefix: String,
        /// Allocatable CPU per node.
        #[arg(long, default_value = "4")]
        cpu: String,
        /// Allocatable memory per node.
        #[arg(long, default_value = "8Gi")]
        memory: String,
        /// Allocatable pods per node.
        #[arg(long, default_value_t = 110)]
        pods: u32,
        /// Extra label for every node, key=value (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        node_label: Vec<Label>,
        /// Seconds between Lease renewals.
        #[arg(long, default_value_t = 10)]
        lease_interval: u64,
        /// Data dir of the server: the nodes' kubelet port gets a certificate
        /// from its cluster CA (`<data-dir>/server/tls`), as a kubelet's is.
        #[arg(long, default_value = "/var/lib/kelp")]
        data_dir: PathBuf,
        /// Kubeconfig of the cluster to join.
        #[arg(long, env = "KUBECONFIG", default_value = "/etc/kelp/kelp.yaml")]
        kubeconfig: PathBuf,
    },
}

pub(super) fn run(args: SimArgs) -> anyhow::Result<()> {
    let SimCommand::Nodes {
        count,
        prefix,
        cpu,
        memory,
        pods,
        node_label,
        lease_interval,
        data_dir,
        kubeconfig,
    } = args.command;
    let tls_dir = data_dir.join("server/tls");
    let kubelet_tls =
        crate::pki::kubelet_serving_tls(&tls_dir, &[std::net::IpAddr::from([127, 0, 0, 1])])
            .with_context(|| {
                format!(
                    "cannot issue the sim nodes' kubelet certificate (--data-dir {})",
                    data_dir.display()
                )
            })?;
    super::init_logging(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig)
            .with_context(|| format!("cannot read --kubeconfig {}", kubeconfig.display()))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .context("invalid kubeconfig")?;
        let client = kube::Client::try_from(config).context("cannot build an API client")?;
        let cancel = CancellationToken::new();
        let sim_config = SimConfig {
            count,
            prefix,
            cpu,
            memory,
            pods,
            labels: node_label.into_iter().map(|l| (l.key, l.value)).collect(),
            lease_interval: Duration::from_secs(lease_interval.max(1)),
            kubelet_tls,
        };
        let stop = cancel.clone();
        tokio::spawn(async move {
            super::server::shutdown_signal().await;
            stop.cancel();
        });
        sim::run(client, sim_config, cancel)
            .await
            .context("sim nodes failed")
    })
}
