//! The Kubernetes apiserver: HTTPS, authentication, discovery, OpenAPI and
//! the generic REST verbs over the [`store`](crate::store).
//!
//! Requests flow one way: [`server`] (TLS, authn, routing) → [`handlers`]
//! (verbs) → [`strategy`] and [`registry`] (per-type rules) → the store.
//! Reads and watches come from the [`watch_cache`], which follows the
//! store. Objects stay `serde_json::Value` throughout: every built-in type
//! shares one code path, and typed k8s-openapi structs are used only to
//! check bodies ([`registry::typed`]).

pub mod admission;
pub mod aggregator;
pub mod allocator;
pub mod authn;
pub mod authz;
mod bootstrap;
pub mod cel;
pub mod connection_limits;
pub mod conversion;
pub mod custom;
pub use crate::client::{calendar, cron_schedule};
pub mod discovery;
pub mod disk_guard;
pub mod encryption_admin;
pub mod extension_client;
pub mod go_strings;
pub mod handlers;
pub mod join;
pub use crate::client::health;
pub mod node_proxy;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod pod_proxy;
pub mod protobuf;
pub mod rbac_bootstrap;
pub mod registry;
pub mod render;
pub mod request;
pub mod request_timeout;
pub mod selectors;
pub mod server;
pub mod status;
pub mod strategy;
pub mod table;
pub mod watch_cache;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::pki::ClusterPki;
use crate::store::Store;
use handlers::{Api, ApiSettings};

/// The Kubernetes version kelp serves (the k8s-openapi types it compiles
/// against).
pub use crate::client::version::KUBERNETES_MINOR;

/// `/version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR.to_string(),
        "emulationMajor": "1",
        "emulationMinor": KUBERNETES_MINOR.to_string(),
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0+kelp-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": env!("KELP_GIT_COMMIT"),
        "gitTreeState": "clean",
        "buildDate": env!("KELP_BUILD_DATE"),
        "goVersion": "rustc",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
    })
}

/// How to run the apiserver.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// `host:port` advertised in discovery and in the `kubernetes` Endpoints.
    pub advertise: SocketAddr,
    /// Cluster settings the handlers use.
    pub settings: ApiSettings,
    /// Where the in-process components report whether they run.
    pub health: Arc<health::ComponentHealth>,
    /// `--authorization-mode`.
    pub authorization: authz::Mode,
    /// `--anonymous-auth`.
    pub anonymous_auth: bool,
    /// Token and cluster settings for joining nodes; None serves no join
    /// endpoint.
    pub join: Option<join::JoinSettings>,
    /// The encryption-at-rest keys the store seals with, for
    /// `/v1-kelp/encrypt/*` (None: no such endpoints).
    pub encryption: Option<Arc<crate::store::encryption::Keyring>>,
}

/// Errors that stop the apiserver from starting.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS material is unusable.
    #[error("tls: {0}")]
    Tls(#[from] crate::pki::PkiError),
    /// Creating the built-in objects failed.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// The user the apiserver calls kubelets as.
pub const KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

/// A running apiserver.
pub struct RunningApi {
    /// The address it listens on (useful with port 0).
    pub local_addr: SocketAddr,
    /// Resolves when the server stops.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the apiserver; returns once it is listening and its watch cache
/// has synced (i.e. ready to serve).
pub async fn start<S: Store + Clone>(
    config: ApiConfig,
    store: S,
    pki: Arc<ClusterPki>,
    cancel: CancellationToken,
) -> Result<RunningApi, ApiServerError> {
    let cache = Arc::new(watch_cache::WatchCache::new());
    tokio::spawn(cache.clone().run(store.clone(), cancel.child_token()));
    cache.wait_ready().await;
    let allocator =
        allocator::ServiceAllocator::new(config.settings.service_cidr, config.settings.node_ports);
    let services = registry::resources::find("", "v1", "services")
        .map(|i| i.key_prefix())
        .unwrap_or_default();
    let (existing, _) = cache.list(&services, |_| true);
    let existing: Vec<serde_json::Value> = existing.iter().map(|s| s.value()).collect();
    allocator.load(existing.iter());
    let tokens: Arc<dyn handlers::TokenIssuer> = Arc::new(bootstrap::PkiTokens(pki.clone()));
    // Parsed once: the node authorizer keeps the system:node rules, the
    // reconciler writes the rest and the parse is dropped.
    let policy = rbac_bootstrap::objects();
    let authz = authz::Authorizer::new(
        cache.clone(),
        config.authorization,
        rbac_bootstrap::node_rules(&policy),
    );
    authz.spawn(cancel.child_token());
    let api = Api {
        authz,
        pki: pki.clone(),
        store,
        cache,
        allocator,
        settings: config.settings.clone(),
        tokens: Some(tokens),
        health: config.health.clone(),
        disk: disk_guard::DiskGuard::new(
            config.settings.store_dir.clone(),
            config.settings.store_reserve,
        ),
        custom: Arc::new(custom::CustomResources::new()),
    };
    // CRDs restored from the store are served from the first request on.
    api.custom.rebuild(&custom::controller::stored_crds(&api));
    let api = Arc::new(api);
    tokio::spawn(disk_guard::record_events(
        api.store.clone(),
        api.disk.subscribe(),
    ));
    bootstrap::ensure_builtins(&api, config.advertise)
        .await
        .map_err(ApiServerError::Bootstrap)?;
    rbac_bootstrap::reconcile(&api, policy)
        .await
        .map_err(ApiServerError::Bootstrap)?;
    let listener =
        connection_limits::listen(config.bind).map_err(|source| ApiServerError::Bind {
            addr: config.bind,
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ApiServerError::Bind {
            addr: config.bind,
            source,
        })?;
    let tls = TlsAcceptor::from(pki.server_tls_config()?);
    let openapi = openapi::OpenApi::new(openapi_resources());
    // Not in system:masters: kubelets authorize it through RBAC
    // (system:kubelet-api-admin), as they would any other caller.
    let (kubelet_cert, kubelet_key) = pki.issue_client_cert(KUBELET_CLIENT, &[])?;
    let kubelets = node_proxy::KubeletDialer {
        tls: pki.client_tls_config(&kubelet_cert, &kubelet_key)?,
    };
    tokio::spawn(custom::controller::run(api.clone(), cancel.child_token()));
    aggregator::publish_authentication_config(&api, &pki)
        .await
        .map_err(ApiServerError::Bootstrap)?;
    let aggregator = Arc::new(aggregator::Aggregator::new(&pki)?);
    tokio::spawn(aggregator::controller::run(
        api.clone(),
        aggregator.clone(),
        cancel.child_token(),
    ));
    let server = Arc::new(server::Server {
        aggregator,
        api,
        pki,
        openapi,
        advertise: config.advertise.to_string(),
        kubelets,
        anonymous_auth: config.anonymous_auth,
        join: config.join,
        encryption: config.encryption,
    });
    tracing::info!(%local_addr, "apiserver listening");
    let task = tokio::spawn(server::accept_loop(server, listener, tls, cancel));
    Ok(RunningApi { local_addr, task })
}

fn openapi_resources() -> Vec<openapi::OpenApiResource> {
    registry::resources::RESOURCES
        .iter()
        .map(openapi::OpenApiResource::of)
        .collect()
}
