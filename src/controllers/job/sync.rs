//! One Job sync (upstream `syncJob`): claim pods, count them, decide whether the Job failed
//! or succeeded, let [`super::manage`] create or delete pods, then hand over to
//! [`super::tracking`] to account for finished pods and write status.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;

use super::backoff::BackoffRecord;
use super::indexed::{Intervals, completion_index};
use super::manage::{manage_job, update_suspended_condition};
use super::pods::delete_pods;
use super::state::{
    TRACKING_FINALIZER, Uncounted, deadline_remaining, find_condition, has_tracking_finalizer,
    is_complete, is_indexed, is_pod_failed, is_suspended, new_condition,
    past_backoff_limit_on_failure,
};
use super::{Ctx, tracking};
use crate::controllers::batch_common::expectations::ChildView;
use crate::controllers::batch_common::ownership::{
    controller_ref, execute_claims, plan_claims, recheck_owner,
};
use crate::controllers::batch_common::pods::{is_active, is_ready, is_terminating, phase};
use crate::controllers::batch_common::runtime::object_ref;
use crate::controllers::batch_common::selector::Matcher;
use crate::controllers::batch_common::{ControllerError, time};

/// Everything one sync knows about a Job (upstream `syncJobCtx`).
pub(super) struct SyncCtx {
    /// Working copy; status is edited in place and written by tracking.
    pub job: Job,
    /// The Job's spec (present: checked before the sync starts).
    pub spec: JobSpec,
    /// The Job's uid.
    pub uid: String,
    /// Pods the Job controls.
    pub pods: Vec<Arc<Pod>>,
    /// Pods neither finished nor deleting.
    pub active_pods: Vec<Arc<Pod>>,
    /// The condition the Job is about to reach, if any.
    pub finished: Option<JobCondition>,
    /// Succeeded pods including uncounted ones.
    pub succeeded: i32,
    /// Failed pods including uncounted ones.
    pub failed: i32,
    /// `status.completedIndexes` as of the last write.
    pub prev_succeeded_indexes: Intervals,
    /// Succeeded indexes including pods not yet counted.
    pub succeeded_indexes: Intervals,
    /// Backoff record including pods finished since the last sync.
    pub backoff: BackoffRecord,
    /// Pods whose finalizer removal is not yet visible in the cache.
    pub expected_rm_finalizers: HashSet<String>,
    /// `status.uncountedTerminatedPods` as read.
    pub uncounted: Uncounted,
    /// Pods being deleted that have not finished.
    pub terminating: i32,
    /// Active pods that are ready.
    pub ready: i32,
    /// The instant this sync acts at.
    pub now: Timestamp,
}

impl SyncCtx {
    /// The working status, created if absent.
    pub fn status_mut(&mut self) -> &mut JobStatus {
        self.job.status.get_or_insert_with(Default::default)
    }

    fn status(&self) -> JobStatus {
        self.job.status.clone().unwrap_or_default()
    }

    /// Pods with a finalizer that finished since they were last counted (upstream
    /// `getNewFinishedPods`).
    fn new_finished_pods(&self) -> (Vec<&Pod>, Vec<&Pod>) {
        let completions = self.spec.completions.unwrap_or(0);
        let valid = |p: &Pod| {
            let uid = p.uid().unwrap_or_default();
            has_tracking_finalizer(p)
                && !self.expected_rm_finalizers.contains(&uid)
                && (!is_indexed(&self.spec) || completion_index(p).is_some_and(|i| i < completions))
        };
        let succeeded = self
            .pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| valid(p) && phase(p) == "Succeeded")
            .filter(|p| {
                !self
                    .uncounted
                    .succeeded
                    .contains(&p.uid().unwrap_or_default())
            })
            .collect();
        let failed = self
            .pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| valid(p) && is_pod_failed(p, &self.spec))
            .filter(|p| !self.uncounted.failed.contains(&p.uid().unwrap_or_default()))
            .collect();
        (succeeded, failed)
    }
}

/// Writes a Job's status (optimistic concurrency on its resourceVersion).
pub(super) async fn write_status(ctx: &Ctx, job: &Job) -> Result<Job, ControllerError> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let mut job = job.clone();
    if let Some(status) = job.status.as_mut()
        && status.conditions.as_ref().is_some_and(Vec::is_empty)
    {
        status.conditions = None;
    }
    Ok(api
        .replace_status(&job.name_any(), &PostParams::default(), &job)
        .await?)
}

