//! Container probes (liveness, readiness, startup) with upstream kubelet semantics.
//!
//! [`probe_once`] runs one probe of any handler (exec, httpGet, tcpSocket; gRPC is
//! reported as unsupported) and words failures as kubelet does, e.g. `HTTP probe
//! failed with statuscode: 500` or `dial tcp 127.0.0.1:81: connect: connection
//! refused`. [`spawn_worker`] runs a probe periodically and applies kubelet's
//! initial delay, period, thresholds, initial values and "stay failed until the
//! container restarts" rule (see [`worker`]).
//!
//! Pod networking: with a `netns`, httpGet/tcpSocket connections are made from
//! inside the pod's network namespace (see [`crate::kubelet::netns`]), so
//! `127.0.0.1` reaches the pod even when it has no routable IP. Errors never
//! escape as panics: everything ends up in a [`ProbeResult`].

mod dial;
mod http;
mod tls;
pub mod worker;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use worker::{ProbeStatus, ProbeWorker, spawn_worker};

/// Which of a container's probes this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Restart the container when it fails.
    Liveness,
    /// Take the pod out of service endpoints when it fails.
    Readiness,
    /// Hold the other probes until it succeeds; restart the container if it fails.
    Startup,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The probe passed (an HTTP redirect to another host counts as a pass, as upstream).
    Success,
    /// The probe failed, with kubelet's message.
    Failure(String),
}

/// Runs a probe's command inside the container (kelp: containerd exec).
pub trait ExecProber: Send + Sync {
    /// Runs `command`, returning its exit code and combined output. [`probe_once`]
    /// enforces `timeout` itself; an `Err` means the command could not be run.
    fn exec(
        &self,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(i32, Vec<u8>), String>>;
}

/// Where a container's probes go.
#[derive(Clone)]
pub struct ProbeTarget {
    /// The pod's network namespace; `None` probes from the host network.
    pub netns: Option<PathBuf>,
    /// The pod IP, the default host of httpGet/tcpSocket probes (127.0.0.1 if unset).
    pub pod_ip: Option<IpAddr>,
    /// The container's named ports, for probes that name their port.
    pub container_ports: Vec<(String, u16)>,
    /// Runs exec probes.
    pub exec: Arc<dyn ExecProber>,
}

impl ProbeTarget {
    fn default_host(&self) -> String {
        self.pod_ip
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .to_string()
    }
}

/// The probe's timeout (`timeoutSeconds`, default and minimum 1s).
fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.filter(|t| *t > 0).unwrap_or(1) as u64)
}

/// Runs `probe` once against `target`.
pub async fn probe_once(probe: &Probe, target: &ProbeTarget) -> ProbeResult {
    match run_probe(probe, target).await {
        Ok(r) => r,
        Err(e) => ProbeResult::Failure(e),
    }
}

/// Like [`probe_once`], but keeps upstream's distinction between a failed probe
/// (`Ok(Failure)`) and a probe that could not be run (`Err`), whose result the
/// worker throws away.
async fn run_probe(probe: &Probe, target: &ProbeTarget) -> Result<ProbeResult, String> {
    let timeout = probe_timeout(probe);
    if let Some(exec) = &probe.exec {
        return exec_probe(exec.command.clone().unwrap_or_default(), target, timeout).await;
    }
    if let Some(get) = &probe.http_get {
        return http::probe(get, target, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, &target.container_ports)?;
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.default_host());
        return Ok(match dial::dial(target, &host, port, timeout).await {
            Ok(_) => ProbeResult::Success,
            Err(msg) => ProbeResult::Failure(msg),
        });
    }
    if probe.grpc.is_some() {
        return Ok(ProbeResult::Failure("grpc probes are not supported".into()));
    }
    Err("missing probe handler".into())
}

async fn exec_probe(
    command: Vec<String>,
    target: &ProbeTarget,
    timeout: Duration,
) -> Result<ProbeResult, String> {
    let quoted = go_quote_list(&command);
    match tokio::time::timeout(timeout, target.exec.exec(command, timeout)).await {
        Err(_) => Ok(ProbeResult::Failure(format!("command {quoted} timed out"))),
        Ok(Err(e)) => Err(e),
        Ok(Ok((0, _))) => Ok(ProbeResult::Success),
        Ok(Ok((_, output))) => Ok(ProbeResult::Failure(
            String::from_utf8_lossy(&output).into_owned(),
        )),
    }
}

/// Formats a command like Go's `%q` of a `[]string`: `["sh" "-c" "exit 1"]`.
fn go_quote_list(cmd: &[String]) -> String {
    let parts: Vec<String> = cmd.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", parts.join(" "))
}

/// Resolves a probe port: a number, a container port name, or a number as a string.
fn resolve_port(port: &IntOrString, ports: &[(String, u16)]) -> Result<u16, String> {
    let n: i64 = match port {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(name) => match ports.iter().find(|(n, _)| n == name) {
            Some((_, p)) => i64::from(*p),
            None => name.parse().map_err(|_| format!("port {name} not found"))?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}

#[cfg(test)]
mod tests;
