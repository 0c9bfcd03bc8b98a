//! The two rollout strategies (upstream `rolling.go` and `recreate.go`).
//!
//! RollingUpdate grows the new ReplicaSet while the total stays within
//! replicas + maxSurge, and shrinks old ones while the available pods stay
//! at or above replicas − maxUnavailable, one step per sync: each sync that
//! scales something stops there and waits for the watch to report the
//! consequences. Recreate scales every old ReplicaSet to zero, waits until
//! none of their pods is running any more, and only then creates or grows
//! the new one.
//!
//! Returns when to check the progress deadline again, if needed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

use super::Context;
use super::progress;
use super::scaling::{self, available, deployment_replicas, rs_replicas};
use super::status;
use super::sync::{self, scale_rs_and_record};
use crate::controllers::error::ControllerError;
use crate::controllers::pod_state;

/// Pods of the deployment grouped by the UID of their ReplicaSet.
pub(super) type PodMap = HashMap<String, Vec<Arc<Pod>>>;

/// Upstream's `rolloutRolling`.
pub(super) async fn rolling(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &mut Vec<Arc<ReplicaSet>>,
) -> Result<Option<Duration>, ControllerError> {
    let (new_rs, old) = sync::all_replica_sets(ctx, d, rs_list, true).await?;
    let Some(new_rs) = new_rs else {
        return Ok(None);
    };
    let mut all = old.clone();
    all.push(new_rs.clone());
    if reconcile_new_rs(ctx, &all, &new_rs, d).await? {
        return status::sync_rollout_status(ctx, &all, Some(&new_rs), d).await;
    }
    let active_old: Vec<Arc<ReplicaSet>> = old
        .iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .cloned()
        .collect();
    if reconcile_old_rss(ctx, &all, active_old, &new_rs, d).await {
        return status::sync_rollout_status(ctx, &all, Some(&new_rs), d).await;
    }
    if progress::deployment_complete(d, &d.status.clone().unwrap_or_default()) {
        sync::cleanup(ctx, d, &old).await?;
    }
    status::sync_rollout_status(ctx, &all, Some(&new_rs), d).await
}

/// Grows (or trims) the new ReplicaSet as far as maxSurge allows.
async fn reconcile_new_rs(
    ctx: &Context,
    all: &[Arc<ReplicaSet>],
    new_rs: &Arc<ReplicaSet>,
    d: &Deployment,
) -> Result<bool, ControllerError> {
    let desired = deployment_replicas(d);
    let current = rs_replicas(new_rs);
    if current == desired {
        return Ok(false);
    }
    let target = if current > desired {
        desired
    } else {
        scaling::new_rs_new_replicas(d, all, new_rs)
    };
    Ok(scale_rs_and_record(ctx, new_rs, target, d).await?.0)
}

/// Shrinks old ReplicaSets as far as maxUnavailable allows, unhealthy
/// replicas first. Failures end the step quietly, as upstream does: the
/// failed write's own watch event brings the deployment back.
async fn reconcile_old_rss(
    ctx: &Context,
    all: &[Arc<ReplicaSet>],
    old: Vec<Arc<ReplicaSet>>,
    new_rs: &Arc<ReplicaSet>,
    d: &Deployment,
) -> bool {
    if scaling::replica_count(&old) == 0 {
        return false;
    }
    let min_available = deployment_replicas(d) - scaling::max_unavailable(d);
    let new_unavailable = rs_replicas(new_rs).saturating_sub(available(new_rs));
    // Assume every old pod available and no new one beyond those reported.
    let max_scaled_down = scaling::replica_count(all)
        .saturating_sub(min_available)
        .saturating_sub(new_unavailable);
    if max_scaled_down <= 0 {
        return false;
    }
    let (old, cleaned) = match cleanup_unhealthy(ctx, old, d, max_scaled_down).await {
        Ok(done) => done,
        Err(err) => {
            tracing::debug!(error = %err, "cleaning up unhealthy replicas failed");
            return false;
        }
    };
    let mut all = old.clone();
    all.push(new_rs.clone());
    match scale_down_old_for_rolling(ctx, &all, old, d).await {
        Ok(scaled) => cleaned + scaled > 0,
        Err(err) => {
            tracing::debug!(error = %err, "scaling down old replica sets failed");
            false
        }
    }
}

