//! `kelp server`.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::flag_values::{Cidr, Component, FileMode, FlannelBackend, PortRange};
use super::node_args::{CommonArgs, NodeArgs};
use crate::store::Store;
use crate::store::sled::{SledConfig, SledStore};

/// Flags of `kelp server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Port of the Kubernetes API (HTTPS).
    #[arg(long, env = "KELP_HTTPS_LISTEN_PORT", value_name = "PORT", default_value_t = 6443, value_parser = clap::value_parser!(u16).range(1..))]
    https_listen_port: u16,
    /// Address the API listens on.
    #[arg(
        long,
        env = "KELP_BIND_ADDRESS",
        value_name = "IP",
        default_value = "0.0.0.0"
    )]
    bind_address: IpAddr,
    /// Extra hostname or IP for the serving certificate (repeatable).
    #[arg(long, env = "KELP_TLS_SAN", value_name = "NAME", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Shared secret agents join with (default: generated on first start).
    #[arg(short = 't', long, env = "KELP_TOKEN", value_name = "TOKEN")]
    token: Option<String>,
    /// Pod network (a /24 per node is carved from it).
    #[arg(
        long,
        env = "KELP_CLUSTER_CIDR",
        value_name = "CIDR",
        default_value = "10.42.0.0/16"
    )]
    cluster_cidr: Cidr,
    /// Service ClusterIP range.
    #[arg(
        long,
        env = "KELP_SERVICE_CIDR",
        value_name = "CIDR",
        default_value = "10.43.0.0/16"
    )]
    service_cidr: Cidr,
    /// ClusterIP of the cluster DNS service.
    #[arg(
        long,
        env = "KELP_CLUSTER_DNS",
        value_name = "IP",
        default_value = "10.43.0.10"
    )]
    cluster_dns: IpAddr,
    /// Cluster domain.
    #[arg(
        long,
        env = "KELP_CLUSTER_DOMAIN",
        value_name = "DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,
    /// NodePort range.
    #[arg(
        long,
        env = "KELP_SERVICE_NODE_PORT_RANGE",
        value_name = "LOW-HIGH",
        default_value = "30000-32767"
    )]
    service_node_port_range: PortRange,
    /// Pod network backend.
    #[arg(
        long,
        env = "KELP_FLANNEL_BACKEND",
        value_enum,
        default_value = "vxlan"
    )]
    flannel_backend: FlannelBackend,
    /// Do not run a packaged component (repeatable).
    #[arg(long, env = "KELP_DISABLE", value_enum, value_delimiter = ',')]
    disable: Vec<Component>,
    /// Run only the control plane, no kubelet/node on this machine.
    #[arg(long, env = "KELP_DISABLE_AGENT", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    disable_agent: bool,
    /// Where to write the admin kubeconfig.
    #[arg(
        short = 'o',
        long,
        env = "KELP_WRITE_KUBECONFIG",
        value_name = "FILE",
        default_value = "/etc/kelp/kelp.yaml"
    )]
    write_kubeconfig: PathBuf,
    /// File mode of the admin kubeconfig (octal).
    #[arg(
        long,
        env = "KELP_WRITE_KUBECONFIG_MODE",
        value_name = "MODE",
        default_value = "0600"
    )]
    write_kubeconfig_mode: FileMode,
}

impl ServerArgs {
    /// Checks relations between flags that no single parser can see.
    fn validate(&self) -> anyhow::Result<()> {
        if !self.service_cidr.0.contains(&self.cluster_dns) {
            anyhow::bail!(
                "--cluster-dns {} is outside --service-cidr {}; pick an address inside it, e.g. the .10 of the range",
                self.cluster_dns,
                self.service_cidr
            );
        }
        if self.service_cidr.0.contains(&self.cluster_cidr.0.network())
            || self.cluster_cidr.0.contains(&self.service_cidr.0.network())
        {
            anyhow::bail!(
                "--cluster-cidr {} overlaps --service-cidr {}; they must be disjoint",
                self.cluster_cidr,
                self.service_cidr
            );
        }
        if self.cluster_cidr.0.prefix_len() > 24 && self.cluster_cidr.0.addr().is_ipv4() {
            anyhow::bail!(
                "--cluster-cidr {} is smaller than one /24 node subnet; use /16, e.g. 10.42.0.0/16",
                self.cluster_cidr
            );
        }
        Ok(())
    }
}

pub(super) fn run(args: ServerArgs) -> anyhow::Result<()> {
    args.validate()?;
    super::init_logging(args.common.debug);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let db_dir = args.common.data_dir.join("server/db");
    std::fs::create_dir_all(&db_dir)
        .with_context(|| format!("cannot create data dir {}", db_dir.display()))?;
    let store = SledStore::open(SledConfig::new(&db_dir))
        .with_context(|| format!("cannot open store {}", db_dir.display()))?;
    tracing::info!(path = %db_dir.display(), revision = store.current_revision(), "store ready");
    tracing::warn!(
        port = args.https_listen_port,
        bind = %args.bind_address,
        "the Kubernetes API is not built yet in this version; serving the store only"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
