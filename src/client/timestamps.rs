//! RFC 3339 timestamps as Kubernetes writes them: `metav1.Time` (seconds)
//! and `metav1.MicroTime` (microseconds), always UTC with a `Z`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// Parses an RFC 3339 timestamp leniently, like Go's `time.RFC3339Nano`
/// input (optional fraction up to nine digits, `Z` or `±hh:mm`): (`2016-10-06T00:17:09.669794202Z`, `...+02:00`).
pub fn parse_rfc3339(s: &[u8]) -> Option<SystemTime> {
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't') {
        return None;
    }
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    let year = i64::from(digits(&s[0..4])?);
    let (month, day) = (digits(&s[5..7])?, digits(&s[8..10])?);
    let (hour, min, sec) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 {
        return None;
    }
    if sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&frac[..n])? * 10u32.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset = parse_zone(rest)?;
    let days = super::calendar::days_from_civil(year, i64::from(month), i64::from(day));
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Zone designator to an offset east of UTC in seconds.
fn parse_zone(z: &[u8]) -> Option<i64> {
    match z {
        b"Z" | b"z" => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::from(digits(&[*h1, *h2])?);
            let m = i64::from(digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            Some(if *sign == b'-' { -off } else { off })
        }
        _ => None,
    }
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        let (whole, frac) = split_fraction(u, 3);
        return format!("{sign}{whole}{frac}µs");
    }
    if u < 1_000_000_000 {
        let (whole, frac) = split_fraction(u, 6);
        return format!("{sign}{whole}{frac}ms");
    }
    let (secs, frac) = split_fraction(u, 9);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{sign}{s}{frac}s"),
        (0, _) => format!("{sign}{m}m{s}{frac}s"),
        _ => format!("{sign}{h}h{m}m{s}{frac}s"),
    }
}

/// `value / 10^digits` and the remainder as `.ddd` without trailing zeros (empty if zero).
fn split_fraction(value: u64, digits: u32) -> (u64, String) {
    let scale = 10u64.pow(digits);
    let rest = value % scale;
    if rest == 0 {
        return (value / scale, String::new());
    }
    let text = format!("{rest:0width$}", width = digits as usize);
    (value / scale, format!(".{}", text.trim_end_matches('0')))
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
