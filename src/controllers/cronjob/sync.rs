//! The writes of a CronJob sync: reconciling `status.active` with the owned Jobs, acting on
//! the scheduling decision, and pruning finished Jobs beyond the history limits.
//!
//! Status changes are made on the caller's copy and flagged through `update`; the caller
//! writes status once per reconcile, like upstream's single `UpdateStatus`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Resource, ResourceExt};

use super::Ctx;
use super::decide::{Decision, cron_times, decide};
use super::timing::{job_name, next_schedule_delay, rfc3339_in};
use super::zone::load_zone;
use crate::client::cron_schedule::CronSchedule;
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::error::{is_already_exists, is_not_found};
use crate::controllers::batch_common::ownership::{controller_ref, is_controlled_by};

/// The annotation recording the activation a Job was created for.
const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// A Job's finished condition type (`Complete` or `Failed`), if it has one.
pub(super) fn finished_condition(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn status_mut(cj: &mut CronJob) -> &mut CronJobStatus {
    cj.status.get_or_insert_with(Default::default)
}

fn active_refs(cj: &CronJob) -> &[ObjectReference] {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or_default()
}

fn in_active_list(cj: &CronJob, uid: &str) -> bool {
    active_refs(cj)
        .iter()
        .any(|r| r.uid.as_deref() == Some(uid))
}

fn remove_from_active(cj: &mut CronJob, uid: &str) {
    if let Some(active) = status_mut(cj).active.as_mut() {
        active.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

/// Upstream `syncCronJob`; returns when to look again.
pub(super) async fn sync_cron_job(
    ctx: &Ctx,
    cj: &mut CronJob,
    jobs: &[Arc<Job>],
    now: Timestamp,
    update: &mut bool,
) -> Result<Option<Duration>, ControllerError> {
    reconcile_active(ctx, cj, jobs, update).await?;
    if cj.meta().deletion_timestamp.is_some() {
        return Ok(None);
    }
    let spec = cj.spec.clone();
    let zone_name = spec.time_zone.clone();
    if let Some(name) = &zone_name
        && let Err(e) = load_zone(name, &ctx.config.zoneinfo_dirs)
    {
        let note = format!("invalid timeZone: {name:?}: {e}");
        ctx.events.warning(cj, "UnknownTimeZone", note);
        return Ok(None);
    }
    if spec.suspend == Some(true) {
        return Ok(None);
    }
    let Some((sched, tz)) = schedule_of(ctx, cj, &spec.schedule, zone_name.as_deref()) else {
        return Ok(None);
    };
    let verdict = decide(cj, &sched, &tz, now);
    if verdict.many_missed {
        let note = "too many missed start times. Set or decrease .spec.startingDeadlineSeconds \
                    or check clock skew"
            .to_string();
        ctx.events.warning(cj, "TooManyMissedTimes", note);
    }
    act(ctx, cj, verdict.decision, (&sched, &tz), now, update).await
}

/// Carries out a scheduling decision; returns when to look again.
async fn act(
    ctx: &Ctx,
    cj: &mut CronJob,
    decision: Decision,
    (sched, tz): (&CronSchedule, &TimeZone),
    now: Timestamp,
    update: &mut bool,
) -> Result<Option<Duration>, ControllerError> {
    match decision {
        Decision::Invalid(reason) => {
            let note = format!("invalid schedule: {} : {reason}", cj.spec.schedule);
            ctx.events.warning(cj, "InvalidSchedule", note);
            Ok(None)
        }
        Decision::Wait(d) | Decision::AlreadyProcessed(d) => Ok(d),
        Decision::TooLate { scheduled, requeue } => {
            let note = format!(
                "Missed scheduled time to start a job: {}",
                scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000")
            );
            ctx.events.warning(cj, "MissSchedule", note);
            Ok(requeue)
        }
        Decision::Forbidden(d) => {
            let note = "Not starting job because prior execution is running and concurrency \
                        policy is Forbid"
                .to_string();
            ctx.events.normal(cj, "JobAlreadyActive", note);
            Ok(d)
        }
        Decision::Start { scheduled, replace } => {
            if replace {
                replace_active(ctx, cj, update).await?;
            }
            start_job(ctx, cj, scheduled, tz, update).await?;
            Ok(next_schedule_delay(&cron_times(cj), now, sched, tz))
        }
    }
}

/// Parses the schedule and resolves its zone (`TZ=` prefix, else `spec.timeZone`, else UTC),
/// emitting upstream's warnings; `None` when it cannot be used.
fn schedule_of(
    ctx: &Ctx,
    cj: &CronJob,
    schedule: &str,
    time_zone: Option<&str>,
) -> Option<(CronSchedule, TimeZone)> {
    if schedule.contains("TZ") {
        let note = format!(
            "CRON_TZ or TZ used in schedule {schedule:?} is not officially supported, see \
             https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"
        );
        ctx.events.warning(cj, "UnsupportedSchedule", note);
    }
    let sched = match CronSchedule::parse(schedule) {
        Ok(s) => s,
        Err(e) => {
            let note = format!("unparseable schedule: {schedule:?} : {e}");
            ctx.events.warning(cj, "UnparseableSchedule", note);
            return None;
        }
    };
    let name = sched.zone_name().or(time_zone).unwrap_or("");
    match load_zone(name, &ctx.config.zoneinfo_dirs) {
        Ok(tz) => Some((sched, tz)),
        Err(e) => {
            let note =
                format!("unparseable schedule: {schedule:?} : provided bad location {name}: {e}");
            ctx.events.warning(cj, "UnparseableSchedule", note);
            None
        }
    }
}

/// Brings `status.active` in line with the owned Jobs and records the latest success.
async fn reconcile_active(
    ctx: &Ctx,
    cj: &mut CronJob,
    jobs: &[Arc<Job>],
    update: &mut bool,
) -> Result<(), ControllerError> {
    let ns = cj.namespace().unwrap_or_default();
    let cj_api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let mut children = HashSet::new();
    for job in jobs {
        let uid = job.uid().unwrap_or_default();
        children.insert(uid.clone());
        let finished = finished_condition(job);
        let found = in_active_list(cj, &uid);
        if !found && finished.is_none() {
            let fresh = cj_api.get(&cj.name_any()).await?;
            if in_active_list(&fresh, &uid) {
                *cj = fresh;
                continue;
            }
            let note = format!(
                "Saw a job that the controller did not create or forgot: {}",
                job.name_any()
            );
            ctx.events.warning(cj, "UnexpectedJob", note);
        } else if let (true, Some(condition)) = (found, finished) {
            remove_from_active(cj, &uid);
            let note = format!("Saw completed job: {}, status: {condition}", job.name_any());
            ctx.events.normal(cj, "SawCompletedJob", note);
            *update = true;
        } else if finished == Some("Complete") {
            record_success(cj, job, update);
        }
    }
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    for reference in active_refs(cj).to_vec() {
        let uid = reference.uid.clone().unwrap_or_default();
        if children.contains(&uid) {
            continue;
        }
        let name = reference.name.clone().unwrap_or_default();
        match jobs_api.get(&name).await {
            Err(e) if is_not_found(&e) => {
                ctx.events
                    .normal(cj, "MissingJob", format!("Active job went missing: {name}"));
                remove_from_active(cj, &uid);
                *update = true;
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }
    Ok(())
}

fn record_success(cj: &mut CronJob, job: &Job, update: &mut bool) {
    let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.clone()) else {
        return;
    };
    let status = status_mut(cj);
    if status
        .last_successful_time
        .as_ref()
        .is_none_or(|t| done.0 > t.0)
    {
        status.last_successful_time = Some(done);
        *update = true;
    }
}

/// `concurrencyPolicy: Replace`: deletes every active Job before starting the next.
async fn replace_active(
    ctx: &Ctx,
    cj: &mut CronJob,
    update: &mut bool,
) -> Result<(), ControllerError> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &cj.namespace().unwrap_or_default());
    for reference in active_refs(cj).to_vec() {
        let name = reference.name.clone().unwrap_or_default();
        let job = match api.get(&name).await {
            Ok(j) => j,
            Err(e) => {
                ctx.events.warning(cj, "FailedGet", format!("Get job: {e}"));
                return Err(e.into());
            }
        };
        if !delete_job(ctx, cj, &job).await {
            return Err(ControllerError::OwnerGone(format!(
                "could not replace job {}/{name}",
                cj.namespace().unwrap_or_default()
            )));
        }
        *update = true;
    }
    Ok(())
}

/// Deletes a Job (background propagation) and drops it from the active list.
async fn delete_job(ctx: &Ctx, cj: &mut CronJob, job: &Job) -> bool {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    if let Err(e) = api
        .delete(&job.name_any(), &DeleteParams::background())
        .await
        && !is_not_found(&e)
    {
        ctx.events
            .warning(cj, "FailedDelete", format!("Deleted job: {e}"));
        return false;
    }
    remove_from_active(cj, &job.uid().unwrap_or_default());
    ctx.events.normal(
        cj,
        "SuccessfulDelete",
        format!("Deleted job {}", job.name_any()),
    );
    true
}

/// Upstream `getJobFromTemplate2`.
fn job_from_template(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = cj.spec.job_template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.into(),
        rfc3339_in(scheduled, tz),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), scheduled)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: controller_ref(cj).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(template.spec.unwrap_or_default()),
        status: None,
    }
}

