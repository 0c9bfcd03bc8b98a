//! Exponential backoff for replacing failed pods (upstream `backoff_utils.go`).
//!
//! The record (failures since the last success, time of the last failure) lives in memory,
//! keyed by Job uid, like upstream: after a controller restart the backoff starts over,
//! which only ever makes replacements come sooner. The delay is `base * 2^(failures-1)`,
//! capped, counted from the last failure's finish time.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use parking_lot::Mutex;

use crate::controllers::batch_common::time::{plus_seconds, since};

/// Failures since the last success and when the last one finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Failed pods finished after the last succeeded one.
    pub failures_after_last_success: u32,
    /// Finish time of the latest such failure.
    pub last_failure: Option<Timestamp>,
}

impl BackoffRecord {
    /// How long pod creation must still wait.
    pub fn remaining(&self, now: Timestamp, base: Duration, max: Duration) -> Duration {
        let Some(last) = self.last_failure else {
            return Duration::ZERO;
        };
        if self.failures_after_last_success == 0 {
            return Duration::ZERO;
        }
        let mut delay = base;
        for _ in 1..self.failures_after_last_success {
            delay = delay.saturating_mul(2);
            if delay >= max {
                delay = max;
                break;
            }
        }
        delay.saturating_sub(since(now, last))
    }
}

/// Backoff records of all Jobs.
#[derive(Debug, Default)]
pub struct BackoffStore {
    records: Mutex<HashMap<String, BackoffRecord>>,
}

impl BackoffStore {
    /// The record updated with newly finished pods (not stored until [`Self::store`]).
    pub fn next_record(&self, job_uid: &str, succeeded: &[&Pod], failed: &[&Pod]) -> BackoffRecord {
        let old = self
            .records
            .lock()
            .get(job_uid)
            .copied()
            .unwrap_or_default();
        advance(old, succeeded, failed)
    }

    /// Saves a record computed by [`Self::next_record`].
    pub fn store(&self, job_uid: &str, record: BackoffRecord) {
        self.records.lock().insert(job_uid.to_string(), record);
    }

    /// Forgets a Job (finished or deleted).
    pub fn remove(&self, job_uid: &str) {
        self.records.lock().remove(job_uid);
    }
}

/// Upstream `newBackoffRecord`.
pub fn advance(mut record: BackoffRecord, succeeded: &[&Pod], failed: &[&Pod]) -> BackoffRecord {
    let mut failed_times: Vec<Timestamp> = failed.iter().map(|p| finish_time(p)).collect();
    failed_times.sort_unstable();
    let last_success = succeeded.iter().map(|p| finish_time(p)).max();
    match last_success {
        None => {
            if let Some(last) = failed_times.last() {
                let n = u32::try_from(failed_times.len()).unwrap_or(u32::MAX);
                record.failures_after_last_success =
                    record.failures_after_last_success.saturating_add(n);
                record.last_failure = Some(*last);
            }
        }
        Some(success) => {
            record.failures_after_last_success = 0;
            record.last_failure = None;
            for t in failed_times.iter().rev().take_while(|t| **t > success) {
                record.last_failure.get_or_insert(*t);
                record.failures_after_last_success += 1;
            }
        }
    }
    record
}

/// Upstream `getFinishedTime`: latest container finish, else the Ready=False transition,
/// else the deletion time minus grace, else creation.
pub fn finish_time(pod: &Pod) -> Timestamp {
    from_containers(pod)
        .or_else(|| from_ready_false(pod))
        .or_else(|| from_deletion(pod))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn from_containers(pod: &Pod) -> Option<Timestamp> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let mut latest: Option<Timestamp> = None;
    for c in statuses {
        let finished = c
            .state
            .as_ref()?
            .terminated
            .as_ref()?
            .finished_at
            .as_ref()?
            .0;
        latest = Some(latest.map_or(finished, |l| l.max(finished)));
    }
    latest
}

fn from_ready_false(pod: &Pod) -> Option<Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if c.status != "False" {
        return None;
    }
    c.last_transition_time.as_ref().map(|t| t.0)
}

fn from_deletion(pod: &Pod) -> Option<Timestamp> {
    let at = pod.metadata.deletion_timestamp.as_ref()?.0;
    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
    Some(plus_seconds(at, -grace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn finished_at(s: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            finished_at: Some(Time(ts(s))),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn delay_doubles_per_failure_from_the_last_failure_and_is_capped() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(60);
        let rec = |n, at| BackoffRecord {
            failures_after_last_success: n,
            last_failure: Some(ts(at)),
        };
        assert_eq!(
            rec(1, 100).remaining(ts(100), base, max),
            Duration::from_secs(10)
        );
        assert_eq!(
            rec(2, 100).remaining(ts(105), base, max),
            Duration::from_secs(15)
        );
        assert_eq!(
            rec(9, 100).remaining(ts(100), base, max),
            Duration::from_secs(60)
        );
        assert_eq!(rec(1, 100).remaining(ts(200), base, max), Duration::ZERO);
        assert_eq!(
            BackoffRecord::default().remaining(ts(0), base, max),
            Duration::ZERO
        );
    }

    #[test]
    fn a_success_resets_failures_that_came_before_it() {
        let (f1, f2, ok) = (finished_at(10), finished_at(30), finished_at(20));
        let rec = advance(BackoffRecord::default(), &[], &[&f1]);
        assert_eq!(rec.failures_after_last_success, 1);
        let rec = advance(rec, &[&ok], &[&f2]);
        assert_eq!(rec.failures_after_last_success, 1);
        assert_eq!(rec.last_failure, Some(ts(30)));
        let rec = advance(rec, &[&finished_at(40)], &[]);
        assert_eq!(rec, BackoffRecord::default());
    }
}
