//! The controller loop: shared informers feeding kube-runtime's `applier`.
//!
//! kube-runtime's `Controller` builder cannot share one watch between the trigger stream and
//! a cache the reconciler reads (that needs unstable features), so this module builds the
//! same pipeline by hand: every watched type comes from the process's shared informers,
//! whose store is the controller's cache and whose changes are mapped to reconcile requests
//! for the owning objects. The `applier` then guarantees that one object is never reconciled
//! concurrently, debounces bursts, and schedules requeues.
//!
//! Every completed list (the first one and every relist) triggers a reconcile of every main
//! object once the new list is in place.
//! Reconcile failures are retried per object with exponential backoff, reset on success.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{Future, ready};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryFutureExt};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::Resource;
use kube::runtime::Config as ApplierConfig;
use kube::runtime::controller::{Action, ReconcileRequest, applier};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::utils::CancelableJoinHandle;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::error::ControllerError;
use crate::client::informer::{Change, Informer};

/// How a controller loop runs.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Name used in logs and spans (e.g. `job-controller`).
    pub name: &'static str,
    /// Maximum reconciles running at once (never two for the same object).
    pub concurrency: u16,
    /// Trailing-edge debounce for bursts of triggers on one object.
    pub debounce: Duration,
    /// First retry delay after a failed reconcile; doubles per consecutive failure.
    pub retry_base: Duration,
    /// Upper bound for the retry delay.
    pub retry_max: Duration,
    /// How long in-flight reconciles may finish after cancellation.
    pub shutdown_grace: Duration,
}

type Requests<K> = BoxStream<'static, ObjectRef<K>>;

/// Reflectors plus trigger streams for one controller whose main type is `K`.
pub struct Runner<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    store: Store<K>,
    streams: Vec<Requests<K>>,
}

fn all_refs<K>(store: &Store<K>) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

impl<K> Runner<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Reconciles the objects of `informer`; `on_delete` runs for every observed deletion.
    pub fn new(informer: &Informer<K>, on_delete: impl Fn(&K) + Send + Sync + 'static) -> Self {
        let (reader, changes) = informer.feed();
        let all = reader.clone();
        let stream = changes
            .map(move |change| {
                let refs = match change {
                    Change::Added(obj) | Change::Updated { new: obj, .. } => {
                        vec![ObjectRef::from_obj(&*obj)]
                    }
                    Change::Deleted(obj) => {
                        on_delete(&obj);
                        Vec::new()
                    }
                    Change::Synced => all_refs(&all),
                };
                stream::iter(refs)
            })
            .flatten()
            .boxed();
        Runner {
            store: reader,
            streams: vec![stream],
        }
    }

    /// The cache of main objects.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Follows a related type; `mapper(obj, deleted)` names the main objects to reconcile.
    pub fn watch<C>(
        &mut self,
        informer: &Informer<C>,
        mapper: impl Fn(&C, bool) -> Vec<ObjectRef<K>> + Send + Sync + 'static,
    ) -> Store<C>
    where
        C: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let (reader, changes) = informer.feed();
        let all = self.store.clone();
        let stream = changes
            .map(move |change| {
                let refs = match change {
                    Change::Added(obj) | Change::Updated { new: obj, .. } => mapper(&obj, false),
                    Change::Deleted(obj) => mapper(&obj, true),
                    Change::Synced => all_refs(&all),
                };
                stream::iter(refs)
            })
            .flatten()
            .boxed();
        self.streams.push(stream);
        reader
    }

    /// Adds an arbitrary trigger stream (e.g. a periodic resync).
    pub fn trigger(&mut self, requests: Requests<K>) {
        self.streams.push(requests);
    }

    /// Runs the loop until `cancel` fires, then lets in-flight reconciles finish (bounded by
    /// `shutdown_grace`).
    pub async fn run<Ctx, F, Fut>(
        self,
        config: LoopConfig,
        ctx: Arc<Ctx>,
        cancel: CancellationToken,
        reconcile: F,
    ) where
        Ctx: Send + Sync + 'static,
        F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, ControllerError>> + Send + 'static,
    {
        let queue = stream::select_all(self.streams)
            .map(|r| Ok::<_, Infallible>(ReconcileRequest::from(r)))
            .take_until(cancel.clone().cancelled_owned());
        let failures = Arc::new(Failures::default());
        let on_error = failures.clone();
        let reconcile = Arc::new(reconcile);
        let (name, base, max) = (config.name, config.retry_base, config.retry_max);
        let applier_config = ApplierConfig::default()
            .concurrency(config.concurrency)
            .debounce(config.debounce);
        let pipeline = applier(
            move |obj: Arc<K>, ctx: Arc<Ctx>| {
                let key = ObjectRef::from_obj(obj.as_ref()).to_string();
                let span = tracing::info_span!("reconcile", controller = name, object = %key);
                let (failures, reconcile) = (failures.clone(), reconcile.clone());
                let work = reconcile(obj, ctx).inspect_ok(move |_| failures.reset(&key));
                CancelableJoinHandle::spawn(work.instrument(span), &tokio::runtime::Handle::current())
            },
            move |obj: Arc<K>, error: &ControllerError, _ctx: Arc<Ctx>| {
                let key = ObjectRef::from_obj(obj.as_ref()).to_string();
                let delay = on_error.next_delay(&key, base, max);
                tracing::warn!(controller = name, object = %key, %error, ?delay, "reconcile failed");
                Action::requeue(delay)
            },
            ctx,
            self.store,
            queue,
            applier_config,
        )
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(controller = name, %error, "applier");
            }
            ready(())
        });
        let grace = config.shutdown_grace;
        tokio::select! {
            () = pipeline => {}
            () = async { cancel.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(controller = name, "shutdown grace period over; abandoning reconciles");
            }
        }
    }
}

/// Consecutive failures per object, for exponential retry delays.
#[derive(Default)]
struct Failures {
    counts: Mutex<HashMap<String, u32>>,
}

impl Failures {
    fn reset(&self, key: &str) {
        self.counts.lock().remove(key);
    }

    fn next_delay(&self, key: &str, base: Duration, max: Duration) -> Duration {
        let mut counts = self.counts.lock();
        let n = counts.entry(key.to_string()).or_insert(0);
        let delay = base.saturating_mul(1u32 << (*n).min(20)).min(max);
        *n = n.saturating_add(1);
        delay
    }
}

/// Waits until a cache has finished its first list; fails if its watch was torn down.
pub async fn cache_ready<C>(store: &Store<C>, what: &'static str) -> Result<(), ControllerError>
where
    C: Resource + Clone + 'static,
    C::DynamicType: std::hash::Hash + Eq + Clone,
{
    crate::client::informer::wait_synced(store)
        .await
        .map_err(|_| ControllerError::CacheClosed(what))
}

/// The object ref of a namespaced object by name.
pub fn object_ref<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_per_failure_and_reset_on_success() {
        let f = Failures::default();
        let (base, max) = (Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(f.next_delay("a", base, max), Duration::from_millis(100));
        assert_eq!(f.next_delay("a", base, max), Duration::from_millis(200));
        assert_eq!(f.next_delay("a", base, max), Duration::from_millis(350));
        assert_eq!(f.next_delay("b", base, max), Duration::from_millis(100));
        f.reset("a");
        assert_eq!(f.next_delay("a", base, max), Duration::from_millis(100));
    }
}
