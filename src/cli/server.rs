//! `kelp server`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::flag_values::{Cidr, Component, FileMode, FlannelBackend, PortRange};
use super::node_args::{CommonArgs, NodeArgs};
use crate::api::handlers::ApiSettings;
use crate::api::{self, ApiConfig};
use crate::client::join_protocol::ClusterSettings;
use crate::controllers::{self, ControllerManagerConfig};
use crate::pki::{self, ClusterPki, PkiConfig};
use crate::store::Store;
use crate::store::encryption::{EncryptingStore, EncryptionConfiguration, Key, Keyring};
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
    /// A second secret that lets agents join, but never servers.
    #[arg(long, env = "KELP_AGENT_TOKEN", value_name = "TOKEN")]
    agent_token: Option<String>,
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
    /// Do not run the service proxy (Services then need another proxy,
    /// as on k3s with --disable-kube-proxy).
    #[arg(long, env = "KELP_DISABLE_KUBE_PROXY")]
    disable_kube_proxy: bool,
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
    /// Seconds without a Lease renewal before a node is Unknown (kube-controller-manager's --node-monitor-grace-period).
    #[arg(
        long,
        env = "KELP_NODE_MONITOR_GRACE_PERIOD",
        value_name = "SECONDS",
        default_value_t = 40,
        hide = true
    )]
    node_monitor_grace_period: u64,
    /// Default seconds a pod tolerates an unreachable or not-ready node before eviction
    /// (kube-apiserver's --default-unreachable-toleration-seconds).
    #[arg(
        long,
        env = "KELP_DEFAULT_UNREACHABLE_TOLERATION_SECONDS",
        value_name = "SECONDS",
        default_value_t = 300,
        hide = true
    )]
    default_unreachable_toleration_seconds: u64,
    /// File mode of the admin kubeconfig (octal).
    #[arg(
        long,
        env = "KELP_WRITE_KUBECONFIG_MODE",
        value_name = "MODE",
        default_value = "0600"
    )]
    write_kubeconfig_mode: FileMode,
    /// Authorizers to run (kube-apiserver's --authorization-mode): `Node,RBAC`, or
    /// `AlwaysAllow` to measure what authorization costs (never in production).
    #[arg(
        long,
        env = "KELP_AUTHORIZATION_MODE",
        value_name = "MODES",
        default_value = "Node,RBAC",
        value_parser = parse_authorization_mode,
        hide = true
    )]
    authorization_mode: crate::api::authz::Mode,
    /// Serve requests without credentials as system:anonymous (limited by RBAC to
    /// health and version endpoints); false answers them 401 (kube-apiserver's --anonymous-auth).
    #[arg(long, env = "KELP_ANONYMOUS_AUTH", num_args = 0..=1, default_missing_value = "true", default_value_t = true, action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// Encrypt Secrets at rest (AES-GCM, keys in <data>/server/cred/encryption-config.json).
    /// New clusters encrypt by default; this turns it on for an existing one.
    #[arg(long, env = "KELP_SECRETS_ENCRYPTION")]
    secrets_encryption: bool,
    /// Free bytes kept in reserve on the store's disk: below it writes get a 507. Zero turns
    /// the guard off (fault tests use it to meet a real ENOSPC).
    #[arg(long, env = "KELP_STORE_RESERVE", value_name = "BYTES", default_value_t = crate::api::disk_guard::MIN_FREE, hide = true)]
    store_reserve: u64,
}

fn parse_authorization_mode(s: &str) -> Result<crate::api::authz::Mode, String> {
    let modes: Vec<&str> = s.split(',').map(str::trim).collect();
    match modes.as_slice() {
        ["Node", "RBAC"] | ["RBAC", "Node"] => Ok(crate::api::authz::Mode::NodeRbac),
        ["AlwaysAllow"] => Ok(crate::api::authz::Mode::AlwaysAllow),
        _ => Err(format!(
            "unsupported authorization mode {s:?}: use Node,RBAC (the default) or AlwaysAllow"
        )),
    }
}

