//! Counting finished pods with the tracking finalizer (upstream
//! `trackJobStatusAndRemoveFinalizers` and `flushUncountedAndRemoveFinalizers`).
//!
//! Pods carry `batch.kubernetes.io/job-tracking` until counted, so a pod deleted by someone
//! else (pod GC, a user) is still seen and counted. The protocol is crash-safe: finished
//! pods' uids are first written to `status.uncountedTerminatedPods`, then their finalizers
//! are removed, then the uids move into `succeeded`/`failed`. Whatever step a crash
//! interrupts, the next sync can finish it without counting a pod twice or losing it. The
//! Job is declared finished only when nothing is uncounted and no pod is terminating.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::{JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;

use super::Ctx;
use super::indexed::completion_index;
use super::pods::remove_finalizer;
use super::state::{
    ensure_condition, find_condition, has_tracking_finalizer, is_indexed, is_pod_failed,
    new_condition,
};
use super::sync::{SyncCtx, write_status};
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::pods::phase;

/// Upstream `MaxUncountedPods`: keeps `uncountedTerminatedPods` around 20 KB.
const MAX_UNCOUNTED_PODS: usize = 500;

/// Counts newly finished pods, removes their finalizers, and finishes the Job if it can.
pub(super) async fn track(
    ctx: &Ctx,
    sc: &mut SyncCtx,
    mut needs_flush: bool,
) -> Result<(), ControllerError> {
    let indexed = is_indexed(&sc.spec);
    let mut pods = sc.pods.clone();
    if indexed {
        pods.sort_by_key(|p| completion_index(p).unwrap_or(-1));
    }
    let mut with_finalizer: HashSet<String> = pods
        .iter()
        .filter(|p| has_tracking_finalizer(p))
        .map(|p| p.uid().unwrap_or_default())
        .filter(|uid| !sc.expected_rm_finalizers.contains(uid))
        .collect();
    needs_flush |= clean_uncounted(sc.status_mut(), &with_finalizer);
    let (to_remove, new_indexes, reached_max, found_new) = select_finished(sc, &pods);
    needs_flush |= found_new;
    if indexed {
        sc.succeeded_indexes = sc.succeeded_indexes.with_indexes(new_indexes);
        let text = sc.succeeded_indexes.to_string();
        let total = sc.succeeded_indexes.total();
        let status = sc.status_mut();
        if status.completed_indexes.as_deref().unwrap_or("") != text {
            needs_flush = true;
        }
        status.succeeded = Some(total);
        status.completed_indexes = Some(text);
    }
    needs_flush |= record_interim_condition(sc);
    needs_flush = flush_and_remove(ctx, sc, &to_remove, &mut with_finalizer, needs_flush).await?;
    let finished = !reached_max && enact_finished(sc);
    if finished || needs_flush {
        sc.job = write_status(ctx, &sc.job).await?;
    }
    if finished {
        report_finished(ctx, sc);
    }
    Ok(())
}

/// Picks pods whose finalizer can go and records them as uncounted (or, for Indexed Jobs,
/// their succeeded indexes). Returns (pods, new indexes, hit the cap, status changed).
fn select_finished(sc: &mut SyncCtx, pods: &[Arc<Pod>]) -> (Vec<Arc<Pod>>, Vec<i32>, bool, bool) {
    let indexed = is_indexed(&sc.spec);
    let completions = sc.spec.completions.unwrap_or(0);
    let failing = sc
        .finished
        .as_ref()
        .is_some_and(|c| c.type_ != "SuccessCriteriaMet");
    let mut uncounted = sc
        .status_mut()
        .uncounted_terminated_pods
        .take()
        .unwrap_or_default();
    let (mut to_remove, mut new_indexes, mut reached_max, mut changed) =
        (Vec::new(), Vec::new(), false, false);
    for pod in pods {
        let uid = pod.uid().unwrap_or_default();
        if !has_tracking_finalizer(pod) || sc.expected_rm_finalizers.contains(&uid) {
            continue;
        }
        let failed = is_pod_failed(pod, &sc.spec);
        if !can_remove_finalizer(sc, pod, failed) {
            continue;
        }
        to_remove.push(pod.clone());
        let ix = completion_index(pod).filter(|i| *i < completions);
        if phase(pod) == "Succeeded" && !sc.uncounted.failed.contains(&uid) {
            if indexed {
                if let Some(i) = ix.filter(|i| !sc.prev_succeeded_indexes.has(*i)) {
                    new_indexes.push(i);
                    changed = true;
                }
            } else if !sc.uncounted.succeeded.contains(&uid) {
                uncounted.succeeded.get_or_insert_with(Vec::new).push(uid);
                changed = true;
            }
        } else if (failed || failing)
            && !sc.uncounted.failed.contains(&uid)
            && (!indexed || ix.is_some())
        {
            uncounted.failed.get_or_insert_with(Vec::new).push(uid);
            changed = true;
        }
        let size = new_indexes.len()
            + uncounted.succeeded.as_ref().map_or(0, Vec::len)
            + uncounted.failed.as_ref().map_or(0, Vec::len);
        if size >= MAX_UNCOUNTED_PODS {
            reached_max = true;
            break;
        }
    }
    sc.status_mut().uncounted_terminated_pods = Some(uncounted);
    (to_remove, new_indexes, reached_max, changed)
}

