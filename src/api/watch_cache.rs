//! The watch cache: every object in memory, plus a window of recent events.
//!
//! Lists at `resourceVersion=0` and all watches are served from here, so a
//! thousand informers cost one store watch. The cache follows the store
//! with a single watch on `/registry/`; objects are decoded once, get their
//! `resourceVersion` stamped, and are shared (`Arc`) by the object map, the
//! event window and every watcher.
//!
//! Consistency: the feeder applies an event and broadcasts it under the
//! state's write lock, and a watcher snapshots (replay or initial objects)
//! and subscribes under the read lock, so a watch has no gap and no
//! duplicate. A watcher that falls behind the broadcast is closed; its
//! client re-watches from the last resourceVersion it saw, like upstream.
//! If the store watch itself fails, the cache relists and closes every
//! watcher (they would otherwise have missed events).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::RwLock;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::registry::fields;
use super::registry::resources::{self, ResourceInfo};
use super::status::{ApiError, ApiResult};
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store};

/// Events kept for watchers resuming from a recent resourceVersion.
pub const DEFAULT_WINDOW: usize = 8192;
/// Live events a watcher may fall behind by before it is closed.
const LIVE_BUFFER: usize = 4096;
/// Prefix of every API object key.
pub const REGISTRY_PREFIX: &str = "/registry/";

/// One object as the cache keeps it: its JSON (with resourceVersion), ready
/// to be spliced into responses without re-serializing, plus what
/// selectors need (labels and the resource's selectable fields), so that
/// filtering never parses the JSON. Parsed `Value` trees are ~10x larger
/// than their JSON; keeping bytes is what lets 100 000 objects fit.
#[derive(Debug)]
pub struct CachedObject {
    /// Revision of the last write (its resourceVersion).
    pub revision: Revision,
    /// The object's JSON, `metadata.resourceVersion` included.
    pub json: Bytes,
    /// `metadata.labels`.
    pub labels: Map<String, Value>,
    /// Values of the resource's selectable fields (see `registry::fields`).
    pub fields: Vec<(&'static str, String)>,
}

impl CachedObject {
    /// Builds a cached object from a parsed one whose resourceVersion is set.
    pub fn from_value(key: &str, revision: Revision, obj: &Value) -> Self {
        let labels = obj["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let fields = match resource_of_key(key) {
            Some(info) => fields::selectable(info)
                .iter()
                .map(|f| (*f, fields::field_value(info, obj, f).unwrap_or_default()))
                .collect(),
            // A custom resource: the fields every resource has; its CRD's
            // selectableFields are read from the object when asked for.
            None => ["metadata.name", "metadata.namespace"]
                .into_iter()
                .map(|f| {
                    (
                        f,
                        crate::api::selectors::object_field(obj, f).unwrap_or_default(),
                    )
                })
                .collect(),
        };
        // Upstream's field order, so that lists and watch events built from
        // these bytes read as upstream's.
        let json = Bytes::from(super::protobuf::json_order::to_vec(obj));
        CachedObject {
            revision,
            json,
            labels,
            fields,
        }
    }

    /// Parses the object.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The value of a selectable field ("" if the resource has no such field).
    pub fn field(&self, name: &str) -> Option<String> {
        self.field_str(name).map(str::to_string)
    }

