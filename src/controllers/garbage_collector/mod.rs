//! Garbage collector (upstream `pkg/controller/garbagecollector`): deletes objects whose
//! owners are gone, and carries out foreground and orphan deletion for owners that carry the
//! `foregroundDeletion` / `orphan` finalizers (the apiserver only adds those finalizers).
//!
//! Layout, as upstream: watches ("monitors") on every deletable resource feed a
//! single graph builder task that owns the [`graph::Graph`] of ownerReferences; the graph turns
//! each change into [`graph::Work`] on a de-duplicating [`queue::WorkQueue`]; workers
//! ([`worker`]) act on it with live reads, so a stale graph can delay collection but never make
//! it wrong: an object is deleted only after a GET by name has shown each of its owners absent
//! (or replaced by a different uid), and the delete carries uid and resourceVersion
//! preconditions. Workers start only once every monitor has listed its resource, so foreground
//! deletion never finalizes an owner whose dependents have not been seen yet. Resources are
//! rediscovered periodically; new ones (CRDs) get monitors.
//!
//! Monitors decode only the type and metadata of each object
//! ([`ObjectMetadata`](crate::client::object_metadata::ObjectMetadata)), not a full
//! `DynamicObject`: the rest of the document is skipped without being allocated. They do not
//! ask for `PartialObjectMetadata`: such an event carries no kind of its own, so an apiserver
//! that leaked another resource's events into a watch would silently corrupt the graph,
//! whereas the object's own `kind` lets each monitor drop foreign kinds.
//!
//! Failure: discovery errors are retried; a failed work item is retried with per-item backoff.

pub mod graph;
pub mod queue;
mod worker;

use crate::client::informer::SharedInformers;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::Client;
use kube::api::Api;

use crate::client::object_metadata::ObjectMetadata;
use kube::runtime::watcher;
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::graph::{Graph, Identity, Observed, Work};
use self::queue::WorkQueue;
use super::resource_discovery::{DiscoveredResource, discover};

/// Configuration of the garbage collector.
#[derive(Debug, Clone)]
pub struct GarbageCollectorConfig {
    /// Parallel workers (upstream `--concurrent-gc-syncs`, 20).
    pub workers: usize,
    /// How often resources are rediscovered (upstream 30 s).
    pub discovery_period: Duration,
    /// `(group, plural)` resources never monitored (upstream ignores events).
    pub ignored_resources: Vec<(String, String)>,
}

impl Default for GarbageCollectorConfig {
    fn default() -> Self {
        Self {
            workers: 20,
            discovery_period: Duration::from_secs(30),
            ignored_resources: vec![
                (String::new(), "events".into()),
                ("events.k8s.io".into(), "events".into()),
            ],
        }
    }
}

/// Failures of the garbage collector.
#[derive(Debug, thiserror::Error)]
pub enum GarbageCollectorError {
    /// The API server's resources could not be listed.
    #[error("discovering resources: {0}")]
    Discovery(#[source] kube::Error),
}

/// State shared by the builder and the workers.
pub(crate) struct Shared {
    client: Client,
    graph: Mutex<Graph>,
    queue: WorkQueue<Work>,
    /// `(group, kind)` → resource, for resolving owner references.
    resources: RwLock<HashMap<(String, String), DiscoveredResource>>,
}

impl Shared {
    fn resolve(&self, api_version: &str, kind: &str) -> Option<DiscoveredResource> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        self.resources
            .read()
            .get(&(group.to_string(), kind.to_string()))
            .cloned()
    }

    fn enqueue(&self, work: Vec<Work>) {
        for item in work {
            self.queue.add(item);
        }
    }
}

/// One watch event, as sent by a monitor to the graph builder.
enum GraphEvent {
    Init(String),
    Apply(String, Observed),
    InitApply(String, Observed),
    InitDone(String),
    Delete(String, String),
}

