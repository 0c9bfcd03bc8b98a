//! One DaemonSet sync (upstream `syncDaemonSet`): claim pods, settle the revision history,
//! create/delete pods per node, advance a rolling update, prune history, write status.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;

use super::history::{self, hash_of};
use super::plan::{
    Counts, NodePods, Rollout, TEMPLATE_GENERATION_LABEL, count, group_by_node, node_needs,
    update_with_surge, update_without_surge,
};
use super::predicates::{add_default_tolerations, node_should_run, pin_to_node};
use super::{Ctx, availability_due};
use crate::controllers::batch_common::error::{is_namespace_terminating, is_not_found};
use crate::controllers::batch_common::expectations::ChildView;
use crate::controllers::batch_common::history::REVISION_HASH_LABEL;
use crate::controllers::batch_common::intstr::scaled_value;
use crate::controllers::batch_common::ownership::{
    controller_ref, execute_claims, is_controlled_by, plan_claims, recheck_owner,
};
use crate::controllers::batch_common::pods::{is_available, is_ready, ready_since};
use crate::controllers::batch_common::runtime::{cache_ready, object_ref};
use crate::controllers::batch_common::selector::Matcher;
use crate::controllers::batch_common::{ControllerError, time};

/// The annotation the apiserver keeps the template generation in.
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

