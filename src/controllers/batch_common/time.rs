//! Time helpers over `jiff::Timestamp`, the instant type k8s-openapi uses for `metav1.Time`.
//!
//! Controllers read the clock once per reconcile and pass `now` down, so all decisions in
//! one pass agree and the pure functions stay testable with fixed instants.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The current instant.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// `now` as an API time value.
pub fn api_time(at: Timestamp) -> Time {
    Time(at)
}

/// `at + seconds`, saturating at the representable range.
pub fn plus_seconds(at: Timestamp, seconds: i64) -> Timestamp {
    at.checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(if seconds < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}

/// The non-negative time from `now` until `later`; zero when `later` has passed.
pub fn until(now: Timestamp, later: Timestamp) -> Duration {
    let span = later.duration_since(now);
    Duration::try_from(span).unwrap_or(Duration::ZERO)
}

/// The non-negative time elapsed from `earlier` to `now`; zero when `earlier` is in the future.
pub fn since(now: Timestamp, earlier: Timestamp) -> Duration {
    until(earlier, now)
}

/// A std duration as a signed one, saturating.
pub fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_zero_for_past_instants_and_exact_for_future_ones() {
        let t = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(until(t, plus_seconds(t, 30)), Duration::from_secs(30));
        assert_eq!(until(t, plus_seconds(t, -30)), Duration::ZERO);
        assert_eq!(since(plus_seconds(t, 5), t), Duration::from_secs(5));
    }
}