    /// [`CachedObject::field`] without a copy, for filters over many objects.
    pub fn field_str(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The resource a store key belongs to (`/registry/<group>/<resource>/…`).
fn resource_of_key(key: &str) -> Option<&'static ResourceInfo> {
    let mut parts = key.strip_prefix(REGISTRY_PREFIX)?.split('/');
    let group = parts.next()?;
    let resource = parts.next()?;
    let group = if group == "core" { "" } else { group };
    resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == resource)
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted (the object is its last state).
    Deleted,
}

/// One change, as watchers see it.
#[derive(Debug)]
pub struct Change {
    /// Store revision of the change.
    pub revision: Revision,
    /// Added, modified or deleted.
    pub kind: ChangeType,
    /// Store key.
    pub key: String,
    /// The object after the change (its last state for deletes), with
    /// `metadata.resourceVersion` set to `revision`.
    pub object: Arc<CachedObject>,
    /// The object before the change, if it existed.
    pub prev: Option<Arc<CachedObject>>,
}

struct State {
    objects: BTreeMap<String, Arc<CachedObject>>,
    window: VecDeque<Arc<Change>>,
    revision: Revision,
    /// Watches from a revision at or after this one can be replayed.
    oldest: Revision,
    live: broadcast::Sender<Arc<Change>>,
}

/// The apiserver's in-memory view of the store. See the module docs.
pub struct WatchCache {
    window: usize,
    state: RwLock<State>,
    revision: watch::Sender<Revision>,
    ready: watch::Sender<bool>,
}

/// A snapshot to start a watch from, plus the live feed after it.
pub struct Subscription {
    /// Changes to send first (replayed or synthetic ADDED), in order.
    pub initial: Vec<Arc<Change>>,
    /// Live changes after `initial`.
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The cache revision the snapshot was taken at.
    pub revision: Revision,
    /// The key prefix watched: live changes carry every key and must be
    /// filtered by it.
    pub prefix: String,
}

impl Default for WatchCache {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchCache {
    /// An empty, not yet ready cache.
    pub fn new() -> Self {
        Self::with_window(DEFAULT_WINDOW)
    }