pub(super) async fn reconcile(
    ds: Arc<DaemonSet>,
    ctx: Arc<Ctx>,
) -> Result<Action, ControllerError> {
    cache_ready(&ctx.pods, "pods").await?;
    cache_ready(&ctx.nodes, "nodes").await?;
    cache_ready(&ctx.revisions, "controllerrevisions").await?;
    let matcher = Matcher::new(Some(&ds.spec.selector))?;
    if matcher.selects_everything() {
        let note = "This daemon set is selecting all pods. A non-empty selector is required.";
        ctx.events.warning(ds.as_ref(), "SelectingAll", note.into());
        return Ok(Action::await_change());
    }
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pods = claim_pods(&ctx, &ds, &matcher).await?;
    let history = history::construct(&ctx, &ds, &matcher, &pods).await?;
    let hash = hash_of(&history.current);
    let generation = ds
        .annotations()
        .get(TEMPLATE_GENERATION_ANNOTATION)
        .cloned();
    let rollout = Rollout {
        hash: &hash,
        generation: generation.as_deref(),
        min_ready_seconds: ds.spec.min_ready_seconds.unwrap_or(0),
        surge: allows_surge(&ds),
        now: time::now(),
    };
    let nodes: Vec<Arc<Node>> = ctx.nodes.state();
    let uid = ds.uid().unwrap_or_default();
    let satisfied = expectations_met(&ctx, &ds, &uid);
    let mut requeue = None;
    if satisfied {
        requeue = manage(&ctx, &ds, &nodes, &pods, &rollout).await?;
        let rolling = ds
            .spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            != Some("OnDelete");
        if rolling && expectations_met(&ctx, &ds, &uid) {
            rolling_update(&ctx, &ds, &nodes, &pods, &rollout).await?;
        }
        history::cleanup(&ctx, &ds, &history.old, &pods).await?;
    }
    let resync = update_status(
        &ctx,
        &ds,
        &nodes,
        &rollout,
        satisfied,
        history.collision_count,
    )
    .await?;
    Ok(match min_of(requeue, resync) {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn min_of(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn expectations_met(ctx: &Ctx, ds: &DaemonSet, uid: &str) -> bool {
    let ns = ds.namespace().unwrap_or_default();
    ctx.expectations.satisfied(uid, |name| {
        let p = ctx.pods.get(&object_ref(&ns, name))?;
        Some(ChildView {
            uid: p.uid().unwrap_or_default(),
            deleting: p.metadata.deletion_timestamp.is_some(),
            has_finalizer: false,
        })
    })
}

/// Upstream `AllowsSurge`.
fn allows_surge(ds: &DaemonSet) -> bool {
    let strategy = ds.spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        return false;
    }
    strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_surge.as_ref())
        .and_then(|v| scaled_value(v, 1, true, "maxSurge").ok())
        .is_some_and(|v| v != 0)
}

/// Pods the DaemonSet controls, adopting and releasing as needed.
async fn claim_pods(
    ctx: &Ctx,
    ds: &DaemonSet,
    matcher: &Matcher,
) -> Result<Vec<Arc<Pod>>, ControllerError> {
    let ns = ds.namespace().unwrap_or_default();
    let candidates = ctx
        .pods
        .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
    let uid = ds.uid().unwrap_or_default();
    let plan = plan_claims(candidates, &uid, false, |p| {
        matcher.matches(p.metadata.labels.as_ref())
    });
    let Some(owner) = controller_ref(ds) else {
        return Ok(plan.owned);
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
    execute_claims(&pods_api, plan, &owner, &[], || recheck_owner(&ds_api, ds)).await
}

/// Upstream `manage`: per-node creations and deletions. Returns when to look again for
/// failed pods still backing off.
async fn manage(
    ctx: &Ctx,
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    r: &Rollout<'_>,
) -> Result<Option<Duration>, ControllerError> {
    let by_node = group_by_node(pods, false);
    let template = ds.spec.template.spec.clone().unwrap_or_default();
    let (mut create, mut delete, mut wait) = (Vec::new(), Vec::new(), None);
    for node in nodes {
        let name = node.name_any();
        let (run, keep) = node_should_run(&template, node);
        let needs = node_needs(run, keep, by_node.get(&name), r);
        if needs.create {
            create.push(name.clone());
        }
        delete.extend(needs.delete);
        for failed in needs.failed {
            let key = format!("{}/{name}", ds.uid().unwrap_or_default());
            let cfg = &ctx.config;
            match ctx.failed_backoff.check(
                &key,
                r.now,
                cfg.failed_pod_backoff,
                cfg.max_failed_pod_backoff,
            ) {
                Some(left) => wait = min_of(wait, Some(left)),
                None => {
                    let note = format!(
                        "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                        failed.namespace().unwrap_or_default(),
                        failed.name_any()
                    );
                    ctx.events.warning(ds, "FailedDaemonPod", note);
                    delete.push(failed);
                }
            }
        }
    }
    let known: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    for (node, on_node) in &by_node {
        if !known.contains(node) {
            let unscheduled = on_node.iter().filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .unwrap_or("")
                    .is_empty()
            });
            delete.extend(unscheduled.cloned());
        }
    }
    sync_nodes(ctx, ds, &delete, &create, r).await?;
    Ok(wait)
}

/// Upstream `syncNodes`: creates pods on nodes (slow start) and deletes pods.
async fn sync_nodes(
    ctx: &Ctx,
    ds: &DaemonSet,
    delete: &[Arc<Pod>],
    create: &[String],
    r: &Rollout<'_>,
) -> Result<(), ControllerError> {
    let burst = ctx.config.burst_replicas;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    let uid = ds.uid().unwrap_or_default();
    let mut first_error = None;
    let mut pending = &create[..create.len().min(burst)];
    let mut batch = 1;
    while !pending.is_empty() {
        let (now, rest) = pending.split_at(batch.min(pending.len()));
        let results = join_all(now.iter().map(|n| create_pod(ctx, &api, ds, n, r))).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            first_error = Some(e);
            break;
        }
        pending = rest;
        batch *= 2;
    }
    let deletes = delete.iter().take(burst).map(|p| {
        let (api, uid) = (api.clone(), uid.clone());
        async move {
            let name = p.name_any();
            ctx.expectations
                .expect_deletion(&uid, &name, &p.uid().unwrap_or_default());
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    ctx.events
                        .normal(ds, "SuccessfulDelete", format!("Deleted pod: {name}"));
                    Ok(())
                }
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => {
                    ctx.expectations
                        .forget_child(&uid, &p.uid().unwrap_or_default());
                    ctx.events
                        .warning(ds, "FailedDelete", format!("Error deleting: {e}"));
                    Err(ControllerError::from(e))
                }
            }
        }
    });
    for r in join_all(deletes).await {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The daemon pod for a node (upstream `CreatePodTemplate` + node affinity pinning).
pub(super) fn pod_for(ds: &DaemonSet, node: &str, r: &Rollout<'_>) -> Pod {
    let template = ds.spec.template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    add_default_tolerations(&mut spec);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    let mut labels = meta.labels.unwrap_or_default();
    if let Some(g) = r.generation {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.into());
    }
    labels.insert(REVISION_HASH_LABEL.into(), r.hash.into());
    let mut pod = Pod {
        spec: Some(spec),
        ..Default::default()
    };
    pod.metadata.generate_name = Some(format!("{}-", ds.name_any()));
    pod.metadata.namespace = ds.namespace();
    pod.metadata.labels = Some(labels);
    pod.metadata.annotations = meta.annotations;
    pod.metadata.finalizers = meta.finalizers;
    pod.metadata.owner_references = controller_ref(ds).map(|o| vec![o]);
    pod
}

