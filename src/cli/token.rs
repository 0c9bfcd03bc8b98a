//! `kelp token`: the server's join token and bootstrap tokens.
//!
//! Bootstrap tokens are kubeadm's: Secrets `kube-system/bootstrap-token-<id>`
//! of type `bootstrap.kubernetes.io/token`, managed through the API with the
//! admin kubeconfig. The server's own token lives in `<data>/server/token`
//! and is rotated there; the join endpoint reads it at every join.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;

use super::node_args::CommonArgs;
use crate::controllers::token_cleaner::{TOKEN_TYPE, expiration};

/// Flags of `kelp token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

/// Where the admin kubeconfig is.
#[derive(Debug, Args)]
pub(super) struct ApiAccess {
    /// Admin kubeconfig of the cluster (the server's --write-kubeconfig).
    #[arg(
        long,
        env = "KUBECONFIG",
        value_name = "FILE",
        default_value = "/etc/kelp/kelp.yaml"
    )]
    kubeconfig: PathBuf,
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
    /// Create a bootstrap token agents can join with, and print it.
    Create {
        #[command(flatten)]
        api: ApiAccess,
        /// Lifetime (e.g. 30m, 24h, 7d); 0 never expires.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: Duration,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List bootstrap tokens.
    List {
        #[command(flatten)]
        api: ApiAccess,
    },
    /// Delete bootstrap tokens (by id or whole token).
    Delete {
        #[command(flatten)]
        api: ApiAccess,
        /// Token ids (`abcdef`) or tokens (`abcdef.0123456789abcdef`).
        #[arg(required = true)]
        tokens: Vec<String>,
    },
    /// Replace the server's join token; joined agents keep working (they
    /// hold certificates), new ones need the new token.
    Rotate {
        #[command(flatten)]
        common: CommonArgs,
        /// The new secret (default: random).
        #[arg(long, value_name = "TOKEN")]
        new_token: Option<String>,
    },
}

pub(super) fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Generate => {
            println!("{}", generate_secret()?);
            Ok(())
        }
        TokenCommand::Show { common } => {
            println!("{}", read_server_token(&common.data_dir)?);
            Ok(())
        }
        TokenCommand::Rotate { common, new_token } => rotate(&common.data_dir, new_token),
        TokenCommand::Create {
            api,
            ttl,
            description,
        } => with_api(&api, |client, ca_pem| {
            create(client, ca_pem, ttl, description)
        }),
        TokenCommand::List { api } => with_api(&api, |client, _| list(client)),
        TokenCommand::Delete { api, tokens } => with_api(&api, |client, _| delete(client, tokens)),
    }
}

fn read_server_token(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("server/token");
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (has `kelp server --data-dir {}` run yet?)",
            path.display(),
            data_dir.display()
        )
    })?;
    Ok(token.trim().to_string())
}

fn rotate(data_dir: &std::path::Path, new_token: Option<String>) -> anyhow::Result<()> {
    let old = read_server_token(data_dir)?;
    let (hash, _) = crate::pki::parse_join_token(&old).context("the current token")?;
    let hash = hash.context("the server's token carries no CA hash")?;
    let secret = match new_token {
        Some(t) => crate::pki::parse_join_token(&t).context("--new-token")?.1,
        None => crate::pki::random_secret().context("cannot generate a token")?,
    };
    let token = format!("K10{hash}::server:{secret}");
    let path = data_dir.join("server/token");
    crate::pki::write_private(&path, format!("{token}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{token}");
    Ok(())
}

/// Runs `work` with an admin client and the cluster CA from `--kubeconfig`.
pub(super) fn with_api<F, Fut>(api: &ApiAccess, work: F) -> anyhow::Result<()>
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let kubeconfig = kube::config::Kubeconfig::read_from(&api.kubeconfig)
        .with_context(|| format!("cannot read --kubeconfig {}", api.kubeconfig.display()))?;
    let ca_pem = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref()?.certificate_authority_data.clone())
        .and_then(|b64| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .and_then(|pem| String::from_utf8(pem).ok())
        .with_context(|| {
            format!(
                "--kubeconfig {} has no certificate-authority-data",
                api.kubeconfig.display()
            )
        })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .with_context(|| format!("--kubeconfig {}", api.kubeconfig.display()))?;
        let client = kube::Client::try_from(config).context("cannot build an API client")?;
        work(client, ca_pem).await
    })
}

