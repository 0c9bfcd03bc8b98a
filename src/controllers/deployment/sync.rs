//! The Deployment controller's writes (upstream `sync.go`): finding or
//! creating the new ReplicaSet and syncing revisions, scaling ReplicaSets
//! (proportionally during a resize), pruning history, and writing status.
//!
//! Every write is an optimistic update from the cached object: a conflict
//! fails the sync and the driver retries it on fresher state, exactly like
//! upstream. The working copy of the deployment is updated in place with
//! what each write returned, so later writes of the same sync do not
//! conflict with earlier ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

use super::hash::{POD_TEMPLATE_HASH_LABEL, compute_hash, equal_ignore_hash};
use super::progress::{self, PROGRESSING};
use super::scaling::{self, deployment_replicas, rs_replicas};
use super::{Context, history, name, namespace, status};
use crate::controllers::error::ControllerError;
use crate::controllers::owner;

/// The ReplicaSet whose template equals the deployment's (oldest first if
/// several do).
pub(super) fn find_new_rs(d: &Deployment, rs_list: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let mut sorted = rs_list.to_vec();
    sorted.sort_by(|a, b| scaling::by_creation(a, b));
    sorted.into_iter().find(|rs| {
        rs.spec
            .template
            .as_ref()
            .is_some_and(|t| equal_ignore_hash(t, &d.spec.template))
    })
}

fn replace_in(rs_list: &mut [Arc<ReplicaSet>], updated: &Arc<ReplicaSet>) {
    for rs in rs_list.iter_mut() {
        if rs.metadata.uid == updated.metadata.uid {
            *rs = updated.clone();
        }
    }
}

/// Upstream's `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (made
/// if `create` and missing) and all old ones, with revisions synced.
pub(super) async fn all_replica_sets(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &mut Vec<Arc<ReplicaSet>>,
    create: bool,
) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>), ControllerError> {
    let new_uid = find_new_rs(d, rs_list).and_then(|rs| rs.metadata.uid.clone());
    let old: Vec<Arc<ReplicaSet>> = rs_list
        .iter()
        .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
        .cloned()
        .collect();
    let new_rs = new_replica_set(ctx, d, rs_list, &old, create).await?;
    Ok((new_rs, old))
}

async fn new_replica_set(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &mut Vec<Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
    create: bool,
) -> Result<Option<Arc<ReplicaSet>>, ControllerError> {
    let new_revision = (history::max_revision(old) + 1).to_string();
    if let Some(existing) = find_new_rs(d, rs_list) {
        return sync_existing_new_rs(ctx, d, rs_list, existing, &new_revision)
            .await
            .map(Some);
    }
    if !create {
        return Ok(None);
    }
    create_new_rs(ctx, d, rs_list, old, &new_revision)
        .await
        .map(Some)
}

async fn sync_existing_new_rs(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &mut [Arc<ReplicaSet>],
    existing: Arc<ReplicaSet>,
    new_revision: &str,
) -> Result<Arc<ReplicaSet>, ControllerError> {
    let mut copy = (*existing).clone();
    let annotations_updated = history::set_new_rs_annotations(d, &mut copy, new_revision, true);
    if annotations_updated
        || copy.spec.min_ready_seconds.unwrap_or(0) != d.spec.min_ready_seconds.unwrap_or(0)
    {
        copy.spec.min_ready_seconds = d.spec.min_ready_seconds;
        let updated = update_rs(ctx, &copy).await?;
        replace_in(rs_list, &updated);
        return Ok(updated);
    }
    let revision = copy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(history::REVISION))
        .cloned()
        .unwrap_or_default();
    let mut needs_update = history::set_deployment_revision(d, &revision);
    if progress::has_progress_deadline(d)
        && progress::deployment_condition(d, PROGRESSING).is_none()
    {
        let msg = format!("Found new replica set {:?}", name(&copy.metadata));
        let cond = progress::new_condition(
            PROGRESSING,
            "True",
            progress::FOUND_NEW_RS,
            msg,
            progress::now(),
        );
        progress::set_condition(d.status.get_or_insert_with(Default::default), cond);
        needs_update = true;
    }
    if needs_update {
        status::update_status(ctx, d).await?;
    }
    Ok(existing)
}

/// The ReplicaSet a deployment's current template calls for (not yet sized).
pub(super) fn new_rs_object(d: &Deployment) -> Result<ReplicaSet, ControllerError> {
    let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = compute_hash(&d.spec.template, collision_count)?;
    let mut template = d.spec.template.clone();
    let template_meta = template.metadata.get_or_insert_with(Default::default);
    template_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let labels = template_meta.labels.clone();
    let mut selector = d.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    Ok(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", name(&d.metadata))),
            namespace: d.metadata.namespace.clone(),
            owner_references: Some(vec![owner::new_controller_ref(
                "apps/v1",
                "Deployment",
                &d.metadata,
            )]),
            labels,
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: d.spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    })
}

