//! `kubectl logs` options as kubelet's `/containerLogs` endpoint takes them.
//!
//! Decoding follows the apimachinery query conversions (a bool is false only when
//! absent, `false` or `0`; an empty number is absent) and validation follows
//! `ValidatePodLogOptions`, with upstream's messages. A value that does not decode
//! is [`LogError::Decode`] (kubelet: 400), one that fails validation is
//! [`LogError::Invalid`] or [`LogError::Forbidden`] (kubelet: 422).

use std::time::{Duration, SystemTime};

use super::LogError;
use super::timestamp::parse_rfc3339;

/// What part of a container's log to send, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new lines until the container stops.
    pub follow: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<u64>,
    /// Only lines stamped at or after this time.
    pub since: Option<SystemTime>,
    /// Prefix each line with its RFC 3339 timestamp and a space.
    pub timestamps: bool,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
    /// The previous instance of the container was asked for (the caller picks files).
    pub previous: bool,
    /// For `attach`: send partial lines as they come instead of joining them,
    /// and end lines with `\r\n` when `Some(true)` (a TTY in raw mode).
    pub attach_tty: Option<bool>,
}

#[derive(Default)]
struct Raw {
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail_lines: Option<i64>,
    tail: Option<Option<i64>>,
    since_seconds: Option<i64>,
    since_time: Option<SystemTime>,
    limit_bytes: Option<i64>,
}

fn parse_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

fn parse_int(name: &'static str, v: &str) -> Result<Option<i64>, LogError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| LogError::Decode {
        name,
        value: v.to_string(),
    })
}

impl Raw {
    fn decode(q: &str) -> Result<Self, LogError> {
        let mut raw = Raw::default();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            // Only the first value of a repeated parameter counts, as in Go.
            if !seen.insert(k.clone()) {
                continue;
            }
            match k.as_ref() {
                "follow" => raw.follow = parse_bool(&v),
                "previous" => raw.previous = parse_bool(&v),
                "timestamps" => raw.timestamps = parse_bool(&v),
                "tailLines" => raw.tail_lines = parse_int("tailLines", &v)?,
                // The legacy `tail` parameter wins over tailLines; `all` means no limit.
                "tail" if v.is_empty() => {}
                "tail" if v == "all" => raw.tail = Some(None),
                "tail" => raw.tail = Some(parse_int("tail", &v)?),
                "sinceSeconds" => raw.since_seconds = parse_int("sinceSeconds", &v)?,
                "limitBytes" => raw.limit_bytes = parse_int("limitBytes", &v)?,
                "sinceTime" if v.is_empty() => raw.since_time = None,
                "sinceTime" => {
                    raw.since_time =
                        Some(parse_rfc3339(v.as_bytes()).ok_or_else(|| LogError::Decode {
                            name: "sinceTime",
                            value: v.to_string(),
                        })?)
                }
                _ => {}
            }
        }
        if let Some(tail) = raw.tail {
            raw.tail_lines = tail;
        }
        Ok(raw)
    }
}

fn invalid(field: &'static str, value: i64, reason: &'static str) -> LogError {
    LogError::Invalid {
        field,
        value: value.to_string(),
        reason,
    }
}

impl LogOptions {
    /// Decodes and validates a `/containerLogs` query string (without the `?`).
    pub fn from_query(q: &str) -> Result<Self, LogError> {
        Self::from_query_at(q, SystemTime::now())
    }

    /// As [`LogOptions::from_query`], with `sinceSeconds` counted back from `now`.
    pub fn from_query_at(q: &str, now: SystemTime) -> Result<Self, LogError> {
        let raw = Raw::decode(q)?;
        if let Some(t) = raw.tail_lines.filter(|t| *t < 0) {
            return Err(invalid(
                "tailLines",
                t,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(b) = raw.limit_bytes.filter(|b| *b < 1) {
            return Err(invalid("limitBytes", b, "must be greater than 0"));
        }
        let since = match (raw.since_seconds, raw.since_time) {
            (Some(_), Some(_)) => return Err(LogError::Forbidden(SINCE_BOTH)),
            (Some(s), None) if s < 1 => {
                return Err(invalid("sinceSeconds", s, "must be greater than 0"));
            }
            (Some(s), None) => Some(
                now.checked_sub(Duration::from_secs(s as u64))
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            ),
            (None, t) => t,
        };
        Ok(LogOptions {
            follow: raw.follow,
            tail_lines: raw.tail_lines.map(|t| t as u64),
            since,
            timestamps: raw.timestamps,
            limit_bytes: raw.limit_bytes.map(|b| b as u64),
            previous: raw.previous,
            attach_tty: None,
        })
    }
}

const SINCE_BOTH: &str = "at most one of `sinceTime` or `sinceSeconds` may be specified";

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn decodes_all_parameters() {
        let q = "follow=true&tailLines=10&sinceSeconds=60&timestamps=1&limitBytes=500&previous=0";
        let o = LogOptions::from_query_at(q, now()).expect("valid");
        assert_eq!(
            o,
            LogOptions {
                follow: true,
                tail_lines: Some(10),
                since: Some(UNIX_EPOCH + Duration::from_secs(1_000_000 - 60)),
                timestamps: true,
                limit_bytes: Some(500),
                previous: false,
                attach_tty: None,
            }
        );
    }

    #[test]
    fn bools_are_true_unless_false_or_zero() {
        let o =
            LogOptions::from_query_at("follow=&timestamps=yes&previous=FALSE", now()).expect("ok");
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(
            LogOptions::from_query_at("", now()).expect("ok"),
            LogOptions::default()
        );
    }

    #[test]
    fn decodes_since_time_and_legacy_tail() {
        let o = LogOptions::from_query_at(
            "sinceTime=2016-10-06T00%3A17%3A09Z&tail=5&tailLines=7",
            now(),
        )
        .expect("ok");
        assert_eq!(
            o.since,
            Some(UNIX_EPOCH + Duration::from_secs(1_475_713_029))
        );
        assert_eq!(o.tail_lines, Some(5));
        let all = LogOptions::from_query_at("tailLines=7&tail=all", now()).expect("ok");
        assert_eq!(all.tail_lines, None);
    }

    #[test]
    fn rejects_like_upstream_validation() {
        let err = |q: &str| {
            LogOptions::from_query_at(q, now())
                .expect_err(q)
                .to_string()
        };
        assert_eq!(
            err("tailLines=-1"),
            "tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            err("sinceSeconds=0"),
            "sinceSeconds: Invalid value: 0: must be greater than 0"
        );
        assert_eq!(
            err("limitBytes=0"),
            "limitBytes: Invalid value: 0: must be greater than 0"
        );
        assert!(err("sinceSeconds=5&sinceTime=2016-10-06T00:17:09Z").contains("at most one of"));
        assert!(matches!(
            LogOptions::from_query_at("tailLines=ten", now()),
            Err(LogError::Decode {
                name: "tailLines",
                ..
            })
        ));
        assert!(matches!(
            LogOptions::from_query_at("sinceTime=yesterday", now()),
            Err(LogError::Decode {
                name: "sinceTime",
                ..
            })
        ));
    }
}