/// Creates the Job for `scheduled` and records it as active and last scheduled.
async fn start_job(
    ctx: &Ctx,
    cj: &mut CronJob,
    scheduled: Timestamp,
    tz: &TimeZone,
    update: &mut bool,
) -> Result<(), ControllerError> {
    let request = job_from_template(cj, scheduled, tz);
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &cj.namespace().unwrap_or_default());
    let job = match api.create(&PostParams::default(), &request).await {
        Ok(job) => {
            ctx.events.normal(
                cj,
                "SuccessfulCreate",
                format!("Created job {}", job.name_any()),
            );
            job
        }
        Err(e) if is_already_exists(&e) => {
            let existing = api.get(&request.name_any()).await?;
            let uid = cj.uid().unwrap_or_default();
            if !is_controlled_by(&existing.metadata, &uid)
                || in_active_list(cj, &existing.uid().unwrap_or_default())
            {
                return Ok(());
            }
            tracing::info!(job = %existing.name_any(), "job already exists");
            existing
        }
        Err(e) => {
            ctx.events
                .warning(cj, "FailedCreate", format!("Error creating job: {e}"));
            return Err(e.into());
        }
    };
    let reference = ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    };
    let status = status_mut(cj);
    status.active.get_or_insert_with(Vec::new).push(reference);
    status.last_schedule_time = Some(Time(scheduled));
    *update = true;
    Ok(())
}

/// Upstream `cleanupFinishedJobs`: deletes the oldest finished Jobs beyond the limits.
pub(super) async fn cleanup_finished_jobs(ctx: &Ctx, cj: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
    let spec = cj.spec.clone();
    let (ok_limit, failed_limit) = (
        spec.successful_jobs_history_limit,
        spec.failed_jobs_history_limit,
    );
    if ok_limit.is_none() && failed_limit.is_none() {
        return false;
    }
    let mut updated = false;
    for (kind, limit) in [("Complete", ok_limit), ("Failed", failed_limit)] {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| finished_condition(j) == Some(kind))
            .collect();
        let excess = finished
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        finished.sort_by(|a, b| by_start_time(a, b));
        for job in finished.into_iter().take(excess) {
            updated |= delete_job(ctx, cj, job).await;
        }
    }
    updated
}

/// Upstream `byJobStartTime`: started jobs first by start time, unstarted last; then name.
fn by_start_time(a: &Job, b: &Job) -> std::cmp::Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ => a.metadata.name.cmp(&b.metadata.name),
    }
}