fn secrets(client: kube::Client) -> kube::Api<Secret> {
    kube::Api::namespaced(client, "kube-system")
}

async fn create(
    client: kube::Client,
    ca_pem: String,
    ttl: Duration,
    description: String,
) -> anyhow::Result<()> {
    let token = generate_secret()?;
    let (id, secret) = token.split_once('.').context("token shape")?;
    let mut data = BTreeMap::from([
        ("token-id".to_string(), id.to_string()),
        ("token-secret".to_string(), secret.to_string()),
        (
            "usage-bootstrap-authentication".to_string(),
            "true".to_string(),
        ),
        ("usage-bootstrap-signing".to_string(), "true".to_string()),
        (
            "auth-extra-groups".to_string(),
            "system:bootstrappers:kelp:default-node-token".to_string(),
        ),
    ]);
    if !ttl.is_zero() {
        let expires = crate::client::timestamps::rfc3339(SystemTime::now() + ttl);
        data.insert("expiration".into(), expires);
    }
    if !description.is_empty() {
        data.insert("description".into(), description);
    }
    let object = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some(TOKEN_TYPE.into()),
        string_data: Some(data),
        ..Default::default()
    };
    secrets(client)
        .create(&Default::default(), &object)
        .await
        .context("cannot create the bootstrap token")?;
    println!("K10{}::{token}", crate::pki::ca_hash(&ca_pem));
    Ok(())
}

async fn list(client: kube::Client) -> anyhow::Result<()> {
    let all = secrets(client)
        .list(&Default::default())
        .await
        .context("cannot list bootstrap tokens")?;
    println!(
        "{:<24} {:<10} {:<21} DESCRIPTION",
        "TOKEN", "TTL", "EXPIRES"
    );
    let now = SystemTime::now();
    for secret in all
        .items
        .iter()
        .filter(|s| s.type_.as_deref() == Some(TOKEN_TYPE))
    {
        let field = |k: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                .unwrap_or_default()
        };
        let expires = expiration(secret);
        let ttl = match expires {
            None => "<forever>".to_string(),
            Some(t) => match t.duration_since(now) {
                Ok(d) => short_duration(d),
                Err(_) => "<expired>".to_string(),
            },
        };
        println!(
            "{:<24} {:<10} {:<21} {}",
            format!("{}.{}", field("token-id"), field("token-secret")),
            ttl,
            if expires.is_some() {
                field("expiration")
            } else {
                "<never>".into()
            },
            field("description")
        );
    }
    Ok(())
}

async fn delete(client: kube::Client, tokens: Vec<String>) -> anyhow::Result<()> {
    let api = secrets(client);
    for token in tokens {
        let id = token.split('.').next().unwrap_or_default();
        if id.len() != 6
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            anyhow::bail!(
                "{token:?} is not a bootstrap token or token id (abcdef or abcdef.0123456789abcdef)"
            );
        }
        api.delete(&format!("bootstrap-token-{id}"), &Default::default())
            .await
            .with_context(|| format!("cannot delete bootstrap token {id}"))?;
        println!("bootstrap token {id:?} deleted");
    }
    Ok(())
}

/// A TTL as kubeadm prints it: `23h`, `45m`, `6d`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `30s`, `15m`, `24h`, `7d`, or `0`.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 24h"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d, e.g. 24h")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_ttl("0"), Ok(Duration::ZERO));
        assert!(parse_ttl("24").unwrap_err().contains("unit"));
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn generated_tokens_are_bootstrap_tokens() {
        let t = generate_secret().unwrap();
        assert!(crate::pki::split_bootstrap_token(&t).is_some(), "{t}");
    }
}
