//! kelp's default scheduler: a kube-rs client that assigns pending pods to nodes the way
//! kube-scheduler's default profile does for its common plugins.
//!
//! Layout, from the API inwards:
//! - [`watch`] keeps node, pod and namespace state in the [`cache`] (kube-runtime watchers
//!   with relist; the cache is a reflector store that keeps per-node aggregates instead of
//!   whole objects) and feeds this scheduler's unscheduled pods to the [`queue`];
//! - [`worker`] is the single scheduling thread: it pops a pod, runs one [`cycle`]
//!   ([`filter`] plugins over a sample of nodes, then [`score`] plugins), assumes the pod on
//!   the chosen node in the cache, and hands the write to [`binder`];
//! - on failure, [`events`] builds the upstream-worded FailedScheduling event and
//!   PodScheduled=False condition, and the pod waits in the queue with backoff.
//!
//! Pods are compiled once into [`podinfo::PodInfo`] and nodes keep running aggregates, so a
//! cycle costs O(sampled nodes) for pods without inter-pod constraints; this is what makes
//! thousands of pods per second possible. Failures inside the loop (API errors, watch
//! drops) are retried, never fatal; [`run`] only fails on bad configuration or an internal
//! task dying.

pub mod binder;
pub mod cache;
pub mod cycle;
pub mod error;
pub mod events;
pub mod filter;
pub mod podinfo;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod score;
pub mod selector;
pub mod watch;
pub mod worker;

#[cfg(test)]
mod fixtures;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio::sync::{Semaphore, watch as tokio_watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use error::SchedulerError;

use crate::client::informer::SharedInformers;

/// The scheduler name pods get when `spec.schedulerName` is unset.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// How the scheduler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Pods whose `spec.schedulerName` equals this are scheduled ("default-scheduler").
    pub scheduler_name: String,
    /// Maximum concurrent API writes (bindings, events, status patches); default 64.
    /// Binding is latency-bound (upstream binds in unbounded goroutines): on a 2-core box
    /// throughput plateaus from ~32 in flight, so the default leaves headroom.
    pub parallelism: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            parallelism: 64,
        }
    }
}

#[derive(Debug, Default)]
struct HealthInner {
    last_beat_unix_ms: AtomicU64,
    scheduled: AtomicU64,
    unschedulable: AtomicU64,
    synced: AtomicBool,
}

/// Cheap, clonable view of a running scheduler (for healthz / componentstatuses).
#[derive(Debug, Clone, Default)]
pub struct SchedulerHealth(Arc<HealthInner>);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SchedulerHealth {
    /// A fresh handle; pass clones to [`run_with_health`] and to whoever reports health.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unix time (ms) of the scheduling thread's last loop iteration (0 = never ran).
    pub fn last_heartbeat_unix_ms(&self) -> u64 {
        self.0.last_beat_unix_ms.load(Ordering::Relaxed)
    }

    /// True when caches synced and the loop turned within `max_age`.
    pub fn is_healthy(&self, max_age: Duration) -> bool {
        let last = self.last_heartbeat_unix_ms();
        self.0.synced.load(Ordering::Relaxed)
            && last != 0
            && unix_ms().saturating_sub(last) <= max_age.as_millis() as u64
    }

    /// Pods bound so far.
    pub fn scheduled_pods(&self) -> u64 {
        self.0.scheduled.load(Ordering::Relaxed)
    }

    /// Scheduling attempts that found no node.
    pub fn unschedulable_attempts(&self) -> u64 {
        self.0.unschedulable.load(Ordering::Relaxed)
    }

    fn beat(&self) {
        self.0.last_beat_unix_ms.store(unix_ms(), Ordering::Relaxed);
    }

    fn count_scheduled(&self) {
        self.0.scheduled.fetch_add(1, Ordering::Relaxed);
    }