/// Runs the garbage collector until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: GarbageCollectorConfig,
    cancel: CancellationToken,
) -> Result<(), GarbageCollectorError> {
    let client = informers.client();
    let shared = Arc::new(Shared {
        client: client.clone(),
        graph: Mutex::new(Graph::default()),
        queue: WorkQueue::new(),
        resources: RwLock::new(HashMap::new()),
    });
    let (events_tx, events_rx) = unbounded();
    let synced = Arc::new(AtomicBool::new(false));
    let pending: Arc<Mutex<HashSet<String>>> = Arc::default();
    let builder = tokio::spawn(build_graph(
        shared.clone(),
        events_rx,
        pending.clone(),
        synced.clone(),
    ));
    let mut monitors: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut tick = tokio::time::interval(config.discovery_period);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        match discover(&client).await {
            Ok(found) => {
                for (gv, err) in &found.failures {
                    tracing::warn!(group_version = %gv, error = %err, "discovery failed; keeping its monitors");
                }
                let resources = deletable(&found.resources, &config);
                sync_monitors(
                    &shared,
                    &resources,
                    &mut monitors,
                    &events_tx,
                    &pending,
                    &found.failures,
                    &cancel,
                );
            }
            Err(err) => tracing::warn!(error = %err, "resource discovery failed"),
        }
        if workers.is_empty() && !monitors.is_empty() {
            for _ in 0..config.workers.max(1) {
                workers.push(tokio::spawn(worker::run(
                    shared.clone(),
                    synced.clone(),
                    cancel.clone(),
                )));
            }
        }
    }
    for task in monitors.into_values().chain(workers).chain([builder]) {
        task.abort();
    }
    Ok(())
}

/// Resources the collector monitors: deletable, listable, watchable, not ignored.
fn deletable(
    resources: &[DiscoveredResource],
    config: &GarbageCollectorConfig,
) -> Vec<DiscoveredResource> {
    resources
        .iter()
        .filter(|r| r.supports(&["delete", "list", "watch"]))
        .filter(|r| {
            !config
                .ignored_resources
                .iter()
                .any(|(g, p)| *g == r.resource.group && *p == r.resource.plural)
        })
        .cloned()
        .collect()
}

fn monitor_key(r: &DiscoveredResource) -> String {
    format!("{}/{}", r.resource.api_version, r.resource.plural)
}

/// Starts monitors for new resources and stops those whose resource is gone (unless its
/// group-version merely failed discovery this time).
fn sync_monitors(
    shared: &Arc<Shared>,
    resources: &[DiscoveredResource],
    monitors: &mut HashMap<String, JoinHandle<()>>,
    events: &UnboundedSender<GraphEvent>,
    pending: &Mutex<HashSet<String>>,
    failures: &[(String, String)],
    cancel: &CancellationToken,
) {
    {
        let mut map = shared.resources.write();
        for r in resources {
            map.insert(
                (r.resource.group.clone(), r.resource.kind.clone()),
                r.clone(),
            );
        }
    }
    let wanted: HashSet<String> = resources.iter().map(monitor_key).collect();
    monitors.retain(|key, task| {
        let failed = failures
            .iter()
            .any(|(gv, _)| key.starts_with(&format!("{gv}/")));
        let keep = wanted.contains(key) || failed;
        if !keep {
            tracing::info!(resource = %key, "resource gone, stopping monitor");
            task.abort();
        }
        keep
    });
    let fresh: Vec<&DiscoveredResource> = resources
        .iter()
        .filter(|r| !monitors.contains_key(&monitor_key(r)))
        .collect();
    // All new keys are pending before any monitor can report its first list.
    pending.lock().extend(fresh.iter().map(|r| monitor_key(r)));
    for r in fresh {
        let key = monitor_key(r);
        tracing::debug!(resource = %key, "starting monitor");
        let task = tokio::spawn(monitor(
            shared.client.clone(),
            r.clone(),
            key.clone(),
            events.clone(),
            cancel.clone(),
        ));
        monitors.insert(key, task);
    }
}

