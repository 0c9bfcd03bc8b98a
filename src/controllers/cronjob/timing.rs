//! Schedule arithmetic of the CronJob controller (upstream `mostRecentScheduleTime`,
//! `nextScheduleTime`, `nextScheduleTimeDuration`, `getJobName`).
//!
//! Everything takes `now` explicitly — this is the "injected clock" the controller's
//! scheduling decisions are tested with. Errors are the upstream edge case of a schedule
//! that parses but never (or too rarely) fires.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::jiff;

use crate::client::cron_schedule::CronSchedule;
use crate::controllers::batch_common::time::{plus_seconds, until};

/// Padding added to requeues to absorb clock skew (upstream `nextScheduleDelta`).
pub const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// How many activations were missed since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// None: the next activation is still ahead or is the only one due.
    None,
    /// Some, but few enough to start the latest.
    Few,
    /// More than 100: warn about clock skew or a missing starting deadline.
    Many,
}

/// The CronJob fields scheduling depends on.
#[derive(Debug, Clone, Copy)]
pub struct CronTimes {
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// `status.lastScheduleTime`.
    pub last_scheduled: Option<Timestamp>,
    /// `spec.startingDeadlineSeconds`.
    pub starting_deadline_seconds: Option<i64>,
}

/// The result of looking back over a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookback {
    /// Where the look-back started (last schedule, creation, or the starting deadline).
    pub earliest: Timestamp,
    /// The latest activation at or before now after `earliest`, if any.
    pub most_recent: Option<Timestamp>,
    /// How many activations were skipped.
    pub missed: Missed,
}

/// Why the schedule cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time difference between two schedules is less than 1 second")]
pub struct ScheduleTooDense;

/// Upstream `mostRecentScheduleTime`.
pub fn most_recent_schedule_time(
    times: &CronTimes,
    now: Timestamp,
    sched: &CronSchedule,
    tz: &TimeZone,
    include_starting_deadline: bool,
) -> Result<Lookback, ScheduleTooDense> {
    let mut earliest = times.last_scheduled.unwrap_or(times.created);
    if include_starting_deadline && let Some(sds) = times.starting_deadline_seconds {
        let deadline = plus_seconds(now, -sds);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let none = |most_recent, missed| Lookback {
        earliest,
        most_recent,
        missed,
    };
    let t1 = sched.next(earliest, tz).ok_or(ScheduleTooDense)?;
    if now < t1 {
        return Ok(none(None, Missed::None));
    }
    let t2 = sched.next(t1, tz).ok_or(ScheduleTooDense)?;
    if now < t2 {
        return Ok(none(Some(t1), Missed::None));
    }
    let between = rounded_seconds(t2.duration_since(t1));
    if between < 1 {
        return Err(ScheduleTooDense);
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed_count = elapsed / between + 1;
    let potential_earliest = plus_seconds(t1, (missed_count - 2).saturating_mul(between));
    let mut most_recent = None;
    let mut t = sched.next(potential_earliest, tz);
    while let Some(at) = t.filter(|at| *at <= now) {
        most_recent = Some(at);
        t = sched.next(at, tz);
    }
    let missed = match missed_count {
        n if n > 100 => Missed::Many,
        n if n > 0 => Missed::Few,
        _ => Missed::None,
    };
    Ok(none(most_recent, missed))
}

/// Go's `Duration.Round(time.Second).Seconds()` for non-negative spans.
fn rounded_seconds(d: SignedDuration) -> i64 {
    let secs = d.as_secs();
    if d.subsec_nanos() >= 500_000_000 {
        secs + 1
    } else {
        secs
    }
}

/// Upstream `nextScheduleTime`: the activation to act on now, if any (starting deadline
/// applied).
pub fn next_schedule_time(
    times: &CronTimes,
    now: Timestamp,
    sched: &CronSchedule,
    tz: &TimeZone,
) -> Result<(Option<Timestamp>, Missed), ScheduleTooDense> {
    let lookback = most_recent_schedule_time(times, now, sched, tz, true)?;
    let due = lookback.most_recent.filter(|t| *t <= now);
    Ok((due, lookback.missed))
}

/// Upstream `nextScheduleTimeDuration`: how long until the controller should look again.
/// `None` when the schedule will never fire again.
pub fn next_schedule_delay(
    times: &CronTimes,
    now: Timestamp,
    sched: &CronSchedule,
    tz: &TimeZone,
) -> Option<Duration> {
    let from = match most_recent_schedule_time(times, now, sched, tz, false) {
        Err(ScheduleTooDense) => now,
        Ok(Lookback {
            most_recent: Some(t),
            ..
        }) => t,
        Ok(Lookback {
            earliest,
            missed: Missed::None,
            ..
        }) => earliest,
        Ok(_) => now,
    };
    let next = sched.next(from, tz)?;
    Some(until(now, next) + NEXT_SCHEDULE_DELTA)
}

/// Upstream `getJobName`: `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// RFC 3339 in the schedule's zone, as Go formats `time.RFC3339` (`Z` for UTC).
pub fn rfc3339_in(at: Timestamp, tz: &TimeZone) -> String {
    let z = at.to_zoned(tz.clone());
    let offset = z.offset().seconds();
    let base = z.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if offset == 0 {
        format!("{base}Z")
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.abs();
        format!("{base}{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
    }
}

#[cfg(test)]
#[path = "timing_tests.rs"]
mod tests;