impl ServerArgs {
    /// Checks relations between flags that no single parser can see.
    fn validate(&self) -> anyhow::Result<()> {
        self.node.kubelet_args()?;
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

/// The encryption-at-rest keys: the existing configuration if there is
/// one (encryption is never silently turned off), else a new key when
/// `enable`, else none.
fn open_keyring(data: &Path, enable: bool) -> anyhow::Result<Keyring> {
    let path = data.join("server/cred/encryption-config.json");
    if !path.exists() {
        if !enable {
            return Ok(Keyring::disabled());
        }
        let dir = path.parent().unwrap_or(data);
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key = Key::generate(&crate::client::timestamps::now_rfc3339_micros())?;
        EncryptionConfiguration::for_secrets(key).write(&path)?;
        tracing::info!(path = %path.display(), "secrets encryption enabled with a new key");
    }
    Keyring::load(&path).with_context(|| {
        format!(
            "cannot load the secrets encryption keys; fix or restore {}",
            path.display()
        )
    })
}

pub(super) fn run(args: ServerArgs) -> anyhow::Result<()> {
    args.validate()?;
    super::init_logging(args.common.debug);
    let nofile = super::host::raise_fd_limit();
    tracing::debug!(nofile, "open-file limit");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let data = &args.common.data_dir;
    let db_dir = data.join("server/db");
    std::fs::create_dir_all(&db_dir)
        .with_context(|| format!("cannot create data dir {}", db_dir.display()))?;
    let sled = SledStore::open(SledConfig::new(&db_dir))
        .with_context(|| format!("cannot open store {}", db_dir.display()))?;
    tracing::info!(path = %db_dir.display(), revision = sled.current_revision(), "store ready");
    let keyring = Arc::new(open_keyring(
        data,
        args.secrets_encryption || sled.current_revision() == 0,
    )?);
    let store = EncryptingStore::new(sled, keyring.clone());
    super::data_dir::restrict(data)
        .with_context(|| format!("cannot restrict the permissions of {}", data.display()))?;

    let advertise_ip = args
        .node
        .node_ip
        .unwrap_or_else(crate::cli::host::default_ip);
    let first_service_ip =
        nth_ip(&args.service_cidr, 1).context("--service-cidr has no first address")?;
    let pki = Arc::new(load_pki(&args, data, advertise_ip, first_service_ip)?);
    write_token(&pki, data, args.token.as_deref())?;
    let agent_secret = match &args.agent_token {
        Some(t) => Some(
            pki::parse_join_token(t)
                .context("--agent-token is not a valid token")?
                .1,
        ),
        None => None,
    };
    let cluster = ClusterSettings {
        cluster_cidr: args.cluster_cidr.to_string(),
        service_cidr: args.service_cidr.to_string(),
        cluster_dns: args.cluster_dns,
        builtin_dns: !args.disable.contains(&Component::Dns),
        cluster_domain: args.cluster_domain.clone(),
        kubernetes_service_ip: first_service_ip,
        flannel_backend: crate::network::overlay::Backend::from(args.flannel_backend)
            .as_str()
            .to_string(),
        kube_proxy: !args.disable_kube_proxy,
    };
    let url = format!("https://127.0.0.1:{}", args.https_listen_port);
    let (cert, key) = pki.admin_cert();
    let kubeconfig = pki::kubeconfig(&url, pki.ca_pem(), cert, key);
    pki::write_private(
        &args.write_kubeconfig,
        kubeconfig.as_bytes(),
        args.write_kubeconfig_mode.0,
    )
    .with_context(|| {
        format!(
            "cannot write --write-kubeconfig {}",
            args.write_kubeconfig.display()
        )
    })?;

    let health = Arc::new(crate::api::health::ComponentHealth::default());
    let settings = ApiSettings {
        cluster_dns: (!args.disable.contains(&Component::Dns)).then_some(args.cluster_dns),
        service_cidr: args.service_cidr.0,
        node_ports: (
            args.service_node_port_range.low,
            args.service_node_port_range.high,
        ),
        store_dir: Some(db_dir.clone()),
        store_reserve: args.store_reserve,
        default_toleration_seconds: args.default_unreachable_toleration_seconds as i64,
    };
    let config = ApiConfig {
        bind: SocketAddr::new(args.bind_address, args.https_listen_port),
        advertise: SocketAddr::new(advertise_ip, args.https_listen_port),
        settings,
        health: health.clone(),
        authorization: args.authorization_mode,
        anonymous_auth: args.anonymous_auth,
        join: Some(crate::api::join::JoinSettings {
            token_file: data.join("server/token"),
            agent_secret,
            cluster: cluster.clone(),
        }),
        encryption: Some(keyring),
    };
    let cancel = CancellationToken::new();
    let running = api::start(config, store, pki.clone(), cancel.clone())
        .await
        .context("cannot start the apiserver")?;
    tracing::info!(addr = %running.local_addr, kubeconfig = %args.write_kubeconfig.display(), "kelp server is ready");
    let local_url = format!("https://127.0.0.1:{}", running.local_addr.port());
    let controller_client =
        component_client(&pki, &local_url, "system:kube-controller-manager").await?;
    let controllers = ControllerManagerConfig {
        cluster_cidr: args.cluster_cidr.0,
        service_cidr: args.service_cidr.0,
        root_ca_pem: pki.ca_pem().to_string(),
        node_monitor_grace_period: std::time::Duration::from_secs(
            args.node_monitor_grace_period.max(1),
        ),
        default_toleration_seconds: args.default_unreachable_toleration_seconds as i64,
        servicelb: !args.disable.contains(&Component::Servicelb),
        api_server_url: format!(
            "https://{}",
            SocketAddr::new(advertise_ip, args.https_listen_port)
        ),
    };
    // One informer per resource for every in-process client (client-go's
    // shared informer factory): one watch and one decoded copy of each pod.
    let informers =
        crate::client::informer::SharedInformers::new(controller_client, cancel.child_token());
    tokio::spawn(controllers::run(
        informers.clone(),
        controllers,
        health.clone(),
        cancel.child_token(),
    ));
    let scheduler_client = component_client(&pki, &local_url, "system:kube-scheduler").await?;
    tokio::spawn(run_scheduler(
        scheduler_client,
        informers,
        health.clone(),
        cancel.child_token(),
    ));
    let node = if args.disable_agent {
        None
    } else {
        let node =
            start_local_node(&args, &pki, &local_url, advertise_ip, &cluster, &cancel).await?;
        mark_control_plane(&pki, &local_url, &node.name).await?;
        Some(node)
    };
    super::service_notify::ready("serving the API");
    shutdown_signal().await;
    tracing::info!("shutting down");
    cancel.cancel();
    if let Some(node) = node {
        node.shutdown().await;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), running.task).await;
    Ok(())
}

/// Labels this server's Node as a control-plane node. NodeRestriction
/// forbids a kubelet to give itself `node-role.kubernetes.io/*` labels (a
/// node could attract privileged workloads that way), so the server sets
/// it with its own admin identity, as kubeadm's mark-control-plane phase
/// and k3s's server do.
async fn mark_control_plane(pki: &ClusterPki, url: &str, node: &str) -> anyhow::Result<()> {
    let client = component_client_in(pki, url, "kelp-supervisor", &["system:masters"]).await?;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let patch = serde_json::json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": "true"}}});
    nodes
        .patch(
            node,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .with_context(|| format!("cannot label node {node} as control-plane"))?;
    Ok(())
}

/// Starts the server's own node: the same components as an agent's, with
/// credentials issued in-process rather than through a join (kubelet
/// client CN=system:node:<name>, O=system:nodes, and a serving cert).
async fn start_local_node(
    args: &ServerArgs,
    pki: &ClusterPki,
    url: &str,
    node_ip: IpAddr,
    cluster: &ClusterSettings,
    cancel: &CancellationToken,
) -> anyhow::Result<crate::agent::RunningNode> {
    let name = args.node.name();
    let (cert, key) = pki
        .issue_client_cert(&format!("system:node:{name}"), &["system:nodes"])
        .context("cannot issue the kubelet client certificate")?;
    let client = crate::agent::client_for("kubelet", url, pki.ca_pem(), &cert, &key).await?;
    let (cert, key) = pki
        .issue_serving_cert(
            &[
                name.clone(),
                crate::cli::host::hostname(),
                "localhost".into(),
            ],
            &[node_ip, "127.0.0.1".parse()?],
        )
        .context("cannot issue the kubelet serving certificate")?;
    let tls = pki
        .kubelet_tls_config(&cert, &key)
        .context("kubelet TLS configuration")?;
    let config = args
        .node
        .node_config(&args.common.data_dir, name, node_ip, cluster, tls)?;
    crate::agent::start_node(config, client, cancel)
        .await
        .context("cannot start the node agent (use --disable-agent to run the control plane only)")
}

/// Runs the scheduler, restarting it if it stops, and reports its health.
async fn run_scheduler(
    client: kube::Client,
    informers: crate::client::informer::SharedInformers,
    health: Arc<crate::api::health::ComponentHealth>,
    cancel: CancellationToken,
) {
    let mut backoff = std::time::Duration::from_millis(500);
    loop {
        health.set("scheduler", Ok(()));
        let result = crate::scheduler::run(
            client.clone(),
            informers.clone(),
            Default::default(),
            cancel.child_token(),
        )
        .await;
        if cancel.is_cancelled() {
            health.set("scheduler", Err("stopped".into()));
            return;
        }
        let reason = result
            .err()
            .map_or_else(|| "stopped".to_string(), |e| e.to_string());
        tracing::warn!(%reason, "scheduler exited; restarting");
        health.set("scheduler", Err(reason));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
    }
}

/// An API client for an in-process component, with its own client
/// certificate (CN = its user name), over HTTPS on loopback: the same path
/// an out-of-process component would take.
async fn component_client(pki: &ClusterPki, url: &str, user: &str) -> anyhow::Result<kube::Client> {
    component_client_in(pki, url, user, &[]).await
}

/// [`component_client`] with groups (the O fields of the certificate).
async fn component_client_in(
    pki: &ClusterPki,
    url: &str,
    user: &str,
    groups: &[&str],
) -> anyhow::Result<kube::Client> {
    let (cert, key) = pki
        .issue_client_cert(user, groups)
        .with_context(|| format!("cannot issue a certificate for {user}"))?;
    let program = user.strip_prefix("system:").unwrap_or(user);
    crate::agent::client_for(program, url, pki.ca_pem(), &cert, &key)
        .await
        .with_context(|| format!("cannot build a client for {user}"))
}

fn nth_ip(cidr: &Cidr, n: u32) -> Option<IpAddr> {
    match cidr.0 {
        ipnet::IpNet::V4(net) => Some(IpAddr::V4((u32::from(net.network()) + n).into())),
        ipnet::IpNet::V6(net) => Some(IpAddr::V6(
            (u128::from(net.network()) + u128::from(n)).into(),
        )),
    }
}

fn load_pki(
    args: &ServerArgs,
    data: &std::path::Path,
    advertise: IpAddr,
    service_ip: IpAddr,
) -> anyhow::Result<ClusterPki> {
    let hostname = crate::cli::host::hostname();
    let mut dns_names = vec![
        hostname,
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        format!("kubernetes.default.svc.{}", args.cluster_domain),
    ];
    let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse()?, "::1".parse()?, advertise, service_ip];
    for san in &args.tls_san {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns_names.push(san.clone()),
        }
    }
    dns_names.dedup();
    ips.dedup();
    let config = PkiConfig {
        tls_dir: data.join("server/tls"),
        dns_names,
        ips,
    };
    ClusterPki::load_or_create(&config)
        .with_context(|| format!("cannot set up TLS in {}", config.tls_dir.display()))
}

/// Writes `<data>/server/token` on first start; afterwards a different
/// `--token` is an error (agents hold the old one).
fn write_token(
    pki: &ClusterPki,
    data: &std::path::Path,
    wanted: Option<&str>,
) -> anyhow::Result<()> {
    let path = data.join("server/token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let (_, secret) = pki::parse_join_token(existing.trim())
            .with_context(|| format!("{} is not a valid token", path.display()))?;
        if let Some(w) = wanted {
            let (_, wanted_secret) =
                pki::parse_join_token(w).context("--token is not a valid token")?;
            if wanted_secret != secret {
                anyhow::bail!(
                    "--token does not match the token this server was created with ({}); keep the original token",
                    path.display()
                );
            }
        }
        return Ok(());
    }
    let secret = match wanted {
        Some(w) => {
            pki::parse_join_token(w)
                .context("--token is not a valid token")?
                .1
        }
        None => pki::random_secret().context("cannot generate a token")?,
    };
    let token = pki::join_token(pki.ca_pem(), &secret);
    pki::write_private(&path, format!("{token}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))?;
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
