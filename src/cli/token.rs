//! `kelp token`: print or generate join tokens.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::node_args::CommonArgs;

/// Flags of `kelp token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new random token secret (use it as the server's --token).
    Generate,
    /// Print the server's join token (K10…).
    Show {
        #[command(flatten)]
        common: CommonArgs,
    },
}

pub(super) fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Generate => {
            println!("{}", generate_secret()?);
            Ok(())
        }
        TokenCommand::Show { common } => {
            let data_dir = common.data_dir;
            let path = data_dir.join("server/token");
            let token = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {} (has `kelp server --data-dir {}` run yet?)",
                    path.display(),
                    data_dir.display()
                )
            })?;
            println!("{}", token.trim());
            Ok(())
        }
    }
}

/// A bootstrap-token-shaped secret: `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn generate_secret() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut raw = [0u8; 22];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    // 252 is the largest multiple of 36 below 256: reject above it for uniformity.
    let mut chars = Vec::with_capacity(22);
    let mut pool = raw.to_vec();
    while chars.len() < 22 {
        if pool.is_empty() {
            let mut more = [0u8; 32];
            getrandom::fill(&mut more)
                .map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
            pool.extend_from_slice(&more);
        }
        let b = pool.pop().unwrap_or(0);
        if b < 252 {
            chars.push(ALPHABET[(b % 36) as usize]);
        }
    }
    let s = String::from_utf8(chars).context("token alphabet is ascii")?;
    Ok(format!("{}.{}", &s[..6], &s[6..]))
}
