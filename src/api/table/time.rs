//! Timestamps and human durations for table cells.
//!
//! Owns RFC 3339 parsing/formatting (the wire form of `metav1.Time` and `metav1.MicroTime`)
//! and upstream's `duration.HumanDuration` rounding rules. Instants are kept as signed
//! nanoseconds since the Unix epoch in an `i128`, which covers every representable
//! RFC 3339 year without overflow and makes "time since" plain subtraction. Malformed input
//! never panics: parsing returns `None`, which the printers show as `<unknown>` just as
//! upstream shows a zero time.

use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// Seconds from 0001-01-01 to 1970-01-01: Go's zero `time.Time` sits there, and upstream
/// treats it as "unset".
const ZERO_TIME_UNIX_SECS: i64 = -62_135_596_800;

/// An instant, as nanoseconds since the Unix epoch (negative before 1970).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Instant(i128);

impl Instant {
    /// Converts a wall-clock reading; times before the epoch stay representable.
    pub(super) fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Instant(d.as_nanos() as i128),
            Err(e) => Instant(-(e.duration().as_nanos() as i128)),
        }
    }

    /// Parses an RFC 3339 timestamp with optional fraction and `Z` or `±hh:mm` offset.
    pub(super) fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !matches!(b[10], b'T' | b't') {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        let (hour, min, sec) = (
            digits(&b[11..13])?,
            digits(&b[14..16])?,
            digits(&b[17..19])?,
        );
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || min > 59 || sec > 59 {
            return None;
        }
        let (nanos, rest) = fraction(&b[19..])?;
        let offset_secs = offset(rest)?;
        let days = crate::api::calendar::days_from_civil(year, month, day);
        let secs = days * SECS_PER_DAY + hour * 3600 + min * 60 + sec - offset_secs;
        Some(Instant(
            i128::from(secs) * NANOS_PER_SEC + i128::from(nanos),
        ))
    }

    /// True for Go's zero time (0001-01-01T00:00:00Z), which upstream prints as unknown.
    pub(super) fn is_zero(self) -> bool {
        self.0 == i128::from(ZERO_TIME_UNIX_SECS) * NANOS_PER_SEC
    }

    /// Nanoseconds from `earlier` to `self`.
    pub(super) fn since(self, earlier: Instant) -> i128 {
        self.0 - earlier.0
    }

    /// Formats as Go's `time.RFC3339` in UTC: whole seconds, `Z` suffix.
    pub(super) fn to_rfc3339_utc(self) -> String {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        crate::api::calendar::format_rfc3339(i64::try_from(secs).unwrap_or(i64::MAX), None)
    }
}

/// The zero instant used for "Created At" when an object carries no creation timestamp.
pub(super) fn zero_time() -> Instant {
    Instant(i128::from(ZERO_TIME_UNIX_SECS) * NANOS_PER_SEC)
}

/// `translateTimestampSince`: the human age of an optional timestamp, `<unknown>` when it is
/// missing, malformed or Go's zero time.
pub(super) fn age_of(ts: Option<&str>, now: Instant) -> String {
    match ts.and_then(Instant::parse_rfc3339) {
        Some(t) if !t.is_zero() => human_duration(now.since(t)),
        _ => "<unknown>".to_string(),
    }
}

/// Upstream's `duration.HumanDuration`: two to three significant figures, with up to two
/// seconds of clock skew into the future tolerated as "0s".
pub(super) fn human_duration(nanos: i128) -> String {
    // Go truncates toward zero when turning float seconds into an int.
    let seconds = nanos / NANOS_PER_SEC;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_remainder(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn with_remainder(major: i128, major_unit: &str, minor: i128, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// Splits an optional `.ddd` fraction off the front; returns nanoseconds and the rest.
fn fraction(b: &[u8]) -> Option<(i64, &[u8])> {
    let Some(after_dot) = b.strip_prefix(b".") else {
        return Some((0, b));
    };
    let len = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    // Go keeps nanosecond precision and drops further digits.
    let kept = &after_dot[..len.min(9)];
    let scale = 10i64.pow(9 - kept.len() as u32);
    Some((digits(kept)? * scale, &after_dot[len..]))
}

/// Parses the zone suffix into seconds east of UTC.
fn offset(b: &[u8]) -> Option<i64> {
    match b {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = NANOS_PER_SEC;

    fn parse(s: &str) -> Option<i128> {
        Instant::parse_rfc3339(s).map(|i| i.0)
    }

    #[test]
    fn parses_utc_seconds_since_epoch() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("2024-01-02T03:04:05Z"), Some(1_704_164_645 * S));
        assert_eq!(parse("2000-02-29T23:59:59Z"), Some(951_868_799 * S));
    }

    #[test]
    fn parses_fractions_and_offsets() {
        assert_eq!(parse("1970-01-01T00:00:01.5Z"), Some(S + S / 2));
        assert_eq!(parse("1970-01-01T00:00:00.123456Z"), Some(123_456_000));
        assert_eq!(parse("1970-01-01T00:00:00.1234567891Z"), Some(123_456_789));
        assert_eq!(parse("1970-01-01T02:00:00+02:00"), Some(0));
        assert_eq!(parse("1969-12-31T23:30:00-00:30"), Some(0));
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "2024-01-02",
            "2024-01-02 03:04:05Z",
            "2024-13-02T03:04:05Z",
            "2023-02-29T03:04:05Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02T03:04:60Z",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05+0200",
            "2024-01-02T03:04:05Zjunk",
            "２024-01-02T03:04:05Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_back_to_rfc3339_utc() {
        let t = Instant::parse_rfc3339("2024-01-02T05:04:05.9+02:00");
        assert_eq!(
            t.map(Instant::to_rfc3339_utc).as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(zero_time().to_rfc3339_utc(), "0001-01-01T00:00:00Z");
        assert!(Instant::parse_rfc3339("0001-01-01T00:00:00Z").is_some_and(Instant::is_zero));
    }

    #[test]
    fn human_duration_follows_upstream_table() {
        let cases: &[(i128, &str)] = &[
            (-3, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (630, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (49 * 3600, "2d1h"),
            (8 * 86_400 - 1, "7d23h"),
            (8 * 86_400, "8d"),
            (730 * 86_400 - 1, "729d"),
            (730 * 86_400, "2y"),
            (731 * 86_400, "2y1d"),
            (8 * 365 * 86_400, "8y"),
            (9 * 365 * 86_400 + 5 * 86_400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs * S), *want, "{secs}s");
        }
        // Go truncates toward zero, so -1.5s still counts as -1.
        assert_eq!(human_duration(-S - S / 2), "0s");
    }

    #[test]
    fn age_of_handles_missing_and_zero_times() {
        let now = Instant::parse_rfc3339("2024-01-02T03:09:05Z").unwrap_or(zero_time());
        assert_eq!(age_of(Some("2024-01-02T03:04:05Z"), now), "5m");
        assert_eq!(age_of(None, now), "<unknown>");
        assert_eq!(age_of(Some("yesterday"), now), "<unknown>");
        assert_eq!(age_of(Some("0001-01-01T00:00:00Z"), now), "<unknown>");
    }
}
