//! DaemonSet ControllerRevisions (upstream `constructHistory`, `dedupCurHistories`,
//! `cleanupHistory`): one revision per distinct pod template, the current one numbered
//! highest; the current revision's hash labels new pods; old revisions beyond
//! `revisionHistoryLimit` are deleted unless a live pod still uses them.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::Ctx;
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::error::is_not_found;
use crate::controllers::batch_common::history::{
    REVISION_HASH_LABEL, RevisionSpec, by_number, create_revision, has_data, number, renumber,
    template_patch,
};
use crate::controllers::batch_common::ownership::{
    controller_ref, execute_claims, plan_claims, recheck_owner,
};
use crate::controllers::batch_common::selector::Matcher;

/// The current revision, the old ones, and the collision count used.
pub(super) struct History {
    /// The revision matching the current template.
    pub current: ControllerRevision,
    /// All other revisions.
    pub old: Vec<Arc<ControllerRevision>>,
    /// `status.collisionCount` after any name collisions.
    pub collision_count: i32,
}

/// The hash of a revision (its label, or its name if unlabelled).
pub(super) fn hash_of(rev: &ControllerRevision) -> String {
    rev.labels()
        .get(REVISION_HASH_LABEL)
        .cloned()
        .unwrap_or_else(|| rev.name_any())
}

/// Revisions the DaemonSet controls, adopting matching orphans.
async fn controlled(
    ctx: &Ctx,
    ds: &DaemonSet,
    matcher: &Matcher,
) -> Result<Vec<Arc<ControllerRevision>>, ControllerError> {
    let ns = ds.namespace().unwrap_or_default();
    let candidates = ctx
        .revisions
        .state_filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()));
    let uid = ds.uid().unwrap_or_default();
    let plan = plan_claims(
        candidates,
        &uid,
        ds.metadata.deletion_timestamp.is_some(),
        |r| matcher.matches(r.metadata.labels.as_ref()),
    );
    let Some(owner) = controller_ref(ds) else {
        return Ok(plan.owned);
    };
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
    execute_claims(&api, plan, &owner, &[], || recheck_owner(&ds_api, ds)).await
}

/// Upstream `constructHistory`.
pub(super) async fn construct(
    ctx: &Ctx,
    ds: &DaemonSet,
    matcher: &Matcher,
    pods: &[Arc<Pod>],
) -> Result<History, ControllerError> {
    let data = template_patch(&ds.spec.template)?;
    let revisions = controlled(ctx, ds, matcher).await?;
    let (current, old): (Vec<_>, Vec<_>) = revisions.into_iter().partition(|r| has_data(r, &data));
    let next_number = old.iter().map(|r| number(r)).max().unwrap_or(0) + 1;
    let mut collision_count = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let api: Api<ControllerRevision> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    let current = if current.is_empty() {
        let spec = RevisionSpec::for_workload(
            ds,
            "DaemonSet",
            &ds.spec.template,
            data,
            next_number,
            true,
        )?;
        create_revision(&api, &spec, &mut collision_count).await?
    } else {
        let keep = dedup(ctx, ds, &api, current, pods).await?;
        if number(&keep) < next_number {
            renumber(&api, &keep, next_number).await?
        } else {
            keep
        }
    };
    Ok(History {
        current,
        old,
        collision_count,
    })
}

/// Upstream `dedupCurHistories`: keeps the highest-numbered equal revision, relabels pods
/// that point at the others, and deletes the others.
async fn dedup(
    ctx: &Ctx,
    ds: &DaemonSet,
    api: &Api<ControllerRevision>,
    mut current: Vec<Arc<ControllerRevision>>,
    pods: &[Arc<Pod>],
) -> Result<ControllerRevision, ControllerError> {
    current.sort_by(|a, b| by_number(a, b));
    let Some(keep) = current.pop() else {
        return Err(ControllerError::MissingField {
            kind: "ControllerRevision",
            field: "revision",
        });
    };
    if current.is_empty() {
        return Ok((*keep).clone());
    }
    let hash = hash_of(&keep);
    let pods_api: Api<Pod> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    for p in pods
        .iter()
        .filter(|p| p.labels().get(REVISION_HASH_LABEL) != Some(&hash))
    {
        let patch = Patch::Merge(json!({"metadata": {"labels": {REVISION_HASH_LABEL: hash}}}));
        pods_api
            .patch(&p.name_any(), &PatchParams::default(), &patch)
            .await?;
    }
    for dup in current {
        match api.delete(&dup.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((*keep).clone())
}

/// Upstream `cleanupHistory`: deletes the oldest unused revisions beyond the limit.
pub(super) async fn cleanup(
    ctx: &Ctx,
    ds: &DaemonSet,
    old: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
) -> Result<(), ControllerError> {
    let limit = usize::try_from(ds.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let mut to_kill = old.len().saturating_sub(limit);
    if to_kill == 0 {
        return Ok(());
    }
    let live: HashSet<String> = pods
        .iter()
        .filter_map(|p| p.labels().get(REVISION_HASH_LABEL).cloned())
        .collect();
    let mut old: Vec<&Arc<ControllerRevision>> = old.iter().collect();
    old.sort_by(|a, b| by_number(a, b));
    let api: Api<ControllerRevision> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    for rev in old {
        if to_kill == 0 {
            break;
        }
        if live.contains(&hash_of(rev)) {
            continue;
        }
        match api.delete(&rev.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        to_kill -= 1;
    }
    Ok(())
}
