//! `kelp reset`: stop kelp and remove what it set up on this machine.

use anyhow::Context;
use clap::Args;

use super::node_args::{CommonArgs, NodeDirs};

/// Flags of `kelp reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    dirs: NodeDirs,
    /// Also delete the data directory (the cluster's store, certificates
    /// and images), the run directory and the pods' logs.
    #[arg(long)]
    remove_data: bool,
}

pub(super) fn run(args: ResetArgs) -> anyhow::Result<()> {
    // /proc/self belongs to the process's effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) == 0;
    if !root {
        anyhow::bail!("kelp reset needs root: it stops processes, unmounts and deletes links");
    }
    let config = crate::agent::reset::ResetConfig {
        data_dir: args.common.data_dir,
        run_dir: args.dirs.run_dir,
        pod_log_dir: args.dirs.pod_log_dir,
        netns_dir: args.dirs.netns_dir,
        remove_data: args.remove_data,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(crate::agent::reset::reset(&config));
    println!(
        "stopped {} processes; removed {} pods' cgroups, mounts and namespaces, {} links, {} routes{}{}{}",
        report.processes,
        report.pods,
        report.links,
        report.routes,
        if report.nftables_table {
            ", the nftables table"
        } else {
            ""
        },
        if report.forward_rules {
            ", the FORWARD accept rules"
        } else {
            ""
        },
        if config.remove_data {
            ", and the data"
        } else {
            ""
        },
    );
    if !report.problems.is_empty() {
        anyhow::bail!("some steps failed: {}", report.problems.join("; "));
    }
    Ok(())
}
