//! kube-apiserver's `--request-timeout`: a request that is not long-running
//! (watch, exec, attach, port-forward, proxy, followed logs) gets at most
//! [`DEFAULT`] (or the shorter `?timeout=` the client asked for), then a
//! 504 `Timeout` Status, as upstream's timeout filter answers. A stuck store
//! write or a slow webhook then costs a client a minute, not forever.

use std::time::Duration;

use hyper::Request;

use super::status::ApiError;

/// Upstream's default `--request-timeout`.
pub const DEFAULT: Duration = Duration::from_secs(60);

/// The time budget of `req`; `None` for long-running requests.
pub fn deadline<B>(req: &Request<B>) -> Option<Duration> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    };
    let watching = matches!(param("watch"), Some("true" | "1"));
    let following = matches!(param("follow"), Some("true" | "1"));
    let streaming = path.contains("/watch/")
        || ["/exec", "/attach", "/portforward"]
            .iter()
            .any(|s| path.ends_with(s))
        || path.contains("/proxy")
        || (following && path.ends_with("/log"));
    if watching || streaming {
        return None;
    }
    let asked = param("timeout").and_then(parse_go_duration);
    Some(asked.map_or(DEFAULT, |d| d.min(DEFAULT)))
}

/// The 504 upstream's timeout filter writes.
pub fn timed_out() -> ApiError {
    ApiError::new(
        504,
        "Timeout",
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
    )
}

/// `30s`, `1m30s`, `500ms`, `2h` (Go's `time.Duration` text), or bare
/// seconds.
fn parse_go_duration(s: &str) -> Option<Duration> {
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * scale).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(uri: &str) -> Option<Duration> {
        deadline(&Request::get(uri).body(()).unwrap())
    }

    #[test]
    fn long_running_requests_have_no_deadline_and_others_the_shorter_one() {
        assert_eq!(at("/api/v1/pods?watch=true"), None);
        assert_eq!(at("/api/v1/namespaces/d/pods/p/exec?command=sh"), None);
        assert_eq!(at("/api/v1/namespaces/d/pods/p/log?follow=true"), None);
        assert_eq!(at("/api/v1/namespaces/d/pods/p/portforward"), None);
        assert_eq!(at("/api/v1/pods"), Some(DEFAULT));
        assert_eq!(at("/api/v1/namespaces/d/pods/p/log"), Some(DEFAULT));
        assert_eq!(
            at("/api/v1/pods?timeout=32s"),
            Some(Duration::from_secs(32))
        );
        assert_eq!(at("/api/v1/pods?timeout=1m30s"), Some(DEFAULT));
        assert_eq!(
            at("/api/v1/pods?timeout=500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(at("/api/v1/pods?timeout=junk"), Some(DEFAULT));
    }
}
