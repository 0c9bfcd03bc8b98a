//! Shared informers: one list+watch per resource per process, one decoded
//! copy of each object, many consumers.
//!
//! This is client-go's `SharedInformerFactory` built on kube-runtime's
//! watcher and reflector store. Every controller, the scheduler and the
//! node-side components ask a [`SharedInformers`] for the kinds they read;
//! the first request starts one watch, later ones share it. Objects live
//! once, as `Arc<K>` in one [`Store`], and consumers get a stream of
//! [`Change`]s carrying those same `Arc`s. With eleven components reading
//! pods, this is the difference between one copy of every pod and eleven.
//!
//! Components still talk to the apiserver over HTTPS like any client; the
//! point is one watch and one decoded copy per resource, not a back door
//! into the store.
//!
//! # Changes, not raw watch events
//!
//! Consumers see what client-go's event handlers see: added, updated (with
//! the previous version, which upstream's handlers need for label changes,
//! controllerRef moves and readiness transitions) and deleted. After a
//! relist (a 410 Gone, a broken watch) the new list is diffed against the
//! store, so objects deleted while the watch was down are reported as
//! deletions, like client-go's `Replace`. Each completed list ends with
//! [`Change::Synced`].
//!
//! A consumer that subscribes late first receives the store's current
//! content as `Added` changes (and `Synced` if the first list is done), as
//! `AddEventHandler` replays upstream. A change is sent only after the store
//! holds it, so a handler that reads the store sees at least that version.
//!
//! # Failure
//!
//! Watch failures are logged and retried with exponential backoff (500 ms
//! doubling to 30 s). An event the client cannot decode is skipped without
//! backoff, so one malformed object cannot stall the feed. The watch tasks
//! end when the factory's cancellation token fires.
//!
//! # Memory
//!
//! managedFields are dropped at decode time: no in-process component reads
//! them and they are a large share of every object. A consumer's channel
//! is unbounded, as client-go's per-listener buffer is: the watch must never
//! wait on its slowest consumer, and an entry is only an `Arc`.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::Api;
use kube::core::Resource;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// One observed change of a watched object.
#[derive(Debug)]
pub enum Change<K> {
    /// The object appeared.
    Added(Arc<K>),
    /// The object changed from `old` to `new`.
    Updated {
        /// The version the store held before.
        old: Arc<K>,
        /// The version it holds now.
        new: Arc<K>,
    },
    /// The object is gone; this is its last known state.
    Deleted(Arc<K>),
    /// A full list has been applied: the store holds every object.
    Synced,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Added(o) => Change::Added(o.clone()),
            Change::Updated { old, new } => Change::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(o) => Change::Deleted(o.clone()),
            Change::Synced => Change::Synced,
        }
    }
}

impl<K> Change<K> {
    /// The object as it is now (or was last seen, for a deletion); `None`
    /// for [`Change::Synced`].
    pub fn object(&self) -> Option<&Arc<K>> {
        match self {
            Change::Added(o) | Change::Deleted(o) => Some(o),
            Change::Updated { new, .. } => Some(new),
            Change::Synced => None,
        }
    }

    /// Whether the object went away.
    pub fn is_deleted(&self) -> bool {
        matches!(self, Change::Deleted(_))
    }
}

/// The factory: one informer per resource kind and selector, created on
/// first use and shared by every later user. Cheap to clone.
#[derive(Clone)]
pub struct SharedInformers {
    inner: Arc<FactoryInner>,
}

struct FactoryInner {
    client: kube::Client,
    cancel: CancellationToken,
    informers: Mutex<HashMap<InformerKey, Box<dyn Any + Send + Sync>>>,
}

/// A kind, the namespace (None: all) and the selectors of its watch:
/// informers that watch different sets cannot be shared.
type InformerKey = (TypeId, Option<String>, Option<String>, Option<String>);

impl SharedInformers {
    /// A factory whose watches run until `cancel` fires.
    pub fn new(client: kube::Client, cancel: CancellationToken) -> Self {
        Self {
            inner: Arc::new(FactoryInner {
                client,
                cancel,
                informers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The client the informers watch with, for the consumers' writes.
    pub fn client(&self) -> kube::Client {
        self.inner.client.clone()
    }

    /// The informer of every `K` in every namespace.
    pub fn get<K>(&self) -> Informer<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        self.get_with(watcher::Config::default())
    }

    /// The informer of the `K`s that `config`'s label and field selectors
    /// match, in every namespace.
    pub fn get_with<K>(&self, config: watcher::Config) -> Informer<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        self.informer(None, config, Api::all)
    }

    /// The informer of every `K` in `namespace`.
    pub fn get_namespaced<K>(&self, namespace: &str) -> Informer<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        self.informer(Some(namespace), watcher::Config::default(), |client| {
            Api::namespaced(client, namespace)
        })
    }

    fn informer<K>(
        &self,
        namespace: Option<&str>,
        config: watcher::Config,
        api: impl FnOnce(kube::Client) -> Api<K>,
    ) -> Informer<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        let key = (
            TypeId::of::<K>(),
            namespace.map(str::to_string),
            config.label_selector.clone(),
            config.field_selector.clone(),
        );
        let mut informers = self.inner.informers.lock();
        if let Some(existing) = informers
            .get(&key)
            .and_then(|i| i.downcast_ref::<Informer<K>>())
        {
            return existing.clone();
        }
        let informer = Informer::start(
            api(self.inner.client.clone()),
            config,
            self.inner.cancel.clone(),
        );
        informers.insert(key, Box::new(informer.clone()));
        informer
    }
}

