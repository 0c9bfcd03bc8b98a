//! `kelp agent`: join a server and run a node.

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::flag_values::ServerUrl;
use super::node_args::{CommonArgs, NodeArgs};
use crate::agent::join::ServerAddress;
use crate::client::join_protocol::JoinRequest;

/// Flags of `kelp agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Server to join, https://HOST:PORT.
    #[arg(short = 's', long, env = "KELP_URL", value_name = "URL")]
    server: Option<ServerUrl>,
    /// Join token (K10… from the server's <data>/server/token, or a
    /// bootstrap token from `kelp token create`).
    #[arg(short = 't', long, env = "KELP_TOKEN", value_name = "TOKEN")]
    token: Option<String>,
    /// File holding the join token.
    #[arg(long, env = "KELP_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Append a unique id to the node name (kept in the data dir), so
    /// machines with one hostname can join as different nodes.
    #[arg(long, env = "KELP_WITH_NODE_ID", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    with_node_id: bool,
}

pub(super) fn run(args: AgentArgs) -> anyhow::Result<()> {
    // Required, but checked here rather than by clap so that the config
    // file can supply them.
    let Some(server) = &args.server else {
        anyhow::bail!(
            "--server is required (or KELP_URL, or 'server' in the config file), e.g. --server https://10.0.0.1:6443"
        );
    };
    let server = ServerAddress::parse(&server.0).map_err(|e| anyhow::anyhow!("--server {e}"))?;
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) if !t.is_empty() => t.trim().to_string(),
        (_, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --token-file {}", file.display()))?
            .trim()
            .to_string(),
        _ => String::new(),
    };
    if token.is_empty() {
        anyhow::bail!(
            "--token is required (or --token-file, KELP_TOKEN, or 'token' in the config file); read it from <data-dir>/server/token on the server"
        );
    }
    args.node.kubelet_args()?;
    super::init_logging(args.common.debug);
    super::host::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, server, token))
}

async fn serve(args: AgentArgs, server: ServerAddress, token: String) -> anyhow::Result<()> {
    let data = &args.common.data_dir;
    let agent_dir = data.join("agent");
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("cannot create data dir {}", agent_dir.display()))?;
    super::data_dir::restrict(data)
        .with_context(|| format!("cannot restrict the permissions of {}", data.display()))?;
    let mut name = args.node.name();
    if args.with_node_id {
        // A short random id, created once and kept.
        let id = crate::agent::kept_value(&agent_dir.join("node-id"), |s| s[..8].to_string())?;
        name = format!("{name}-{id}");
    }
    let node_ip = args
        .node
        .node_ip
        .unwrap_or_else(crate::cli::host::default_ip);
    let password = crate::agent::node_password(&agent_dir.join("node-password"))?;
    let request = JoinRequest {
        node_name: name.clone(),
        node_ip,
        hostnames: vec![crate::cli::host::hostname()],
        node_password: password,
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        super::server::shutdown_signal().await;
        stop.cancel();
    });
    let (token_hash, _) = crate::pki::parse_join_token(&token).context("--token")?;
    let stored = crate::agent::stored_credentials(&agent_dir, &name, token_hash.as_deref());
    let mut joined = match stored {
        // Joined before: start at once on what the server gave, even while
        // it is down, and without the (possibly rotated) token.
        Some(stored) => {
            tracing::info!(node = %name, "using the node credentials from the last join");
            stored
        }
        None => {
            tracing::info!(server = %server.url, node = %name, "joining");
            let Some(joined) = crate::agent::join(&server, &token, &request, &agent_dir, &cancel)
                .await
                .with_context(|| format!("cannot join {}", server.url))?
            else {
                return Ok(());
            };
            tracing::info!(server = %server.url, node = %name, "joined");
            joined
        }
    };
    loop {
        let c = &joined.credentials;
        let client = crate::agent::client_for(
            "kubelet",
            &server.url,
            &joined.ca_pem,
            &c.client_cert,
            &c.client_key,
        )
        .await?;
        let tls = crate::pki::kubelet_server_config_for_ca(
            &joined.ca_pem,
            &c.serving_cert,
            &c.serving_key,
        )
        .context("kubelet TLS configuration")?;
        let config = args
            .node
            .node_config(data, name.clone(), node_ip, &c.cluster, tls)?;
        let node_cancel = cancel.child_token();
        let node = crate::agent::start_node(config, client, &node_cancel)
            .await
            .context("cannot start the node")?;
        tracing::info!(node = %node.name, "kelp agent is ready");
        super::service_notify::ready("node running");
        tokio::select! {
            _ = cancel.cancelled() => {
                tracing::info!("shutting down");
                node.shutdown().await;
                return Ok(());
            }
            _ = tokio::time::sleep(crate::agent::renewal_due_in(&joined)) => {}
        }
        // Certificates near expiry: renew them with the current ones, then
        // restart the node's components on the new identity (pods keep
        // running, as across a kelp restart).
        tracing::info!(node = %name, "renewing the node's certificates");
        let renewed = crate::agent::renew(&server, &joined, &request, &agent_dir, &cancel).await;
        node_cancel.cancel();
        node.shutdown().await;
        match renewed.context("cannot renew the node's certificates")? {
            Some(renewed) => joined = renewed,
            None => return Ok(()),
        }
    }
}
