//! Watches of nodes, pods and namespaces feeding the cache and the queue.
//!
//! kube-runtime's watcher does list+watch and relists after 410 Gone or a dropped stream,
//! emitting `Init`, `InitApply`..., `InitDone`; on `InitDone` anything not seen in the fresh
//! list is removed, so deletions missed while disconnected are not kept forever. Stream
//! errors are logged and retried with the watcher's default backoff; they never stop the
//! scheduler. Node and pod events also decide which unschedulable pods to retry: a node
//! added or changed (in a field the scheduler reads) and a counted pod deleted retry all of
//! them; a pod appearing on a node retries only pods rejected by spread or inter-pod
//! affinity, the only plugins such an event can satisfy.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::cache::{Cache, NodeChange};
use super::error::SchedulerError;
use super::podinfo::PodInfo;
use super::queue::SchedulingQueue;

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

/// Applies the events of one watched kind.
trait Handler<K> {
    fn apply(&mut self, obj: K) -> Option<String>;
    fn delete(&mut self, obj: &K);
    fn known(&self) -> Vec<String>;
    fn remove_key(&mut self, key: &str);
}

/// Drives `stream` into `handler` until `cancel`; flips `synced` after the first full list.
async fn drive<K, H, S>(
    kind: &'static str,
    stream: S,
    mut handler: H,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError>
where
    H: Handler<K>,
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut seen: Option<HashSet<String>> = None;
    loop {
        let ev = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            ev = stream.next() => ev,
        };
        match ev {
            None => return Err(SchedulerError::WatchEnded(kind)),
            Some(Err(e)) => tracing::warn!(kind, error = %e, "watch error; retrying"),
            Some(Ok(Event::Init)) => seen = Some(HashSet::new()),
            Some(Ok(Event::InitApply(obj))) => {
                let key = handler.apply(obj);
                if let (Some(set), Some(key)) = (seen.as_mut(), key) {
                    set.insert(key);
                }
            }
            Some(Ok(Event::InitDone)) => {
                let seen = seen.take().unwrap_or_default();
                for key in handler.known().into_iter().filter(|k| !seen.contains(k)) {
                    handler.remove_key(&key);
                }
                synced.send_replace(true);
                tracing::debug!(kind, "watch (re)listed");
            }
            Some(Ok(Event::Apply(obj))) => {
                handler.apply(obj);
            }
            Some(Ok(Event::Delete(obj))) => handler.delete(&obj),
        }
    }
}

struct Nodes(Shared);

impl Handler<Node> for Nodes {
    fn apply(&mut self, node: Node) -> Option<String> {
        let change = self.0.cache.write().upsert_node(&node);
        if change != NodeChange::Unchanged {
            self.0.queue.move_all_unschedulable();
        }
        node.metadata.name
    }
    fn delete(&mut self, node: &Node) {
        if let Some(name) = node.meta().name.as_deref() {
            self.remove_key(name);
        }
    }
    fn known(&self) -> Vec<String> {
        self.0.cache.read().node_names()
    }
    fn remove_key(&mut self, name: &str) {
        self.0.cache.write().delete_node(name);
    }
}

struct Pods(Shared);

impl Handler<Pod> for Pods {
    fn apply(&mut self, pod: Pod) -> Option<String> {
        let info = Arc::new(PodInfo::from_pod(&pod));
        if info.uid.is_empty() {
            return None;
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
        Some(uid)
    }
    fn delete(&mut self, pod: &Pod) {
        if let Some(uid) = pod.meta().uid.as_deref() {
            self.remove_key(uid);
        }
    }
    fn known(&self) -> Vec<String> {
        let mut keys = self.0.cache.read().pod_uids();
        keys.extend(self.0.queue.uids());
        keys
    }
    fn remove_key(&mut self, uid: &str) {
        if self.0.cache.write().remove_pod(uid) {
            self.0.queue.move_all_unschedulable();
        }
        self.0.queue.delete(uid);
    }
}

struct Namespaces(Shared);

impl Handler<Namespace> for Namespaces {
    fn apply(&mut self, ns: Namespace) -> Option<String> {
        let name = ns.metadata.name?;
        let labels = ns.metadata.labels.unwrap_or_default();
        let changed = self.0.cache.read().namespace_labels(&name) != Some(&labels);
        self.0.cache.write().set_namespace(&name, labels);
        if changed {
            self.0.queue.move_pod_dependent();
        }
        Some(name)
    }
    fn delete(&mut self, ns: &Namespace) {
        if let Some(name) = ns.meta().name.as_deref() {
            self.remove_key(name);
        }
    }
    fn known(&self) -> Vec<String> {
        self.0.cache.read().namespace_names()
    }
    fn remove_key(&mut self, name: &str) {
        self.0.cache.write().delete_namespace(name);
    }
}

/// Watches nodes.
pub async fn nodes(
    client: Client,
    shared: Shared,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    let stream = watcher::watcher(Api::<Node>::all(client), watcher::Config::default());
    drive(
        "nodes",
        stream.default_backoff(),
        Nodes(shared),
        synced,
        cancel,
    )
    .await
}

/// Watches pods of all namespaces.
pub async fn pods(
    client: Client,
    shared: Shared,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    let stream = watcher::watcher(Api::<Pod>::all(client), watcher::Config::default());
    drive(
        "pods",
        stream.default_backoff(),
        Pods(shared),
        synced,
        cancel,
    )
    .await
}

/// Watches namespaces (their labels feed affinity namespaceSelectors).
pub async fn namespaces(
    client: Client,
    shared: Shared,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    let stream = watcher::watcher(Api::<Namespace>::all(client), watcher::Config::default());
    drive(
        "namespaces",
        stream.default_backoff(),
        Namespaces(shared),
        synced,
        cancel,
    )
    .await
}
