//! Node, pod and namespace changes from the shared informers, feeding the cache and the
//! queue.
//!
//! The informers do list+watch and relist after 410 Gone or a dropped stream; a relist
//! reports what vanished meanwhile as deletions, so nothing is kept forever. Node and pod
//! changes also decide which unschedulable pods to retry: a node added or changed (in a
//! field the scheduler reads) and a counted pod deleted retry all of them; a pod appearing
//! on a node retries only pods rejected by spread or inter-pod affinity, the only plugins
//! such an event can satisfy. The scheduler keeps no copy of the objects: pods are
//! compiled into [`PodInfo`] and nodes into aggregates.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Resource;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::cache::{Cache, NodeChange};
use super::error::SchedulerError;
use super::podinfo::PodInfo;
use super::queue::SchedulingQueue;
use crate::client::informer::{Change, Informer};

/// State the watch handlers update.
#[derive(Clone)]
pub struct Shared {
    /// Cluster state.
    pub cache: Arc<RwLock<Cache>>,
    /// Pending pods.
    pub queue: Arc<SchedulingQueue>,
    /// Pods with this spec.schedulerName are ours.
    pub scheduler_name: String,
}

/// Applies the changes of one watched kind.
trait Handler<K> {
    fn apply(&mut self, obj: &K);
    fn delete(&mut self, obj: &K);
}

/// Feeds the changes of `informer` into `handler` until `cancel`; flips `synced` after
/// each full list.
async fn drive<K, H>(
    kind: &'static str,
    informer: Informer<K>,
    mut handler: H,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    H: Handler<K>,
{
    let mut changes = informer.subscribe();
    loop {
        let change = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            change = changes.next() => change,
        };
        match change {
            None => return Err(SchedulerError::WatchEnded(kind)),
            Some(Change::Added(obj) | Change::Updated { new: obj, .. }) => handler.apply(&obj),
            Some(Change::Deleted(obj)) => handler.delete(&obj),
            Some(Change::Synced) => {
                synced.send_replace(true);
                tracing::debug!(kind, "watch (re)listed");
            }
        }
    }
}

struct Nodes(Shared);

impl Handler<Node> for Nodes {
    fn apply(&mut self, node: &Node) {
        let change = self.0.cache.write().upsert_node(node);
        if change != NodeChange::Unchanged {
            self.0.queue.move_all_unschedulable();
        }
    }
    fn delete(&mut self, node: &Node) {
        if let Some(name) = node.meta().name.as_deref() {
            self.0.cache.write().delete_node(name);
        }
    }
}

struct Pods(Shared);

impl Handler<Pod> for Pods {
    fn apply(&mut self, pod: &Pod) {
        let info = Arc::new(PodInfo::from_pod(pod));
        if info.uid.is_empty() {
            return;
        }
        let uid = info.uid.clone();
        let s = &self.0;
        if info.terminal {
            self.remove_key(&uid);
        } else if !info.node_name.is_empty() {
            s.cache.write().add_assigned_pod(info);
            s.queue.delete(&uid);
            s.queue.move_pod_dependent();
        } else if info.scheduler_name != s.scheduler_name || info.terminating || info.gated {
            s.queue.delete(&uid);
        } else if !s.cache.read().has_pod(&uid) {
            // Pods counted in the cache are assumed (binding in flight): stale event.
            s.queue.add_or_update(info);
        }
    }
    fn delete(&mut self, pod: &Pod) {
        if let Some(uid) = pod.meta().uid.as_deref() {
            self.remove_key(uid);
        }
    }
}

impl Pods {
    fn remove_key(&mut self, uid: &str) {
        if self.0.cache.write().remove_pod(uid) {
            self.0.queue.move_all_unschedulable();
        }
        self.0.queue.delete(uid);
    }
}

struct Namespaces(Shared);

impl Handler<Namespace> for Namespaces {
    fn apply(&mut self, ns: &Namespace) {
        let Some(name) = ns.metadata.name.as_deref() else {
            return;
        };
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        let changed = self.0.cache.read().namespace_labels(name) != Some(&labels);
        self.0.cache.write().set_namespace(name, labels);
        if changed {
            self.0.queue.move_pod_dependent();
        }
    }
    fn delete(&mut self, ns: &Namespace) {
        if let Some(name) = ns.meta().name.as_deref() {
            self.0.cache.write().delete_namespace(name);
        }
    }
}

/// Follows nodes.
pub async fn nodes(
    informer: Informer<Node>,
    shared: Shared,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    drive("nodes", informer, Nodes(shared), synced, cancel).await
}

/// Follows pods of all namespaces.
pub async fn pods(
    informer: Informer<Pod>,
    shared: Shared,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    drive("pods", informer, Pods(shared), synced, cancel).await
}

/// Follows namespaces (their labels feed affinity namespaceSelectors).
pub async fn namespaces(
    informer: Informer<Namespace>,
    shared: Shared,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    drive("namespaces", informer, Namespaces(shared), synced, cancel).await
}
