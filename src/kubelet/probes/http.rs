//! httpGet probes, as kubelet's `pkg/probe/http`.
//!
//! One GET per hop over a fresh connection (dialled from the pod's netns when it
//! has one); `User-Agent: kube-probe/1.37` and `Accept: */*` unless the probe sets
//! them; a `Host` header in the probe replaces the request host. A status in
//! [200, 400) passes; redirects are followed (at most 10) only while they stay on
//! the first request's host name, and a redirect elsewhere is returned as is and
//! passes, as upstream's "probe terminated redirects" warning. The whole exchange
//! must finish within the probe timeout. The body is not read: kubelet only uses
//! it in log lines.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::dial::{dial, join_host_port};
use super::{ProbeResult, ProbeTarget, resolve_port, tls};

/// The User-Agent kubelet 1.37 sends.
const USER_AGENT: &str = "kube-probe/1.37";
const MAX_REDIRECTS: usize = 10;
/// Bytes that cannot appear raw in a request target.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

#[derive(Clone, Debug, PartialEq, Eq)]
struct Url {
    https: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(
            f,
            "{scheme}://{}{}",
            join_host_port(&self.host, self.port),
            self.target
        )
    }
}

fn normalize_target(path: &str) -> String {
    let path = path.split('#').next().unwrap_or("");
    let escaped = utf8_percent_encode(path, PATH_ESCAPE).to_string();
    if escaped.starts_with('/') {
        escaped
    } else {
        format!("/{escaped}")
    }
}

impl Url {
    /// Resolves a `Location` header against this URL.
    fn join(&self, location: &str) -> Option<Url> {
        let absolute = if location.starts_with("//") {
            format!("{}:{location}", if self.https { "https" } else { "http" })
        } else {
            location.to_string()
        };
        if let Some(rest) = absolute
            .strip_prefix("http://")
            .or_else(|| absolute.strip_prefix("https://"))
        {
            let https = absolute.starts_with("https://");
            let (authority, path) = rest
                .find('/')
                .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
            let uri: hyper::Uri = format!("http://{authority}/").parse().ok()?;
            let host = uri
                .host()?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            return Some(Url {
                https,
                host,
                port,
                target: normalize_target(path),
            });
        }
        let target = if location.starts_with('/') {
            normalize_target(location)
        } else {
            let dir = self.target.split('?').next().unwrap_or("/");
            let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
            normalize_target(&format!("{dir}{location}"))
        };
        Some(Url {
            target,
            ..self.clone()
        })
    }
}

/// Runs an httpGet probe; `Err` when the probe cannot even be built (bad port).
pub(super) async fn probe(
    get: &HTTPGetAction,
    target: &ProbeTarget,
    timeout: Duration,
) -> Result<ProbeResult, String> {
    let port = resolve_port(&get.port, &target.container_ports)?;
    let https = get
        .scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let host = get
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| target.default_host());
    let url = Url {
        https,
        host,
        port,
        target: normalize_target(get.path.as_deref().unwrap_or("")),
    };
    let headers = match probe_headers(get) {
        Ok(h) => h,
        Err(msg) => return Ok(ProbeResult::Failure(format!("Get \"{url}\": {msg}"))),
    };
    let outcome =
        tokio::time::timeout(timeout, follow(url.clone(), &headers, target, timeout)).await;
    Ok(match outcome {
        Err(_) => ProbeResult::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Ok(Err((at, msg))) => ProbeResult::Failure(format!("Get \"{at}\": {msg}")),
        Ok(Ok(status)) if (200..400).contains(&status.as_u16()) => ProbeResult::Success,
        Ok(Ok(status)) => ProbeResult::Failure(format!(
            "HTTP probe failed with statuscode: {}",
            status.as_u16()
        )),
    })
}

