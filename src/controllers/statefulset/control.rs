//! One StatefulSet sync (upstream `syncStatefulSet` / `UpdateStatefulSet`): claim pods,
//! settle revisions, summarize every ordinal for the [`plan`](super::plan), execute the plan
//! until a write fails, then write status and prune history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;

use super::Ctx;
use super::identity::{
    fix_identity, fix_storage, identity_matches, in_range, is_member, new_pod, ordinal,
    pod_revision, replicas, start_ordinal, storage_matches,
};
use super::plan::{Facts, Policy, Slots, Step, plan};
use super::pods::{
    claims_needing_owners, create_claims, create_pod, delete_pod, update_claim_owners, update_pod,
};
use super::revisions::{Revisions, apply_revision, revisions, truncate};
use crate::controllers::batch_common::expectations::ChildView;
use crate::controllers::batch_common::intstr::scaled_value;
use crate::controllers::batch_common::ownership::{
    controller_ref, execute_claims, plan_claims, recheck_owner,
};
use crate::controllers::batch_common::pods::{is_available, is_ready, phase};
use crate::controllers::batch_common::runtime::{cache_ready, object_ref};
use crate::controllers::batch_common::selector::Matcher;
use crate::controllers::batch_common::{ControllerError, time};

/// The set at its current and update revisions, as pods are created from them.
struct Versions {
    current: StatefulSet,
    update: StatefulSet,
    revs: Revisions,
}

pub(super) async fn reconcile(
    set: Arc<StatefulSet>,
    ctx: Arc<Ctx>,
) -> Result<Action, ControllerError> {
    cache_ready(&ctx.pods, "pods").await?;
    cache_ready(&ctx.claims, "persistentvolumeclaims").await?;
    cache_ready(&ctx.revisions, "controllerrevisions").await?;
    let matcher = Matcher::new(Some(&set.spec.selector))?;
    let pods = claim_pods(&ctx, &set, &matcher).await?;
    let revs = revisions(&ctx, &set, &matcher).await?;
    let versions = Versions {
        current: apply_revision(&set, &revs.current)?,
        update: apply_revision(&set, &revs.update)?,
        revs,
    };
    let now = time::now();
    let by_ord: BTreeMap<i32, Arc<Pod>> = pods
        .iter()
        .filter_map(|p| Some((ordinal(p)?, p.clone())))
        .collect();
    let uid = set.uid().unwrap_or_default();
    if set.metadata.deletion_timestamp.is_none() && expectations_met(&ctx, &set, &uid) {
        let steps = plan(&slots(&ctx, &set, &versions, &by_ord, now), &policy(&set)?);
        if let Err(e) = execute(&ctx, &set, &versions, &by_ord, &steps).await {
            truncate(&ctx, &set, &pods, &versions.revs).await?;
            return Err(e);
        }
    }
    let status = compute_status(&set, &pods, &versions.revs, now);
    write_status(&ctx, &set, status.clone()).await?;
    truncate(&ctx, &set, &pods, &versions.revs).await?;
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    if min_ready > 0 && status.available_replicas != Some(replicas(&set)) {
        return Ok(Action::requeue(Duration::from_secs(
            u64::try_from(min_ready).unwrap_or(1),
        )));
    }
    Ok(Action::await_change())
}

fn expectations_met(ctx: &Ctx, set: &StatefulSet, uid: &str) -> bool {
    let ns = set.namespace().unwrap_or_default();
    ctx.expectations.satisfied(uid, |name| {
        let p = ctx.pods.get(&object_ref(&ns, name))?;
        Some(ChildView {
            uid: p.uid().unwrap_or_default(),
            deleting: p.metadata.deletion_timestamp.is_some(),
            has_finalizer: false,
        })
    })
}

