//! Tests of cron parsing and next-activation computation.

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn next_utc(spec: &str, after: &str) -> Option<String> {
    let sched = CronSchedule::parse(spec).ok()?;
    sched.next(ts(after), &TimeZone::UTC).map(|t| t.to_string())
}

fn new_york() -> Option<TimeZone> {
    let data = std::fs::read("/usr/share/zoneinfo/America/New_York").ok()?;
    TimeZone::tzif("America/New_York", &data).ok()
}

#[test]
fn steps_ranges_and_lists_pick_the_next_matching_minute() {
    assert_eq!(
        next_utc("*/15 * * * *", "2024-05-01T10:07:30Z").as_deref(),
        Some("2024-05-01T10:15:00Z")
    );
    assert_eq!(
        next_utc("5,35 1-3 * * *", "2024-05-01T03:36:00Z").as_deref(),
        Some("2024-05-02T01:05:00Z")
    );
    assert_eq!(
        next_utc("*/1 * * * *", "2024-05-01T10:00:00Z").as_deref(),
        Some("2024-05-01T10:01:00Z")
    );
}

#[test]
fn next_is_strictly_after_an_exact_activation() {
    assert_eq!(
        next_utc("0 * * * *", "2024-05-01T10:00:00Z").as_deref(),
        Some("2024-05-01T11:00:00Z")
    );
}

#[test]
fn day_of_month_and_week_are_ored_unless_one_is_a_star() {
    // 2024-05-02 is a Thursday: the 3rd matches by day of month alone.
    assert_eq!(
        next_utc("0 0 3 * MON", "2024-05-02T00:00:00Z").as_deref(),
        Some("2024-05-03T00:00:00Z")
    );
    assert_eq!(
        next_utc("0 0 * * mon", "2024-05-02T00:00:00Z").as_deref(),
        Some("2024-05-06T00:00:00Z")
    );
    // With a step the field loses its star-ness, so the OR rule applies (robfig behaviour).
    assert_eq!(
        next_utc("0 0 15 * */2", "2024-05-02T00:00:00Z").as_deref(),
        Some("2024-05-04T00:00:00Z")
    );
}

#[test]
fn names_and_descriptors_are_understood() {
    assert_eq!(
        next_utc("0 9 * JAN-MAR mon-fri", "2024-03-29T10:00:00Z").as_deref(),
        Some("2025-01-01T09:00:00Z")
    );
    assert_eq!(
        next_utc("@hourly", "2024-05-01T10:07:00Z").as_deref(),
        Some("2024-05-01T11:00:00Z")
    );
    assert_eq!(
        next_utc("@weekly", "2024-05-01T10:07:00Z").as_deref(),
        Some("2024-05-05T00:00:00Z")
    );
    assert_eq!(
        next_utc("@yearly", "2024-05-01T10:07:00Z").as_deref(),
        Some("2025-01-01T00:00:00Z")
    );
    assert_eq!(
        next_utc("@every 90s", "2024-05-01T10:07:00.5Z").as_deref(),
        Some("2024-05-01T10:08:30Z")
    );
}

#[test]
fn impossible_dates_have_no_next_activation() {
    assert_eq!(next_utc("0 0 30 2 *", "2024-01-01T00:00:00Z"), None);
}

#[test]
fn malformed_schedules_are_rejected_with_robfig_messages() {
    let err = |s: &str| CronSchedule::parse(s).err().map(|e| e.to_string());
    assert_eq!(
        err("* * * *").as_deref(),
        Some("expected exactly 5 fields, found 4: [* * * *]")
    );
    assert_eq!(
        err("61 * * * *").as_deref(),
        Some("end of range (61) above maximum (59): 61")
    );
    assert_eq!(
        err("*/0 * * * *").as_deref(),
        Some("step of range should be a positive number: */0")
    );
    assert_eq!(
        err("@fortnightly").as_deref(),
        Some("unrecognized descriptor: @fortnightly")
    );
    assert!(err("0 0 * * 7").is_some());
    assert!(err("a * * * *").is_some());
    assert!(err("").is_some());
}

#[test]
fn tz_prefix_is_returned_for_the_caller_to_resolve() {
    let sched = CronSchedule::parse("CRON_TZ=America/New_York 0 9 * * *");
    assert_eq!(
        sched.as_ref().ok().and_then(|s| s.zone_name()),
        Some("America/New_York")
    );
}

#[test]
fn schedules_follow_the_zone_across_daylight_saving_changes() {
    let Some(ny) = new_york() else {
        return;
    };
    let sched = CronSchedule::parse("0 9 * * *").expect("valid");
    // 2024-03-10 is the spring-forward day in New York: 9:00 EDT is 13:00 UTC.
    let next = sched.next(ts("2024-03-10T05:00:00Z"), &ny);
    assert_eq!(next, Some(ts("2024-03-10T13:00:00Z")));
    // The day before, 9:00 EST is 14:00 UTC.
    let next = sched.next(ts("2024-03-09T05:00:00Z"), &ny);
    assert_eq!(next, Some(ts("2024-03-09T14:00:00Z")));
}

#[test]
fn go_durations_parse_like_time_parse_duration() {
    assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
    assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
    assert_eq!(parse_go_duration("0"), Ok(0));
    assert!(parse_go_duration("5").is_err());
    assert!(parse_go_duration("5d").is_err());
}
