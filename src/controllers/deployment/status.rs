//! Writing a Deployment's status (upstream `sync.go`'s
//! `syncDeploymentStatus`, `progress.go`'s `syncRolloutStatus` and
//! `checkPausedConditions`).
//!
//! Status is written only when it differs from what the deployment reports
//! (counters the server omits count as zero). The revision annotation rides
//! along like upstream's status subresource allows; a server that keeps
//! metadata out of status writes gets a separate, version-checked patch.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::progress::{self, PROGRESSING};
use super::{Context, history, name, namespace};
use crate::controllers::error::ControllerError;

/// Writes the deployment's status (and its revision annotation, which
/// upstream writes through the status subresource too).
pub(super) async fn update_status(
    ctx: &Context,
    d: &mut Deployment,
) -> Result<(), ControllerError> {
    let (ns, d_name) = (
        namespace(&d.metadata).to_owned(),
        name(&d.metadata).to_owned(),
    );
    let api = Api::<Deployment>::namespaced(ctx.client.clone(), &ns);
    let fail = |action, e| ControllerError::api(action, "Deployment", &ns, &d_name, e);
    let written = api
        .replace_status(&d_name, &PostParams::default(), &*d)
        .await
        .map_err(|e| fail("update status of", e))?;
    d.metadata.resource_version = written.metadata.resource_version.clone();
    let wanted = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(history::REVISION));
    let stored = written
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(history::REVISION));
    if let Some(revision) = wanted
        && stored != Some(revision)
    {
        // This server keeps metadata out of status writes; set it directly.
        let patch = json!({"metadata": {
            "resourceVersion": written.metadata.resource_version,
            "annotations": {history::REVISION: revision},
        }});
        let patched = api
            .patch(&d_name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| fail("annotate", e))?;
        d.metadata.resource_version = patched.metadata.resource_version;
    }
    Ok(())
}

/// Upstream's `syncDeploymentStatus`.
pub(super) async fn sync_status(
    ctx: &Context,
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&Arc<ReplicaSet>>,
    d: &mut Deployment,
) -> Result<(), ControllerError> {
    let status = progress::calculate_status(all, new_rs, d, progress::now());
    if progress::status_equal(&d.status.clone().unwrap_or_default(), &status) {
        return Ok(());
    }
    d.status = Some(status);
    update_status(ctx, d).await
}

/// Upstream's `syncRolloutStatus`; returns when to check the progress
/// deadline again if nothing else happens.
pub(super) async fn sync_rollout_status(
    ctx: &Context,
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&Arc<ReplicaSet>>,
    d: &mut Deployment,
) -> Result<Option<Duration>, ControllerError> {
    let now = progress::now();
    let status = progress::rollout_status(all, new_rs, d, now);
    if progress::status_equal(&d.status.clone().unwrap_or_default(), &status) {
        return Ok(progress::requeue_stuck(d, &status, now));
    }
    d.status = Some(status);
    update_status(ctx, d).await?;
    Ok(None)
}

/// Upstream's `checkPausedConditions`.
pub(super) async fn check_paused_conditions(
    ctx: &Context,
    d: &mut Deployment,
) -> Result<(), ControllerError> {
    if !progress::has_progress_deadline(d) {
        return Ok(());
    }
    let reason = progress::deployment_condition(d, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(progress::TIMED_OUT) {
        return Ok(());
    }
    let paused_cond = reason.as_deref() == Some(progress::PAUSED);
    let paused = d.spec.paused.unwrap_or(false);
    let cond = match (paused, paused_cond) {
        (true, false) => progress::new_condition(
            PROGRESSING,
            "Unknown",
            progress::PAUSED,
            "Deployment is paused".into(),
            progress::now(),
        ),
        (false, true) => progress::new_condition(
            PROGRESSING,
            "Unknown",
            progress::RESUMED,
            "Deployment is resumed".into(),
            progress::now(),
        ),
        _ => return Ok(()),
    };
    progress::set_condition(d.status.get_or_insert_with(Default::default), cond);
    update_status(ctx, d).await
}
