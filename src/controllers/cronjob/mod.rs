//! The CronJob controller (upstream `pkg/controller/cronjob`, the v2 controller): creates a
//! Job for every activation of `spec.schedule`, honouring `suspend`,
//! `startingDeadlineSeconds`, `concurrencyPolicy`, `timeZone` and the history limits, and
//! keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime` current.
//!
//! Design: a reconcile is a pure scheduling [`decide::decide`] sandwiched between reading
//! the owned Jobs from the cache and the writes it implies ([`sync`]). Instead of polling,
//! every reconcile returns a requeue for the next activation (plus 100 ms, like upstream),
//! so an idle CronJob costs nothing between activations. Job names are
//! `<cronjob>-<minutes since epoch>`, which makes creation idempotent across restarts.
//! Failures: apiserver errors are retried with backoff; an unparseable schedule or unknown
//! time zone is reported as a Warning event and waits for the spec to change.

pub mod decide;
mod sync;
pub mod timing;
pub mod zone;

use crate::client::informer::SharedInformers;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::client::events::EventSink;
use crate::controllers::batch_common::ownership::{controller_of, is_controlled_by, ref_is_kind};
use crate::controllers::batch_common::runtime::{LoopConfig, Runner, cache_ready, object_ref};
use crate::controllers::batch_common::{ControllerError, time};

/// Settings of the CronJob controller.
#[derive(Debug, Clone)]
pub struct CronJobConfig {
    /// CronJobs reconciled in parallel (upstream `--concurrent-cron-job-syncs`, 5).
    pub concurrency: u16,
    /// Directories searched for zoneinfo files.
    pub zoneinfo_dirs: Vec<PathBuf>,
}

impl Default for CronJobConfig {
    fn default() -> Self {
        CronJobConfig {
            concurrency: 5,
            zoneinfo_dirs: zone::default_zoneinfo_dirs(),
        }
    }
}

struct Ctx {
    client: Client,
    jobs: kube::runtime::reflector::Store<Job>,
    events: EventSink,
    config: CronJobConfig,
}

/// Runs the CronJob controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: CronJobConfig,
    cancel: CancellationToken,
) -> Result<(), ControllerError> {
    let client = informers.client();
    let mut runner = Runner::new(&informers.get::<CronJob>(), |_| {});
    let jobs = runner.watch(&informers.get::<Job>(), |job: &Job, _deleted| {
        let owner = controller_of(&job.metadata).filter(|r| ref_is_kind(r, "batch", "CronJob"));
        owner
            .map(|r| object_ref(&job.namespace().unwrap_or_default(), &r.name))
            .into_iter()
            .collect()
    });
    let loop_config = LoopConfig {
        name: "cronjob-controller",
        concurrency: config.concurrency,
        debounce: Duration::from_millis(100),
        retry_base: Duration::from_millis(500),
        retry_max: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(30),
    };
    let ctx = Arc::new(Ctx {
        events: EventSink::new(client.clone(), "cronjob-controller"),
        client,
        jobs,
        config,
    });
    runner.run(loop_config, ctx, cancel, reconcile).await;
    Ok(())
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    cache_ready(&ctx.jobs, "jobs").await?;
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.uid().unwrap_or_default();
    let jobs: Vec<Arc<Job>> = ctx.jobs.state_filter(|j| {
        j.metadata.namespace.as_deref() == Some(ns.as_str()) && is_controlled_by(&j.metadata, &uid)
    });
    let mut work = (*cj).clone();
    let cleaned = sync::cleanup_finished_jobs(&ctx, &mut work, &jobs).await;
    let mut update = false;
    let outcome = sync::sync_cron_job(&ctx, &mut work, &jobs, time::now(), &mut update).await;
    if cleaned || update {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        api.replace_status(&cj.name_any(), &PostParams::default(), &work)
            .await?;
    }
    match outcome {
        Ok(Some(delay)) => Ok(Action::requeue(delay)),
        Ok(None) => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}
