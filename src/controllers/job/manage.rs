//! Pod management of a running Job (upstream `manageJob`): delete surplus pods (all of them
//! when suspended), otherwise create the missing ones once the failure backoff allows, and
//! keep the `Suspended` condition in line with `spec.suspend`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Ctx;
use super::indexed::completion_index;
use super::pods::{create_pods, delete_pods};
use super::state::{
    ensure_condition, is_indexed, is_suspended, only_replace_failed, pods_for_removal, want_active,
};
use super::sync::SyncCtx;
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::pods::is_terminating;

/// Upstream `MaxPodCreateDeletePerSync`.
const MAX_POD_CHANGES_PER_SYNC: usize = 500;

/// Upstream `manageJob`: deletes surplus pods or creates missing ones (respecting the
/// failure backoff). Returns (active pods, requeue, first error).
pub(super) async fn manage_job(
    ctx: &Ctx,
    sc: &mut SyncCtx,
) -> (i32, Option<Duration>, Option<ControllerError>) {
    let active = i32::try_from(sc.active_pods.len()).unwrap_or(i32::MAX);
    let indexed = is_indexed(&sc.spec).then(|| sc.spec.completions.unwrap_or(0));
    let to_delete = if is_suspended(&sc.spec) {
        pods_for_removal(indexed, &sc.active_pods, sc.active_pods.len())
    } else {
        let want = want_active(
            sc.spec.completions,
            sc.spec.parallelism.unwrap_or(1),
            sc.succeeded,
            active,
        );
        let surplus = usize::try_from(active - want).unwrap_or(0);
        let mut pods = pods_for_removal(indexed, &sc.active_pods, surplus);
        pods.truncate(MAX_POD_CHANGES_PER_SYNC);
        pods
    };
    if !to_delete.is_empty() || is_suspended(&sc.spec) {
        let (ready, deleted, err) = delete_pods(ctx, &sc.job, &to_delete, true).await;
        sc.terminating += deleted;
        sc.ready -= ready;
        return (active - deleted, None, err);
    }
    let want = want_active(
        sc.spec.completions,
        sc.spec.parallelism.unwrap_or(1),
        sc.succeeded,
        active,
    );
    let terminating = if only_replace_failed(&sc.spec) {
        sc.terminating
    } else {
        0
    };
    let diff = want - terminating - active;
    if diff <= 0 {
        return (active, None, None);
    }
    let wait = sc.backoff.remaining(
        sc.now,
        ctx.config.pod_failure_backoff,
        ctx.config.max_pod_failure_backoff,
    );
    if !wait.is_zero() {
        return (active, Some(wait.max(Duration::from_secs(1))), None);
    }
    let count = usize::try_from(diff)
        .unwrap_or(0)
        .min(MAX_POD_CHANGES_PER_SYNC);
    let indexes = match indexed {
        Some(completions) => first_pending_indexes(sc, count, completions),
        None => Vec::new(),
    };
    if indexed.is_some() && indexes.is_empty() {
        return (active, None, None);
    }
    let (created, err) = create_pods(ctx, &sc.job, count, &indexes).await;
    (active + i32::try_from(created).unwrap_or(0), None, err)
}

/// Upstream `firstPendingIndexes`: the lowest indexes neither succeeded nor running.
fn first_pending_indexes(sc: &SyncCtx, count: usize, completions: i32) -> Vec<i32> {
    let mut busy: Vec<i32> = sc
        .active_pods
        .iter()
        .filter_map(|p| completion_index(p))
        .collect();
    if only_replace_failed(&sc.spec) {
        busy.extend(
            sc.pods
                .iter()
                .filter(|p| is_terminating(p))
                .filter_map(|p| completion_index(p)),
        );
    }
    sc.succeeded_indexes
        .with_indexes(busy)
        .first_missing(count, completions)
}

/// Keeps the `Suspended` condition in line with `spec.suspend`; resuming restarts the
/// active deadline clock. Returns whether status changed.
pub(super) fn update_suspended_condition(ctx: &Ctx, sc: &mut SyncCtx) -> bool {
    let now = sc.now;
    let suspended = is_suspended(&sc.spec);
    let conditions = sc.status_mut().conditions.get_or_insert_with(Vec::new);
    let changed = if suspended {
        ensure_condition(
            conditions,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        )
    } else {
        ensure_condition(
            conditions,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now,
        )
    };
    if !changed {
        return false;
    }
    if suspended {
        ctx.events
            .normal(&sc.job, "Suspended", "Job suspended".into());
    } else {
        ctx.events.normal(&sc.job, "Resumed", "Job resumed".into());
        sc.status_mut().start_time = Some(Time(now));
    }
    true
}