async fn create_new_rs(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &mut Vec<Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
    new_revision: &str,
) -> Result<Arc<ReplicaSet>, ControllerError> {
    let mut new_rs = new_rs_object(d)?;
    let mut all = old.to_vec();
    all.push(Arc::new(new_rs.clone()));
    let count = scaling::new_rs_new_replicas(d, &all, &new_rs);
    new_rs.spec.replicas = Some(count);
    history::set_new_rs_annotations(d, &mut new_rs, new_revision, false);
    let ns = namespace(&d.metadata).to_owned();
    let rs_name = name(&new_rs.metadata).to_owned();
    let api = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns);
    let (created, already_existed) = match api.create(&PostParams::default(), &new_rs).await {
        Ok(created) => (Arc::new(created), false),
        Err(e) => {
            let err = ControllerError::api("create", "ReplicaSet", &ns, &rs_name, e);
            (
                adopt_existing_or_fail(ctx, d, &api, &rs_name, err).await?,
                true,
            )
        }
    };
    if !already_existed && count > 0 {
        let note = format!("Scaled up replica set {rs_name} to {count}");
        ctx.events.normal(&*d, "ScalingReplicaSet", note);
    }
    let mut needs_update = history::set_deployment_revision(d, new_revision);
    if !already_existed && progress::has_progress_deadline(d) {
        let msg = format!("Created new replica set {rs_name:?}");
        let cond = progress::new_condition(
            PROGRESSING,
            "True",
            progress::NEW_RS_CREATED,
            msg,
            progress::now(),
        );
        progress::set_condition(d.status.get_or_insert_with(Default::default), cond);
        needs_update = true;
    }
    rs_list.push(created.clone());
    if needs_update {
        status::update_status(ctx, d).await?;
    }
    Ok(created)
}

/// After a failed create: an existing ReplicaSet of ours with our template
/// is the new one (a lagging cache); any other name clash is a hash
/// collision, answered by bumping `status.collisionCount`.
async fn adopt_existing_or_fail(
    ctx: &Context,
    d: &mut Deployment,
    api: &Api<ReplicaSet>,
    rs_name: &str,
    err: ControllerError,
) -> Result<Arc<ReplicaSet>, ControllerError> {
    if err.is_already_exists() {
        let ns = namespace(&d.metadata).to_owned();
        let existing = api
            .get(rs_name)
            .await
            .map_err(|e| ControllerError::api("get", "ReplicaSet", &ns, rs_name, e))?;
        let ours = owner::is_controlled_by(
            &existing.metadata,
            d.metadata.uid.as_deref().unwrap_or_default(),
        );
        let same = existing
            .spec
            .template
            .as_ref()
            .is_some_and(|t| equal_ignore_hash(t, &d.spec.template));
        if ours && same {
            return Ok(Arc::new(existing));
        }
        let current = d.status.get_or_insert_with(Default::default);
        current.collision_count = Some(current.collision_count.unwrap_or(0).saturating_add(1));
        if status::update_status(ctx, d).await.is_ok() {
            tracing::info!(
                deployment = name(&d.metadata),
                "hash collision, bumped collisionCount"
            );
        }
        return Err(err);
    }
    if err.is_namespace_terminating() {
        return Err(err);
    }
    let msg = format!("Failed to create new replica set {rs_name:?}: {err}");
    if progress::has_progress_deadline(d) {
        let cond = progress::new_condition(
            PROGRESSING,
            "False",
            progress::FAILED_RS_CREATE,
            msg.clone(),
            progress::now(),
        );
        progress::set_condition(d.status.get_or_insert_with(Default::default), cond);
        // The create failure is the error worth reporting, not this one.
        let _ = status::update_status(ctx, d).await;
    }
    ctx.events.warning(&*d, progress::FAILED_RS_CREATE, msg);
    Err(err)
}

/// Writes a ReplicaSet (optimistically, from its cached version).
pub(super) async fn update_rs(
    ctx: &Context,
    rs: &ReplicaSet,
) -> Result<Arc<ReplicaSet>, ControllerError> {
    let (ns, rs_name) = (namespace(&rs.metadata), name(&rs.metadata));
    Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns)
        .replace(rs_name, &PostParams::default(), rs)
        .await
        .map(Arc::new)
        .map_err(|e| ControllerError::api("update", "ReplicaSet", ns, rs_name, e))
}

