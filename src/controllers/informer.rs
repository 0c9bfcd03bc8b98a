//! Informers for the core controllers: a watcher feeding a reflector store, driven by its own
//! task, plus the glue that turns watch events into reconcile requests for an applier.
//!
//! Each controller reconciles one primary kind but reads several others (pods for endpoints,
//! leases for node health…). kube-runtime's `Controller` builder can only watch secondary kinds
//! through its own watchers and cannot expose their stores without unstable features, so the
//! controllers here build the same pipeline by hand: every kind gets exactly one
//! watcher → reflector task ([`spawn`]), whose event hook maps touched objects to
//! [`ObjectRef`]s of the primary kind and sends them down an unbounded channel that feeds
//! [`kube::runtime::applier`] ([`drive`]). Because the stores are driven by independent tasks,
//! a reconciler can wait for them without deadlocking the applier.
//!
//! Failure: watch errors are logged and retried with exponential backoff (a 410 Gone restarts
//! with a fresh list, which the reflector turns into a consistent store); events that cannot be
//! decoded are skipped without backoff. The tasks end only when the cancellation token fires.

use std::convert::Infallible;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{StreamExt, TryFuture};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::{Action, Config, Error as ApplierError};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, applier, watcher};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Spawns a watcher → reflector task for `api` and returns the store it fills.
///
/// `on_event` runs after the store has applied each event and is handed the store, so it can
/// read a consistent view (for instance to map an object to the primary objects depending on it).
pub fn spawn<K, F>(
    api: Api<K>,
    config: watcher::Config,
    cancel: CancellationToken,
    mut on_event: F,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    F: FnMut(&watcher::Event<K>, &Store<K>) + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let hook_reader = reader.clone();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    // managedFields are never read by controllers and are a large share of
    // every cached object.
    let stream = watcher(api, config)
        .modify(|o| o.meta_mut().managed_fields = None)
        .reflect(writer);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut failures = 0u32;
        loop {
            let item = tokio::select! {
                () = cancel.cancelled() => break,
                item = stream.next() => item,
            };
            match item {
                Some(Ok(event)) => {
                    failures = 0;
                    on_event(&event, &hook_reader);
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
                None => break,
            }
        }
    });
    (reader, task)
}

/// True for a watch event the client could not decode. The watch itself is intact (kube's
/// watcher keeps the stream), so the event is skipped without the backoff reserved for broken
/// connections: one malformed or foreign object must not slow the informer down.
///
/// kube reports a line that fails to decode as an event but parses as a (fully defaulted)
/// `Status` as an API error with code 0; a genuine error status always carries a code.
pub fn is_undecodable(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::WatchFailed(kube::Error::SerdeError(_)) => true,
        watcher::Error::WatchFailed(kube::Error::Api(status)) => {
            status.code == 0 && status.reason.is_empty()
        }
        _ => false,
    }
}

/// Delay before re-polling a failed watch: 500 ms doubling to 30 s, like kube-runtime's
/// default backoff.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.saturating_sub(1).min(6)))
        .min(Duration::from_secs(30))
}

/// The objects an event touched (applied, listed or deleted); `Init`/`InitDone` touch none.
pub fn touched<K>(event: &watcher::Event<K>) -> Option<&K> {
    match event {
        watcher::Event::Apply(obj)
        | watcher::Event::InitApply(obj)
        | watcher::Event::Delete(obj) => Some(obj),
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// A channel of reconcile requests for the primary kind `K`.
pub struct Queue<K: Resource> {
    /// Cloned into every informer hook that triggers reconciles.
    pub sender: UnboundedSender<ObjectRef<K>>,
    receiver: UnboundedReceiver<ObjectRef<K>>,
}

impl<K: Resource> Queue<K>
where
    K::DynamicType: Default + Eq + Hash + Clone,
{
    /// An empty queue.
    pub fn new() -> Self {
        let (sender, receiver) = unbounded();
        Self { sender, receiver }
    }

    /// Returns a hook that enqueues every object an event of the primary kind touched.
    pub fn self_trigger(&self) -> impl FnMut(&watcher::Event<K>, &Store<K>) + Send + 'static
    where
        K: Send + Sync + 'static,
        K::DynamicType: Send + Sync,
    {
        let sender = self.sender.clone();
        move |event, _| {
            if let Some(obj) = touched(event) {
                let _ = sender.unbounded_send(ObjectRef::from_obj(obj));
            }
        }
    }
}

impl<K: Resource> Default for Queue<K>
where
    K::DynamicType: Default + Eq + Hash + Clone,
{
    fn default() -> Self {
        Self::new()
    }
}

/// Waits until every store has seen its first full list, or the token fires (then `false`).
pub async fn wait_ready<K>(stores: &[&Store<K>], cancel: &CancellationToken) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    for store in stores {
        tokio::select! {
            () = cancel.cancelled() => return false,
            res = store.wait_until_ready() => if res.is_err() { return false },
        }
    }
    true
}

/// Runs `reconcile` over the requests of `queue` until the token fires.
///
/// Reconciler failures are logged (the error policy decides the retry); requests for objects
/// that vanished from the store are dropped, since deletions are handled by informer hooks.
pub async fn drive<K, Ctx, Fut>(
    store: Store<K>,
    queue: Queue<K>,
    reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action,
    ctx: Arc<Ctx>,
    config: Config,
    cancel: CancellationToken,
) where
    K: Clone + Resource + Debug + Send + Sync + 'static,
    K::DynamicType: Debug + Eq + Hash + Clone + Unpin,
    Fut: TryFuture<Ok = Action> + Unpin,
    Fut::Error: std::error::Error + 'static,
{
    let requests = queue.receiver.map(Ok::<_, Infallible>);
    let results = applier(reconcile, error_policy, ctx, store, requests, config);
    let mut results = std::pin::pin!(results);
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => break,
            item = results.next() => item,
        };
        match item {
            None => break,
            Some(Ok(_)) | Some(Err(ApplierError::ObjectNotFound(_))) => {}
            Some(Err(ApplierError::ReconcilerFailed(err, obj))) => {
                tracing::warn!(object = %obj, error = %err, "reconcile failed");
            }
            Some(Err(err)) => tracing::warn!(error = %err, "applier error"),
        }
    }
}

/// Per-object exponential backoff for failed reconciles: 100 ms doubling up to `max`.
///
/// Upstream workqueues rate-limit per key the same way; a fixed delay would either hammer the
/// apiserver or make transient conflicts slow to heal.
#[derive(Default)]
pub struct Backoff {
    failures: parking_lot::Mutex<std::collections::HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure for `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &str, max: Duration) -> Duration {
        let mut failures = self.failures.lock();
        let count = failures.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        let exp = (*count - 1).min(20);
        Duration::from_millis(100u64.saturating_mul(1 << exp)).min(max)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_retry_delay_grows_to_thirty_seconds() {
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(2), Duration::from_secs(1));
        assert_eq!(retry_delay(50), Duration::from_secs(30));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let backoff = Backoff::default();
        let max = Duration::from_secs(1);
        assert_eq!(backoff.next_delay("a", max), Duration::from_millis(100));
        assert_eq!(backoff.next_delay("a", max), Duration::from_millis(200));
        assert_eq!(backoff.next_delay("b", max), Duration::from_millis(100));
        for _ in 0..10 {
            backoff.next_delay("a", max);
        }
        assert_eq!(backoff.next_delay("a", max), max);
        backoff.reset("a");
        assert_eq!(backoff.next_delay("a", max), Duration::from_millis(100));
    }
}
