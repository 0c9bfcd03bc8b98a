//! Cron schedules as CronJob validation and the CronJob controller understand
//! them (one parser for both): robfig/cron v3's
//! `ParseStandard` (five fields, names, ranges, steps, `?`, the `@yearly`..`@hourly`
//! descriptors and `@every <duration>`, an optional `TZ=`/`CRON_TZ=` prefix) and its
//! `Next` algorithm, including the day-of-month/day-of-week OR rule and daylight-saving
//! handling.
//!
//! Parsing is pure: a `TZ=` prefix is returned as a zone *name* and the caller resolves it,
//! so this file never touches the filesystem. `next` works in the schedule's zone and gives
//! up after five years like robfig (an impossible date such as Feb 30 yields `None`).
//! Errors carry robfig's messages because they end up in user-visible events.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};
use k8s_openapi::jiff;

/// Why a schedule could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// Set when a field was written as `*` or `?` (robfig's `starBit`).
const STAR: u64 = 1 << 63;

#[derive(Clone, Copy)]
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max)
        .step_by(step.max(1) as usize)
        .fold(0, |acc, i| acc | (1u64 << i))
}

fn all(b: Bounds) -> u64 {
    bits(b.min, b.max, 1) | STAR
}

/// Field bitmasks of a classic cron line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fields(Fields),
    /// `@every`: a fixed delay in whole seconds (at least one).
    Every(i64),
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    kind: Kind,
    zone: Option<String>,
}

impl CronSchedule {
    /// Parses a schedule the way `cron.ParseStandard` does.
    pub fn parse(spec: &str) -> Result<Self, CronError> {
        if spec.is_empty() {
            return Err(CronError("empty spec string".into()));
        }
        let mut rest = spec;
        let mut zone = None;
        if rest.starts_with("TZ=") || rest.starts_with("CRON_TZ=") {
            let (Some(eq), Some(space)) = (rest.find('='), rest.find(' ')) else {
                return Err(CronError(format!("provided bad location {spec}")));
            };
            if space < eq {
                return Err(CronError(format!("provided bad location {spec}")));
            }
            zone = Some(rest[eq + 1..space].to_string());
            rest = rest[space..].trim();
        }
        let kind = if rest.starts_with('@') {
            parse_descriptor(rest)?
        } else {
            parse_fields(rest)?
        };
        Ok(CronSchedule { kind, zone })
    }

    /// The zone named by a `TZ=`/`CRON_TZ=` prefix, if any.
    pub fn zone_name(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// The first activation strictly after `after`, evaluated in `tz`; `None` if there is
    /// none within five years.
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(secs) => {
                let whole = after.as_second();
                Timestamp::from_second(whole.checked_add(*secs)?).ok()
            }
            Kind::Fields(f) => next_fields(f, after.to_zoned(tz.clone())).map(|z| z.timestamp()),
        }
    }
}

fn parse_descriptor(spec: &str) -> Result<Kind, CronError> {
    let midnight = |dom: u64, month: u64, dow: u64| Fields {
        minute: 1,
        hour: 1,
        dom,
        month,
        dow,
    };
    let fields = match spec {
        "@yearly" | "@annually" => midnight(1 << DOM.min, 1 << MONTHS.min, all(DOW)),
        "@monthly" => midnight(1 << DOM.min, all(MONTHS), all(DOW)),
        "@weekly" => midnight(all(DOM), all(MONTHS), 1 << DOW.min),
        "@daily" | "@midnight" => midnight(all(DOM), all(MONTHS), all(DOW)),
        "@hourly" => Fields {
            minute: 1,
            hour: all(HOURS),
            dom: all(DOM),
            month: all(MONTHS),
            dow: all(DOW),
        },
        _ => {
            if let Some(d) = spec.strip_prefix("@every ") {
                let nanos = parse_go_duration(d)
                    .map_err(|e| CronError(format!("failed to parse duration {spec}: {e}")))?;
                let secs = i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX);
                return Ok(Kind::Every(secs.max(1)));
            }
            return Err(CronError(format!("unrecognized descriptor: {spec}")));
        }
    };
    Ok(Kind::Fields(fields))
}

fn parse_fields(spec: &str) -> Result<Kind, CronError> {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(CronError(format!(
            "expected exactly 5 fields, found {}: [{}]",
            parts.len(),
            parts.join(" ")
        )));
    }
    Ok(Kind::Fields(Fields {
        minute: field(parts[0], MINUTES)?,
        hour: field(parts[1], HOURS)?,
        dom: field(parts[2], DOM)?,
        month: field(parts[3], MONTHS)?,
        dow: field(parts[4], DOW)?,
    }))
}

fn field(text: &str, b: Bounds) -> Result<u64, CronError> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .try_fold(0, |acc, expr| Ok(acc | range(expr, b)?))
}

/// Go's `strconv.Atoi` with its error texts, as robfig reports them.
fn parse_int(s: &str) -> Result<u32, CronError> {
    let atoi = |why: &str| {
        CronError(format!(
            "failed to parse int from {s}: strconv.Atoi: parsing {s:?}: {why}"
        ))
    };
    let n: i64 = s
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                atoi("value out of range")
            }
            _ => atoi("invalid syntax"),
        })?;
    if n < 0 {
        return Err(CronError(format!("negative number ({n}) not allowed: {s}")));
    }
    u32::try_from(n).map_err(|_| atoi("value out of range"))
}

fn int_or_name(s: &str, b: Bounds) -> Result<u32, CronError> {
    let lower = s.to_ascii_lowercase();
    match b.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => parse_int(s),
    }
}

