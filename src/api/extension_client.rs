//! The apiserver's HTTPS client for the servers that extend it: admission
//! webhooks and aggregated API servers.
//!
//! Both name their server the same way (a Service, or for webhooks a URL)
//! and pin it the same way (a `caBundle`, or `insecureSkipTLSVerify` for
//! APIServices). A Service is resolved to one of its ready endpoints, as
//! k3s runs kube-apiserver with `--enable-aggregator-routing`: the host
//! need not route ClusterIPs. The certificate is checked for the name
//! `<service>.<namespace>.svc`, as upstream checks it.
//!
//! Every call is bounded: connecting, the TLS handshake and the whole
//! exchange share one deadline, and a response body is read up to a limit.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::registry::resources;
use super::watch_cache::WatchCache;

/// Largest response read from an extension server.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Where an extension server is and how to trust it.
#[derive(Clone, Debug)]
pub struct Backend {
    /// The server.
    pub destination: Destination,
    /// PEM CA certificates that sign its serving certificate.
    pub ca_bundle: Option<Vec<u8>>,
    /// Skip checking its certificate (APIService `insecureSkipTLSVerify`).
    pub insecure: bool,
}

/// A Service or a URL.
#[derive(Clone, Debug)]
pub enum Destination {
    /// `https://host:port/path`.
    Url(String),
    /// A Service port; `path` is prefixed to request paths.
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Port (default 443).
        port: u16,
        /// Path prefix.
        path: String,
    },
}

/// Why a call failed (the text upstream's errors carry after "failed to
/// call webhook:").
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// No address to call.
    #[error("{0}")]
    Unresolved(String),
    /// Connecting, TLS or HTTP failed.
    #[error("{0}")]
    Transport(String),
    /// The deadline passed.
    #[error("context deadline exceeded")]
    Timeout,
}

impl Backend {
    /// Reads a webhook's or APIService's `clientConfig`/`spec`: `service`
    /// ({namespace, name, path, port}), `url`, `caBundle` (base64).
    pub fn from_client_config(config: &Value, insecure: bool) -> Result<Backend, CallError> {
        let ca_bundle = match config["caBundle"].as_str().filter(|s| !s.is_empty()) {
            Some(b64) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| CallError::Config(format!("caBundle is not base64: {e}")))?,
            ),
            None => None,
        };
        let destination = if let Some(url) = config["url"].as_str() {
            Destination::Url(url.to_string())
        } else if config["service"].is_object() {
            let svc = &config["service"];
            Destination::Service {
                namespace: svc["namespace"].as_str().unwrap_or_default().to_string(),
                name: svc["name"].as_str().unwrap_or_default().to_string(),
                port: svc["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(443),
                path: svc["path"].as_str().unwrap_or_default().to_string(),
            }
        } else {
            return Err(CallError::Config(
                "neither a service nor a url is configured".into(),
            ));
        };
        Ok(Backend {
            destination,
            ca_bundle,
            insecure,
        })
    }

    /// The URL upstream's errors name (`https://svc.ns.svc:443/path`).
    pub fn display_url(&self, path_and_query: &str) -> String {
        match &self.destination {
            Destination::Url(u) => format!("{}{path_and_query}", u.trim_end_matches('/')),
            Destination::Service {
                namespace,
                name,
                port,
                path,
            } => format!(
                "https://{name}.{namespace}.svc:{port}{}{path_and_query}",
                path.trim_end_matches('/')
            ),
        }
    }
}

/// A resolved target: where to connect, which name to check, which path.
struct Resolved {
    addr: (String, u16),
    server_name: String,
    path: String,
}

async fn resolve(cache: &WatchCache, backend: &Backend) -> Result<Resolved, CallError> {
    match &backend.destination {
        Destination::Url(url) => {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| CallError::Config(format!("invalid url {url:?}: {e}")))?;
            if uri.scheme_str() != Some("https") {
                return Err(CallError::Config(format!("url {url:?} must be https")));
            }
            let host = uri
                .host()
                .ok_or_else(|| CallError::Config(format!("url {url:?} has no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            Ok(Resolved {
                addr: (host.clone(), uri.port_u16().unwrap_or(443)),
                server_name: host,
                path: uri.path().trim_end_matches('/').to_string(),
            })
        }
        Destination::Service {
            namespace,
            name,
            port,
            path,
        } => {
            let (ip, target_port) = service_endpoint(cache, namespace, name, *port)?;
            Ok(Resolved {
                addr: (ip.to_string(), target_port),
                server_name: format!("{name}.{namespace}.svc"),
                path: path.trim_end_matches('/').to_string(),
            })
        }
    }
}