    fn count_unschedulable(&self) {
        self.0.unschedulable.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the scheduler until `cancel` fires: it reads nodes, pods and namespaces through
/// `informers` and writes bindings, events and status with `client` (its own identity).
pub async fn run(
    client: kube::Client,
    informers: SharedInformers,
    config: SchedulerConfig,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    run_with_health(client, informers, config, SchedulerHealth::new(), cancel).await
}

/// [`run`], reporting liveness and counters through `health`.
pub async fn run_with_health(
    client: kube::Client,
    informers: SharedInformers,
    config: SchedulerConfig,
    health: SchedulerHealth,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    if config.scheduler_name.is_empty() {
        return Err(SchedulerError::Config(
            "scheduler_name must not be empty".into(),
        ));
    }
    let shared = watch::Shared {
        cache: Arc::new(RwLock::new(cache::Cache::default())),
        queue: Arc::new(queue::SchedulingQueue::new()),
        scheduler_name: config.scheduler_name.clone(),
    };
    let stop = cancel.child_token();
    // If this future is dropped instead of cancelled, still stop the blocking thread.
    let _guard = StopGuard {
        queue: shared.queue.clone(),
        stop: stop.clone(),
    };
    let (mut tasks, synced) = spawn_watchers(&informers, &shared, &stop);
    let outcome = tokio::select! {
        biased;
        () = cancel.cancelled() => Err(None),
        r = synced => r.map_err(|e| Some(SchedulerError::Task(e))),
        r = tasks.join_next() => Err(Some(task_failure(r))),
    };
    if let Err(failure) = outcome {
        return shutdown(tasks, &shared, &stop, failure).await;
    }
    health.0.synced.store(true, Ordering::Relaxed);
    tracing::info!(scheduler = %config.scheduler_name, "caches synced; scheduling");
    let parallelism = config.parallelism.max(1);
    let permits = Arc::new(Semaphore::new(parallelism));
    let worker = worker::Worker {
        cache: shared.cache.clone(),
        queue: shared.queue.clone(),
        api: binder::ApiWriter::new(client, &config.scheduler_name),
        handle: tokio::runtime::Handle::current(),
        permits: permits.clone(),
        health,
        cancel: stop.clone(),
    };
    let mut thread = tokio::task::spawn_blocking(move || worker.run());
    let failure = tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        r = tasks.join_next() => (!cancel.is_cancelled()).then(|| task_failure(r)),
        r = &mut thread => Some(SchedulerError::Task(format!("scheduling thread exited: {r:?}"))),
    };
    shared.queue.close();
    stop.cancel();
    let _ = thread.await;
    // Let in-flight bindings finish so their outcome is not lost mid-request.
    let drain = permits.acquire_many(u32::try_from(parallelism).unwrap_or(u32::MAX));
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    shutdown(tasks, &shared, &stop, failure).await
}

type Tasks = JoinSet<Result<(), SchedulerError>>;

/// Starts the watches and the flush timer; the future resolves once nodes and pods listed.
fn spawn_watchers(
    informers: &SharedInformers,
    shared: &watch::Shared,
    stop: &CancellationToken,
) -> (Tasks, impl Future<Output = Result<(), String>> + use<>) {
    let mut tasks = JoinSet::new();
    let (nodes_tx, mut nodes_rx) = tokio_watch::channel(false);
    let (pods_tx, mut pods_rx) = tokio_watch::channel(false);
    let (ns_tx, _) = tokio_watch::channel(false);
    tasks.spawn(watch::nodes(
        informers.get(),
        shared.clone(),
        nodes_tx,
        stop.clone(),
    ));
    tasks.spawn(watch::pods(
        informers.get(),
        shared.clone(),
        pods_tx,
        stop.clone(),
    ));
    tasks.spawn(watch::namespaces(
        informers.get(),
        shared.clone(),
        ns_tx,
        stop.clone(),
    ));
    tasks.spawn(flush_loop(shared.queue.clone(), stop.clone()));
    let synced = async move {
        let gone = |_| "watch task stopped before sync".to_string();
        nodes_rx.wait_for(|s| *s).await.map_err(gone)?;
        pods_rx.wait_for(|s| *s).await.map_err(gone)?;
        Ok(())
    };
    (tasks, synced)
}

struct StopGuard {
    queue: Arc<queue::SchedulingQueue>,
    stop: CancellationToken,
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.queue.close();
        self.stop.cancel();
    }
}

fn task_failure(
    r: Option<Result<Result<(), SchedulerError>, tokio::task::JoinError>>,
) -> SchedulerError {
    match r {
        Some(Ok(Err(e))) => e,
        Some(Ok(Ok(()))) => SchedulerError::Task("a watch task stopped".into()),
        Some(Err(e)) => SchedulerError::Task(e.to_string()),
        None => SchedulerError::Task("no task left".into()),
    }
}

async fn shutdown(
    mut tasks: Tasks,
    shared: &watch::Shared,
    stop: &CancellationToken,
    failure: Option<SchedulerError>,
) -> Result<(), SchedulerError> {
    shared.queue.close();
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    failure.map_or(Ok(()), Err)
}

/// Periodically retries pods that sat unschedulable too long.
async fn flush_loop(
    queue: Arc<queue::SchedulingQueue>,
    cancel: CancellationToken,
) -> Result<(), SchedulerError> {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => queue.flush_unschedulable(queue::MAX_UNSCHEDULABLE_AGE),
        }
    }
}
