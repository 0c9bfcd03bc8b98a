//! A client-go style informer on top of kube-runtime: a watcher feeding a
//! reflector store, plus a stream of *changes* (added, updated with the
//! previous version, deleted) like the add/update/delete handlers upstream
//! controllers register. The old version of an updated object is what makes
//! upstream's handlers (label changes, controllerRef moves, readiness
//! transitions) portable.
//!
//! Watch failures are logged and retried with exponential backoff (500ms
//! doubling to 30s); an event the client cannot decode (a malformed or
//! foreign object — kube keeps the watch open past it) is skipped without
//! backoff, so one bad object cannot stall the feed. After a relist (e.g. a 410 Gone) the new list is diffed against the
//! previous store so objects deleted while the watch was down are reported as
//! deletions, as client-go's `Replace` does. The stream of changes is emitted
//! only after the store holds them, so a reconcile triggered by a change
//! always sees at least that version.

use kube::runtime::WatchStreamExt as _;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::Api;
use kube::core::Resource;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};

/// One observed change of a watched object.
#[derive(Debug, Clone)]
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
}

/// Starts watching `api`: returns the store (filled once the first list
/// completes) and the stream of changes, which must be polled for the store
/// to fill.
pub fn change_feed<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (Store<K>, impl Stream<Item = Change<K>>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let mut state = State {
        reader: reader.clone(),
        writer,
        relisted: Vec::new(),
    };
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let mut failures = 0u32;
    // managedFields are never read by controllers and are a large share of
    // every cached object.
    let changes = watcher::watcher(api, config)
        .modify(|o| o.meta_mut().managed_fields = None)
        .then(move |item| {
            let delay = match &item {
                Ok(_) => {
                    failures = 0;
                    None
                }
                Err(err) if is_undecodable(err) => {
                    tracing::debug!(kind = %kind, error = %err, "skipping undecodable watch event");
                    None
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    let delay = retry_delay(failures);
                    tracing::warn!(kind = %kind, error = %err, ?delay, "watch failed, retrying");
                    Some(delay)
                }
            };
            async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                item
            }
        })
        .flat_map(move |event| match event {
            Ok(event) => stream::iter(state.apply(event)),
            Err(_) => stream::iter(Vec::new()),
        });
    (reader, changes)
}

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

/// Whether a watch error is one event the client could not decode: kube
/// reports such a line as a serde error, or, when it parses as a
/// (fully defaulted) `Status`, as an API error without code or reason. The
/// watch itself stays open.
pub fn is_undecodable(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::WatchFailed(kube::Error::SerdeError(_)) => true,
        watcher::Error::WatchFailed(kube::Error::Api(status)) => {
            status.code == 0 && status.reason.is_empty()
        }
        _ => false,
    }
}

/// Delay before polling a failed watch again: 500ms doubling to 30s.
fn retry_delay(failures: u32) -> Duration {
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