/// A ready endpoint of the Service port `port` (from the cache).
fn service_endpoint(
    cache: &WatchCache,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<(IpAddr, u16), CallError> {
    let unresolved =
        |why: &str| CallError::Unresolved(format!("service \"{namespace}/{name}\" {why}"));
    let services = resources::find("", "v1", "services").ok_or_else(|| unresolved("unknown"))?;
    let service = cache
        .get(&services.key(Some(namespace), name))
        .ok_or_else(|| unresolved("not found"))?
        .value();
    let svc_port = service["spec"]["ports"]
        .as_array()
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p["port"].as_u64() == Some(u64::from(port)))
        })
        .cloned()
        .ok_or_else(|| unresolved(&format!("has no port {port}")))?;
    let endpoints = resources::find("", "v1", "endpoints").ok_or_else(|| unresolved("unknown"))?;
    let eps = cache
        .get(&endpoints.key(Some(namespace), name))
        .ok_or_else(|| unresolved("has no endpoints"))?
        .value();
    let port_name = svc_port["name"].as_str().unwrap_or_default();
    for subset in eps["subsets"].as_array().into_iter().flatten() {
        let Some(target) = subset["ports"].as_array().and_then(|ports| {
            ports
                .iter()
                .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
                .or_else(|| (ports.len() == 1).then(|| &ports[0]))
        }) else {
            continue;
        };
        let Some(target_port) = target["port"].as_u64().and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        if let Some(ip) = subset["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|a| a["ip"].as_str()?.parse::<IpAddr>().ok())
        {
            return Ok((ip, target_port));
        }
    }
    Err(unresolved("has no ready endpoints"))
}

fn tls_config(
    backend: &Backend,
    identity: Option<(&str, &str)>,
) -> Result<Arc<rustls::ClientConfig>, CallError> {
    if backend.insecure {
        return crate::pki::unpinned_client_config_with(identity)
            .map_err(|e| CallError::Config(e.to_string()));
    }
    let ca = match &backend.ca_bundle {
        Some(pem) => String::from_utf8_lossy(pem).into_owned(),
        None => {
            return Err(CallError::Config(
                "no caBundle: the server's certificate cannot be checked".into(),
            ));
        }
    };
    crate::pki::client_config_for_ca(&ca, identity).map_err(|e| CallError::Config(e.to_string()))
}

/// Sends one request and reads the whole answer, all within `timeout`.
/// `path_and_query` is appended to the backend's path; `identity` is the
/// client certificate and key to present (the front-proxy client).
pub async fn call(
    cache: &WatchCache,
    backend: &Backend,
    request: Request<Bytes>,
    identity: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<Response<Bytes>, CallError> {
    tokio::time::timeout(timeout, call_unbounded(cache, backend, request, identity))
        .await
        .map_err(|_| CallError::Timeout)?
}

/// An open HTTP/1.1 connection to a backend, with what requests to it need.
pub struct Connection {
    /// Sends requests on the connection.
    pub sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The `Host` header: the name the certificate was checked for.
    pub host: String,
    /// The backend's path prefix (no trailing `/`).
    pub path: String,
    driver: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Ends the connection (dropping it leaves the driver until the peer
    /// closes).
    pub fn close(self) {
        self.driver.abort();
    }
}

/// Resolves and dials the backend, completing TLS with `identity` as the
/// client certificate. Not bounded in time itself: callers wrap it.
pub async fn connect(
    cache: &WatchCache,
    backend: &Backend,
    identity: Option<(&str, &str)>,
) -> Result<Connection, CallError> {
    let target = resolve(cache, backend).await?;
    let config = tls_config(backend, identity)?;
    let transport = |e: String| CallError::Transport(e);
    let tcp = tokio::net::TcpStream::connect((target.addr.0.as_str(), target.addr.1))
        .await
        .map_err(|e| transport(format!("dial tcp {}:{}: {e}", target.addr.0, target.addr.1)))?;
    let _ = tcp.set_nodelay(true);
    let server_name = rustls_pki_types::ServerName::try_from(target.server_name.clone())
        .map_err(|e| transport(error_chain(&e)))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| transport(format!("tls: {e}")))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| transport(error_chain(&e)))?;
    let driver = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(Connection {
        sender,
        host: target.server_name,
        path: target.path,
        driver,
    })
}

async fn call_unbounded(
    cache: &WatchCache,
    backend: &Backend,
    request: Request<Bytes>,
    identity: Option<(&str, &str)>,
) -> Result<Response<Bytes>, CallError> {
    let transport = |e: String| CallError::Transport(e);
    let Connection {
        mut sender,
        host,
        path: prefix,
        driver: connection,
    } = connect(cache, backend, identity).await?;
    let (mut parts, body) = request.into_parts();
    // The backend's path, then the request's own path (none for a
    // webhook: only its query), then the query.
    let own_path = match parts.uri.path() {
        "/" | "" => "",
        p => p,
    };
    let mut path = format!("{prefix}{own_path}");
    if path.is_empty() {
        path.push('/');
    }
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    parts.uri = format!("{path}{query}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| CallError::Config(e.to_string()))?;
    parts.headers.insert(
        http::header::HOST,
        http::HeaderValue::from_str(&host).map_err(|e| CallError::Config(e.to_string()))?,
    );
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| transport(error_chain(&e)))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| transport(format!("reading the response: {e}")))?
        .to_bytes();
    connection.abort();
    Ok(Response::from_parts(parts, body))
}

/// An error with its sources (hyper's own text alone is "connection
/// error"; the cause, e.g. a TLS alert, is in the chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A JSON POST (AdmissionReview) to the backend's own path, with `query`
/// (`timeout=10s`).
pub fn json_post(query: &str, body: Vec<u8>) -> Request<Bytes> {
    let mut request = Request::new(Bytes::from(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = format!("/?{query}")
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    request
}
