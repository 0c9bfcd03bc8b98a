//! Node lifecycle controller (upstream `pkg/controller/nodelifecycle` plus the NoExecute
//! taint eviction manager).
//!
//! Every `node_monitor_period` it checks each node's signs of life (Ready heartbeat, Lease
//! renewal in `kube-node-lease`); a node silent for longer than the grace period gets its
//! conditions set to Unknown, and on that transition its pods' Ready conditions are set to
//! False. Every pass also reconciles the node's condition taints (`unreachable`/`not-ready`
//! NoExecute, pressure NoSchedule…). A faster eviction pass deletes pods from nodes with
//! NoExecute taints they do not tolerate, immediately or after their `tolerationSeconds`
//! counted from when the controller first saw them under the taint, as upstream does.
//!
//! The controller is a pair of periodic sweeps over node, lease and pod stores rather than a
//! per-object reconciler, because what it reacts to is the *absence* of events. Its memory
//! (probe times, eviction clocks) is deliberately volatile: after a restart every node gets a
//! fresh grace period, so a controller outage never reads as a cluster-wide node failure.
//!
//! Failure: API errors are logged and retried at the next pass. Zone-based eviction rate
//! limiting is not implemented: taints are applied as soon as conditions warrant.

mod eviction;
mod health;

use crate::client::informer::SharedInformers;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

pub use eviction::{Eviction, decide, effective_tolerations, tolerates};
pub use health::{Probe, TAINT_NOT_READY, TAINT_UNREACHABLE, desired_taints, unknown_conditions};

use super::api_status::is_not_found;
use super::informer;

/// Namespace holding node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Configuration of the node lifecycle controller.
#[derive(Debug, Clone)]
pub struct NodeLifecycleConfig {
    /// Silence after which a node is Unknown (upstream `--node-monitor-grace-period`, 40 s).
    pub node_monitor_grace_period: Duration,
    /// Time between health passes (upstream `--node-monitor-period`, 5 s).
    pub node_monitor_period: Duration,
    /// Time between eviction passes.
    pub eviction_period: Duration,
    /// Default toleration of `node.kubernetes.io/not-ready:NoExecute`, seconds (upstream
    /// `--default-not-ready-toleration-seconds`, 300).
    pub default_not_ready_toleration_seconds: i64,
    /// Default toleration of `node.kubernetes.io/unreachable:NoExecute`, seconds (upstream
    /// `--default-unreachable-toleration-seconds`, 300).
    pub default_unreachable_toleration_seconds: i64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self {
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            eviction_period: Duration::from_secs(1),
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
        }
    }
}

/// Failures of the node lifecycle controller (passes themselves only log).
#[derive(Debug, thiserror::Error)]
pub enum NodeLifecycleError {
    /// The controller stopped before its caches were ready.
    #[error("node lifecycle controller stopped before its caches synced")]
    NotSynced,
}

/// Runs the node lifecycle controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: NodeLifecycleConfig,
    cancel: CancellationToken,
) -> Result<(), NodeLifecycleError> {
    let client = informers.client();
    let nodes = informers.get::<Node>().store();
    let leases = informers.get_namespaced::<Lease>(LEASE_NAMESPACE).store();
    let pods = informers.get::<Pod>().store();
    let ready = informer::wait_ready(&[&nodes], &cancel).await
        && informer::wait_ready(&[&leases], &cancel).await
        && informer::wait_ready(&[&pods], &cancel).await;
    if !ready {
        return if cancel.is_cancelled() {
            Ok(())
        } else {
            Err(NodeLifecycleError::NotSynced)
        };
    }
    let mut controller = Lifecycle {
        client,
        nodes,
        leases,
        pods,
        config,
        probes: HashMap::new(),
        clocks: HashMap::new(),
    };
    let mut monitor = tokio::time::interval(controller.config.node_monitor_period);
    let mut evict = tokio::time::interval(controller.config.eviction_period);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = monitor.tick() => controller.monitor_pass().await,
            _ = evict.tick() => controller.eviction_pass().await,
        }
    }
    Ok(())
}

struct Lifecycle {
    client: Client,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    config: NodeLifecycleConfig,
    probes: HashMap<String, Probe>,
    /// Pod uid → when the eviction pass first saw it under NoExecute taints.
    clocks: HashMap<String, Instant>,
}

fn now_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn pods_on<'a>(pods: &'a [Arc<Pod>], node: &'a str) -> impl Iterator<Item = &'a Arc<Pod>> + 'a {
    pods.iter()
        .filter(move |p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
}

impl Lifecycle {
    #[tracing::instrument(skip_all, name = "node_monitor_pass")]
    async fn monitor_pass(&mut self) {
        let now = Instant::now();
        let nodes = self.nodes.state();
        let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        self.probes.retain(|name, _| names.contains(name));
        for node in nodes {
            self.monitor_node(&node, now).await;
        }
    }

