//! The controller manager: every controller as a kube-rs client of the
//! apiserver, supervised.
//!
//! Each controller follows watcher → reflector → reconcile and is
//! restarted (after a short backoff) if it ever returns; the supervisor
//! records in the [`ComponentHealth`](crate::client::health::ComponentHealth)
//! registry whether all of them are running, which is what `kubectl get
//! cs` shows for `controller-manager`.

pub mod api_status;
pub mod batch_common;
pub mod bootstrap_signer;
pub mod clusterrole_aggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod driver;
pub mod endpoints;
pub mod endpointslice;
pub mod error;

pub mod expectations;
pub mod garbage_collector;
pub mod horizontal_pod_autoscaler;
pub mod informer;
pub mod job;
pub mod label_selector;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod owner;
pub mod pod_gc;
pub mod pod_ranking;
pub mod pod_state;
pub mod replicaset;
pub mod resource_discovery;
pub mod resource_quota;
pub mod retry;
pub mod service_endpoints;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod token_cleaner;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use parking_lot::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::health::ComponentHealth;
use crate::client::informer::SharedInformers;

/// Cluster-wide settings the controllers need.
#[derive(Clone, Debug)]
pub struct ControllerManagerConfig {
    /// `--cluster-cidr`: node pod subnets are carved from it.
    pub cluster_cidr: IpNet,
    /// `--service-cidr`: never handed out as pod subnets.
    pub service_cidr: IpNet,
    /// The cluster CA (PEM), published as `kube-root-ca.crt`.
    pub root_ca_pem: String,
    /// Lease silence after which a node is Unknown.
    pub node_monitor_grace_period: Duration,
    /// Default toleration (seconds) of unreachable/not-ready nodes.
    pub default_toleration_seconds: i64,
    /// Publish node addresses for LoadBalancer Services (k3s's servicelb;
    /// off with `--disable servicelb`).
    pub servicelb: bool,
    /// `https://host:port` of the API server, as published in
    /// `kube-public/cluster-info`.
    pub api_server_url: String,
}

type Running = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Starter = Box<dyn Fn(SharedInformers, CancellationToken) -> Running + Send + Sync>;

fn starter<F, Fut, E>(f: F) -> Starter
where
    F: Fn(SharedInformers, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    Box::new(move |client, cancel| {
        let fut = f(client, cancel);
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    })
}

/// The controllers to run, by name.
fn controllers(config: &ControllerManagerConfig) -> Vec<(&'static str, Starter)> {
    let ipam = node_ipam::NodeIpamConfig {
        cluster_cidrs: vec![config.cluster_cidr],
        service_cidrs: vec![config.service_cidr],
        ..Default::default()
    };
    let lifecycle = node_lifecycle::NodeLifecycleConfig {
        node_monitor_grace_period: config.node_monitor_grace_period,
        node_monitor_period: config.node_monitor_grace_period.min(Duration::from_secs(5)),
        default_not_ready_toleration_seconds: config.default_toleration_seconds,
        default_unreachable_toleration_seconds: config.default_toleration_seconds,
        ..Default::default()
    };
    let sa = serviceaccount::ServiceAccountConfig {
        root_ca_pem: Some(config.root_ca_pem.clone()),
        ..Default::default()
    };
    let mut all: Vec<(&'static str, Starter)> = vec![
        (
            "namespace",
            starter(|c, t| namespace::run(c, Default::default(), t)),
        ),
        (
            "clusterrole-aggregation",
            starter(clusterrole_aggregation::run),
        ),
        (
            "garbage-collector",
            starter(|c, t| garbage_collector::run(c, Default::default(), t)),
        ),
        (
            "serviceaccount",
            starter(move |c, t| serviceaccount::run(c, sa.clone(), t)),
        ),
        (
            "endpoints",
            starter(|c, t| endpoints::run(c, Default::default(), t)),
        ),
        (
            "endpointslice",
            starter(|c, t| endpointslice::run(c, Default::default(), t)),
        ),
        (
            "node-ipam",
            starter(move |c, t| node_ipam::run(c, ipam.clone(), t)),
        ),
        (
            "node-lifecycle",
            starter(move |c, t| node_lifecycle::run(c, lifecycle.clone(), t)),
        ),
        (
            "pod-gc",
            starter(|c, t| pod_gc::run(c, Default::default(), t)),
        ),
        (
            "replicaset",
            starter(|c, t| replicaset::run(c, Default::default(), t)),
        ),
        (
            "replicationcontroller",
            starter(|c, t| replicaset::run_replication_controllers(c, Default::default(), t)),
        ),
        (
            "deployment",
            starter(|c, t| deployment::run(c, Default::default(), t)),
        ),
        ("job", starter(|c, t| job::run(c, Default::default(), t))),
        (
            "cronjob",
            starter(|c, t| cronjob::run(c, Default::default(), t)),
        ),
        (
            "daemonset",
            starter(|c, t| daemonset::run(c, Default::default(), t)),
        ),
        (
            "statefulset",
            starter(|c, t| statefulset::run(c, Default::default(), t)),
        ),
    ];
    all.push(("tokencleaner", starter(token_cleaner::run)));
    let cluster_info = bootstrap_signer::ClusterInfo {
        server: config.api_server_url.clone(),
        ca_pem: config.root_ca_pem.clone(),
    };
    all.push((
        "bootstrapsigner",
        starter(move |c, t| bootstrap_signer::run(c, cluster_info.clone(), t)),
    ));
    all.push(("resourcequota", starter(resource_quota::run)));
    all.push(("disruption", starter(disruption::run)));
    all.push((
        "horizontal-pod-autoscaler",
        starter(horizontal_pod_autoscaler::run),
    ));
    if config.servicelb {
        all.push(("servicelb", starter(servicelb::run)));
    }
    all
}

/// Runs every controller until `cancel` fires. They read through
/// `informers` (shared with the rest of the process) and write with its
/// client.
pub async fn run(
    informers: SharedInformers,
    config: ControllerManagerConfig,
    health: Arc<ComponentHealth>,
    cancel: CancellationToken,
) {
    let failing: Arc<Mutex<Vec<String>>> = Arc::default();
    health.set("controller-manager", Ok(()));
    let mut tasks = JoinSet::new();
    for (name, start) in controllers(&config) {
        let (informers, cancel, health, failing) = (
            informers.clone(),
            cancel.clone(),
            health.clone(),
            failing.clone(),
        );
        tasks.spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let result = start(informers.clone(), cancel.child_token()).await;
                if cancel.is_cancelled() {
                    return;
                }
                let reason = match result {
                    Ok(()) => "stopped".to_string(),
                    Err(e) => e,
                };
                tracing::warn!(controller = name, %reason, "controller exited; restarting");
                {
                    let mut f = failing.lock();
                    f.push(format!("{name}: {reason}"));
                    health.set("controller-manager", Err(f.join("; ")));
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                let mut f = failing.lock();
                f.retain(|entry| !entry.starts_with(&format!("{name}: ")));
                health.set(
                    "controller-manager",
                    if f.is_empty() {
                        Ok(())
                    } else {
                        Err(f.join("; "))
                    },
                );
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    health.set("controller-manager", Err("stopped".into()));
}
