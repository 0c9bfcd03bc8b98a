//! `kelp agent`.

use clap::Args;

use super::flag_values::ServerUrl;
use super::node_args::{CommonArgs, NodeArgs};

/// Flags of `kelp agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Server to join, https://HOST:PORT.
    #[arg(short = 's', long, env = "KELP_SERVER", value_name = "URL")]
    server: Option<ServerUrl>,
    /// Join token (K10… from the server's <data>/server/token).
    #[arg(short = 't', long, env = "KELP_TOKEN", value_name = "TOKEN")]
    token: Option<String>,
}

pub(super) fn run(args: AgentArgs) -> anyhow::Result<()> {
    // Required, but checked here rather than by clap so that the config
    // file can supply them.
    let Some(server) = args.server else {
        anyhow::bail!(
            "--server is required (or KELP_SERVER, or 'server' in the config file), e.g. --server https://10.0.0.1:6443"
        );
    };
    if args.token.as_deref().is_none_or(str::is_empty) {
        anyhow::bail!(
            "--token is required (or KELP_TOKEN, or 'token' in the config file); read it from <data-dir>/server/token on the server"
        );
    }
    args.node.kubelet_args()?;
    anyhow::bail!(
        "joining {} is not implemented in this version of kelp yet",
        server.0
    )
}
