//! Pod garbage collector (upstream `pkg/controller/podgc`): periodically deletes
//! - terminated pods (phase Succeeded/Failed) beyond a threshold, oldest first;
//! - pods bound to nodes that no longer exist (after a quarantine and a live check);
//! - terminating pods that were never scheduled (no kubelet will ever confirm them);
//! - terminating pods on not-ready nodes tainted `node.kubernetes.io/out-of-service`.
//!
//! It is a periodic sweep over pod and node stores rather than an event-driven reconciler
//! because every rule is about the population as a whole (a threshold, absence of a node). A
//! node missing from the cache is only trusted after `quarantine` and a live GET, so a node
//! informer lagging behind never costs running pods.
//!
//! Failure: individual API errors are logged and the pod is retried at the next sweep.

use crate::client::informer::SharedInformers;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::api_status::is_not_found;
use super::informer;

/// Taint marking a node out of service (its pods may be force-deleted).
const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// Configuration of the pod garbage collector.
#[derive(Debug, Clone)]
pub struct PodGcConfig {
    /// Terminated pods kept before the oldest are deleted (upstream
    /// `--terminated-pod-gc-threshold`, 12500); 0 disables that rule.
    pub terminated_pod_gc_threshold: usize,
    /// Time between sweeps (upstream 20 s).
    pub period: Duration,
    /// How long a node must be missing before its pods count as orphaned (upstream 40 s).
    pub quarantine: Duration,
}

impl Default for PodGcConfig {
    fn default() -> Self {
        Self {
            terminated_pod_gc_threshold: 12500,
            period: Duration::from_secs(20),
            quarantine: Duration::from_secs(40),
        }
    }
}

/// Failures of the pod garbage collector (sweeps themselves only log).
#[derive(Debug, thiserror::Error)]
pub enum PodGcError {
    /// The controller stopped before its caches were ready.
    #[error("pod GC stopped before its caches synced")]
    NotSynced,
}

/// True for pods in a phase they can never leave.
pub fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// The terminated pods to delete so that at most `threshold` remain: the oldest first
/// (by creation time, then name for a stable order).
pub fn excess_terminated(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut terminated: Vec<Arc<Pod>> = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
    if terminated.len() <= threshold {
        return Vec::new();
    }
    terminated.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, a.name_any())
            .cmp(&(&b.metadata.creation_timestamp, b.name_any()))
    });
    let excess = terminated.len() - threshold;
    terminated.truncate(excess);
    terminated
}

/// Runs the pod garbage collector until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: PodGcConfig,
    cancel: CancellationToken,
) -> Result<(), PodGcError> {
    let client = informers.client();
    let pods = informers.get::<Pod>().store();
    let nodes = informers.get::<Node>().store();
    let ready = informer::wait_ready(&[&pods], &cancel).await
        && informer::wait_ready(&[&nodes], &cancel).await;
    if !ready {
        return if cancel.is_cancelled() {
            Ok(())
        } else {
            Err(PodGcError::NotSynced)
        };
    }
    let mut gc = Sweeper {
        client,
        pods,
        nodes,
        config,
        missing_since: HashMap::new(),
    };
    let mut ticker = tokio::time::interval(gc.config.period);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => gc.sweep().await,
        }
    }
    Ok(())
}

struct Sweeper {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    config: PodGcConfig,
    /// Nodes referenced by pods but missing from the cache, and since when.
    missing_since: HashMap<String, Instant>,
}

impl Sweeper {
    #[tracing::instrument(skip_all, name = "pod_gc_sweep")]
    async fn sweep(&mut self) {
        let pods = self.pods.state();
        for pod in excess_terminated(&pods, self.config.terminated_pod_gc_threshold) {
            self.delete(&pod, None).await;
        }
        self.gc_out_of_service(&pods).await;
        self.gc_orphaned(&pods).await;
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some() && node_name(p).is_none())
        {
            self.delete(pod, None).await;
        }
    }

    async fn gc_out_of_service(&self, pods: &[Arc<Pod>]) {
        let out: HashSet<String> = self
            .nodes
            .state()
            .iter()
            .filter(|n| !node_ready(n) && has_out_of_service_taint(n))
            .map(|n| n.name_any())
            .collect();
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
        {
            if node_name(pod).is_some_and(|n| out.contains(n)) {
                self.delete(pod, Some("PodGC: node is out-of-service"))
                    .await;
            }
        }
    }

    async fn gc_orphaned(&mut self, pods: &[Arc<Pod>]) {
        let known: HashSet<String> = self.nodes.state().iter().map(|n| n.name_any()).collect();
        let referenced: HashSet<String> = pods
            .iter()
            .filter_map(|p| node_name(p).map(str::to_string))
            .collect();
        self.missing_since
            .retain(|node, _| referenced.contains(node) && !known.contains(node));
        let now = Instant::now();
        let mut gone = HashSet::new();
        for node in referenced.difference(&known) {
            let since = *self.missing_since.entry(node.clone()).or_insert(now);
            if now.duration_since(since) < self.config.quarantine {
                continue;
            }
            match Api::<Node>::all(self.client.clone()).get_opt(node).await {
                Ok(None) => {
                    gone.insert(node.clone());
                }
                Ok(Some(_)) => {
                    self.missing_since.remove(node);
                }
                Err(err) => {
                    tracing::warn!(node = %node, error = %err, "checking for orphaned pods")
                }
            }
        }
        for pod in pods
            .iter()
            .filter(|p| node_name(p).is_some_and(|n| gone.contains(n)))
        {
            self.delete(pod, Some("PodGC: node no longer exists")).await;
        }
    }

    /// Marks a non-terminal pod Failed with a DisruptionTarget condition (when `reason` is
    /// given), then force-deletes it.
    async fn delete(&self, pod: &Pod, reason: Option<&str>) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api = Api::<Pod>::namespaced(self.client.clone(), &ns);
        if let (Some(message), false) = (reason, is_terminated(pod)) {
            let patch = serde_json::json!({"status": {"phase": "Failed", "conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": message, "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
            }]}});
            if let Err(err) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                if !is_not_found(&err) {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %err, "marking pod failed");
                }
                return;
            }
        }
        let mut params = DeleteParams::default().grace_period(0);
        params.preconditions = pod.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        });
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), reason = reason.unwrap_or("garbage collected"), "deleted pod")
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %err, "deleting pod"),
        }
    }
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn has_out_of_service_taint(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == OUT_OF_SERVICE_TAINT && t.effect == "NoExecute")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, phase: &str, created_secs: i64) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(created_secs).unwrap(),
        ));
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        Arc::new(pod)
    }

    #[test]
    fn deletes_oldest_terminated_pods_beyond_threshold() {
        let pods = vec![
            pod("new-done", "Succeeded", 300),
            pod("running", "Running", 1),
            pod("old-failed", "Failed", 100),
            pod("mid-done", "Succeeded", 200),
        ];
        let names: Vec<String> = excess_terminated(&pods, 1)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, vec!["old-failed", "mid-done"]);
        assert!(excess_terminated(&pods, 3).is_empty());
        assert!(excess_terminated(&pods, 0).is_empty());
    }

    #[test]
    fn out_of_service_taint_is_recognised() {
        let mut node = Node::default();
        assert!(!has_out_of_service_taint(&node));
        node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                key: OUT_OF_SERVICE_TAINT.into(),
                effect: "NoExecute".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(has_out_of_service_taint(&node));
        assert!(!node_ready(&node));
    }
}
