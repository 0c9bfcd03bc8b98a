//! The ReplicaSet controller (upstream `pkg/controller/replicaset`): keeps
//! `spec.replicas` active pods for every ReplicaSet and reports what it sees
//! in the ReplicaSet status.
//!
//! Each reconcile claims pods (adopts matching orphans, releases owned pods
//! that stopped matching), then — unless creations or deletions it asked for
//! are still unseen by its watch (expectations) — creates missing pods from
//! the template in slow-start batches (1, 2, 4, …, at most 500 per sync) or
//! deletes surplus pods in upstream's order (unscheduled, pending, not ready,
//! newest first). It always writes `replicas`, `fullyLabeledReplicas`,
//! `readyReplicas`, `availableReplicas` (ready for `minReadySeconds`),
//! `terminatingReplicas` and `observedGeneration`, plus a `ReplicaFailure`
//! condition while pods cannot be created or deleted.
//!
//! Failures are returned to the driver, which retries the ReplicaSet with
//! exponential backoff; nothing here panics on malformed objects.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;

use super::error::{ControllerConfig, ControllerError};
use super::expectations::Expectations;
use super::label_selector::LabelMatcher;
use super::owner::{self, Claimant};
use super::{driver, pod_ranking, pod_state};
use crate::client::events::EventSink;
use crate::client::informer::{SharedInformers, key_of};

/// Most pods created or deleted in one sync (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// First slow-start batch size (upstream's `SlowStartInitialBatchSize`).
const SLOW_START_INITIAL_BATCH: usize = 1;

mod handlers;
mod replication_controller;
mod status;

pub use replication_controller::run as run_replication_controllers;

/// What the controller manages: ReplicaSets, or ReplicationControllers
/// handled as ReplicaSets (upstream's replication controller is the
/// ReplicaSet controller behind a conversion, too).
#[derive(Debug)]
struct Flavor {
    /// Kind of the owner, in owner references and events.
    kind: &'static str,
    /// Its API group ("" for core).
    group: &'static str,
    /// Its API version.
    version: &'static str,
    /// Its resource name.
    plural: &'static str,
}

impl Flavor {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn api_resource(&self) -> kube::core::ApiResource {
        kube::core::ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: self.api_version(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }
}

const REPLICA_SET: Flavor = Flavor {
    kind: "ReplicaSet",
    group: "apps",
    version: "v1",
    plural: "replicasets",
};

/// Runs the ReplicaSet controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: ControllerConfig,
    cancel: CancellationToken,
) -> Result<(), ControllerError> {
    let client = informers.client();
    let (replica_sets, rs_changes) = informers.get::<ReplicaSet>().feed();
    let (pods, pod_changes) = informers.get::<Pod>().feed();
    let ctx = Arc::new(Context {
        events: EventSink::new(client.clone(), "replicaset-controller"),
        client,
        replica_sets: replica_sets.clone(),
        pods,
        expectations: Expectations::default(),
        flavor: &REPLICA_SET,
    });
    let (rs_ctx, pod_ctx) = (ctx.clone(), ctx.clone());
    let triggers = stream::select(
        rs_changes.flat_map(move |c| stream::iter(rs_ctx.on_replica_set_change(c))),
        pod_changes.flat_map(move |c| stream::iter(pod_ctx.on_pod_change(c))),
    );
    driver::drive(
        "replicaset",
        replica_sets,
        triggers,
        ctx,
        reconcile,
        &config,
        cancel,
    )
    .await;
    Ok(())
}

/// Shared state of the controller's reconciles.
struct Context {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    expectations: Expectations,
    events: EventSink,
    flavor: &'static Flavor,
}

impl Context {
    /// The managed object, as events name it.
    fn regarding(&self, rs: &ReplicaSet) -> k8s_openapi::api::core::v1::ObjectReference {
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(self.flavor.api_version()),
            kind: Some(self.flavor.kind.into()),
            name: rs.metadata.name.clone(),
            namespace: rs.metadata.namespace.clone(),
            uid: rs.metadata.uid.clone(),
            resource_version: rs.metadata.resource_version.clone(),
            ..Default::default()
        }
    }

    fn event(&self, rs: &ReplicaSet, type_: &str, reason: &str, message: String) {
        self.events
            .about(self.regarding(rs), type_, reason, message);
    }
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec.min_ready_seconds.unwrap_or(0)
}

fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    crate::client::informer::wait_synced(&ctx.pods)
        .await
        .map_err(|_| ControllerError::CacheClosed { kind: "Pod" })?;
    let key = key_of(&*rs);
    let needs_sync = ctx.expectations.satisfied(&key);
    let meta = &rs.metadata;
    let selector = match LabelMatcher::parse(Some(&rs.spec.selector)) {
        Ok(selector) => selector,
        Err(reason) => {
            // A bad selector never fixes itself without a spec change.
            tracing::warn!(replicaset = %key, %reason, "invalid selector");
            return Ok(Action::await_change());
        }
    };
    let in_namespace = ctx
        .pods
        .state_filter(|p| namespace(&p.metadata) == namespace(meta));
    let active: Vec<Arc<Pod>> = in_namespace
        .iter()
        .filter(|p| pod_state::is_active(p))
        .cloned()
        .collect();
    let claimed = claim_pods(&ctx, &rs, &selector, active).await?;
    let uid = meta.uid.as_deref().unwrap_or_default();
    let terminating = in_namespace
        .iter()
        .filter(|p| pod_state::is_terminating(p))
        .filter(|p| {
            owner::is_controlled_by(&p.metadata, uid)
                && selector.matches(p.metadata.labels.as_ref())
        })
        .count();
    let manage_error = if needs_sync && meta.deletion_timestamp.is_none() {
        manage_replicas(&ctx, &rs, &claimed).await.err()
    } else {
        None
    };
    let now = Timestamp::now();
    let new_status = status::calculate(&rs, &claimed, terminating, manage_error.as_ref(), now);
    status::update(&ctx.client, ctx.flavor, &rs, new_status).await?;
    if let Some(err) = manage_error {
        return Err(err);
    }
    Ok(next_check(&ctx, &key, &rs, &claimed, now))
}

/// When to look again without a trigger: when the next ready pod becomes
/// available, or when unmet expectations expire.
fn next_check(
    ctx: &Context,
    key: &str,
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> Action {
    let min_ready = min_ready_seconds(rs);
    let available_in = pods
        .iter()
        .filter_map(|p| pod_state::until_available(p, min_ready, now))
        .min()
        // The ready transition is second-granular; look a second later.
        .map(|d| d + Duration::from_secs(1));
    let expiry = ctx.expectations.remaining(key);
    match available_in.into_iter().chain(expiry).min() {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    }
}

async fn claim_pods(
    ctx: &Context,
    rs: &ReplicaSet,
    selector: &LabelMatcher,
    pods: Vec<Arc<Pod>>,
) -> Result<Vec<Arc<Pod>>, ControllerError> {
    let meta = &rs.metadata;
    let claimant = Claimant {
        reference: owner::new_controller_ref(&ctx.flavor.api_version(), ctx.flavor.kind, meta),
        namespace: namespace(meta).to_owned(),
        deleting: meta.deletion_timestamp.is_some(),
    };
    let api = Api::<Pod>::namespaced(ctx.client.clone(), namespace(meta));
    let owners = Api::<kube::api::DynamicObject>::namespaced_with(
        ctx.client.clone(),
        namespace(meta),
        &ctx.flavor.api_resource(),
    );
    let recheck = async || owner::recheck_owner(&owners, ctx.flavor.kind, meta).await;
    owner::claim(
        &api,
        "Pod",
        &claimant,
        pods,
        |p| selector.matches(p.metadata.labels.as_ref()),
        recheck,
    )
    .await
}

async fn manage_replicas(
    ctx: &Context,
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
) -> Result<(), ControllerError> {
    let want = usize::try_from(replicas(rs).max(0)).unwrap_or(0);
    if active.len() < want {
        create_pods(ctx, rs, (want - active.len()).min(BURST_REPLICAS)).await
    } else if active.len() > want {
        delete_pods(ctx, rs, active, (active.len() - want).min(BURST_REPLICAS)).await
    } else {
        Ok(())
    }
}

/// The pod a ReplicaSet creates from its template (upstream's
/// `GetPodFromTemplate`).
fn pod_from_template(flavor: &Flavor, rs: &ReplicaSet) -> Result<Pod, ControllerError> {
    let meta = &rs.metadata;
    let missing = |field| ControllerError::MissingField {
        kind: flavor.kind,
        namespace: namespace(meta).to_owned(),
        name: name(meta).to_owned(),
        field,
    };
    let template = rs
        .spec
        .template
        .as_ref()
        .ok_or_else(|| missing("spec.template"))?;
    let template_meta = template.metadata.clone().unwrap_or_default();
    if template_meta.labels.as_ref().is_none_or(|l| l.is_empty()) {
        return Err(missing("spec.template.metadata.labels"));
    }
    let controller: OwnerReference =
        owner::new_controller_ref(&flavor.api_version(), flavor.kind, meta);
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", name(meta))),
            namespace: meta.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller]),
            ..Default::default()
        },
        spec: Some(
            template
                .spec
                .clone()
                .ok_or_else(|| missing("spec.template.spec"))?,
        ),
        status: None,
    })
}

async fn create_pods(ctx: &Context, rs: &ReplicaSet, count: usize) -> Result<(), ControllerError> {
    let key = key_of(rs);
    let pod = pod_from_template(ctx.flavor, rs)?;
    let api = Api::<Pod>::namespaced(ctx.client.clone(), namespace(&rs.metadata));
    ctx.expectations.expect_creations(&key, count);
    let (created, error) = slow_start_batch(count, SLOW_START_INITIAL_BATCH, || {
        create_pod(ctx, rs, &api, &pod)
    })
    .await;
    // Pods never attempted (or failed) will not be seen by the watch.
    for _ in created..count {
        ctx.expectations.creation_observed(&key);
    }
    error.map_or(Ok(()), Err)
}

