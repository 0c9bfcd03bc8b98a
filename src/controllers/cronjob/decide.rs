//! The scheduling decision of one CronJob sync, as a pure function of the CronJob, its
//! parsed schedule and `now` (upstream `syncCronJob` from "parse the schedule" to "create
//! the job"). Keeping it free of I/O is what lets the controller's behaviour — deadlines,
//! concurrency policies, duplicate suppression — be tested with an injected clock.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::jiff;

use super::timing::{
    CronTimes, Missed, ScheduleTooDense, job_name, next_schedule_delay, next_schedule_time,
};
use crate::client::cron_schedule::CronSchedule;
use crate::controllers::batch_common::time::plus_seconds;

/// What the controller should do about a CronJob right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The schedule never fires (e.g. Feb 30): warn, do not requeue.
    Invalid(String),
    /// Nothing is due; look again after the delay (`None`: never).
    Wait(Option<Duration>),
    /// An activation was missed by more than `startingDeadlineSeconds`.
    TooLate {
        /// The missed activation.
        scheduled: Timestamp,
        /// When to look again.
        requeue: Option<Duration>,
    },
    /// The due activation already has a job (by name) or was recorded as scheduled.
    AlreadyProcessed(Option<Duration>),
    /// `concurrencyPolicy: Forbid` and a job is still active.
    Forbidden(Option<Duration>),
    /// Start a job for `scheduled` (after deleting active jobs when `replace`).
    Start {
        /// The activation being started.
        scheduled: Timestamp,
        /// `concurrencyPolicy: Replace`: delete the active jobs first.
        replace: bool,
    },
}

/// A decision plus whether more than 100 activations were missed (warn about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What to do.
    pub decision: Decision,
    /// Whether to emit `TooManyMissedTimes`.
    pub many_missed: bool,
}

/// The scheduling-relevant times of a CronJob.
pub fn cron_times(cj: &CronJob) -> CronTimes {
    CronTimes {
        created: cj
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        last_scheduled: cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0),
        starting_deadline_seconds: cj.spec.starting_deadline_seconds,
    }
}

/// Decides what to do for a CronJob that is not suspended, not deleting and has a valid
/// time zone.
pub fn decide(cj: &CronJob, sched: &CronSchedule, tz: &TimeZone, now: Timestamp) -> Verdict {
    let times = cron_times(cj);
    let delay = || next_schedule_delay(&times, now, sched, tz);
    let verdict = |decision, many_missed| Verdict {
        decision,
        many_missed,
    };
    let (due, missed) = match next_schedule_time(&times, now, sched, tz) {
        Ok(v) => v,
        Err(ScheduleTooDense) => {
            return verdict(Decision::Invalid(ScheduleTooDense.to_string()), false);
        }
    };
    let many = missed == Missed::Many;
    let Some(scheduled) = due else {
        return verdict(Decision::Wait(delay()), many);
    };
    let spec = &cj.spec;
    if let Some(sds) = spec.starting_deadline_seconds
        && plus_seconds(scheduled, sds) < now
    {
        return verdict(
            Decision::TooLate {
                scheduled,
                requeue: delay(),
            },
            many,
        );
    }
    let name = job_name(cj.metadata.name.as_deref().unwrap_or(""), scheduled);
    let status = cj.status.as_ref();
    let active = status.and_then(|s| s.active.as_deref()).unwrap_or_default();
    if active.iter().any(|r| r.name.as_deref() == Some(&name))
        || times.last_scheduled == Some(scheduled)
    {
        return verdict(Decision::AlreadyProcessed(delay()), many);
    }
    let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
    if policy == "Forbid" && !active.is_empty() {
        return verdict(Decision::Forbidden(delay()), many);
    }
    verdict(
        Decision::Start {
            scheduled,
            replace: policy == "Replace",
        },
        many,
    )
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