/// The probe's headers plus kubelet's defaults.
fn probe_headers(get: &HTTPGetAction) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    for h in get.http_headers.iter().flatten() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("net/http: invalid header field name {:?}", h.name))?;
        let value = HeaderValue::from_str(&h.value)
            .map_err(|_| format!("net/http: invalid header field value for {:?}", h.name))?;
        out.push((name, value));
    }
    if !out.iter().any(|(n, _)| n == hyper::header::USER_AGENT) {
        out.push((
            hyper::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        ));
    }
    if !out.iter().any(|(n, _)| n == hyper::header::ACCEPT) {
        out.push((hyper::header::ACCEPT, HeaderValue::from_static("*/*")));
    }
    // An Accept header set to "" means "send none".
    out.retain(|(n, v)| !(n == hyper::header::ACCEPT && v.is_empty()));
    Ok(out)
}

/// GETs `url`, following same-host redirects; the final status, or the URL that
/// failed and why.
async fn follow(
    mut url: Url,
    headers: &[(HeaderName, HeaderValue)],
    target: &ProbeTarget,
    timeout: Duration,
) -> Result<StatusCode, (Url, String)> {
    let first_host = url.host.clone();
    for hop in 0..=MAX_REDIRECTS {
        let (status, location) = fetch(&url, headers, target, timeout)
            .await
            .map_err(|e| (url.clone(), e))?;
        let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
        let next = location.filter(|_| redirect).and_then(|l| url.join(&l));
        match next {
            Some(next) if next.host == first_host => {
                if hop == MAX_REDIRECTS {
                    return Err((next, "stopped after 10 redirects".into()));
                }
                url = next;
            }
            _ => return Ok(status),
        }
    }
    Err((url, "stopped after 10 redirects".into()))
}

/// One request on a fresh connection: the status and `Location` header.
async fn fetch(
    url: &Url,
    headers: &[(HeaderName, HeaderValue)],
    target: &ProbeTarget,
    timeout: Duration,
) -> Result<(StatusCode, Option<String>), String> {
    let mut req = Request::get(url.target.as_str());
    let has_host = headers.iter().any(|(n, _)| n == hyper::header::HOST);
    if !has_host {
        req = req.header(hyper::header::HOST, join_host_port(&url.host, url.port));
    }
    for (n, v) in headers {
        req = req.header(n, v);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let tcp = dial(target, &url.host, url.port, timeout).await?;
    if !url.https {
        return send(TokioIo::new(tcp), req).await;
    }
    let connector = tokio_rustls::TlsConnector::from(tls::client_config()?);
    let stream = connector
        .connect(tls::server_name(&url.host)?, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    send(TokioIo::new(stream), req).await
}

async fn send<I>(io: I, req: Request<Empty<Bytes>>) -> Result<(StatusCode, Option<String>), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let result = sender.send_request(req).await.map_err(|e| e.to_string());
    // The body is not needed; dropping the connection closes the socket.
    driver.abort();
    let resp = result?;
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((resp.status(), location))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url {
            https: false,
            host: "10.0.0.1".into(),
            port: 8080,
            target: "/a/b?x=1".into(),
        }
    }

    #[test]
    fn joins_redirect_locations_like_a_browser() {
        let b = base();
        assert_eq!(
            b.join("/c").map(|u| u.to_string()).as_deref(),
            Some("http://10.0.0.1:8080/c")
        );
        assert_eq!(
            b.join("c?y").map(|u| u.to_string()).as_deref(),
            Some("http://10.0.0.1:8080/a/c?y")
        );
        assert_eq!(
            b.join("https://other/z").map(|u| u.to_string()).as_deref(),
            Some("https://other:443/z")
        );
        assert_eq!(
            b.join("//h:9/").map(|u| u.to_string()).as_deref(),
            Some("http://h:9/")
        );
    }

    #[test]
    fn formats_targets_and_urls_like_kubelet() {
        assert_eq!(normalize_target(""), "/");
        assert_eq!(normalize_target("healthz"), "/healthz");
        assert_eq!(normalize_target("/a b?q=1#frag"), "/a%20b?q=1");
        let v6 = Url {
            https: true,
            host: "::1".into(),
            port: 443,
            target: "/".into(),
        };
        assert_eq!(v6.to_string(), "https://[::1]:443/");
    }
}
