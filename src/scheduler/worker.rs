//! The scheduling thread: pop a pod, run a cycle under the cache read lock, assume the
//! result, and hand the API writes to async tasks.
//!
//! Scheduling runs on one dedicated blocking thread, pods strictly one after another, as in
//! kube-scheduler: decisions then never race each other and the cache needs no
//! transactional snapshot. API writes (bindings, events) run concurrently on the tokio
//! runtime, bounded by a semaphore of `parallelism` permits; when all are taken the thread
//! waits, which is the backpressure that keeps assumed-but-unbound pods bounded.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::SchedulerHealth;
use super::binder::{ApiWriter, BindOutcome};
use super::cache::Cache;
use super::cycle::{Cycle, Decision, Rng};
use super::filter::Plugins;
use super::preemption;
use super::queue::{PopResult, Popped, SchedulingQueue};

/// How long the thread waits for a pod before refreshing its heartbeat.
const IDLE_TICK: Duration = Duration::from_millis(250);

/// Everything the scheduling thread needs.
pub struct Worker {
    /// Shared cluster state.
    pub cache: Arc<RwLock<Cache>>,
    /// Pending pods.
    pub queue: Arc<SchedulingQueue>,
    /// API writer.
    pub api: ApiWriter,
    /// Runtime to spawn API tasks on.
    pub handle: Handle,
    /// Bounds concurrent API writes.
    pub permits: Arc<Semaphore>,
    /// Liveness and counters.
    pub health: SchedulerHealth,
    /// Stops the loop.
    pub cancel: CancellationToken,
}

impl Worker {
    /// Runs until the queue is closed or `cancel` fires.
    pub fn run(self) {
        let mut cycle = Cycle::new(Rng::from_clock());
        loop {
            self.health.beat();
            match self.queue.pop(IDLE_TICK) {
                PopResult::Closed => break,
                PopResult::Idle => {
                    if self.cancel.is_cancelled() {
                        break;
                    }
                }
                PopResult::Pod(p) => self.schedule_one(&mut cycle, p),
            }
        }
    }

    fn permit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Some(p);
        }
        let permits = self.permits.clone();
        let cancel = self.cancel.clone();
        self.handle.block_on(async move {
            tokio::select! {
                p = permits.acquire_owned() => p.ok(),
                () = cancel.cancelled() => None,
            }
        })
    }

    fn schedule_one(&self, cycle: &mut Cycle, p: Popped) {
        let span = tracing::debug_span!("schedule", pod = %p.info.key(), attempt = p.attempts);
        let _enter = span.enter();
        if self.cache.read().order_is_stale() {
            self.cache.write().refresh_order();
        }
        let decision = {
            let cache = self.cache.read();
            cycle.schedule(&cache, &p.info)
        };
        match decision {
            Decision::Bind(node) => {
                self.cache.write().assume(p.info.clone(), &node);
                tracing::debug!(node = %node, "assumed pod on node");
                let Some(permit) = self.permit() else {
                    self.cache.write().forget(&p.info.uid);
                    return;
                };
                self.handle
                    .spawn(bind_task(self.bind_ctx(), p, node, permit));
            }
            Decision::Unschedulable(fit) => {
                let message = fit.message();
                tracing::debug!(%message, "pod is unschedulable");
                self.health.count_unschedulable();
                self.queue.failed(&p.info.uid, p.cycle, fit.plugins, true);
                let candidate = preemption::find_candidate(&self.cache.read(), &p.info);
                let Some(permit) = self.permit() else { return };
                let api = self.api.clone();
                self.handle.spawn(async move {
                    api.report_unschedulable(&p.info, &message).await;
                    if let Some(candidate) = candidate {
                        tracing::debug!(node = %candidate.node, victims = candidate.victims.len(), "preempting");
                        api.preempt(&p.info, &candidate).await;
                    }
                    drop(permit);
                });
            }
        }
    }

    fn bind_ctx(&self) -> BindCtx {
        BindCtx {
            cache: self.cache.clone(),
            queue: self.queue.clone(),
            api: self.api.clone(),
            health: self.health.clone(),
        }
    }
}

struct BindCtx {
    cache: Arc<RwLock<Cache>>,
    queue: Arc<SchedulingQueue>,
    api: ApiWriter,
    health: SchedulerHealth,
}

async fn bind_task(ctx: BindCtx, p: Popped, node: String, permit: OwnedSemaphorePermit) {
    // The permit is held through the Scheduled event too, so event
    // writes stay bounded with the bindings.
    let _permit = permit;
    let outcome = ctx.api.bind(&p.info, &node).await;
    let uid = &p.info.uid;
    match outcome {
        BindOutcome::Bound => {
            ctx.health.count_scheduled();
            ctx.queue.done(uid);
            ctx.api.report_scheduled(&p.info, &node).await;
            tracing::debug!(pod = %p.info.key(), node = %node, "bound pod");
        }
        BindOutcome::Dropped(why) => {
            ctx.cache.write().forget(uid);
            ctx.queue.done(uid);
            tracing::debug!(pod = %p.info.key(), %why, "binding not needed any more");
        }
        BindOutcome::Failed(e) => {
            ctx.cache.write().forget(uid);
            ctx.queue.failed(uid, p.cycle, Plugins::default(), false);
            tracing::warn!(pod = %p.info.key(), node = %node, error = %e, "binding failed; will retry");
        }
    }
}
