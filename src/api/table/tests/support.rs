//! Shared fixtures: a fixed clock and cell comparison helpers.

use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2024-01-02T03:04:05Z, the "now" of every test.
pub(super) fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_164_645)
}

/// RFC 3339 text of `now() - secs` (an independent, loop-based date conversion).
pub(super) fn ago(secs: u64) -> String {
    let t = 1_704_164_645 - secs;
    let (mut days, rem) = (t / 86_400, t % 86_400);
    let mut year = 1970;
    let year_len = |y: u64| {
        if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) {
            366
        } else {
            365
        }
    };
    while days >= year_len(year) {
        days -= year_len(year);
        year += 1;
    }
    let feb = if year_len(year) == 366 { 29 } else { 28 };
    let mut month = 1;
    for len in [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    format!(
        "{year}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
        days + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn ago_formats_the_test_clock() {
    assert_eq!(ago(0), "2024-01-02T03:04:05Z");
    assert_eq!(ago(2 * 86_400), "2023-12-31T03:04:05Z");
    assert_eq!(ago(3 * 3600 + 5 * 60 + 6), "2024-01-01T23:58:59Z");
}

/// Cells of `obj` for `group/resource` at the test clock.
pub(super) fn row(group: &str, resource: &str, obj: &Value) -> Vec<Value> {
    super::super::cells(group, resource, obj, now())
}
