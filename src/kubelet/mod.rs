//! The node agent: runs the pods the scheduler binds to this node on
//! containerd, and reports the node and its pods to the apiserver.
//!
//! Like every kelp component it is an ordinary API client: it watches pods
//! with `spec.nodeName=<node>`, posts pod and node status, renews its Lease,
//! and serves `kubectl logs/exec/port-forward` on :10250 for the apiserver
//! to proxy to. The same code runs inside `kelp server` and `kelp agent`.
//!
//! Layout: [`containerd`] is the runtime client (images, containers, exec);
//! [`pods`] holds the per-pod workers; [`node`] the Node object and Lease;
//! [`server`] the streaming server and [`backend`] what it calls; [`logs`],
//! [`netns`], [`probes`] and [`images`] are the pieces workers use.

pub mod access_review;
pub mod backend;
pub mod cgroup_mounts;
pub mod containerd;
pub mod image_gc;
pub mod images;
pub mod logs;
pub mod netns;
pub mod node;
pub mod pods;
pub mod probes;
pub mod registry;
pub mod server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use self::containerd::{ContainerdConfig, Runtime, RuntimeError, SupervisedContainerd};
use self::node::NodeSettings;
use self::pods::NodeContext;

/// The containerd namespace kelp's containers live in.
pub const CONTAINERD_NAMESPACE: &str = "k8s.io";
/// Default socket of kelp's own containerd.
pub const CONTAINERD_SOCKET: &str = "/run/kelp/containerd/containerd.sock";