/// Upstream `canRemoveFinalizer`.
fn can_remove_finalizer(sc: &SyncCtx, pod: &Pod, failed: bool) -> bool {
    sc.job.metadata.deletion_timestamp.is_some()
        || sc.finished.is_some()
        || phase(pod) == "Succeeded"
        || failed
}

/// Writes the interim FailureTarget / SuccessCriteriaMet condition into status and turns
/// the pending finish into its final type (Failed / Complete).
fn record_interim_condition(sc: &mut SyncCtx) -> bool {
    let Some(cond) = sc.finished.clone() else {
        return false;
    };
    let (reason, message) = (
        cond.reason.clone().unwrap_or_default(),
        cond.message.clone().unwrap_or_default(),
    );
    let now = sc.now;
    let conditions = sc.status_mut().conditions.get_or_insert_with(Vec::new);
    match cond.type_.as_str() {
        "FailureTarget" => {
            conditions.push(cond);
            sc.finished = Some(new_condition("Failed", &reason, &message, now));
            true
        }
        "SuccessCriteriaMet" => {
            let added = find_condition(conditions, "SuccessCriteriaMet").is_none();
            if added {
                conditions.push(cond);
            }
            sc.finished = Some(new_condition("Complete", &reason, &message, now));
            added
        }
        _ => false,
    }
}

/// Moves uids without a finalizer from the uncounted lists into the counters.
fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    let moved = |list: &mut Option<Vec<String>>| -> i32 {
        let before = list.as_ref().map_or(0, Vec::len);
        if let Some(l) = list.as_mut() {
            l.retain(|uid| with_finalizer.contains(uid));
        }
        let after = list.as_ref().map_or(0, Vec::len);
        i32::try_from(before - after).unwrap_or(i32::MAX)
    };
    let (s, f) = (
        moved(&mut uncounted.succeeded),
        moved(&mut uncounted.failed),
    );
    status.succeeded = Some(status.succeeded.unwrap_or(0) + s);
    status.failed = Some(status.failed.unwrap_or(0) + f);
    s > 0 || f > 0
}

/// Upstream `flushUncountedAndRemoveFinalizers`; returns whether status still needs a write.
async fn flush_and_remove(
    ctx: &Ctx,
    sc: &mut SyncCtx,
    to_remove: &[Arc<Pod>],
    with_finalizer: &mut HashSet<String>,
    mut needs_flush: bool,
) -> Result<bool, ControllerError> {
    if needs_flush {
        sc.job = write_status(ctx, &sc.job).await?;
        ctx.backoff.store(&sc.uid, sc.backoff);
        needs_flush = false;
    }
    let api: Api<Pod> =
        Api::namespaced(ctx.client.clone(), &sc.job.namespace().unwrap_or_default());
    for p in to_remove {
        ctx.expectations.expect_finalizer_removal(
            &sc.uid,
            &p.name_any(),
            &p.uid().unwrap_or_default(),
        );
    }
    let results = join_all(to_remove.iter().map(|p| {
        let name = p.name_any();
        let api = api.clone();
        async move { remove_finalizer(&api, &name).await }
    }))
    .await;
    let mut error = None;
    for (p, r) in to_remove.iter().zip(results) {
        let uid = p.uid().unwrap_or_default();
        match r {
            Ok(()) => {
                with_finalizer.remove(&uid);
            }
            Err(e) => {
                ctx.expectations.forget_child(&sc.uid, &uid);
                error.get_or_insert(e);
            }
        }
    }
    needs_flush |= clean_uncounted(sc.status_mut(), with_finalizer);
    match error {
        Some(e) => {
            if needs_flush {
                sc.job = write_status(ctx, &sc.job).await?;
            }
            Err(e)
        }
        None => Ok(needs_flush),
    }
}

/// Upstream `enactJobFinished`: adds Complete/Failed once every pod is counted and gone.
fn enact_finished(sc: &mut SyncCtx) -> bool {
    let Some(cond) = sc.finished.clone() else {
        return false;
    };
    let uncounted = sc
        .status_mut()
        .uncounted_terminated_pods
        .clone()
        .unwrap_or_default();
    if uncounted.succeeded.is_some_and(|v| !v.is_empty())
        || uncounted.failed.is_some_and(|v| !v.is_empty())
    {
        return false;
    }
    if sc.terminating > 0 {
        return false;
    }
    let (reason, message) = (
        cond.reason.clone().unwrap_or_default(),
        cond.message.clone().unwrap_or_default(),
    );
    let now = sc.now;
    let status = sc.status_mut();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    ensure_condition(conditions, &cond.type_, "True", &reason, &message, now);
    if cond.type_ == "Complete" {
        status.completion_time =
            find_condition(conditions, "Complete").and_then(|c| c.last_transition_time.clone());
    }
    true
}

fn report_finished(ctx: &Ctx, sc: &SyncCtx) {
    let Some(cond) = &sc.finished else { return };
    if cond.type_ == "Complete" {
        let succeeded = sc
            .job
            .status
            .as_ref()
            .and_then(|s| s.succeeded)
            .unwrap_or(0);
        if sc.spec.completions.is_some_and(|c| succeeded > c) {
            let note = "Too many succeeded pods running after completion count reached".to_string();
            ctx.events.warning(&sc.job, "TooManySucceededPods", note);
        }
        ctx.events
            .normal(&sc.job, "Completed", "Job completed".into());
    } else {
        let reason = cond.reason.clone().unwrap_or_default();
        ctx.events
            .warning(&sc.job, &reason, cond.message.clone().unwrap_or_default());
    }
}