/// Upstream `getPodsForStatefulSet`: selector match and a `<set>-<ordinal>` name.
async fn claim_pods(
    ctx: &Ctx,
    set: &StatefulSet,
    matcher: &Matcher,
) -> Result<Vec<Arc<Pod>>, ControllerError> {
    let ns = set.namespace().unwrap_or_default();
    let candidates = ctx
        .pods
        .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
    let uid = set.uid().unwrap_or_default();
    let deleting = set.metadata.deletion_timestamp.is_some();
    let plan = plan_claims(candidates, &uid, deleting, |p| {
        matcher.matches(p.metadata.labels.as_ref()) && is_member(set, p)
    });
    let Some(owner) = controller_ref(set) else {
        return Ok(plan.owned);
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    execute_claims(&api, plan, &owner, &[], || recheck_owner(&sets, set)).await
}

fn policy(set: &StatefulSet) -> Result<Policy, ControllerError> {
    let strategy = set.spec.update_strategy.as_ref();
    let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let partition = ru.and_then(|r| r.partition).unwrap_or(0);
    let max_unavailable = match ru.and_then(|r| r.max_unavailable.as_ref()) {
        Some(v) => scaled_value(v, replicas(set), false, "maxUnavailable")?.max(1),
        None => 1,
    };
    Ok(Policy {
        monotonic: set.spec.pod_management_policy.as_deref() != Some("Parallel"),
        on_delete,
        update_from: start_ordinal(set).saturating_add(partition),
        max_unavailable,
    })
}

fn facts(ctx: &Ctx, set: &StatefulSet, v: &Versions, pod: &Pod, now: Timestamp) -> Facts {
    let running_ready = phase(pod) == "Running" && is_ready(pod);
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    Facts {
        failed: phase(pod) == "Failed",
        succeeded: phase(pod) == "Succeeded",
        pending: phase(pod) == "Pending",
        running_ready,
        available: running_ready && is_available(pod, min_ready, now),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        consistent: identity_matches(set, pod)
            && storage_matches(set, pod)
            && claims_needing_owners(ctx, &v.update, pod).is_empty(),
        current: pod_revision(pod) == v.revs.current.name_any(),
        updated: pod_revision(pod) == v.revs.update.name_any(),
    }
}

fn slots(
    ctx: &Ctx,
    set: &StatefulSet,
    v: &Versions,
    by_ord: &BTreeMap<i32, Arc<Pod>>,
    now: Timestamp,
) -> Slots {
    let start = start_ordinal(set);
    let replicas = (start..start.saturating_add(replicas(set)))
        .map(|ord| (ord, by_ord.get(&ord).map(|p| facts(ctx, set, v, p, now))))
        .collect();
    let mut condemned: Vec<(i32, Facts, bool)> = by_ord
        .iter()
        .filter(|(ord, _)| !in_range(set, **ord))
        .map(|(ord, p)| {
            (
                *ord,
                facts(ctx, set, v, p, now),
                claims_needing_owners(ctx, &v.update, p).is_empty(),
            )
        })
        .collect();
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    Slots {
        replicas,
        condemned,
    }
}

/// Upstream `newVersionedStatefulSetPod`: below the partition pods keep the current
/// revision, at or above it they get the update revision.
fn versioned_pod(set: &StatefulSet, v: &Versions, ord: i32) -> Pod {
    let start = start_ordinal(set);
    let strategy = set.spec.update_strategy.as_ref();
    let rolling = strategy
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let keep_current = match strategy.and_then(|s| s.rolling_update.as_ref()) {
        Some(ru) => ord < start.saturating_add(ru.partition.unwrap_or(0)),
        None => {
            let current = set
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .unwrap_or(0);
            rolling && ord < start.saturating_add(current)
        }
    };
    if keep_current {
        new_pod(&v.current, ord, &v.revs.current.name_any())
    } else {
        new_pod(&v.update, ord, &v.revs.update.name_any())
    }
}

/// Performs planned steps in order, stopping at the first failure (or at a pod whose
/// predecessor with the same name is still terminating).
async fn execute(
    ctx: &Ctx,
    set: &StatefulSet,
    v: &Versions,
    by_ord: &BTreeMap<i32, Arc<Pod>>,
    steps: &[Step],
) -> Result<(), ControllerError> {
    for step in steps {
        let existing = |ord: &i32| by_ord.get(ord).cloned();
        match step {
            Step::Recreate(ord) => {
                if let Some(p) = existing(ord) {
                    let (reason, what) = if phase(&p) == "Failed" {
                        ("RecreatingFailedPod", "failed")
                    } else {
                        ("RecreatingTerminatedPod", "terminated")
                    };
                    let note = format!(
                        "StatefulSet {}/{} is recreating {what} Pod {}",
                        set.namespace().unwrap_or_default(),
                        set.name_any(),
                        p.name_any()
                    );
                    if what == "failed" {
                        ctx.events.warning(set, reason, note)
                    } else {
                        ctx.events.normal(set, reason, note)
                    }
                    delete_pod(ctx, set, &p).await?;
                }
            }
            Step::Create(ord) => {
                if !create_pod(ctx, set, &versioned_pod(set, v, *ord)).await? {
                    return Ok(());
                }
            }
            Step::CreateClaims(ord) => {
                if let Some(p) = existing(ord) {
                    create_claims(ctx, set, &p).await?;
                }
            }
            Step::Fix(ord) => {
                if let Some(p) = existing(ord) {
                    fix_pod(ctx, set, v, &p).await?;
                }
            }
            Step::FixClaims(ord) => {
                if let Some(p) = existing(ord) {
                    update_claim_owners(ctx, &v.update, &p).await?;
                }
            }
            Step::DeleteCondemned(ord) | Step::DeleteForUpdate(ord) => {
                if let Some(p) = existing(ord) {
                    delete_pod(ctx, set, &p).await?;
                }
            }
        }
    }
    Ok(())
}

/// Upstream `UpdateStatefulPod`: identity, storage (creating claims) and claim owners.
async fn fix_pod(
    ctx: &Ctx,
    set: &StatefulSet,
    v: &Versions,
    pod: &Pod,
) -> Result<(), ControllerError> {
    let mut fixed = pod.clone();
    let mut dirty = false;
    if !identity_matches(set, &fixed) {
        fix_identity(set, &mut fixed);
        dirty = true;
    }
    if !storage_matches(set, &fixed) {
        fix_storage(set, &mut fixed);
        create_claims(ctx, set, &fixed).await?;
        dirty = true;
    }
    update_claim_owners(ctx, &v.update, pod).await?;
    if dirty {
        update_pod(ctx, set, &fixed).await?;
    }
    Ok(())
}

/// Upstream `computeReplicaStatus` + `completeRollingUpdate`.
pub(super) fn compute_status(
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    revs: &Revisions,
    now: Timestamp,
) -> StatefulSetStatus {
    let (current_name, update_name) = (revs.current.name_any(), revs.update.name_any());
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let (mut total, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for p in pods {
        total += 1;
        if phase(p) == "Running" && is_ready(p) {
            ready += 1;
            if is_available(p, min_ready, now) {
                available += 1;
            }
        }
        if p.metadata.deletion_timestamp.is_none() {
            current += i32::from(pod_revision(p) == current_name);
            updated += i32::from(pod_revision(p) == update_name);
        }
    }
    let rolling = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let done = rolling && updated == total && ready == total;
    StatefulSetStatus {
        available_replicas: Some(available),
        collision_count: Some(revs.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
        current_replicas: Some(if done { updated } else { current }),
        current_revision: Some(if done {
            update_name.clone()
        } else {
            current_name
        }),
        observed_generation: set.metadata.generation,
        ready_replicas: Some(ready),
        replicas: total,
        update_revision: Some(update_name),
        updated_replicas: Some(updated),
    }
}

/// Writes status when it differs (upstream `inconsistentStatus`).
async fn write_status(
    ctx: &Ctx,
    set: &StatefulSet,
    status: StatefulSetStatus,
) -> Result<(), ControllerError> {
    if set.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = set.clone();
    updated.status = Some(status);
    let api: Api<StatefulSet> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    api.replace_status(&set.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(())
}