/// Failures that stop the kubelet from starting.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// containerd is missing, does not start or does not answer.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An API call failed.
    #[error("api call failed: {0}")]
    Api(#[from] kube::Error),
    /// This host (or mount namespace) cannot run containers.
    #[error("this host cannot run pods: {0}")]
    Host(String),
    /// An object could not be encoded.
    #[error("cannot encode an object: {0}")]
    Encode(serde_json::Error),
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// How to run the kubelet.
#[derive(Clone)]
pub struct KubeletConfig {
    /// The Node.
    pub node: NodeSettings,
    /// `<data>/agent`.
    pub agent_dir: PathBuf,
    /// An existing containerd socket (`--container-runtime-endpoint`); None
    /// starts kelp's own.
    pub container_runtime_endpoint: Option<PathBuf>,
    /// Runtime state (`/run/kelp`).
    pub run_dir: PathBuf,
    /// Pod logs (`/var/log/pods`).
    pub log_root: PathBuf,
    /// Named network namespaces (`/run/netns`).
    pub netns_dir: PathBuf,
    /// Cluster DNS server IP.
    pub cluster_dns: String,
    /// Cluster domain.
    pub cluster_domain: String,
    /// ClusterIP of the `kubernetes` service.
    pub kubernetes_service_ip: String,
    /// TLS for :10250.
    pub tls: Arc<rustls::ServerConfig>,
    /// The built-in pod network, with what its overlay adds to each packet
    /// (`--flannel-backend` vxlan: 50, host-gw: 0); None hands pods to the
    /// CNI plugins configured in `<agent>/etc/cni/net.d`
    /// (`--flannel-backend=none`).
    pub pod_network_overhead: Option<u32>,
    /// `registries.yaml` (`--private-registry`): mirrors, rewrites, registry auth and TLS.
    pub registries_file: PathBuf,
    /// Image garbage collection thresholds (`--kubelet-arg image-gc-*`).
    pub image_gc: image_gc::ImageGcSettings,
}

/// A started kubelet.
pub struct Kubelet {
    containerd: Option<SupervisedContainerd>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    network: Option<Arc<crate::network::PodNetwork>>,
}

impl Kubelet {
    /// The node's built-in pod network, if kelp builds one.
    pub fn network(&self) -> Option<Arc<crate::network::PodNetwork>> {
        self.network.clone()
    }

    /// Waits for the kubelet's tasks after `cancel`, then stops kelp's
    /// containerd child. Containers keep running.
    pub async fn shutdown(self) {
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
        if let Some(c) = self.containerd {
            c.shutdown().await;
        }
    }
}

/// Starts containerd (or connects to `--container-runtime-endpoint`),
/// imports airgap images, registers the Node and starts the pod manager,
/// Lease, status and streaming server. Returns once the node is registered.
pub async fn start(
    config: KubeletConfig,
    client: kube::Client,
    cancel: CancellationToken,
) -> Result<Kubelet, KubeletError> {
    let started = Instant::now();
    let (containerd, socket) = match &config.container_runtime_endpoint {
        Some(socket) => (None, socket.clone()),
        None => {
            // Our containerd child (and so runc) shares kelp's mount
            // namespace: without cgroup mounts here every container would
            // fail later with an obscure runc error. A containerd given by
            // --container-runtime-endpoint lives in its own namespace.
            let mounts = cgroup_mounts::CgroupMounts::of_this_process().map_err(|source| {
                KubeletError::Io {
                    what: "cannot read /proc/self/mountinfo".into(),
                    source,
                }
            })?;
            if let Some(problem) = mounts.problem() {
                return Err(KubeletError::Host(problem));
            }
            let c = SupervisedContainerd::start(ContainerdConfig {
                root: config.agent_dir.join("containerd"),
                state: config.run_dir.join("containerd"),
                socket: config.run_dir.join("containerd/containerd.sock"),
            })
            .await?;
            let socket = c.socket().to_path_buf();
            (Some(c), socket)
        }
    };
    let runtime = Runtime::connect(&socket, CONTAINERD_NAMESPACE).await?;
    let version = runtime.version().await?;
    tracing::info!(%version, ms = started.elapsed().as_millis() as u64, "containerd ready");
    // The streaming server comes first: after a kelp restart the node still
    // looks Ready and its pods Running, so `kubectl exec` may arrive at once.
    let ctx = Arc::new(node_context(
        &config,
        client.clone(),
        runtime.clone(),
        &config.node.name,
    )?);
    let addr = std::net::SocketAddr::new([0, 0, 0, 0].into(), config.node.kubelet_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| KubeletError::Io {
            what: format!(
                "cannot listen on {addr} (the kubelet port; is another kubelet running?)"
            ),
            source,
        })?;
    let backend = Arc::new(backend::KubeletBackend::new(ctx.clone()));
    let server_cancel = cancel.child_token();
    let tls = config.tls.clone();
    let reviewer: Arc<dyn server::RequestAuthorizer> = Arc::new(
        access_review::AccessReviewer::new(client.clone(), &config.node.name),
    );
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) =
            server::serve(listener, Some(tls), backend, Some(reviewer), server_cancel).await
        {
            tracing::error!(error = %e, "kubelet server stopped");
        }
    })];
    let mut node = config.node.clone();
    node.runtime_version = format!("containerd://{version}");
    node::register(&client, &node).await?;
    tracing::info!(ms = started.elapsed().as_millis() as u64, "node registered");
    let node_uid = kube::Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get_opt(&node.name)
        .await?
        .and_then(|n| n.metadata.uid);
    tasks.push(tokio::spawn(node::run_lease(
        client.clone(),
        node.name.clone(),
        node_uid,
        cancel.child_token(),
    )));
    tasks.push(tokio::spawn(node::run_status(
        client.clone(),
        node.clone(),
        cancel.child_token(),
    )));
    let images_dir = config.agent_dir.join("images");
    let _ = std::fs::create_dir_all(&images_dir);
    let mut seen = HashMap::new();
    images::import_new(&ctx.images, &images_dir, &mut seen, false).await;
    tasks.push(tokio::spawn(images::prepull(
        ctx.images.clone(),
        images_dir.clone(),
    )));
    tasks.push(tokio::spawn(images::watch(
        ctx.images.clone(),
        images_dir,
        seen,
        cancel.child_token(),
    )));
    let image_fs = match &config.container_runtime_endpoint {
        None => config.agent_dir.join("containerd"),
        Some(_) => PathBuf::from("/var/lib/containerd"),
    };
    tasks.push(tokio::spawn(image_gc::run(
        ctx.images.clone(),
        image_fs,
        config.image_gc.clone(),
        cancel.child_token(),
    )));
    let manifests = config.agent_dir.join("pod-manifests");
    let _ = std::fs::create_dir_all(&manifests);
    let network = ctx.network.clone();
    let manager = pods::manager::PodManager::new(ctx, node.name.clone(), manifests);
    tasks.push(tokio::spawn(manager.run(cancel.child_token())));
    tracing::info!(ms = started.elapsed().as_millis() as u64, "kubelet started");
    Ok(Kubelet {
        containerd,
        tasks,
        network,
    })
}

