//! The Deployment controller (upstream `pkg/controller/deployment`): rolls
//! a Deployment's pod template out through ReplicaSets.
//!
//! Each sync claims the deployment's ReplicaSets (adopting matching orphans,
//! releasing ones that stopped matching), then, in upstream's order:
//! deleting deployments only get status; paused deployments (and resizes,
//! recognised by the desired-replicas annotation) are scaled proportionally
//! without rolling; otherwise the RollingUpdate or Recreate strategy takes
//! one step. The new ReplicaSet is the one whose template equals the
//! deployment's; it is named `<deployment>-<pod-template-hash>` and carries
//! the next revision, so `kubectl rollout undo` (which copies an old
//! template back) revives the old ReplicaSet with a bumped revision.
//! Status carries the counters and conditions `kubectl rollout status`
//! waits on.
//!
//! Failures go back to the driver, which retries with backoff; a sync that
//! waits for a progress deadline asks to be run again when it expires.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use tokio_util::sync::CancellationToken;

use super::driver;
use super::error::{ControllerConfig, ControllerError};
use super::label_selector::{LabelMatcher, selects_everything};
use super::owner::{self, Claimant};
use crate::client::events::EventSink;
use crate::client::informer::{SharedInformers, wait_synced};
use rollout::PodMap;

mod handlers;
pub mod hash;
pub mod history;
pub mod progress;
mod rollout;
pub mod scaling;
mod status;
mod sync;

const KIND: &str = "Deployment";

/// Runs the Deployment controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: ControllerConfig,
    cancel: CancellationToken,
) -> Result<(), ControllerError> {
    let client = informers.client();
    let (deployments, d_changes) = informers.get::<Deployment>().feed();
    let (replica_sets, rs_changes) = informers.get::<ReplicaSet>().feed();
    let (pods, pod_changes) = informers.get::<Pod>().feed();
    let ctx = Arc::new(Context {
        events: EventSink::new(client.clone(), "deployment-controller"),
        client,
        deployments: deployments.clone(),
        replica_sets,
        pods,
    });
    let (c1, c2, c3) = (ctx.clone(), ctx.clone(), ctx.clone());
    let triggers = stream::select(
        d_changes.flat_map(move |c| stream::iter(c1.on_deployment_change(c))),
        stream::select(
            rs_changes.flat_map(move |c| stream::iter(c2.on_replica_set_change(c))),
            pod_changes.flat_map(move |c| stream::iter(c3.on_pod_change(c))),
        ),
    );
    driver::drive(
        "deployment",
        deployments,
        triggers,
        ctx,
        reconcile,
        &config,
        cancel,
    )
    .await;
    Ok(())
}

/// Shared state of the controller's syncs.
struct Context {
    client: Client,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    events: EventSink,
}

fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// Upstream's `syncDeployment`.
async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let closed = |kind| move |_| ControllerError::CacheClosed { kind };
    wait_synced(&ctx.replica_sets)
        .await
        .map_err(closed("ReplicaSet"))?;
    wait_synced(&ctx.pods).await.map_err(closed("Pod"))?;
    let mut d = (*d).clone();
    if selects_everything(Some(&d.spec.selector)) {
        return select_all_warning(&ctx, &mut d).await;
    }
    let mut rs_list = replica_sets_for(&ctx, &d).await?;
    let pods = pod_map(&ctx, &d, &rs_list);
    if d.metadata.deletion_timestamp.is_some() {
        let (new_rs, old) = sync::all_replica_sets(&ctx, &mut d, &mut rs_list, false).await?;
        let all: Vec<Arc<ReplicaSet>> = old.into_iter().chain(new_rs.clone()).collect();
        status::sync_status(&ctx, &all, new_rs.as_ref(), &mut d).await?;
        return Ok(Action::await_change());
    }
    status::check_paused_conditions(&ctx, &mut d).await?;
    if d.spec.paused.unwrap_or(false) || sync::is_scaling_event(&ctx, &mut d, &mut rs_list).await? {
        scale_only(&ctx, &mut d, &mut rs_list).await?;
        return Ok(Action::await_change());
    }
    let recheck = match scaling::strategy_type(&d) {
        "Recreate" => rollout::recreate(&ctx, &mut d, &mut rs_list, &pods).await?,
        "RollingUpdate" => rollout::rolling(&ctx, &mut d, &mut rs_list).await?,
        other => return Err(ControllerError::UnknownStrategy(other.to_owned())),
    };
    Ok(recheck.map_or_else(Action::await_change, Action::requeue))
}

