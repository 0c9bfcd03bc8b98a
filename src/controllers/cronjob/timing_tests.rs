//! Tests of schedule look-back and requeue math with an injected clock.

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn every_minute() -> CronSchedule {
    CronSchedule::parse("*/1 * * * *").expect("valid schedule")
}

fn times(created: &str, last: Option<&str>, sds: Option<i64>) -> CronTimes {
    CronTimes {
        created: ts(created),
        last_scheduled: last.map(ts),
        starting_deadline_seconds: sds,
    }
}

#[test]
fn nothing_is_due_before_the_first_activation() {
    let t = times("2024-05-01T10:00:30Z", None, None);
    let now = ts("2024-05-01T10:00:45Z");
    let (due, missed) = next_schedule_time(&t, now, &every_minute(), &TimeZone::UTC).expect("ok");
    assert_eq!((due, missed), (None, Missed::None));
    let delay = next_schedule_delay(&t, now, &every_minute(), &TimeZone::UTC);
    assert_eq!(delay, Some(Duration::from_millis(15_100)));
}

#[test]
fn the_activation_just_passed_is_due() {
    let t = times("2024-05-01T10:00:30Z", None, None);
    let now = ts("2024-05-01T10:01:05Z");
    let (due, missed) = next_schedule_time(&t, now, &every_minute(), &TimeZone::UTC).expect("ok");
    assert_eq!(due, Some(ts("2024-05-01T10:01:00Z")));
    assert_eq!(missed, Missed::None);
    let delay = next_schedule_delay(&t, now, &every_minute(), &TimeZone::UTC);
    assert_eq!(delay, Some(Duration::from_millis(55_100)));
}

#[test]
fn an_already_scheduled_activation_is_not_due_again() {
    let t = times("2024-05-01T10:00:30Z", Some("2024-05-01T10:01:00Z"), None);
    let now = ts("2024-05-01T10:01:30Z");
    let (due, _) = next_schedule_time(&t, now, &every_minute(), &TimeZone::UTC).expect("ok");
    assert_eq!(due, None);
}

#[test]
fn after_missed_activations_only_the_latest_is_due() {
    let t = times("2024-05-01T10:00:00Z", None, None);
    let now = ts("2024-05-01T10:05:30Z");
    let (due, missed) = next_schedule_time(&t, now, &every_minute(), &TimeZone::UTC).expect("ok");
    assert_eq!(due, Some(ts("2024-05-01T10:05:00Z")));
    assert_eq!(missed, Missed::Few);
}

#[test]
fn the_starting_deadline_drops_activations_that_are_too_old() {
    let t = times(
        "2024-05-01T10:00:00Z",
        Some("2024-05-01T10:00:00Z"),
        Some(10),
    );
    let now = ts("2024-05-01T10:05:30Z");
    let (due, _) = next_schedule_time(&t, now, &every_minute(), &TimeZone::UTC).expect("ok");
    assert_eq!(due, None);
    let within = times(
        "2024-05-01T10:00:00Z",
        Some("2024-05-01T10:00:00Z"),
        Some(60),
    );
    let (due, _) = next_schedule_time(&within, now, &every_minute(), &TimeZone::UTC).expect("ok");
    assert_eq!(due, Some(ts("2024-05-01T10:05:00Z")));
}

#[test]
fn more_than_a_hundred_misses_are_reported_as_many() {
    let t = times("2024-05-01T10:00:00Z", None, None);
    let now = ts("2024-05-03T10:00:30Z");
    let (due, missed) = next_schedule_time(&t, now, &every_minute(), &TimeZone::UTC).expect("ok");
    assert_eq!(due, Some(ts("2024-05-03T10:00:00Z")));
    assert_eq!(missed, Missed::Many);
}

#[test]
fn schedules_that_never_fire_are_an_error_and_never_requeue() {
    let never = CronSchedule::parse("0 0 30 2 *").expect("grammatically valid");
    let t = times("2024-05-01T10:00:00Z", None, None);
    let now = ts("2024-05-01T10:05:00Z");
    assert_eq!(
        next_schedule_time(&t, now, &never, &TimeZone::UTC),
        Err(ScheduleTooDense)
    );
    assert_eq!(next_schedule_delay(&t, now, &never, &TimeZone::UTC), None);
}

#[test]
fn every_schedules_count_from_the_last_activation() {
    let sched = CronSchedule::parse("@every 2m").expect("valid");
    let t = times("2024-05-01T10:00:10Z", Some("2024-05-01T10:02:10Z"), None);
    let now = ts("2024-05-01T10:03:00Z");
    let (due, _) = next_schedule_time(&t, now, &sched, &TimeZone::UTC).expect("ok");
    assert_eq!(due, None);
    let delay = next_schedule_delay(&t, now, &sched, &TimeZone::UTC);
    assert_eq!(delay, Some(Duration::from_millis(70_100)));
}

#[test]
fn job_names_use_minutes_since_the_epoch() {
    assert_eq!(
        job_name("hello", ts("2024-05-01T10:05:00Z")),
        "hello-28575965"
    );
}

#[test]
fn scheduled_timestamps_are_formatted_like_go() {
    assert_eq!(
        rfc3339_in(ts("2024-05-01T10:05:00Z"), &TimeZone::UTC),
        "2024-05-01T10:05:00Z"
    );
    let plus_two = TimeZone::fixed(jiff::tz::offset(2));
    assert_eq!(
        rfc3339_in(ts("2024-05-01T10:05:00Z"), &plus_two),
        "2024-05-01T12:05:00+02:00"
    );
}
