//! Event handlers on shared informers for the core controllers, plus the glue that turns
//! changes into reconcile requests for an applier.
//!
//! Each controller reconciles one primary kind but reads several others (pods for endpoints,
//! leases for node health…). Every kind comes from the process's
//! [`SharedInformers`](crate::client::informer::SharedInformers): one watch and one cache per
//! kind, whatever the number of controllers reading it. [`spawn`] registers a handler task on
//! an informer; the handler maps touched objects to [`ObjectRef`]s of the primary kind and
//! sends them down an unbounded channel that feeds [`kube::runtime::applier`] ([`drive`]).
//! Because the handlers run in tasks of their own, a reconciler can wait for the caches
//! without deadlocking the applier.

use std::convert::Infallible;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{StreamExt, TryFuture};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::Resource;
use kube::runtime::applier;
use kube::runtime::controller::{Action, Config, Error as ApplierError};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::client::informer::Change;
use crate::client::informer::Informer;

/// Runs `on_change` for every change of `informer` (starting with its current content) in a
/// task of its own, until `cancel` fires; returns the informer's store and the task.
///
/// `on_change` runs after the shared store has applied the change and is handed the store,
/// so it can read a view at least as new (for instance to map an object to the primary
/// objects depending on it).
pub fn spawn<K, F>(
    informer: &Informer<K>,
    cancel: CancellationToken,
    mut on_change: F,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    F: FnMut(&Change<K>, &Store<K>) + Send + 'static,
{
    let store = informer.store();
    let hook_store = store.clone();
    let mut changes = informer.subscribe();
    let task = tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                () = cancel.cancelled() => break,
                change = changes.next() => change,
            };
            match change {
                Some(change) => on_change(&change, &hook_store),
                None => break,
            }
        }
    });
    (store, task)
}

/// The object a change touched (added, updated or deleted); `Synced` touches none.
pub fn touched<K>(change: &Change<K>) -> Option<&K> {
    change.object().map(|o| &**o)
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
    pub fn self_trigger(&self) -> impl FnMut(&Change<K>, &Store<K>) + Send + 'static
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
            res = crate::client::informer::wait_synced(store) => if res.is_err() { return false },
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
