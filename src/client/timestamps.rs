//! RFC 3339 timestamps as Kubernetes writes them: `metav1.Time` (seconds)
//! and `metav1.MicroTime` (microseconds), always UTC with a `Z`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::calendar::format_rfc3339;

/// Now as RFC 3339 with second precision (`2024-01-02T03:04:05Z`), like
/// metav1.Time.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Now with microseconds, like metav1.MicroTime.
pub fn now_rfc3339_micros() -> String {
    // One reading: seconds and fraction from two clock reads could straddle
    // a second boundary.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(now.as_secs() as i64, Some(now.subsec_micros()))
}

/// Formats a time as RFC 3339 UTC with second precision.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    format_rfc3339(secs, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        let micros = now_rfc3339_micros();
        assert_eq!(
            micros.len(),
            "2024-01-02T03:04:05.123456Z".len(),
            "{micros}"
        );
    }
}
