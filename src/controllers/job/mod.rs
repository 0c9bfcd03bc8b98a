//! The Job controller (upstream `pkg/controller/job`) and the TTL-after-finished behaviour
//! (upstream `pkg/controller/ttlafterfinished`).
//!
//! A Job runs pods from its template until `completions` of them succeed (NonIndexed or
//! Indexed), never more than `parallelism` at once; failed pods are replaced after an
//! exponential backoff until `backoffLimit` failures, and `activeDeadlineSeconds` bounds the
//! whole run. Pods carry the `batch.kubernetes.io/job-tracking` finalizer until counted, so
//! counts survive pod deletion (see [`tracking`]). Finishing is two-step like upstream:
//! `SuccessCriteriaMet`/`FailureTarget` first, `Complete`/`Failed` once no pod is left
//! terminating. Finished Jobs with `ttlSecondsAfterFinished` are deleted when it expires.
//!
//! Design: reconciles read pods from a shared watch cache and use [`Expectations`] to avoid
//! acting on a cache that has not seen the controller's own writes yet. Pods whose Job is
//! gone (or finished) but still carry the tracking finalizer are handled by a separate
//! orphan worker (see [`orphans`]), because the main loop only reconciles existing Jobs.
//! Failures: apiserver errors fail the reconcile and are retried with per-Job backoff;
//! status writes use optimistic concurrency, so a stale cache costs a retry, never a
//! miscount.

mod backoff;
pub mod indexed;
mod manage;
mod orphans;
pub mod pods;
pub mod state;
mod sync;
mod tracking;
mod ttl;

use crate::client::informer::SharedInformers;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::backoff::BackoffStore;
use self::state::{finished, has_tracking_finalizer, managed_by_external};
use crate::client::events::EventSink;
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::expectations::{ChildView, Expectations};
use crate::controllers::batch_common::ownership::{controller_of, ref_is_kind};
use crate::controllers::batch_common::runtime::{LoopConfig, Runner, cache_ready, object_ref};
use crate::controllers::batch_common::selector::Matcher;

/// Settings of the Job controller.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Jobs reconciled in parallel (upstream `--concurrent-job-syncs`, 5).
    pub concurrency: u16,
    /// Trailing debounce for bursts of pod events (upstream batches pod events for 1 s).
    /// Zero still coalesces: events arriving while a Job syncs fold into one follow-up
    /// sync; a non-zero value delays syncs for as long as events keep arriving.
    pub batch_period: Duration,
    /// First delay before replacing a failed pod (upstream 10 s).
    pub pod_failure_backoff: Duration,
    /// Cap of that delay (upstream 10 min).
    pub max_pod_failure_backoff: Duration,
    /// Whether finished Jobs with `ttlSecondsAfterFinished` are deleted.
    pub ttl_after_finished: bool,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            concurrency: 5,
            batch_period: Duration::ZERO,
            pod_failure_backoff: Duration::from_secs(10),
            max_pod_failure_backoff: Duration::from_secs(600),
            ttl_after_finished: true,
        }
    }
}

struct Ctx {
    client: Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
    backoff: Arc<BackoffStore>,
    events: EventSink,
    orphans: mpsc::UnboundedSender<ObjectRef<Pod>>,
    config: JobConfig,
}