/// Watches one resource's metadata and forwards the events to the builder.
async fn monitor(
    client: Client,
    resource: DiscoveredResource,
    key: String,
    events: UnboundedSender<GraphEvent>,
    cancel: CancellationToken,
) {
    let api = Api::<ObjectMetadata>::all_with(client, &resource.resource);
    let stream = watcher(api, watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    let mut failures = 0u32;
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => return,
            item = stream.next() => item,
        };
        let event = match item {
            None => return,
            Some(Err(err)) if crate::client::informer::is_undecodable(&err) => continue,
            Some(Err(err)) => {
                failures = failures.saturating_add(1);
                let delay = crate::client::informer::retry_delay(failures);
                tracing::warn!(resource = %key, error = %err, ?delay, "monitor watch failed, retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            Some(Ok(event)) => {
                failures = 0;
                event
            }
        };
        let observe = |obj: &ObjectMetadata| observed(&resource, obj);
        let message = match event {
            watcher::Event::Init => Some(GraphEvent::Init(key.clone())),
            watcher::Event::InitDone => Some(GraphEvent::InitDone(key.clone())),
            watcher::Event::Apply(obj) => observe(&obj).map(|o| GraphEvent::Apply(key.clone(), o)),
            watcher::Event::InitApply(obj) => {
                observe(&obj).map(|o| GraphEvent::InitApply(key.clone(), o))
            }
            watcher::Event::Delete(obj) => {
                observe(&obj).map(|o| GraphEvent::Delete(key.clone(), o.identity.uid))
            }
        };
        if let Some(message) = message
            && events.unbounded_send(message).is_err()
        {
            return;
        }
    }
}

/// The object as the graph sees it; `None` for objects of another kind (see the module docs).
fn observed(resource: &DiscoveredResource, obj: &ObjectMetadata) -> Option<Observed> {
    let types = obj.types.as_ref()?;
    if types.kind != resource.resource.kind || types.api_version != resource.resource.api_version {
        return None;
    }
    let meta = &obj.metadata;
    Some(Observed {
        identity: Identity {
            api_version: resource.resource.api_version.clone(),
            kind: resource.resource.kind.clone(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
        },
        owners: meta.owner_references.clone().unwrap_or_default(),
        being_deleted: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    })
}

/// The graph builder: applies monitor events to the graph in order and queues the work they
/// imply. After a relist it deletes the objects of that resource that were not listed again.
async fn build_graph(
    shared: Arc<Shared>,
    mut events: UnboundedReceiver<GraphEvent>,
    pending: Arc<Mutex<HashSet<String>>>,
    synced: Arc<AtomicBool>,
) {
    let mut members: HashMap<String, HashSet<String>> = HashMap::new();
    let mut relisting: HashMap<String, HashSet<String>> = HashMap::new();
    while let Some(event) = events.next().await {
        let work = match event {
            GraphEvent::Init(key) => {
                relisting.insert(key, HashSet::new());
                Vec::new()
            }
            GraphEvent::InitApply(key, obj) => {
                relisting
                    .entry(key.clone())
                    .or_default()
                    .insert(obj.identity.uid.clone());
                members
                    .entry(key)
                    .or_default()
                    .insert(obj.identity.uid.clone());
                shared.graph.lock().upsert(obj)
            }
            GraphEvent::Apply(key, obj) => {
                members
                    .entry(key)
                    .or_default()
                    .insert(obj.identity.uid.clone());
                shared.graph.lock().upsert(obj)
            }
            GraphEvent::Delete(key, uid) => {
                members.entry(key).or_default().remove(&uid);
                shared.graph.lock().delete(&uid)
            }
            GraphEvent::InitDone(key) => {
                let listed = relisting.remove(&key).unwrap_or_default();
                let before = members
                    .insert(key.clone(), listed.clone())
                    .unwrap_or_default();
                let mut graph = shared.graph.lock();
                let work: Vec<Work> = before
                    .difference(&listed)
                    .flat_map(|uid| graph.delete(uid))
                    .collect();
                drop(graph);
                let mut pending = pending.lock();
                pending.remove(&key);
                if pending.is_empty() && !synced.swap(true, Ordering::SeqCst) {
                    tracing::info!("garbage collector caches synced");
                }
                work
            }
        };
        shared.enqueue(work);
    }
}