async fn create_pod(
    ctx: &Ctx,
    api: &Api<Pod>,
    ds: &DaemonSet,
    node: &str,
    r: &Rollout<'_>,
) -> Result<(), ControllerError> {
    match api
        .create(&PostParams::default(), &pod_for(ds, node, r))
        .await
    {
        Ok(created) => {
            let uid = ds.uid().unwrap_or_default();
            ctx.expectations.expect_creation(
                &uid,
                &created.name_any(),
                &created.uid().unwrap_or_default(),
            );
            ctx.events.normal(
                ds,
                "SuccessfulCreate",
                format!("Created pod: {}", created.name_any()),
            );
            Ok(())
        }
        Err(e) if is_namespace_terminating(&e) => Ok(()),
        Err(e) => {
            ctx.events
                .warning(ds, "FailedCreate", format!("Error creating: {e}"));
            Err(e.into())
        }
    }
}

/// Nodes with their should-run verdict, in cache order.
fn desired_nodes(ds: &DaemonSet, nodes: &[Arc<Node>]) -> Vec<(String, bool)> {
    let template = ds.spec.template.spec.clone().unwrap_or_default();
    nodes
        .iter()
        .map(|n| (n.name_any(), node_should_run(&template, n).0))
        .collect()
}

/// Upstream `rollingUpdate`: replaces old pods within the surge/unavailability budget.
async fn rolling_update(
    ctx: &Ctx,
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    r: &Rollout<'_>,
) -> Result<(), ControllerError> {
    let mut by_node: NodePods = group_by_node(pods, false);
    let wanted = desired_nodes(ds, nodes);
    let desired = i32::try_from(wanted.iter().filter(|(_, run)| *run).count()).unwrap_or(i32::MAX);
    for (name, _) in wanted.iter().filter(|(_, run)| *run) {
        by_node.entry(name.clone()).or_default();
    }
    let ru = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let scale = |v: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
                 default: i32,
                 field| match v {
        Some(v) => scaled_value(&v, desired, true, field),
        None => Ok(default),
    };
    let mut max_unavailable = scale(ru.max_unavailable, 1, "maxUnavailable")?;
    let max_surge = if r.surge {
        scale(ru.max_surge, 0, "maxSurge")?
    } else {
        0
    };
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let step = if max_surge == 0 {
        update_without_surge(&by_node, r, max_unavailable)
    } else {
        let run: BTreeMap<String, bool> = wanted.into_iter().collect();
        update_with_surge(&by_node, r, max_surge, desired, |n| {
            run.get(n).copied().unwrap_or(false)
        })
    };
    let delete: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| step.delete.contains(&p.name_any()))
        .cloned()
        .collect();
    sync_nodes(ctx, ds, &delete, &step.create, r).await
}

/// Upstream `updateDaemonSetStatus`; returns a resync for pods that will become available.
async fn update_status(
    ctx: &Ctx,
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    r: &Rollout<'_>,
    observed: bool,
    collision_count: i32,
) -> Result<Option<Duration>, ControllerError> {
    let uid = ds.uid().unwrap_or_default();
    let ns = ds.namespace().unwrap_or_default();
    let pods = ctx.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && is_controlled_by(&p.metadata, &uid)
    });
    let by_node = group_by_node(&pods, false);
    let c = count(&desired_nodes(ds, nodes), &by_node, r);
    let old = ds.status.clone().unwrap_or_default();
    let generation = ds.metadata.generation.unwrap_or(0);
    let mut status = new_status(&old, &c, collision_count);
    if observed {
        status.observed_generation = Some(generation);
    }
    if status != old {
        let mut updated = ds.clone();
        updated.status = Some(status);
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.replace_status(&ds.name_any(), &PostParams::default(), &updated)
            .await?;
    }
    let min_ready = r.min_ready_seconds;
    if min_ready <= 0 || c.ready == c.available {
        return Ok(None);
    }
    let due = pods
        .iter()
        .filter(|p| is_ready(p) && !is_available(p, min_ready, r.now))
        .filter_map(|p| ready_since(p))
        .map(|t| availability_due(t, min_ready, r.now) + Duration::from_millis(100))
        .min();
    Ok(due.or(Some(Duration::from_secs(
        u64::try_from(min_ready).unwrap_or(1),
    ))))
}

fn new_status(old: &DaemonSetStatus, c: &Counts, collision_count: i32) -> DaemonSetStatus {
    DaemonSetStatus {
        collision_count: (collision_count != 0 || old.collision_count.is_some())
            .then_some(collision_count),
        conditions: old.conditions.clone(),
        current_number_scheduled: c.current,
        desired_number_scheduled: c.desired,
        number_available: Some(c.available),
        number_misscheduled: c.misscheduled,
        number_ready: c.ready,
        number_unavailable: Some(c.desired - c.available),
        observed_generation: old.observed_generation,
        updated_number_scheduled: Some(c.updated),
    }
}
