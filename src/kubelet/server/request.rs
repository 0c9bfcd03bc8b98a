//! Parsing of kubelet streaming URLs: which route, which pod/container, which options.
//!
//! Paths follow upstream kubelet (`/exec/{ns}/{pod}[/{uid}]/{container}`,
//! `/portForward/{ns}/{pod}[/{uid}]`, `/containerLogs/{ns}/{pod}/{container}`). Query
//! flags accept both the kubelet spellings (`input`, `output`, `error`) and the
//! PodExecOptions ones (`stdin`, `stdout`, `stderr`) because kelp's apiserver forwards
//! the client's query unchanged. Bad input is a [`BackendError::BadRequest`] carrying
//! upstream's message.

use super::backend::{BackendError, ContainerTarget, PodTarget};

/// A recognised kubelet route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`.
    Healthz,
    /// `/containerLogs/...`.
    Logs(ContainerTarget),
    /// `/exec/...`.
    Exec(ContainerTarget),
    /// `/attach/...`.
    Attach(ContainerTarget),
    /// `/portForward/...`.
    PortForward(PodTarget),
}

/// Maps a request path to a route; `None` for anything else (404).
pub fn route(path: &str) -> Option<Route> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect::<Option<_>>()?;
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let pod = |ns: &str, name: &str, uid: Option<&String>| PodTarget {
        namespace: ns.to_string(),
        name: name.to_string(),
        uid: uid.cloned(),
    };
    let container = |p: PodTarget, c: &str| ContainerTarget {
        pod: p,
        container: c.to_string(),
    };
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    Some(match s.as_slice() {
        ["healthz"] => Route::Healthz,
        ["containerLogs", ns, name, c] => Route::Logs(container(pod(ns, name, None), c)),
        ["exec", ns, name, c] => Route::Exec(container(pod(ns, name, None), c)),
        ["exec", ns, name, _, c] => Route::Exec(container(pod(ns, name, segments.get(3)), c)),
        ["attach", ns, name, c] => Route::Attach(container(pod(ns, name, None), c)),
        ["attach", ns, name, _, c] => Route::Attach(container(pod(ns, name, segments.get(3)), c)),
        ["portForward", ns, name] => Route::PortForward(pod(ns, name, None)),
        ["portForward", ns, name, _] => Route::PortForward(pod(ns, name, segments.get(3))),
        _ => return None,
    })
}

/// Decoded `key=value` pairs of a query string, in order; malformed escapes are kept
/// verbatim (Go's ParseQuery would drop the pair, but nothing here depends on it).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let spaced = s.replace('+', " ");
                percent_decode(&spaced).unwrap_or(spaced)
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Go's strconv.ParseBool truthy spellings.
fn truthy(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// Which streams an exec/attach asked for, and the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// Client sends input.
    pub stdin: bool,
    /// Client wants stdout.
    pub stdout: bool,
    /// Client wants stderr (ignored with a TTY).
    pub stderr: bool,
    /// Client wants a terminal.
    pub tty: bool,
    /// The `command` values, in order (empty for attach).
    pub command: Vec<String>,
}

impl ExecOptions {
    /// Reads the options from a query, enforcing upstream's "at least one stream" rule.
    pub fn from_query(query: &[(String, String)]) -> Result<Self, BackendError> {
        let flag = |names: &[&str]| {
            query
                .iter()
                .any(|(k, v)| names.contains(&k.as_str()) && truthy(v))
        };
        let tty = flag(&["tty"]);
        let opts = Self {
            stdin: flag(&["stdin", "input"]),
            stdout: flag(&["stdout", "output"]),
            // Upstream drops stderr when a TTY is requested: the terminal merges them.
            stderr: flag(&["stderr", "error"]) && !tty,
            tty,
            command: query
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect(),
        };
        if !opts.stdin && !opts.stdout && !opts.stderr {
            return Err(BackendError::BadRequest(
                "you must specify at least 1 of stdin, stdout, stderr".into(),
            ));
        }
        Ok(opts)
    }
}

/// The ports of a WebSocket port-forward (`port=80&port=443` or `port=80,443`; kube-rs
/// sends PodPortForwardOptions' `ports=80,443`, which kelp's apiserver passes through).
pub fn forward_ports(query: &[(String, String)]) -> Result<Vec<u16>, BackendError> {
    let values: Vec<&String> = query
        .iter()
        .filter(|(k, _)| k == "port" || k == "ports")
        .map(|(_, v)| v)
        .collect();
    if values.is_empty() {
        return Err(BackendError::BadRequest(
            "query parameter \"port\" is required".into(),
        ));
    }
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err(BackendError::BadRequest(
                "query parameter \"port\" cannot be empty".into(),
            ));
        }
        for part in value.split(',') {
            let port: u16 = part.parse().map_err(|e| {
                BackendError::BadRequest(format!("unable to parse \"{value}\" as a port: {e}"))
            })?;
            if port < 1 {
                return Err(BackendError::BadRequest(format!(
                    "port \"{value}\" must be > 0"
                )));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_upstream_paths() {
        let Some(Route::Exec(t)) = route("/exec/default/p/uid-1/c") else {
            panic!()
        };
        assert_eq!(
            (t.pod.uid.as_deref(), t.container.as_str()),
            (Some("uid-1"), "c")
        );
        assert!(matches!(route("/attach/ns/p/c"), Some(Route::Attach(_))));
        assert!(matches!(
            route("/portForward/ns/p"),
            Some(Route::PortForward(_))
        ));
        assert!(matches!(
            route("/containerLogs/ns/p/c"),
            Some(Route::Logs(_))
        ));
        assert_eq!(route("/healthz"), Some(Route::Healthz));
        assert_eq!(route("/exec/ns/p"), None);
        assert_eq!(route("/exec//p/c"), None);
    }

    #[test]
    fn exec_options_accept_both_spellings() {
        let q = parse_query("command=sh&command=-c&command=echo%20a+b&stdout=true&error=1&tty=0");
        let opts = ExecOptions::from_query(&q).unwrap();
        assert_eq!(opts.command, ["sh", "-c", "echo a b"]);
        assert!(opts.stdout && opts.stderr && !opts.stdin && !opts.tty);
        let tty = ExecOptions::from_query(&parse_query("input=1&stderr=1&tty=true")).unwrap();
        assert!(
            tty.stdin && tty.tty && !tty.stderr,
            "a TTY folds stderr away"
        );
        let err = ExecOptions::from_query(&parse_query("command=ls")).unwrap_err();
        assert!(
            err.to_string()
                .contains("at least 1 of stdin, stdout, stderr")
        );
    }

    #[test]
    fn forward_ports_are_validated_like_upstream() {
        assert_eq!(
            forward_ports(&parse_query("port=80&port=443,8080")).unwrap(),
            [80, 443, 8080]
        );
        assert_eq!(
            forward_ports(&parse_query("&ports=80%2C1234")).unwrap(),
            [80, 1234]
        );
        assert!(
            forward_ports(&[])
                .unwrap_err()
                .to_string()
                .contains("is required")
        );
        assert!(
            forward_ports(&parse_query("port=0"))
                .unwrap_err()
                .to_string()
                .contains("> 0")
        );
        assert!(forward_ports(&parse_query("port=x")).is_err());
    }
}