/// Upstream's `scaleReplicaSetAndRecordEvent`.
pub(super) async fn scale_rs_and_record(
    ctx: &Context,
    rs: &Arc<ReplicaSet>,
    new_scale: i32,
    d: &Deployment,
) -> Result<(bool, Arc<ReplicaSet>), ControllerError> {
    let current = rs_replicas(rs);
    if current == new_scale {
        return Ok((false, rs.clone()));
    }
    let direction = if current < new_scale { "up" } else { "down" };
    scale_rs(ctx, rs, new_scale, d, direction).await
}

/// Upstream's `scaleReplicaSet`: sets the size and the replicas
/// annotations; true if the size changed.
pub(super) async fn scale_rs(
    ctx: &Context,
    rs: &Arc<ReplicaSet>,
    new_scale: i32,
    d: &Deployment,
    direction: &str,
) -> Result<(bool, Arc<ReplicaSet>), ControllerError> {
    let old_scale = rs_replicas(rs);
    let desired = deployment_replicas(d);
    let max = scaling::max_replicas(d);
    let size_changes = old_scale != new_scale;
    if !size_changes && !history::replicas_annotations_need_update(rs, desired, max) {
        return Ok((false, rs.clone()));
    }
    let mut copy = (**rs).clone();
    copy.spec.replicas = Some(new_scale);
    history::set_replicas_annotations(&mut copy, desired, max);
    let updated = update_rs(ctx, &copy).await?;
    if size_changes {
        let note = format!(
            "Scaled {direction} replica set {} to {new_scale} from {old_scale}",
            name(&rs.metadata)
        );
        ctx.events.normal(d, "ScalingReplicaSet", note);
    }
    Ok((size_changes, updated))
}

/// Upstream's `scale`: resizing outside a rollout step (paused deployments,
/// scaling events), proportional across active ReplicaSets when rolling.
pub(super) async fn scale(
    ctx: &Context,
    d: &Deployment,
    new_rs: Option<&Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
) -> Result<(), ControllerError> {
    let desired = deployment_replicas(d);
    if let Some(rs) = scaling::find_active_or_latest(new_rs, old) {
        if rs_replicas(&rs) != desired {
            scale_rs_and_record(ctx, &rs, desired, d).await?;
        }
        return Ok(());
    }
    if scaling::is_saturated(d, new_rs.map(|rs| &**rs)) {
        for rs in old.iter().filter(|rs| rs_replicas(rs) > 0) {
            scale_rs_and_record(ctx, rs, 0, d).await?;
        }
        return Ok(());
    }
    if scaling::is_rolling_update(d) {
        let active: Vec<Arc<ReplicaSet>> = old
            .iter()
            .chain(new_rs)
            .filter(|rs| rs_replicas(rs) > 0)
            .cloned()
            .collect();
        let (plan, direction) = scaling::proportional_plan(d, &active);
        for (rs, size) in plan {
            scale_rs(ctx, &rs, size, d, direction).await?;
        }
    }
    Ok(())
}

/// Upstream's `cleanupDeployment`: deletes the old ReplicaSets beyond
/// `revisionHistoryLimit`.
pub(super) async fn cleanup(
    ctx: &Context,
    d: &Deployment,
    old: &[Arc<ReplicaSet>],
) -> Result<(), ControllerError> {
    for rs in history::history_to_clean_up(d, old) {
        let (ns, rs_name) = (namespace(&rs.metadata), name(&rs.metadata));
        tracing::debug!(
            deployment = name(&d.metadata),
            replicaset = rs_name,
            "cleaning up old revision"
        );
        let result = Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns)
            .delete(rs_name, &DeleteParams::default())
            .await;
        if let Err(e) = result {
            let err = ControllerError::api("delete", "ReplicaSet", ns, rs_name, e);
            if !err.is_not_found() {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Upstream's `isScalingEvent`: an active ReplicaSet was sized for a
/// different replica count than the deployment now asks for.
pub(super) async fn is_scaling_event(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &mut Vec<Arc<ReplicaSet>>,
) -> Result<bool, ControllerError> {
    let (new_rs, old) = all_replica_sets(ctx, d, rs_list, false).await?;
    let desired = deployment_replicas(d);
    Ok(old
        .iter()
        .chain(new_rs.as_ref())
        .filter(|rs| rs_replicas(rs) > 0)
        .filter_map(|rs| history::desired_replicas_annotation(rs))
        .any(|annotated| annotated != desired))
}