/// One comma-separated term: `*`, `?`, `N`, `N-M`, each optionally `/step`.
fn range(expr: &str, b: Bounds) -> Result<u64, CronError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end, mut extra) = if low_high[0] == "*" || low_high[0] == "?" {
        (b.min, b.max, STAR)
    } else {
        let start = int_or_name(low_high[0], b)?;
        let end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b)?,
            _ => return Err(CronError(format!("too many hyphens: {expr}"))),
        };
        (start, end, 0)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(CronError(format!("too many slashes: {expr}"))),
    };
    if start < b.min {
        return Err(CronError(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        )));
    }
    if end > b.max {
        return Err(CronError(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        )));
    }
    if start > end {
        return Err(CronError(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(CronError(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    Ok(bits(start, end, step) | extra)
}

fn has(mask: u64, value: i8) -> bool {
    u32::try_from(value).is_ok_and(|v| v < 63 && mask & (1 << v) != 0)
}

fn day_matches(f: &Fields, t: &Zoned) -> bool {
    let dom = has(f.dom, t.day());
    let dow = has(f.dow, t.weekday().to_sunday_zero_offset());
    if f.dom & STAR != 0 || f.dow & STAR != 0 {
        dom && dow
    } else {
        dom || dow
    }
}

/// `time.Date(...)` in the schedule's zone; nonexistent local times move forward.
fn at(tz: &TimeZone, y: i16, mo: i8, d: i8, h: i8) -> Option<Zoned> {
    let dt = DateTime::from_parts(
        Date::new(y, mo, d).ok()?,
        jiff::civil::Time::new(h, 0, 0, 0).ok()?,
    );
    dt.to_zoned(tz.clone()).ok()
}

/// The search state of robfig's `Next`: the candidate and whether it was reset yet.
struct Search {
    t: Zoned,
    tz: TimeZone,
    added: bool,
}

impl Search {
    /// On the first move, resets the smaller units (robfig's `added` flag).
    fn reset(&mut self, reset: impl FnOnce(&Zoned, &TimeZone) -> Option<Zoned>) -> Option<()> {
        if !self.added {
            self.added = true;
            self.t = reset(&self.t, &self.tz)?;
        }
        Some(())
    }

    fn month(&mut self, f: &Fields) -> Option<bool> {
        while !has(f.month, self.t.month()) {
            self.reset(|t, tz| at(tz, t.year(), t.month(), 1, 0))?;
            self.t = self.t.checked_add(1.month()).ok()?;
            if self.t.month() == 1 {
                return Some(false);
            }
        }
        Some(true)
    }

    fn day(&mut self, f: &Fields) -> Option<bool> {
        while !day_matches(f, &self.t) {
            self.reset(|t, tz| at(tz, t.year(), t.month(), t.day(), 0))?;
            self.t = self.t.checked_add(1.day()).ok()?;
            // Daylight-saving days can start at 23:00 or 01:00: snap back to midnight.
            let h = i64::from(self.t.hour());
            if h != 0 {
                let shift = if h > 12 { 24 - h } else { -h };
                self.t = self.t.checked_add(SignedDuration::from_hours(shift)).ok()?;
            }
            if self.t.day() == 1 {
                return Some(false);
            }
        }
        Some(true)
    }

    fn hour(&mut self, f: &Fields) -> Option<bool> {
        while !has(f.hour, self.t.hour()) {
            self.reset(|t, tz| at(tz, t.year(), t.month(), t.day(), t.hour()))?;
            self.t = self.t.checked_add(SignedDuration::from_hours(1)).ok()?;
            if self.t.hour() == 0 {
                return Some(false);
            }
        }
        Some(true)
    }

    fn minute(&mut self, f: &Fields) -> Option<bool> {
        while !has(f.minute, self.t.minute()) {
            self.reset(|t, _| truncate_to_minute(t))?;
            self.t = self.t.checked_add(SignedDuration::from_mins(1)).ok()?;
            if self.t.minute() == 0 {
                return Some(false);
            }
        }
        if self.t.second() != 0 || self.t.subsec_nanosecond() != 0 {
            self.added = true;
            self.t = truncate_to_minute(&self.t)?
                .checked_add(SignedDuration::from_mins(1))
                .ok()?;
            return Some(false);
        }
        Some(true)
    }
}

/// robfig's `SpecSchedule.Next`, at minute resolution (seconds are always 0).
fn next_fields(f: &Fields, start: Zoned) -> Option<Zoned> {
    let tz = start.time_zone().clone();
    let sub = i64::from(start.subsec_nanosecond());
    let t = start
        .checked_add(SignedDuration::from_nanos(1_000_000_000 - sub))
        .ok()?;
    let year_limit = t.year().saturating_add(5);
    let mut search = Search {
        t,
        tz,
        added: false,
    };
    loop {
        if search.t.year() > year_limit {
            return None;
        }
        if search.month(f)? && search.day(f)? && search.hour(f)? && search.minute(f)? {
            return Some(search.t);
        }
    }
}

fn truncate_to_minute(t: &Zoned) -> Option<Zoned> {
    let off = SignedDuration::from_secs(i64::from(t.second()))
        + SignedDuration::from_nanos(i64::from(t.subsec_nanosecond()));
    t.checked_sub(off).ok()
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let orig = s;
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(format!("time: invalid duration {orig:?}"));
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." {
            return Err(format!("time: invalid duration {orig:?}"));
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {orig:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {orig:?}")),
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| format!("time: invalid duration {orig:?}"))?
        };
        let mut value = whole
            .checked_mul(scale)
            .ok_or(format!("time: invalid duration {orig:?}"))?;
        let mut place = scale;
        for d in frac.bytes() {
            place /= 10;
            value += i128::from(d - b'0') * place;
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= i128::from(i64::MAX))
            .ok_or(format!("time: invalid duration {orig:?}"))?;
        rest = next;
    }
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
#[path = "cron_schedule_tests.rs"]
mod tests;