/// One shared watch of a kind: its store and its subscribers.
pub struct Informer<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    hub: Arc<Mutex<Hub<K>>>,
}

impl<K> Clone for Informer<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            hub: self.hub.clone(),
        }
    }
}

/// The writer side, behind one lock so that a subscriber's replay and the
/// live changes neither overlap nor leave a gap.
struct Hub<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    state: State<K>,
    subscribers: Vec<UnboundedSender<Change<K>>>,
    synced: bool,
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    fn start(api: Api<K>, config: watcher::Config, cancel: CancellationToken) -> Self {
        let (reader, writer) = reflector::store();
        let hub = Arc::new(Mutex::new(Hub {
            state: State {
                reader: reader.clone(),
                writer,
                relisted: Vec::new(),
            },
            subscribers: Vec::new(),
            synced: false,
        }));
        tokio::spawn(run_watch(api, config, hub.clone(), cancel));
        Self { store: reader, hub }
    }

    /// The shared cache (filled once the first list completes).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The store and a new subscription.
    pub fn feed(&self) -> (Store<K>, UnboundedReceiver<Change<K>>) {
        (self.store(), self.subscribe())
    }

    /// A stream of changes from now on, starting with the current content
    /// as `Added` (and `Synced` once the first list is done).
    pub fn subscribe(&self) -> UnboundedReceiver<Change<K>> {
        let (tx, rx) = unbounded();
        let mut hub = self.hub.lock();
        if hub.synced {
            for obj in self.store.state() {
                let _ = tx.unbounded_send(Change::Added(obj));
            }
            let _ = tx.unbounded_send(Change::Synced);
        }
        hub.subscribers.push(tx);
        rx
    }
}

async fn run_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    hub: Arc<Mutex<Hub<K>>>,
    cancel: CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let events = watcher::watcher(api, config).modify(|o| o.meta_mut().managed_fields = None);
    let mut events = std::pin::pin!(events);
    let mut failures = 0u32;
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => break,
            item = events.next() => item,
        };
        match item {
            None => break,
            Some(Ok(event)) => {
                failures = 0;
                let mut hub = hub.lock();
                let is_list_end = matches!(event, Event::InitDone);
                let mut changes = hub.state.apply(event);
                tracing::trace!(%kind, changes = changes.len(), subscribers = hub.subscribers.len(), "informer event");
                if is_list_end {
                    tracing::debug!(%kind, objects = hub.state.reader.len(), "informer listed");
                    hub.synced = true;
                    changes.push(Change::Synced);
                }
                // A consumer that went away has dropped its receiver.
                hub.subscribers
                    .retain(|tx| changes.iter().all(|c| tx.unbounded_send(c.clone()).is_ok()));
            }
            Some(Err(err)) if is_undecodable(&err) => {
                tracing::debug!(%kind, error = %err, "skipping undecodable watch event");
            }
            Some(Err(err)) => {
                failures = failures.saturating_add(1);
                let delay = retry_delay(failures);
                tracing::warn!(%kind, error = %err, ?delay, "watch failed, retrying");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// The store plus what a relist in progress has seen.
struct State<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    reader: Store<K>,
    writer: Writer<K>,
    relisted: Vec<ObjectRef<K>>,
}

impl<K> State<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    fn apply(&mut self, event: Event<K>) -> Vec<Change<K>> {
        match event {
            Event::Apply(obj) => {
                let key = ObjectRef::from_obj(&obj);
                let old = self.reader.get(&key);
                self.writer.apply_watcher_event(&Event::Apply(obj));
                self.reader
                    .get(&key)
                    .map(|new| change(old, new))
                    .into_iter()
                    .collect()
            }
            Event::Delete(obj) => {
                // The object of the delete event is its final state, which
                // upstream's delete handlers get too.
                self.writer.apply_watcher_event(&Event::Delete(obj.clone()));
                vec![Change::Deleted(Arc::new(obj))]
            }
            Event::Init => {
                self.relisted.clear();
                self.writer.apply_watcher_event(&Event::Init);
                Vec::new()
            }
            Event::InitApply(obj) => {
                self.relisted.push(ObjectRef::from_obj(&obj));
                self.writer.apply_watcher_event(&Event::InitApply(obj));
                Vec::new()
            }
            Event::InitDone => self.finish_relist(),
        }
    }

    /// Swaps in the relisted objects and reports the difference to what the
    /// store held before.
    fn finish_relist(&mut self) -> Vec<Change<K>> {
        let mut before: HashMap<ObjectRef<K>, Arc<K>> = self
            .reader
            .state()
            .into_iter()
            .map(|o| (ObjectRef::from_obj(&*o), o))
            .collect();
        self.writer.apply_watcher_event(&Event::InitDone);
        let mut out = Vec::new();
        for key in std::mem::take(&mut self.relisted) {
            if let Some(new) = self.reader.get(&key) {
                out.push(change(before.remove(&key), new));
            }
        }
        out.extend(before.into_values().map(Change::Deleted));
        out
    }
}

