//! Removing the tracking finalizer from pods no Job will count any more (upstream
//! `syncOrphanPod` and `cleanupPodFinalizers`).
//!
//! The main loop only reconciles Jobs that exist, so pods left behind by a deleted Job, a
//! released pod, or a finished Job would keep their finalizer forever and never go away.
//! They are queued here (from pod events and Job deletions) and handled one at a time; the
//! decision re-reads the caches, so a pod that was adopted meanwhile keeps its finalizer.
//! Failed patches are retried after a second.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use super::pods::remove_finalizer;
use super::state::{finished, has_tracking_finalizer, managed_by_external};
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::ownership::{controller_of, is_controlled_by, ref_is_kind};
use crate::controllers::batch_common::runtime::{cache_ready, object_ref};

/// Queues every pod of `job` that still holds the tracking finalizer.
pub(super) fn enqueue_finalized_pods(
    pods: &Store<Pod>,
    tx: &mpsc::UnboundedSender<ObjectRef<Pod>>,
    job: &Job,
) {
    let (ns, uid) = (
        job.namespace().unwrap_or_default(),
        job.uid().unwrap_or_default(),
    );
    let leftovers = pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str())
            && is_controlled_by(&p.metadata, &uid)
            && has_tracking_finalizer(p)
    });
    for p in leftovers {
        let _ = tx.send(ObjectRef::from_obj(p.as_ref()));
    }
}

/// Processes queued orphan pods until `cancel` fires.
pub(super) async fn run_worker(
    ctx: Arc<Ctx>,
    mut rx: mpsc::UnboundedReceiver<ObjectRef<Pod>>,
    cancel: CancellationToken,
) {
    loop {
        let key = tokio::select! {
            () = cancel.cancelled() => return,
            key = rx.recv() => match key {
                Some(k) => k,
                None => return,
            },
        };
        if cache_ready(&ctx.pods, "pods").await.is_err()
            || cache_ready(&ctx.jobs, "jobs").await.is_err()
        {
            return;
        }
        if let Err(error) = sync_orphan(&ctx, &key).await {
            tracing::warn!(pod = %key, %error, "cannot remove job tracking finalizer; retrying");
            let tx = ctx.orphans.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tx.send(key);
            });
        }
    }
}

/// Removes the finalizer unless a live, unfinished Job controls the pod.
async fn sync_orphan(ctx: &Ctx, key: &ObjectRef<Pod>) -> Result<(), ControllerError> {
    let Some(pod) = ctx.pods.get(key) else {
        return Ok(());
    };
    if !has_tracking_finalizer(&pod) {
        return Ok(());
    }
    let ns = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&pod.metadata) {
        if !ref_is_kind(owner, "batch", "Job") {
            return Ok(());
        }
        let job = ctx
            .jobs
            .get(&object_ref(&ns, &owner.name))
            .filter(|j| j.metadata.uid.as_deref() == Some(owner.uid.as_str()));
        if let Some(job) = job {
            let external = job.spec.as_ref().and_then(managed_by_external).is_some();
            if external || finished(&job).is_none() {
                return Ok(());
            }
        }
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    remove_finalizer(&api, &pod.name_any()).await
}
