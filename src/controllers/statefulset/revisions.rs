//! StatefulSet revision history (upstream `getStatefulSetRevisions`, `truncateHistory`,
//! `ApplyRevision`): the update revision is the revision equal to the current template
//! (created, or renumbered if rolling back to an older one); the current revision is the one
//! `status.currentRevision` names. Pods are labelled with revision *names*.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};

use super::Ctx;
use super::identity::pod_revision;
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::error::is_not_found;
use crate::controllers::batch_common::history::{
    RevisionSpec, by_number, create_revision, has_data, number, renumber, template_patch,
};
use crate::controllers::batch_common::ownership::{
    controller_ref, execute_claims, plan_claims, recheck_owner,
};
use crate::controllers::batch_common::selector::Matcher;

/// The set's revisions as of this sync.
pub(super) struct Revisions {
    /// The revision existing pods are expected to run (below the partition).
    pub current: ControllerRevision,
    /// The revision matching the current template.
    pub update: ControllerRevision,
    /// `status.collisionCount` after any name collisions.
    pub collision_count: i32,
    /// All controlled revisions (before any creation), oldest first.
    pub all: Vec<Arc<ControllerRevision>>,
}

/// Controlled revisions, adopting orphans that match the selector, sorted oldest first.
async fn controlled(
    ctx: &Ctx,
    set: &StatefulSet,
    matcher: &Matcher,
) -> Result<Vec<Arc<ControllerRevision>>, ControllerError> {
    let ns = set.namespace().unwrap_or_default();
    let candidates = ctx
        .revisions
        .state_filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()));
    let uid = set.uid().unwrap_or_default();
    let plan = plan_claims(
        candidates,
        &uid,
        set.metadata.deletion_timestamp.is_some(),
        |r| matcher.matches(r.metadata.labels.as_ref()),
    );
    let mut owned = match controller_ref(set) {
        Some(owner) => {
            let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
            let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
            execute_claims(&api, plan, &owner, &[], || recheck_owner(&sets, set)).await?
        }
        None => plan.owned,
    };
    owned.sort_by(|a, b| by_number(a, b));
    Ok(owned)
}

/// Upstream `getStatefulSetRevisions`.
pub(super) async fn revisions(
    ctx: &Ctx,
    set: &StatefulSet,
    matcher: &Matcher,
) -> Result<Revisions, ControllerError> {
    let all = controlled(ctx, set, matcher).await?;
    let data = template_patch(&set.spec.template)?;
    let next = all.last().map_or(0, |r| number(r)) + 1;
    let mut collision_count = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let api: Api<ControllerRevision> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let equal = all.iter().rfind(|r| has_data(r, &data));
    let update = match equal {
        Some(eq)
            if all
                .last()
                .is_some_and(|last| last.metadata.name == eq.metadata.name) =>
        {
            (**eq).clone()
        }
        Some(eq) => renumber(&api, eq, next).await?,
        None => {
            let spec = RevisionSpec::for_workload(
                set,
                "StatefulSet",
                &set.spec.template,
                data,
                next,
                false,
            )?;
            create_revision(&api, &spec, &mut collision_count).await?
        }
    };
    let wanted = set.status.as_ref().and_then(|s| s.current_revision.clone());
    let current = all
        .iter()
        .find(|r| r.metadata.name.is_some() && r.metadata.name == wanted)
        .map_or_else(|| update.clone(), |r| (**r).clone());
    Ok(Revisions {
        current,
        update,
        collision_count,
        all,
    })
}

/// Upstream `ApplyRevision`: the set with the revision's pod template.
pub(super) fn apply_revision(
    set: &StatefulSet,
    revision: &ControllerRevision,
) -> Result<StatefulSet, ControllerError> {
    let mut template = revision
        .data
        .0
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_default();
    if let Some(obj) = template.as_object_mut() {
        obj.remove("$patch");
    }
    let template: PodTemplateSpec =
        serde_json::from_value(template).map_err(|source| ControllerError::Json {
            what: "revision template",
            source,
        })?;
    let mut out = set.clone();
    out.spec.template = template;
    Ok(out)
}

/// Upstream `truncateHistory`: deletes the oldest revisions no pod or status uses, beyond
/// `revisionHistoryLimit`.
pub(super) async fn truncate(
    ctx: &Ctx,
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    revs: &Revisions,
) -> Result<(), ControllerError> {
    let mut live: HashSet<String> = pods.iter().map(|p| pod_revision(p).to_string()).collect();
    live.insert(revs.current.name_any());
    live.insert(revs.update.name_any());
    let history: Vec<&Arc<ControllerRevision>> = revs
        .all
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let limit = usize::try_from(set.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let excess = history.len().saturating_sub(limit);
    let api: Api<ControllerRevision> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    for rev in history.into_iter().take(excess) {
        match api.delete(&rev.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
