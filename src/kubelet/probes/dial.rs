//! TCP connections for probes, from the host or from inside the pod's netns.
//!
//! Errors are worded like Go's `net.Dial` errors, which is what users see in
//! kubelet's probe events: `dial tcp 127.0.0.1:81: connect: connection refused`,
//! `dial tcp 10.0.0.9:80: i/o timeout`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use super::ProbeTarget;
use crate::kubelet::netns;

/// `host:port`, bracketing IPv6 literals like Go's `net.JoinHostPort`.
pub(super) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("dial tcp: lookup {bare}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("dial tcp: lookup {bare}: no such host"))
}

/// Go's wording of a connect error (`connect: connection refused`, `i/o timeout`).
fn go_error_text(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "i/o timeout".into();
    }
    match e.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut chars = desc.chars();
            let lower: String = chars
                .next()
                .map(|c| c.to_ascii_lowercase())
                .into_iter()
                .chain(chars)
                .collect();
            format!("connect: {lower}")
        }
        None => e.to_string(),
    }
}

/// Connects to `host:port` for `target`, within `timeout`.
pub(super) async fn dial(
    target: &ProbeTarget,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let addr = resolve(host, port).await?;
    let conn = match &target.netns {
        Some(ns) => netns::connect_tcp(ns, addr, timeout).await,
        None => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")),
        },
    };
    conn.map_err(|e| format!("dial tcp {addr}: {}", go_error_text(&e)))
}
