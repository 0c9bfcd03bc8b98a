//! Deleting finished Jobs once `ttlSecondsAfterFinished` has passed (upstream
//! `ttlafterfinished` controller).
//!
//! The finish time is the `lastTransitionTime` of the Complete/Failed condition, as
//! upstream. Before deleting, the Job is re-read from the apiserver: the TTL may have been
//! changed since the cache was filled. Deletion uses foreground propagation and a uid
//! precondition, so the pods go first and a recreated Job of the same name is never hit.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::Action;

use super::Ctx;
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::error::is_not_found;
use crate::controllers::batch_common::time::{self, plus_seconds, until};

/// When the Job finished (its Complete/Failed condition's transition time).
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// When a finished Job expires, if it has a TTL and is not already being deleted.
pub fn expires_at(job: &Job) -> Option<Timestamp> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    Some(plus_seconds(finish_time(job)?, i64::from(ttl)))
}

/// Requeues a finished Job until its TTL expires, then deletes it.
pub(super) async fn reconcile_finished(ctx: &Ctx, job: &Job) -> Result<Action, ControllerError> {
    if !ctx.config.ttl_after_finished {
        return Ok(Action::await_change());
    }
    let Some(expire) = expires_at(job) else {
        return Ok(Action::await_change());
    };
    let now = time::now();
    if now < expire {
        return Ok(Action::requeue(until(now, expire)));
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let fresh = match api.get(&job.name_any()).await {
        Ok(j) => j,
        Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    };
    match expires_at(&fresh) {
        Some(at) if now >= at => {}
        Some(at) => return Ok(Action::requeue(until(now, at))),
        None => return Ok(Action::await_change()),
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: fresh.uid(),
            resource_version: None,
        }),
        ..DeleteParams::foreground()
    };
    tracing::info!(job = %fresh.name_any(), "cleaning up finished job after its TTL");
    match api.delete(&fresh.name_any(), &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn finished_job(ttl: Option<i32>, at: i64) -> Job {
        Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(
                        Timestamp::from_second(at).unwrap_or(Timestamp::UNIX_EPOCH),
                    )),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn expiry_is_the_finish_time_plus_the_ttl() {
        let at = expires_at(&finished_job(Some(60), 1000)).map(|t| t.as_second());
        assert_eq!(at, Some(1060));
        assert_eq!(expires_at(&finished_job(None, 1000)), None);
    }

    #[test]
    fn jobs_being_deleted_do_not_expire_again() {
        let mut j = finished_job(Some(0), 1000);
        j.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert_eq!(expires_at(&j), None);
    }
}