/// Waits until `store` holds its first full list; `Err` if its writer is
/// gone.
///
/// kube-runtime's `Store::wait_until_ready` keeps only the waker of the last
/// task that polled it (a oneshot receiver behind a mutex), so with several
/// tasks waiting on one shared store all but one may sleep forever. Here a
/// waiter re-checks readiness on a short timer instead: the wait happens
/// once per consumer start, so the polling costs nothing measurable.
pub async fn wait_synced<K>(store: &Store<K>) -> Result<(), reflector::store::WriterDropped>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    loop {
        if let Some(result) = futures::FutureExt::now_or_never(store.wait_until_ready()) {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a watch error is one event the client could not decode: kube
/// reports such a line as a serde error, or, when it parses as a (fully
/// defaulted) `Status`, as an API error without code or reason. The watch
/// itself stays open.
pub fn is_undecodable(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::WatchFailed(kube::Error::SerdeError(_)) => true,
        watcher::Error::WatchFailed(kube::Error::Api(status)) => {
            status.code == 0 && status.reason.is_empty()
        }
        _ => false,
    }
}

/// Delay before polling a failed watch again: 500 ms doubling to 30 s.
pub fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(6);
    Duration::from_millis(500u64 << doublings).min(Duration::from_secs(30))
}

fn change<K>(old: Option<Arc<K>>, new: Arc<K>) -> Change<K> {
    match old {
        Some(old) => Change::Updated { old, new },
        None => Change::Added(new),
    }
}

/// The `namespace/name` key of an object (client-go's `MetaNamespaceKey`).
pub fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(name: &str, rv: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn state() -> State<ConfigMap> {
        let (reader, writer) = reflector::store();
        State {
            reader,
            writer,
            relisted: Vec::new(),
        }
    }

    fn names(changes: &[Change<ConfigMap>]) -> Vec<String> {
        let mut out: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Added(o) => format!("+{}", key_of(&**o)),
                Change::Updated { old, new } => format!(
                    "~{}@{}>{}",
                    key_of(&**new),
                    old.metadata.resource_version.as_deref().unwrap_or_default(),
                    new.metadata.resource_version.as_deref().unwrap_or_default()
                ),
                Change::Deleted(o) => format!("-{}", key_of(&**o)),
                Change::Synced => "synced".into(),
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn relist_reports_adds_updates_and_missed_deletions() {
        let mut s = state();
        s.apply(Event::Init);
        s.apply(Event::InitApply(cm("a", "1")));
        s.apply(Event::InitApply(cm("b", "1")));
        assert!(
            s.reader.is_empty(),
            "store fills only when the list is complete"
        );
        assert_eq!(names(&s.apply(Event::InitDone)), ["+ns/a", "+ns/b"]);
        // The watch breaks; "b" is deleted meanwhile and "a" changes.
        s.apply(Event::Init);
        s.apply(Event::InitApply(cm("a", "2")));
        s.apply(Event::InitApply(cm("c", "2")));
        assert_eq!(
            names(&s.apply(Event::InitDone)),
            ["+ns/c", "-ns/b", "~ns/a@1>2"]
        );
        assert_eq!(s.reader.len(), 2);
    }

    #[test]
    fn undecodable_events_are_told_apart_from_broken_watches() {
        let blank = kube::core::Status::failure("", "");
        let blank = kube::core::Status { code: 0, ..blank };
        assert!(is_undecodable(&watcher::Error::WatchFailed(
            kube::Error::Api(Box::new(blank))
        )));
        let gone = kube::core::Status::failure("too old", "Expired").with_code(410);
        assert!(!is_undecodable(&watcher::Error::WatchFailed(
            kube::Error::Api(Box::new(gone))
        )));
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(3), Duration::from_secs(2));
        assert_eq!(retry_delay(50), Duration::from_secs(30));
    }

    #[test]
    fn watch_events_carry_the_previous_version() {
        let mut s = state();
        s.apply(Event::Init);
        s.apply(Event::InitDone);
        assert_eq!(names(&s.apply(Event::Apply(cm("a", "5")))), ["+ns/a"]);
        assert_eq!(names(&s.apply(Event::Apply(cm("a", "6")))), ["~ns/a@5>6"]);
        assert_eq!(names(&s.apply(Event::Delete(cm("a", "7")))), ["-ns/a"]);
        assert!(s.reader.is_empty());
    }
}