/// Runs the Job controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: JobConfig,
    cancel: CancellationToken,
) -> Result<(), ControllerError> {
    let client = informers.client();
    let expectations = Arc::new(Expectations::default());
    let backoff = Arc::new(BackoffStore::default());
    let (orphan_tx, orphan_rx) = mpsc::unbounded_channel();
    let pods_cell: Arc<OnceLock<Store<Pod>>> = Arc::new(OnceLock::new());
    let on_delete = {
        let (expectations, backoff, tx, cell) = (
            expectations.clone(),
            backoff.clone(),
            orphan_tx.clone(),
            pods_cell.clone(),
        );
        move |job: &Job| {
            let uid = job.uid().unwrap_or_default();
            expectations.forget(&uid);
            backoff.remove(&uid);
            if let Some(pods) = cell.get() {
                orphans::enqueue_finalized_pods(pods, &tx, job);
            }
        }
    };
    let mut runner = Runner::new(&informers.get::<Job>(), on_delete);
    let jobs = runner.store();
    let mapper = pod_mapper(jobs.clone(), expectations.clone(), orphan_tx.clone());
    let pods = runner.watch(&informers.get::<Pod>(), mapper);
    let _ = pods_cell.set(pods.clone());
    let ctx = Arc::new(Ctx {
        events: EventSink::new(client.clone(), "job-controller"),
        client,
        jobs,
        pods,
        expectations,
        backoff,
        orphans: orphan_tx,
        config: config.clone(),
    });
    let loop_config = LoopConfig {
        name: "job-controller",
        concurrency: config.concurrency,
        debounce: config.batch_period,
        retry_base: Duration::from_millis(500),
        retry_max: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(30),
    };
    let worker = orphans::run_worker(ctx.clone(), orphan_rx, cancel.clone());
    let main = runner.run(loop_config, ctx, cancel, reconcile);
    tokio::join!(main, worker);
    Ok(())
}

/// Maps a pod event to the Jobs to sync, checking off expectations and queueing orphans
/// that still hold the tracking finalizer (upstream `addPod`/`updatePod`/`deletePod`).
fn pod_mapper(
    jobs: Store<Job>,
    expectations: Arc<Expectations>,
    orphans: mpsc::UnboundedSender<ObjectRef<Pod>>,
) -> impl Fn(&Pod, bool) -> Vec<ObjectRef<Job>> + Send + Sync + 'static {
    move |pod: &Pod, deleted: bool| {
        let ns = pod.namespace().unwrap_or_default();
        let deleting = deleted || pod.metadata.deletion_timestamp.is_some();
        let finalizer = has_tracking_finalizer(pod);
        let Some(owner) = controller_of(&pod.metadata) else {
            if finalizer {
                let _ = orphans.send(ObjectRef::from_obj(pod));
            }
            return selecting_jobs(&jobs, pod, &ns);
        };
        if !ref_is_kind(owner, "batch", "Job") {
            return Vec::new();
        }
        let view = ChildView {
            uid: pod.uid().unwrap_or_default(),
            deleting,
            has_finalizer: finalizer,
        };
        expectations.observe(&owner.uid, &view, deleted);
        let job = jobs
            .get(&object_ref(&ns, &owner.name))
            .filter(|j| j.metadata.uid.as_deref() == Some(owner.uid.as_str()));
        match job {
            Some(j) if finished(&j).is_none() => vec![ObjectRef::from_obj(j.as_ref())],
            _ => {
                if deleting && finalizer {
                    let _ = orphans.send(ObjectRef::from_obj(pod));
                }
                Vec::new()
            }
        }
    }
}

/// Jobs in the namespace whose selector matches an orphan pod (they may adopt it).
fn selecting_jobs(jobs: &Store<Job>, pod: &Pod, ns: &str) -> Vec<ObjectRef<Job>> {
    jobs.state_filter(|j| j.metadata.namespace.as_deref() == Some(ns))
        .iter()
        .filter(|j| {
            let sel = j.spec.as_ref().and_then(|s| s.selector.as_ref());
            Matcher::new(sel).is_ok_and(|m| m.matches(pod.metadata.labels.as_ref()))
        })
        .map(|j| ObjectRef::from_obj(j.as_ref()))
        .collect()
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    cache_ready(&ctx.pods, "pods").await?;
    let Some(spec) = job.spec.clone() else {
        return Ok(Action::await_change());
    };
    if let Some(other) = managed_by_external(&spec) {
        tracing::debug!(controller = other, "job is managed by another controller");
        return Ok(Action::await_change());
    }
    if finished(&job).is_some() {
        ctx.backoff.remove(&job.uid().unwrap_or_default());
        orphans::enqueue_finalized_pods(&ctx.pods, &ctx.orphans, &job);
        return ttl::reconcile_finished(&ctx, &job).await;
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") | Some("Indexed") => {}
        Some(_) => {
            let note = "Skipped Job sync because completion mode is unknown".to_string();
            ctx.events
                .warning(job.as_ref(), "UnknownCompletionMode", note);
            return Ok(Action::await_change());
        }
    }
    sync::sync_job(&ctx, &job, spec).await
}
