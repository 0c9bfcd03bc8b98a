//! The node side of kelp: what `kelp agent` runs, and what `kelp server`
//! runs for its own node unless `--disable-agent`.
//!
//! One code path serves both. A server's node gets its credentials from
//! the CA in-process; an agent gets them by [`join`]ing with a token.
//! Either way [`start_node`] then starts the same components with the
//! node's own identity (`system:node:<name>`), each reading the cluster
//! through the node's shared informers: the kubelet on containerd, the
//! service proxy, node-local cluster DNS and the overlay. Nothing here
//! reaches into the apiserver; the node meets it only at the API, which is
//! what lets it run on another machine.

pub mod join;
pub mod reset;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio_util::sync::CancellationToken;

use crate::client::informer::SharedInformers;
use crate::client::join_protocol::{JoinRequest, JoinResponse};
use crate::kubelet::{Kubelet, KubeletConfig, KubeletError};
use crate::network::overlay::Backend;

/// Why the node side could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The kubelet did not start.
    #[error(transparent)]
    Kubelet(#[from] KubeletError),
    /// Joining failed for good.
    #[error(transparent)]
    Join(#[from] join::JoinError),
    /// The node's API client could not be built from its credentials.
    #[error("node credentials: {0}")]
    Credentials(String),
    /// A file of the node's state could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// How the node runs: the kubelet's settings plus the cluster's network.
pub struct NodeConfig {
    /// The kubelet.
    pub kubelet: KubeletConfig,
    /// `--cluster-cidr` (the proxy masquerades what leaves it).
    pub cluster_cidr: Ipv4Net,
    /// `--cluster-dns`, or None when cluster DNS is off.
    pub cluster_dns: Option<Ipv4Addr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// Whether to run the service proxy.
    pub kube_proxy: bool,
    /// The overlay between nodes.
    pub backend: Backend,
}

/// A started node.
pub struct RunningNode {
    kubelet: Kubelet,
    /// The node's name.
    pub name: String,
}

impl RunningNode {
    /// Waits for the node's components after the cancel token fired.
    pub async fn shutdown(self) {
        self.kubelet.shutdown().await;
    }
}

/// Starts the kubelet (registering the Node), then the service proxy,
/// the overlay and cluster DNS on the node's shared informers. Returns
/// once the Node is registered.
pub async fn start_node(
    config: NodeConfig,
    client: kube::Client,
    cancel: &CancellationToken,
) -> Result<RunningNode, AgentError> {
    let name = config.kubelet.node.name.clone();
    let node_ip = config.kubelet.node.ip;
    let kubelet =
        crate::kubelet::start(config.kubelet, client.clone(), cancel.child_token()).await?;
    // One informer per resource for the node's own components.
    let informers = SharedInformers::new(client.clone(), cancel.child_token());
    if config.kube_proxy {
        let ctx = crate::network::service_proxy::ProxyContext {
            node_name: name.clone(),
            cluster_cidr: config.cluster_cidr,
            served_locally: config.cluster_dns,
        };
        // With --flannel-backend=none the CNI plugin decides.
        let masquerade_pods = config.backend != Backend::None;
        let (informers, cancel) = (informers.clone(), cancel.child_token());
        tokio::spawn(async move {
            supervise("service proxy", cancel.clone(), || {
                crate::network::service_proxy::run(
                    &informers,
                    ctx.clone(),
                    masquerade_pods,
                    cancel.clone(),
                )
            })
            .await
        });
    }
    if config.backend != Backend::None {
        tokio::spawn(crate::network::forward_policy::run(
            config.cluster_cidr,
            cancel.child_token(),
        ));
    }
    if let Some(network) = kubelet.network() {
        if config.backend != Backend::None {
            let (network, client, informers) = (network.clone(), client.clone(), informers.clone());
            let (backend, name, cancel) = (config.backend, name.clone(), cancel.child_token());
            tokio::spawn(async move {
                supervise("overlay", cancel.clone(), || {
                    crate::network::overlay::run(
                        backend, &network, &client, &informers, &name, node_ip, &cancel,
                    )
                })
                .await
            });
        }
        if let Some(dns) = config.cluster_dns {
            tokio::spawn(run_dns(
                network,
                informers,
                dns,
                config.cluster_domain.clone(),
                cancel.child_token(),
            ));
        }
    }
    Ok(RunningNode { kubelet, name })
}

/// An API client with a certificate identity, for `url`, trusting `ca_pem`.
/// It introduces itself as `program` (`kubelet/v1.37.0 (linux/amd64)
/// kelp/…`), which is also the field manager of its writes, as upstream's
/// components are.
pub async fn client_for(
    program: &str,
    url: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<kube::Client, AgentError> {
    let bad = |e: &dyn std::fmt::Display| AgentError::Credentials(e.to_string());
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&crate::pki::kubeconfig(
        url, ca_pem, cert_pem, key_pem,
    ))
    .map_err(|e| bad(&e))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| bad(&e))?;
    let agent = format!(
        "{program}/v1.{}.0 ({}/{}) kelp/{}",
        crate::client::version::KUBERNETES_MINOR,
        std::env::consts::OS,
        std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64"),
        env!("CARGO_PKG_VERSION")
    );
    let agent = http::HeaderValue::from_str(&agent).map_err(|e| bad(&e))?;
    config.headers.push((http::header::USER_AGENT, agent));
    kube::Client::try_from(config).map_err(|e| bad(&e))
}

/// What a joined node holds.
pub struct JoinedNode {
    /// The cluster CA (PEM), as pinned.
    pub ca_pem: String,
    /// Credentials and cluster settings from the server.
    pub credentials: JoinResponse,
}

/// Joins `server`: pins its CA against the token's hash, then trades the
/// secret and node password for credentials. While the server cannot be
/// reached it retries with backoff (1 s doubling to 15 s), logging each
/// attempt; a refusal ends it at once. The credentials are written under
/// `agent_dir` (mode 0600), as k3s keeps them under its agent dir. None
/// if `cancel` fired first.
pub async fn join(
    server: &join::ServerAddress,
    token: &str,
    request: &JoinRequest,
    agent_dir: &Path,
    cancel: &CancellationToken,
) -> Result<Option<JoinedNode>, AgentError> {
    let (hash, secret) = crate::pki::parse_join_token(token)
        .map_err(|e| join::JoinError::Failed(format!("--token: {e}")))?;
    let joined = retrying(cancel, "cannot join yet; retrying", || async {
        let ca_pem = join::fetch_pinned_ca(server, hash.as_deref()).await?;
        let credentials =
            join::request_credentials(server, &ca_pem, join::Auth::Token(&secret), request).await?;
        Ok(JoinedNode {
            ca_pem,
            credentials,
        })
    })
    .await?;
    if let Some(joined) = &joined {
        store(server, joined, agent_dir)?;
    }
    Ok(joined)
}

/// Renews a joined node's certificates at the join endpoint, with its
/// current client certificate instead of a token; retries like [`join`].
pub async fn renew(
    server: &join::ServerAddress,
    current: &JoinedNode,
    request: &JoinRequest,
    agent_dir: &Path,
    cancel: &CancellationToken,
) -> Result<Option<JoinedNode>, AgentError> {
    let c = &current.credentials;
    let auth = join::Auth::Certificate {
        cert_pem: &c.client_cert,
        key_pem: &c.client_key,
    };
    let what = "cannot renew the node's certificates yet; retrying";
    let renewed = retrying(cancel, what, || async {
        let credentials = join::request_credentials(server, &current.ca_pem, auth, request).await?;
        Ok(JoinedNode {
            ca_pem: current.ca_pem.clone(),
            credentials,
        })
    })
    .await?;
    if let Some(renewed) = &renewed {
        store(server, renewed, agent_dir)?;
    }
    Ok(renewed)
}

/// Runs `attempt` until it succeeds, fails for good, or `cancel` fires
/// (None), waiting 1 s doubling to 15 s between unreachable tries.
async fn retrying<F, Fut>(
    cancel: &CancellationToken,
    what: &'static str,
    mut attempt: F,
) -> Result<Option<JoinedNode>, AgentError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<JoinedNode, join::JoinError>>,
{
    let mut delay = Duration::from_secs(1);
    let mut tries = 1u32;
    loop {
        match attempt().await {
            Ok(joined) => return Ok(Some(joined)),
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, attempt = tries, retry_in_s = delay.as_secs(), "{what}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.cancelled() => return Ok(None),
                }
                delay = (delay * 2).min(Duration::from_secs(15));
                tries += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Where a joined node keeps the cluster's settings, so that it can start
/// again while its server is down.
const CLUSTER_FILE: &str = "cluster.json";

/// Writes a node's credentials and settings under `agent_dir` (0600).
fn store(
    server: &join::ServerAddress,
    joined: &JoinedNode,
    agent_dir: &Path,
) -> Result<(), AgentError> {
    let c = &joined.credentials;
    let kubeconfig =
        crate::pki::kubeconfig(&server.url, &joined.ca_pem, &c.client_cert, &c.client_key);
    let settings = serde_json::to_string_pretty(&c.cluster)
        .map_err(|e| AgentError::Credentials(e.to_string()))?;
    for (file, content) in [
        ("server-ca.crt", joined.ca_pem.as_str()),
        ("client-kubelet.crt", c.client_cert.as_str()),
        ("client-kubelet.key", c.client_key.as_str()),
        ("serving-kubelet.crt", c.serving_cert.as_str()),
        ("serving-kubelet.key", c.serving_key.as_str()),
        ("kubelet.kubeconfig", kubeconfig.as_str()),
        (CLUSTER_FILE, settings.as_str()),
    ] {
        let path = agent_dir.join(file);
        crate::pki::write_private(&path, content.as_bytes(), 0o600)
            .map_err(|e| AgentError::Credentials(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// The credentials a node stored at its last join, if they are complete,
/// belong to `node_name`, have not expired, and come from the CA that
/// `ca_hash` names (when given). An agent restarts on them without its
/// server (pods keep running through an outage) and without its token
/// (so `kelp token rotate` does not break joined agents).
pub fn stored_credentials(
    agent_dir: &Path,
    node_name: &str,
    ca_hash: Option<&str>,
) -> Option<JoinedNode> {
    use rustls_pki_types::pem::PemObject;
    let read = |file: &str| std::fs::read_to_string(agent_dir.join(file)).ok();
    let ca_pem = read("server-ca.crt")?;
    if ca_hash.is_some_and(|h| h != crate::pki::ca_hash(&ca_pem)) {
        return None;
    }
    let credentials = JoinResponse {
        client_cert: read("client-kubelet.crt")?,
        client_key: read("client-kubelet.key")?,
        serving_cert: read("serving-kubelet.crt")?,
        serving_key: read("serving-kubelet.key")?,
        cluster: serde_json::from_str(&read(CLUSTER_FILE)?).ok()?,
    };
    let der = rustls_pki_types::CertificateDer::from_pem_slice(credentials.client_cert.as_bytes())
        .ok()?;
    let (user, _) = crate::pki::client_identity(&der).ok()?;
    let unexpired = [&credentials.client_cert, &credentials.serving_cert]
        .iter()
        .all(|pem| crate::pki::seconds_until_expiry(pem).is_some_and(|s| s > 0));
    (user == format!("system:node:{node_name}") && unexpired).then_some(JoinedNode {
        ca_pem,
        credentials,
    })
}

/// How long until the node's certificates are due for renewal (zero if due).
pub fn renewal_due_in(joined: &JoinedNode) -> Duration {
    let c = &joined.credentials;
    let left = [&c.client_cert, &c.serving_cert]
        .iter()
        .map(|pem| crate::pki::seconds_until_expiry(pem).unwrap_or(0))
        .min()
        .unwrap_or(0);
    Duration::from_secs(
        u64::try_from(left.saturating_sub(crate::pki::RENEW_BEFORE_SECS as i64)).unwrap_or(0),
    )
}

/// The node's password, kept at `path`: created (random, mode 0600) on
/// the first join, and sent with every join after.
pub fn node_password(path: &Path) -> Result<String, AgentError> {
    kept_value(path, |s| s)
}

/// The value kept in `path` (mode 0600), created once from a random
/// secret passed through `shape`: a node's password, its `--with-node-id`
/// suffix.
pub fn kept_value(path: &Path, shape: impl FnOnce(String) -> String) -> Result<String, AgentError> {
    match std::fs::read_to_string(path) {
        Ok(v) if !v.trim().is_empty() => return Ok(v.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(AgentError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let value =
        shape(crate::pki::random_secret().map_err(|e| AgentError::Credentials(e.to_string()))?);
    crate::pki::write_private(path, format!("{value}\n").as_bytes(), 0o600)
        .map_err(|e| AgentError::Credentials(format!("{}: {e}", path.display())))?;
    Ok(value)
}

/// Serves node-local cluster DNS on `--cluster-dns` once the pod network
/// is up, reading Services and EndpointSlices as the node.
async fn run_dns(
    network: Arc<crate::network::PodNetwork>,
    informers: SharedInformers,
    dns_ip: Ipv4Addr,
    domain: String,
    cancel: CancellationToken,
) {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    if !network.wait_ready(&cancel).await {
        return;
    }
    if let Err(e) = network.add_local_address(dns_ip).await {
        tracing::error!(error = %e, "cannot hold the cluster DNS address; DNS is off");
        return;
    }
    let services = informers.get::<Service>().store();
    let slices = informers.get::<EndpointSlice>().store();
    // Answer only from a full view: NXDOMAIN for a Service not yet listed
    // would be cached by clients.
    for synced in [
        crate::client::informer::wait_synced(&services)
            .await
            .is_ok(),
        crate::client::informer::wait_synced(&slices).await.is_ok(),
    ] {
        if !synced {
            return;
        }
    }
    let zone = Arc::new(crate::network::dns::ClusterZone::new(
        &domain, services, slices,
    ));
    let upstream = Arc::new(crate::network::dns::host_resolvers());
    let addr = SocketAddr::new(IpAddr::V4(dns_ip), 53);
    if let Err(e) = crate::network::dns::serve(addr, zone, upstream, cancel).await {
        tracing::error!(error = %e, "cluster DNS stopped");
    }
}

/// Runs `component` until it returns Ok or `cancel` fires, restarting it
/// after each error with growing delays.
async fn supervise<F, Fut, E>(what: &'static str, cancel: CancellationToken, mut component: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut failures = 0;
    while !cancel.is_cancelled() {
        match component().await {
            Ok(()) => return,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, component = what, "stopped; restarting");
                tokio::select! {
                    _ = tokio::time::sleep(crate::client::informer::retry_delay(failures)) => {}
                    _ = cancel.cancelled() => return,
                }
            }
        }
    }
}
