//! `kelp secrets-encrypt status|rotate-keys`: k3s's command of the same
//! name, against the running server's `/v1-kelp/encrypt/*` endpoints with
//! the admin kubeconfig.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::token::{ApiAccess, with_api};
use crate::store::encryption::KeyringStatus;

/// Flags of `kelp secrets-encrypt`.
#[derive(Debug, Args)]
pub struct SecretsEncryptArgs {
    #[command(subcommand)]
    command: SecretsEncryptCommand,
}

#[derive(Debug, Subcommand)]
enum SecretsEncryptCommand {
    /// Print whether Secrets are encrypted at rest, and with which keys.
    Status {
        #[command(flatten)]
        api: ApiAccess,
    },
    /// Add a new key, re-encrypt every Secret with it, then remove the old keys.
    RotateKeys {
        #[command(flatten)]
        api: ApiAccess,
    },
}

pub(super) fn run(args: SecretsEncryptArgs) -> anyhow::Result<()> {
    let (method, endpoint, api) = match args.command {
        SecretsEncryptCommand::Status { api } => (http::Method::GET, "status", api),
        SecretsEncryptCommand::RotateKeys { api } => (http::Method::POST, "rotate-keys", api),
    };
    with_api(&api, |client, _ca| async move {
        let request = http::Request::builder()
            .method(method)
            .uri(format!(
                "{}{endpoint}",
                crate::api::encryption_admin::PATH_PREFIX
            ))
            .body(Vec::new())
            .context("cannot build the request")?;
        let answer: serde_json::Value = client
            .request(request)
            .await
            .with_context(|| format!("the server refused secrets-encrypt {endpoint}"))?;
        let status: KeyringStatus = match answer.get("status") {
            Some(s) => serde_json::from_value(s.clone()),
            None => serde_json::from_value(answer.clone()),
        }
        .context("the server's answer is not a secrets-encrypt status")?;
        if let Some(n) = answer.get("rewritten") {
            println!("Rotated: {n} objects re-encrypted with the new key; old keys removed.\n");
        }
        print!("{}", render(&status));
        Ok(())
    })
}

/// k3s's status layout.
fn render(status: &KeyringStatus) -> String {
    let mut out = format!(
        "Encryption Status: {}\n\nActive  Key Type     Name\n------  --------     ----\n",
        if status.enabled {
            "Enabled"
        } else {
            "Disabled"
        }
    );
    for (i, (name, kind)) in status.keys.iter().enumerate() {
        let active = if i == 0 { " *" } else { "" };
        out.push_str(&format!("{active:<8}{kind:<13}{name}\n"));
    }
    out
}