/// Upstream's `sync`: resize without rolling (paused or scaling event).
async fn scale_only(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &mut Vec<Arc<ReplicaSet>>,
) -> Result<(), ControllerError> {
    let (new_rs, old) = sync::all_replica_sets(ctx, d, rs_list, false).await?;
    sync::scale(ctx, d, new_rs.as_ref(), &old).await?;
    if d.spec.paused.unwrap_or(false) {
        sync::cleanup(ctx, d, &old).await?;
    }
    let all: Vec<Arc<ReplicaSet>> = old.into_iter().chain(new_rs.clone()).collect();
    status::sync_status(ctx, &all, new_rs.as_ref(), d).await
}

/// A deployment selecting every pod is refused, as upstream does.
async fn select_all_warning(ctx: &Context, d: &mut Deployment) -> Result<Action, ControllerError> {
    let note =
        "This deployment is selecting all pods. A non-empty selector is required.".to_owned();
    ctx.events.warning(&*d, "SelectingAll", note);
    let status = d.status.get_or_insert_with(Default::default);
    if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        status.observed_generation = d.metadata.generation;
        status::update_status(ctx, d).await?;
    }
    Ok(Action::await_change())
}

/// Upstream's `getReplicaSetsForDeployment`: the ReplicaSets the deployment
/// controls after adopting and releasing.
async fn replica_sets_for(
    ctx: &Context,
    d: &Deployment,
) -> Result<Vec<Arc<ReplicaSet>>, ControllerError> {
    let meta = &d.metadata;
    let selector = LabelMatcher::parse(Some(&d.spec.selector)).map_err(|reason| {
        ControllerError::InvalidSelector {
            kind: KIND,
            namespace: namespace(meta).to_owned(),
            name: name(meta).to_owned(),
            reason,
        }
    })?;
    let candidates = ctx
        .replica_sets
        .state_filter(|rs| namespace(&rs.metadata) == namespace(meta));
    let claimant = Claimant {
        reference: owner::new_controller_ref("apps/v1", KIND, meta),
        namespace: namespace(meta).to_owned(),
        deleting: meta.deletion_timestamp.is_some(),
    };
    let api = Api::<ReplicaSet>::namespaced(ctx.client.clone(), namespace(meta));
    let d_api = Api::<Deployment>::namespaced(ctx.client.clone(), namespace(meta));
    let recheck = async || owner::recheck_owner(&d_api, KIND, meta).await;
    let matches = |rs: &ReplicaSet| selector.matches(rs.metadata.labels.as_ref());
    owner::claim(&api, "ReplicaSet", &claimant, candidates, matches, recheck).await
}

/// Upstream's `getPodMapForDeployment`: the deployment's pods by the UID of
/// the ReplicaSet controlling them.
fn pod_map(ctx: &Context, d: &Deployment, rs_list: &[Arc<ReplicaSet>]) -> PodMap {
    let mut map: PodMap = rs_list
        .iter()
        .filter_map(|rs| rs.metadata.uid.clone())
        .map(|uid| (uid, Vec::new()))
        .collect::<HashMap<_, _>>();
    let Ok(selector) = LabelMatcher::parse(Some(&d.spec.selector)) else {
        return map;
    };
    let ns = namespace(&d.metadata);
    let pods = ctx.pods.state_filter(|p| {
        namespace(&p.metadata) == ns && selector.matches(p.metadata.labels.as_ref())
    });
    for pod in pods {
        if let Some(reference) = owner::controller_of(&pod.metadata)
            && let Some(list) = map.get_mut(&reference.uid)
        {
            list.push(pod.clone());
        }
    }
    map
}

#[cfg(test)]
mod tests;
