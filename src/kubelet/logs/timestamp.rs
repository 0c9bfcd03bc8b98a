//! RFC 3339 timestamps for CRI log lines, `sinceTime` and rotated file names.
//!
//! The calendar arithmetic is [`crate::client::calendar`]'s; this module adds
//! nanosecond formatting and lenient parsing. Parsing is lenient like Go's
//! `time.RFC3339Nano` input: the fraction is optional and of any length up to
//! nine digits, and the zone is `Z` or `±hh:mm`. Bad input gives `None`, never a
//! panic; times before 1970 are clamped to the epoch (logs never have them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Splits a Unix time in seconds into (year, month, day, hour, minute, second), UTC.
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (year, month, day) = crate::client::calendar::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    (year, month as u32, day as u32, h as u32, m as u32, s as u32)
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Formats `t` as RFC 3339 in UTC with exactly nine fraction digits, the way kubelet
/// prints `timestamps=true` prefixes (Go's `RFC3339NanoFixed`).
pub fn format_rfc3339_nano(t: SystemTime) -> String {
    let d = since_epoch(t);
    let (y, mo, da, h, mi, s) = civil(d.as_secs() as i64);
    format!(
        "{y:04}-{mo:02}-{da:02}T{h:02}:{mi:02}:{s:02}.{:09}Z",
        d.subsec_nanos()
    )
}

/// Formats `t` as `YYYYMMDD-hhmmss` (UTC) for rotated log file suffixes.
pub fn format_rotation_suffix(t: SystemTime) -> String {
    let (y, mo, da, h, mi, s) = civil(since_epoch(t).as_secs() as i64);
    format!("{y:04}{mo:02}{da:02}-{h:02}{mi:02}{s:02}")
}

pub use crate::client::timestamps::parse_rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202);
        let s = format_rfc3339_nano(t);
        assert_eq!(s, "2016-10-06T00:17:09.669794202Z");
        assert_eq!(parse_rfc3339(s.as_bytes()), Some(t));
        assert_eq!(format_rotation_suffix(t), "20161006-001709");
    }

    #[test]
    fn parses_offsets_and_short_fractions() {
        let a = parse_rfc3339(b"2024-02-29T12:00:00.5+02:00");
        let b = parse_rfc3339(b"2024-02-29T10:00:00.500000000Z");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(
            parse_rfc3339(b"1970-01-01T00:00:01Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            &b"2024-13-01T00:00:00Z"[..],
            b"2024-01-01 00:00:00Z",
            b"2024-01-01T00:00:00",
            b"2024-01-01T00:00:00.Z",
            b"2024-01-01T00:00:00+0200",
            b"garbage",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