fn node_context(
    config: &KubeletConfig,
    client: kube::Client,
    runtime: Runtime,
    node: &str,
) -> Result<NodeContext, KubeletError> {
    let io = |what: String| move |source| KubeletError::Io { what, source };
    let bin = config.agent_dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(io(format!("cannot create {}", bin.display())))?;
    let logger = bin.join("kelp-logger");
    let exe = std::env::current_exe().map_err(io("cannot find the kelp binary".into()))?;
    link_logger(&exe, &logger).map_err(io(format!("cannot link {}", logger.display())))?;
    let io_dir = config.run_dir.join("io");
    std::fs::create_dir_all(&io_dir).map_err(io(format!("cannot create {}", io_dir.display())))?;
    // Without a built-in network (--flannel-backend=none), CNI plugins
    // network the pods, as k3s's kubelet would call them.
    let cni = config.pod_network_overhead.is_none().then(|| {
        let data_dir = config.agent_dir.parent().unwrap_or(&config.agent_dir);
        crate::network::cni::CniConfig {
            conf_dir: config.agent_dir.join("etc/cni/net.d"),
            bin_dirs: vec![
                data_dir.join("data/cni"),
                "/opt/cni/bin".into(),
                "/usr/lib/cni".into(),
            ],
            cache_dir: config.agent_dir.join("cni/results"),
        }
    });
    let network = Some(Arc::new(
        crate::network::PodNetwork::new(
            crate::network::PodNetworkConfig {
                node: node.to_string(),
                node_ip: config.node.ip,
                state_dir: config.agent_dir.join("ipam"),
                overhead: config.pod_network_overhead.unwrap_or(0),
                cni,
            },
            client.clone(),
        )
        .map_err(|e| KubeletError::Host(format!("cannot set up the pod network: {e}")))?,
    ));
    Ok(NodeContext {
        images: Arc::new(registry::ImagePuller::new(
            runtime.clone(),
            config.registries_file.clone(),
        )),
        network,
        objects: pods::objects::ObjectSource::new(client.clone()),
        events: crate::client::events::EventSink::new(client.clone(), "kubelet"),
        client,
        runtime,
        sandbox: pods::sandbox::SandboxSettings {
            pods_dir: config.agent_dir.join("pods"),
            netns_dir: config.netns_dir.clone(),
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
            node_name: node.to_string(),
        },
        log_root: config.log_root.clone(),
        logger_exe: logger,
        io_dir,
        node_ip: config.node.ip.to_string(),
        kubernetes_service_ip: config.kubernetes_service_ip.clone(),
        oom: Default::default(),
        containers: Default::default(),
        stdins: Default::default(),
    })
}

/// Points `<agent>/bin/kelp-logger` at the running binary. The shim execs
/// the link by path, and kelp's `main` runs the logger when called by that
/// name; a link (not a copy) keeps one binary on disk.
fn link_logger(exe: &Path, link: &Path) -> std::io::Result<()> {
    if std::fs::read_link(link).ok().as_deref() == Some(exe) {
        return Ok(());
    }
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(exe, &tmp)?;
    std::fs::rename(&tmp, link)
}
