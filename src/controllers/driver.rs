//! Runs a reconciler over a stream of triggers with kube-runtime's
//! `applier`: bounded concurrency, optional debounce, never two reconciles
//! of one object at once, per-object exponential retry after failures, and a
//! graceful stop once the cancellation token fires (in-flight reconciles
//! finish, nothing new starts).
//!
//! The triggers are built by each controller from its change feeds
//! streams, which is what lets it port upstream's event handlers (pod added,
//! updated from old to new, deleted) instead of kube-runtime's
//! owner-reference-only mapping.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use kube::core::Resource;
use kube::runtime::controller::{self, Action, ReconcileRequest, applier};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;

use super::error::{ControllerConfig, ControllerError};
use super::retry::RetryBackoff;
use crate::client::informer::key_of;

/// Reconciles every object named by `triggers` until `cancel` fires.
pub async fn drive<K, C, F, Fut>(
    controller_name: &'static str,
    store: Store<K>,
    triggers: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    ctx: Arc<C>,
    mut reconcile: F,
    config: &ControllerConfig,
    cancel: CancellationToken,
) where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Debug + Eq + Hash + Clone + Unpin + Default,
    C: Send + Sync + 'static,
    F: FnMut(Arc<K>, Arc<C>) -> Fut + Send,
    Fut: Future<Output = Result<Action, ControllerError>> + Send + 'static,
{
    let retries = Arc::new(RetryBackoff::default());
    let on_success = retries.clone();
    let run_one =
        move |obj: Arc<K>, ctx: Arc<C>| -> BoxFuture<'static, Result<Action, ControllerError>> {
            let key = key_of(&*obj);
            let retries = on_success.clone();
            let fut = reconcile(obj, ctx);
            async move {
                let result = fut.await;
                if result.is_ok() {
                    retries.reset(&key);
                }
                result
            }
            .boxed()
        };
    let error_policy = move |obj: Arc<K>, _err: &ControllerError, _ctx: Arc<C>| {
        Action::requeue(retries.next_delay(&key_of(&*obj)))
    };
    let queue = triggers
        .take_until(cancel.cancelled_owned())
        .map(|r| Ok::<_, Infallible>(ReconcileRequest::from(r)));
    let settings = controller::Config::default()
        .concurrency(config.concurrency)
        .debounce(config.debounce);
    applier(run_one, error_policy, ctx, store, queue, settings)
        .for_each(|result| async move { log_outcome(controller_name, result) })
        .await;
}

type Outcome<K> = Result<(ObjectRef<K>, Action), controller::Error<ControllerError, Infallible>>;

fn log_outcome<K>(controller_name: &'static str, result: Outcome<K>)
where
    K: Resource,
    K::DynamicType: Debug,
{
    match result {
        Ok(_) => {}
        Err(controller::Error::ObjectNotFound(obj)) => {
            tracing::trace!(controller = controller_name, object = %obj, "object gone before reconcile");
        }
        Err(controller::Error::ReconcilerFailed(err, obj)) if err.is_conflict() => {
            // Routine: the cache lagged a write; the retry reads fresher state.
            tracing::debug!(controller = controller_name, object = %obj, error = %err, "reconcile conflicted");
        }
        Err(controller::Error::ReconcilerFailed(err, obj)) => {
            tracing::warn!(controller = controller_name, object = %obj, error = %err, "reconcile failed");
        }
        Err(err) => {
            tracing::warn!(controller = controller_name, error = %err, "controller queue failed");
        }
    }
}