    /// A cache that keeps `window` recent events for resuming watchers.
    pub fn with_window(window: usize) -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        WatchCache {
            window: window.max(1),
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                window: VecDeque::new(),
                revision: 0,
                oldest: 0,
                live,
            }),
            revision: watch::channel(0).0,
            ready: watch::channel(false).0,
        }
    }

    /// Whether the first list has been loaded.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the first list has been loaded.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// The newest revision the cache has applied.
    pub fn revision(&self) -> Revision {
        self.state.read().revision
    }

    /// Waits (up to 3 s, like upstream) until the cache has applied `rev`.
    pub async fn wait_for(&self, rev: Revision) -> ApiResult<()> {
        let mut rx = self.revision.subscribe();
        match tokio::time::timeout(Duration::from_secs(3), rx.wait_for(|r| *r >= rev)).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                let message = format!(
                    "Too large resource version: {rev}, current: {}",
                    self.revision()
                );
                Err(ApiError::new(504, "Timeout", message).with_retry_after(1))
            }
        }
    }

    /// Current objects with keys under `prefix`, and the cache revision.
    pub fn list(
        &self,
        prefix: &str,
        filter: impl Fn(&CachedObject) -> bool,
    ) -> (Vec<Arc<CachedObject>>, Revision) {
        let state = self.state.read();
        let items = state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, v)| filter(v))
            .map(|(_, v)| v.clone())
            .collect();
        (items, state.revision)
    }

    /// How many objects under `prefix` sort after `after`, if the cache is
    /// at `revision` (else it cannot say).
    pub fn count_after(&self, prefix: &str, after: &str, revision: Revision) -> Option<usize> {
        let state = self.state.read();
        if state.revision != revision {
            return None;
        }
        let count = state
            .objects
            .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .count();
        Some(count)
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.state.read().objects.get(key).cloned()
    }

    /// Starts a watch on keys under `prefix` after `from` (None = send the
    /// current objects as ADDED first).
    pub fn subscribe(&self, prefix: &str, from: Option<Revision>) -> ApiResult<Subscription> {
        let state = self.state.read();
        let initial = match from {
            None => state
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| {
                    Arc::new(Change {
                        revision: state.revision,
                        kind: ChangeType::Added,
                        key: k.clone(),
                        object: v.clone(),
                        prev: None,
                    })
                })
                .collect(),
            Some(rev) if rev < state.oldest => {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rev} ({})",
                    state.oldest
                )));
            }
            Some(rev) => state
                .window
                .iter()
                .filter(|c| c.revision > rev && c.key.starts_with(prefix))
                .cloned()
                .collect(),
        };
        Ok(Subscription {
            initial,
            live: state.live.subscribe(),
            revision: state.revision,
            prefix: prefix.to_string(),
        })
    }

    /// Follows `store` until cancelled, relisting whenever the store watch
    /// breaks.
    pub async fn run<S: Store>(self: Arc<Self>, store: S, cancel: CancellationToken) {
        loop {
            let result = tokio::select! {
                r = self.sync_once(&store) => r,
                _ = cancel.cancelled() => return,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "watch cache lost the store watch; relisting");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn sync_once<S: Store>(&self, store: &S) -> Result<(), crate::store::StoreError> {
        let rev = store.current_revision();
        let mut objects = BTreeMap::new();
        let mut after = None;
        loop {
            let page = store
                .range(RangeRequest {
                    prefix: REGISTRY_PREFIX.into(),
                    continue_after: after.take(),
                    limit: 1000,
                    revision: Some(rev),
                })
                .await?;
            for kv in &page.kvs {
                if let Some(obj) = decode_cached(kv, kv.mod_revision) {
                    objects.insert(kv.key.clone(), obj);
                }
            }
            if !page.more {
                break;
            }
            after = page.kvs.last().map(|kv| kv.key.clone());
        }
        let mut events = store.watch(REGISTRY_PREFIX, rev)?;
        {
            let mut state = self.state.write();
            state.objects = objects;
            state.window.clear();
            state.revision = rev;
            state.oldest = rev;
            // Dropping the old sender ends every existing watch: they may
            // have missed events between the failure and this relist.
            state.live = broadcast::channel(LIVE_BUFFER).0;
        }
        self.revision.send_replace(rev);
        self.ready.send_replace(true);
        tracing::info!(revision = rev, "watch cache synced");
        while let Some(event) = events.next().await {
            self.apply(event?);
        }
        Err(crate::store::StoreError::Unavailable(
            "store watch ended".into(),
        ))
    }

    fn apply(&self, event: crate::store::Event) {
        let revision = event.revision;
        // Decode outside the lock: readers and watchers are not held up by
        // JSON parsing.
        let new = match event.kind {
            EventKind::Put => event
                .value
                .as_ref()
                .and_then(|kv| decode_cached(kv, revision)),
            EventKind::Delete => event
                .prev
                .as_ref()
                .and_then(|kv| decode_cached(kv, revision)),
        };
        let mut state = self.state.write();
        let prev = state.objects.get(&event.key).cloned();
        let change = match (event.kind, new) {
            (EventKind::Put, Some(obj)) => {
                state.objects.insert(event.key.clone(), obj.clone());
                let kind = if prev.is_some() {
                    ChangeType::Modified
                } else {
                    ChangeType::Added
                };
                Some(Change {
                    revision,
                    kind,
                    key: event.key,
                    object: obj,
                    prev,
                })
            }
            (EventKind::Delete, last) => {
                state.objects.remove(&event.key);
                last.or_else(|| prev.clone()).map(|object| Change {
                    revision,
                    kind: ChangeType::Deleted,
                    key: event.key,
                    object,
                    prev,
                })
            }
            (EventKind::Put, None) => {
                tracing::warn!(key = %event.key, revision, "undecodable object in store; not cached");
                None
            }
        };
        if let Some(change) = change {
            let change = Arc::new(change);
            state.window.push_back(change.clone());
            while state.window.len() > self.window {
                if let Some(old) = state.window.pop_front() {
                    state.oldest = old.revision;
                }
            }
            let _ = state.live.send(change);
        }
        state.revision = revision;
        drop(state);
        self.revision.send_replace(revision);
    }
}

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode(kv: &KeyValue, revision: Revision) -> Option<Arc<Value>> {
    let mut obj: Value = serde_json::from_slice(&kv.value).ok()?;
    super::object::set_meta(&mut obj, "resourceVersion", revision.to_string());
    Some(Arc::new(obj))
}

/// Decodes a stored object into its cached form.
pub fn decode_cached(kv: &KeyValue, revision: Revision) -> Option<Arc<CachedObject>> {
    let obj = decode(kv, revision)?;
    Some(Arc::new(CachedObject::from_value(&kv.key, revision, &obj)))
}