/// Upstream's `cleanupUnhealthyReplicas`: scales old ReplicaSets down by
/// their unavailable replicas, which cannot lower availability.
async fn cleanup_unhealthy(
    ctx: &Context,
    mut old: Vec<Arc<ReplicaSet>>,
    d: &Deployment,
    max_cleanup: i32,
) -> Result<(Vec<Arc<ReplicaSet>>, i32), ControllerError> {
    old.sort_by(|a, b| scaling::by_creation(a, b));
    let mut total = 0;
    for rs in old.iter_mut() {
        if total >= max_cleanup {
            break;
        }
        let replicas = rs_replicas(rs);
        if replicas == 0 || replicas == available(rs) {
            continue;
        }
        let count = (max_cleanup - total).min(replicas - available(rs));
        let target = replicas - count;
        if target > replicas {
            return Err(ControllerError::InvalidScale {
                name: rs.metadata.name.clone().unwrap_or_default(),
                from: replicas,
                to: target,
            });
        }
        let (_, updated) = scale_rs_and_record(ctx, rs, target, d).await?;
        total += count;
        *rs = updated;
    }
    Ok((old, total))
}

/// Upstream's `scaleDownOldReplicaSetsForRollingUpdate`: old ReplicaSets,
/// oldest first, lose as many pods as are available beyond the minimum.
async fn scale_down_old_for_rolling(
    ctx: &Context,
    all: &[Arc<ReplicaSet>],
    mut old: Vec<Arc<ReplicaSet>>,
    d: &Deployment,
) -> Result<i32, ControllerError> {
    let min_available = deployment_replicas(d) - scaling::max_unavailable(d);
    let available_pods = scaling::available_replica_count(all);
    if available_pods <= min_available {
        return Ok(0);
    }
    old.sort_by(|a, b| scaling::by_creation(a, b));
    let wanted = available_pods - min_available;
    let mut total = 0;
    for rs in &old {
        if total >= wanted {
            break;
        }
        let replicas = rs_replicas(rs);
        if replicas == 0 {
            continue;
        }
        let count = replicas.min(wanted - total);
        scale_rs_and_record(ctx, rs, replicas - count, d).await?;
        total += count;
    }
    Ok(total)
}

/// Upstream's `rolloutRecreate`.
pub(super) async fn recreate(
    ctx: &Context,
    d: &mut Deployment,
    rs_list: &mut Vec<Arc<ReplicaSet>>,
    pods: &PodMap,
) -> Result<Option<Duration>, ControllerError> {
    // No new ReplicaSet yet: it must not get pods before the old ones are gone.
    let (mut new_rs, mut old) = sync::all_replica_sets(ctx, d, rs_list, false).await?;
    let mut all: Vec<Arc<ReplicaSet>> = old.iter().chain(new_rs.as_ref()).cloned().collect();
    let mut scaled_down = false;
    for rs in old.iter().filter(|rs| rs_replicas(rs) > 0) {
        scaled_down |= scale_rs_and_record(ctx, rs, 0, d).await?.0;
    }
    if scaled_down || old_pods_running(new_rs.as_ref(), &old, pods) {
        return status::sync_rollout_status(ctx, &all, new_rs.as_ref(), d).await;
    }
    if new_rs.is_none() {
        (new_rs, old) = sync::all_replica_sets(ctx, d, rs_list, true).await?;
        all = old.iter().chain(new_rs.as_ref()).cloned().collect();
    }
    if let Some(rs) = new_rs.as_ref() {
        scale_rs_and_record(ctx, rs, deployment_replicas(d), d).await?;
    }
    if progress::deployment_complete(d, &d.status.clone().unwrap_or_default()) {
        sync::cleanup(ctx, d, &old).await?;
    }
    status::sync_rollout_status(ctx, &all, new_rs.as_ref(), d).await
}

/// Upstream's `oldPodsRunning`: any old ReplicaSet still reports pods, or
/// any pod outside the new ReplicaSet is not finished (unknown counts as
/// running).
pub(super) fn old_pods_running(
    new_rs: Option<&Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
    pods: &PodMap,
) -> bool {
    if scaling::actual_replica_count(old) > 0 {
        return true;
    }
    let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
    pods.iter()
        .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
        .flat_map(|(_, pods)| pods)
        .any(|pod| !matches!(pod_state::phase(pod), "Failed" | "Succeeded"))
}