async fn create_pod(
    ctx: &Context,
    rs: &ReplicaSet,
    api: &Api<Pod>,
    pod: &Pod,
) -> Result<(), ControllerError> {
    let meta = &rs.metadata;
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => {
            let note = format!("Created pod: {}", name(&created.metadata));
            ctx.event(rs, "Normal", "SuccessfulCreate", note);
            Ok(())
        }
        Err(e) => {
            let err = ControllerError::api(
                "create",
                "Pod",
                namespace(meta),
                &format!("{}-", name(meta)),
                e,
            );
            if err.is_namespace_terminating() {
                // Everything in the namespace is about to go away anyway.
                return Ok(());
            }
            ctx.event(
                rs,
                "Warning",
                "FailedCreate",
                format!("Error creating: {err}"),
            );
            Err(err)
        }
    }
}

/// Runs `op` `count` times in batches of 1, 2, 4, … (starting at `initial`),
/// stopping after the first batch with a failure so a quota or admission
/// problem costs one request, not hundreds. Returns how many succeeded and
/// the first failure.
async fn slow_start_batch<F, Fut>(
    count: usize,
    initial: usize,
    op: F,
) -> (usize, Option<ControllerError>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), ControllerError>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = remaining.min(initial.max(1));
    while batch > 0 {
        let results = join_all((0..batch).map(|_| op())).await;
        let mut errors = results.into_iter().filter_map(Result::err);
        let first = errors.next();
        let failed = usize::from(first.is_some()) + errors.count();
        successes += batch - failed;
        if first.is_some() {
            return (successes, first);
        }
        remaining -= batch;
        batch = (batch * 2).min(remaining);
    }
    (successes, None)
}

async fn delete_pods(
    ctx: &Context,
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    count: usize,
) -> Result<(), ControllerError> {
    let key = key_of(rs);
    let related = ctx.related_pods(rs);
    let victims = pod_ranking::pods_to_delete(active, &related, count, Timestamp::now());
    ctx.expectations
        .expect_deletions(&key, victims.iter().map(|p| key_of(&**p)));
    let api = Api::<Pod>::namespaced(ctx.client.clone(), namespace(&rs.metadata));
    let results = join_all(victims.iter().map(|pod| async {
        let pod_name = name(&pod.metadata);
        match api.delete(pod_name, &DeleteParams::default()).await {
            Ok(_) => {
                ctx.event(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {pod_name}"),
                );
                Ok(())
            }
            Err(e) => {
                // The watch will not report a deletion that did not happen.
                ctx.expectations.deletion_observed(&key, &key_of(&**pod));
                let err =
                    ControllerError::api("delete", "Pod", namespace(&rs.metadata), pod_name, e);
                if err.is_not_found() {
                    return Ok(());
                }
                ctx.event(
                    rs,
                    "Warning",
                    "FailedDelete",
                    format!("Error deleting: {err}"),
                );
                Err(err)
            }
        }
    }))
    .await;
    match ControllerError::aggregate(results.into_iter().filter_map(Result::err).collect()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

impl Context {
    /// The ReplicaSet a controller reference points at, if it is one we
    /// know with the same UID.
    fn resolve_controller_ref(
        &self,
        ns: &str,
        reference: &OwnerReference,
    ) -> Option<Arc<ReplicaSet>> {
        if reference.kind != self.flavor.kind {
            return None;
        }
        let rs = self
            .replica_sets
            .get(&ObjectRef::new(&reference.name).within(ns))?;
        (rs.metadata.uid.as_deref() == Some(reference.uid.as_str())).then_some(rs)
    }

    /// Active pods of every ReplicaSet sharing `rs`'s controller (upstream's
    /// `getIndirectlyRelatedPods`), used to spread deletions across nodes.
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let ns = namespace(&rs.metadata);
        let siblings: Vec<Arc<ReplicaSet>> = match owner::controller_of(&rs.metadata) {
            None => self
                .replica_sets
                .get(&ObjectRef::from_obj(rs))
                .into_iter()
                .collect(),
            Some(controller) => self.replica_sets.state_filter(|other| {
                namespace(&other.metadata) == ns
                    && owner::controller_of(&other.metadata)
                        .is_some_and(|c| c.uid == controller.uid)
            }),
        };
        let selectors: Vec<LabelMatcher> = siblings
            .iter()
            .filter_map(|s| LabelMatcher::parse(Some(&s.spec.selector)).ok())
            .collect();
        self.pods.state_filter(|p| {
            namespace(&p.metadata) == ns
                && selectors
                    .iter()
                    .any(|s| s.matches(p.metadata.labels.as_ref()))
        })
    }
}

#[cfg(test)]
mod tests;