    async fn monitor_node(&mut self, node: &Node, now: Instant) {
        let name = node.name_any();
        let lease = self
            .leases
            .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
        let renew = lease.and_then(|l| {
            l.spec
                .as_ref()?
                .renew_time
                .as_ref()
                .map(|t| t.0.to_string())
        });
        let probe = self
            .probes
            .entry(name.clone())
            .or_insert_with(|| Probe::new(now));
        probe.observe(node, renew, now);
        let mut node = node.clone();
        if probe.expired(self.config.node_monitor_grace_period, now)
            && let Some(conditions) = unknown_conditions(&node, &now_time())
        {
            node.status.get_or_insert_with(Default::default).conditions = Some(conditions);
            match Api::<Node>::all(self.client.clone())
                .replace_status(&name, &PostParams::default(), &node)
                .await
            {
                Ok(updated) => {
                    tracing::info!(node = %name, "node stopped posting status: conditions Unknown");
                    node = updated;
                }
                Err(err) => {
                    tracing::warn!(node = %name, error = %err, "updating node status");
                    return;
                }
            }
        }
        let ready = health::condition(&node, "Ready").map(|c| c.status.clone());
        let was_ready = self.probes.get(&name).and_then(|p| p.last_ready.clone());
        let mut marked = true;
        if ready.as_deref().is_some_and(|s| s != "True") && was_ready.as_deref() != ready.as_deref()
        {
            marked = self.mark_pods_not_ready(&name).await;
        }
        if let Some(probe) = self.probes.get_mut(&name) {
            // Leave the transition unrecorded when marking failed, so the next pass retries it.
            if marked {
                probe.last_ready = ready;
            }
        }
        self.update_taints(&node).await;
    }

    async fn update_taints(&self, node: &Node) {
        let Some(taints) = desired_taints(node, &now_time()) else {
            return;
        };
        let mut updated = node.clone();
        updated.spec.get_or_insert_with(Default::default).taints = Some(taints);
        let name = node.name_any();
        match Api::<Node>::all(self.client.clone())
            .replace(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => tracing::info!(node = %name, "updated node condition taints"),
            Err(err) => tracing::warn!(node = %name, error = %err, "updating node taints"),
        }
    }

    /// Sets the Ready condition of the node's pods to False; true when all succeeded.
    async fn mark_pods_not_ready(&self, node: &str) -> bool {
        let pods = self.pods.state();
        let mut ok = true;
        for pod in pods_on(&pods, node).filter(|p| super::service_endpoints::is_pod_ready(p)) {
            let ns = pod.namespace().unwrap_or_default();
            let patch = serde_json::json!({"status": {"conditions": [{
                "type": "Ready", "status": "False", "lastTransitionTime": now_time(),
            }]}});
            let api = Api::<Pod>::namespaced(self.client.clone(), &ns);
            match api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(pod = %format!("{ns}/{}", pod.name_any()), "marked pod not ready")
                }
                Err(err) if is_not_found(&err) => {}
                Err(err) => {
                    tracing::warn!(pod = %pod.name_any(), error = %err, "marking pod not ready");
                    ok = false;
                }
            }
        }
        ok
    }

    #[tracing::instrument(skip_all, name = "taint_eviction_pass")]
    async fn eviction_pass(&mut self) {
        let now = Instant::now();
        let pods = self.pods.state();
        let mut seen = HashSet::new();
        for node in self.nodes.state() {
            let taints: Vec<Taint> = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t.effect == "NoExecute")
                .collect();
            if taints.is_empty() {
                continue;
            }
            for pod in
                pods_on(&pods, &node.name_any()).filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                let uid = pod.uid().unwrap_or_default();
                seen.insert(uid.clone());
                let since = *self.clocks.entry(uid).or_insert(now);
                if self.due(pod, &taints, now.duration_since(since)) {
                    self.evict(pod).await;
                }
            }
        }
        self.clocks.retain(|uid, _| seen.contains(uid));
    }

    fn due(&self, pod: &Pod, taints: &[Taint], waited: Duration) -> bool {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        let tolerations = effective_tolerations(
            &own,
            self.config.default_not_ready_toleration_seconds,
            self.config.default_unreachable_toleration_seconds,
        );
        match decide(taints, &tolerations) {
            Eviction::Never => false,
            Eviction::Now => true,
            Eviction::After(limit) => waited >= limit,
        }
    }

    /// Marks the pod with a DisruptionTarget condition and deletes it (upstream
    /// `addConditionAndDeletePod`).
    async fn evict(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api = Api::<Pod>::namespaced(self.client.clone(), &ns);
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": now_time(),
        }]}});
        if let Err(err) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            && !is_not_found(&err)
        {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %err, "adding DisruptionTarget condition");
        }
        let params = DeleteParams {
            preconditions: pod.uid().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), "evicted pod for NoExecute taint")
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %err, "evicting pod"),
        }
    }
}