/// Upstream `getPodsForJob`: the pods the Job controls, adopting and releasing as needed.
async fn pods_for_job(ctx: &Ctx, job: &Job) -> Result<Vec<Arc<Pod>>, ControllerError> {
    let spec = job.spec.as_ref();
    let matcher = Matcher::new(spec.and_then(|s| s.selector.as_ref()))?;
    let ns = job.namespace().unwrap_or_default();
    let candidates = ctx
        .pods
        .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
    let uid = job.uid().unwrap_or_default();
    let plan = plan_claims(
        candidates,
        &uid,
        job.metadata.deletion_timestamp.is_some(),
        |p| matcher.matches(p.metadata.labels.as_ref()),
    );
    let Some(owner_ref) = controller_ref(job) else {
        return Ok(plan.owned);
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    execute_claims(&pods_api, plan, &owner_ref, &[TRACKING_FINALIZER], || {
        recheck_owner(&jobs_api, job)
    })
    .await
}

/// What acting on the pods did.
struct Outcome {
    /// Active pods after the creations/deletions.
    active: i32,
    /// When to look again (backoff, active deadline).
    requeue: Option<Duration>,
    /// The first failed pod write.
    error: Option<ControllerError>,
    /// Whether the Suspended condition changed.
    suspend_changed: bool,
}

/// Reconciles an unfinished Job.
pub(super) async fn sync_job(
    ctx: &Ctx,
    job: &Job,
    spec: JobSpec,
) -> Result<Action, ControllerError> {
    let uid = job.uid().unwrap_or_default();
    let ns = job.namespace().unwrap_or_default();
    let satisfied = ctx.expectations.satisfied(&uid, |name| {
        let pod = ctx.pods.get(&object_ref(&ns, name))?;
        Some(ChildView {
            uid: pod.uid().unwrap_or_default(),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            has_finalizer: has_tracking_finalizer(&pod),
        })
    });
    let pods = pods_for_job(ctx, job).await?;
    let mut sc = new_sync_ctx(ctx, job, spec, uid, pods);
    count_finished(ctx, &mut sc);
    let deadline = evaluate_finish(&mut sc);
    let outcome = if sc.finished.is_some() {
        wind_down(ctx, &mut sc, satisfied).await
    } else {
        drive(ctx, &mut sc, satisfied).await
    };
    let old = sc.status();
    let needs_update = outcome.suspend_changed
        || Some(outcome.active) != old.active.or(Some(0))
        || Some(sc.ready) != old.ready
        || Some(sc.terminating) != old.terminating;
    let (ready, terminating) = (sc.ready, sc.terminating);
    let status = sc.status_mut();
    status.active = Some(outcome.active);
    status.ready = Some(ready);
    status.terminating = Some(terminating);
    tracking::track(ctx, &mut sc, needs_update).await?;
    if let Some(e) = outcome.error {
        return Err(e);
    }
    let requeue = min_delay(deadline, outcome.requeue);
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// A failed or succeeded Job: delete what still runs (keeping finalizers so those pods are
/// counted); the Job only finishes once that is done and the cache is caught up.
async fn wind_down(ctx: &Ctx, sc: &mut SyncCtx, satisfied: bool) -> Outcome {
    let active = i32::try_from(sc.active_pods.len()).unwrap_or(i32::MAX);
    let (ready, deleted, error) = delete_pods(ctx, &sc.job, &sc.active_pods, false).await;
    if deleted != active || !satisfied {
        sc.finished = None;
    }
    sc.terminating += deleted;
    sc.ready -= ready;
    Outcome {
        active: active - deleted,
        requeue: None,
        error,
        suspend_changed: false,
    }
}

/// A running Job: manage pods, then check completion or the Suspended condition.
async fn drive(ctx: &Ctx, sc: &mut SyncCtx, satisfied: bool) -> Outcome {
    let mut outcome = Outcome {
        active: i32::try_from(sc.active_pods.len()).unwrap_or(i32::MAX),
        requeue: None,
        error: None,
        suspend_changed: false,
    };
    let managed = satisfied && sc.job.metadata.deletion_timestamp.is_none();
    if managed {
        (outcome.active, outcome.requeue, outcome.error) = manage_job(ctx, sc).await;
    }
    if is_complete(sc.spec.completions, sc.succeeded, outcome.active) {
        let msg = "Reached expected number of succeeded pods";
        let cond = new_condition("SuccessCriteriaMet", "CompletionsReached", msg, sc.now);
        sc.finished = Some(cond);
    } else if managed {
        outcome.suspend_changed = update_suspended_condition(ctx, sc);
    }
    outcome
}

fn min_delay(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn new_sync_ctx(ctx: &Ctx, job: &Job, spec: JobSpec, uid: String, pods: Vec<Arc<Pod>>) -> SyncCtx {
    let mut job = job.clone();
    let status = job.status.get_or_insert_with(Default::default);
    status
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);
    let active_pods: Vec<Arc<Pod>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
    let ready = i32::try_from(active_pods.iter().filter(|p| is_ready(p)).count()).unwrap_or(0);
    let terminating = i32::try_from(pods.iter().filter(|p| is_terminating(p)).count()).unwrap_or(0);
    let uncounted = Uncounted::of(&job);
    let expected_rm_finalizers = ctx.expectations.pending_finalizer_removals(&uid);
    SyncCtx {
        job,
        spec,
        uid,
        pods,
        active_pods,
        finished: None,
        succeeded: 0,
        failed: 0,
        prev_succeeded_indexes: Intervals::default(),
        succeeded_indexes: Intervals::default(),
        backoff: BackoffRecord::default(),
        expected_rm_finalizers,
        uncounted,
        terminating,
        ready,
        now: time::now(),
    }
}

/// Fills in counts, start time and the backoff record (upstream `syncJob` preamble).
pub(super) fn count_finished(ctx: &Ctx, sc: &mut SyncCtx) {
    let (new_succeeded, new_failed) = sc.new_finished_pods();
    let (ns, nf) = (new_succeeded.len(), new_failed.len());
    let backoff = ctx
        .backoff
        .next_record(&sc.uid, &new_succeeded, &new_failed);
    let status = sc.status();
    let total = |base: Option<i32>, new: usize, uncounted: usize| {
        base.unwrap_or(0)
            .saturating_add(i32::try_from(new + uncounted).unwrap_or(i32::MAX))
    };
    sc.succeeded = total(status.succeeded, ns, sc.uncounted.succeeded.len());
    sc.failed = total(status.failed, nf, sc.uncounted.failed.len());
    sc.backoff = backoff;
    if status.start_time.is_none() && !is_suspended(&sc.spec) {
        let now = sc.now;
        sc.status_mut().start_time = Some(Time(now));
    }
}

/// Decides whether the Job has failed or already met its success criteria; returns when
/// the active deadline needs another look.
fn evaluate_finish(sc: &mut SyncCtx) -> Option<Duration> {
    let status = sc.status();
    let conditions = status.conditions.clone().unwrap_or_default();
    let true_condition = |t: &str| {
        find_condition(&conditions, t)
            .filter(|c| c.status == "True")
            .cloned()
    };
    let mut requeue = None;
    sc.finished = true_condition("SuccessCriteriaMet");
    if sc.finished.is_none()
        && let Some(target) = true_condition("FailureTarget")
    {
        let (reason, message) = (
            target.reason.unwrap_or_default(),
            target.message.unwrap_or_default(),
        );
        sc.finished = Some(new_condition("Failed", &reason, &message, sc.now));
    }
    if sc.finished.is_none() {
        let limit = sc.spec.backoff_limit.unwrap_or(6);
        let start = status.start_time.as_ref().map(|t| t.0);
        if sc.failed > limit || past_backoff_limit_on_failure(&sc.spec, &sc.pods) {
            let msg = "Job has reached the specified backoff limit";
            sc.finished = Some(new_condition(
                "FailureTarget",
                "BackoffLimitExceeded",
                msg,
                sc.now,
            ));
        } else if let Some(left) = deadline_remaining(&sc.spec, start, sc.now) {
            if left.is_zero() {
                let msg = "Job was active longer than specified deadline";
                sc.finished = Some(new_condition(
                    "FailureTarget",
                    "DeadlineExceeded",
                    msg,
                    sc.now,
                ));
            } else {
                requeue = Some(left);
            }
        }
    }
    if is_indexed(&sc.spec) {
        let completions = sc.spec.completions.unwrap_or(0);
        sc.prev_succeeded_indexes = Intervals::parse(
            status.completed_indexes.as_deref().unwrap_or(""),
            completions,
        );
        let new: Vec<i32> = sc
            .pods
            .iter()
            .filter(|p| phase(p) == "Succeeded" && has_tracking_finalizer(p))
            .filter_map(|p| completion_index(p))
            .filter(|i| *i < completions)
            .collect();
        sc.succeeded_indexes = sc.prev_succeeded_indexes.with_indexes(new);
        sc.succeeded = sc.succeeded_indexes.total();
    }
    requeue
}
