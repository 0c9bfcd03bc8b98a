//! `pods/NAME/proxy` and `services/NAME/proxy`: the apiserver forwards an
//! HTTP request to a pod, or to a pod behind a Service, over the pod
//! network (upstream's `ProxyREST` for pods and services).
//!
//! The name in the path may carry a scheme and a port, as upstream's
//! `SplitSchemeNamePort`: `web`, `web:8080`, `http:web:80` (a Service port
//! may be named: `web:http`). A pod is reached at its IP; a Service at one
//! ready endpoint of the chosen port (its `targetPort` on the pod), taken
//! from the Service's Endpoints. Only plain HTTP is proxied: `https:`
//! names get a 503 that says so. Bodies are bounded like every request's;
//! answers are streamed back.

use std::time::Duration;

use futures::StreamExt;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::request::Target;
use super::status::ApiError;
use crate::store::Store;

/// The largest request body forwarded.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// How long a pod may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `target` is a pod or service proxy request.
pub fn is_proxy(target: &Target) -> bool {
    matches!(
        (target.info.resource, target.subresource.as_deref()),
        ("pods" | "services", Some("proxy"))
    ) && target.info.group.is_empty()
}

/// `[scheme:]name[:port]` (upstream `SplitSchemeNamePort`).
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Forwards `req` to the pod (or a pod of the service) `target` names.
pub async fn forward<S: Store>(
    api: &super::handlers::Api<S>,
    target: &Target,
    rest: &str,
    req: Request<Incoming>,
) -> Result<Response<super::server::Body>, ApiError> {
    let id = target.name.clone().unwrap_or_default();
    let (scheme, name, port) = split_scheme_name_port(&id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    if scheme == "https" {
        return Err(ApiError::unavailable(
            "proxying to pods over https is not supported by this apiserver; use http",
        ));
    }
    let ns = target.namespace.clone().unwrap_or_default();
    let info = target.info;
    let (obj, _) = api.current(info, &info.key(Some(&ns), name), name).await?;
    let (ip, port) = if info.resource == "pods" {
        let ip = obj["status"]["podIP"]
            .as_str()
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| ApiError::unavailable(format!("pod {name:?} has no IP address yet")))?
            .to_string();
        let port = if port.is_empty() {
            80
        } else {
            port.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid port {port:?}")))?
        };
        (ip, port)
    } else {
        service_endpoint(api, &obj, &ns, name, port).await?
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let path = format!("/{rest}{query}");
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?
        .to_bytes();
    let mut out = Request::builder().method(method).uri(&path);
    for (k, v) in &headers {
        if k == header::HOST || k == header::AUTHORIZATION || k == header::CONNECTION {
            continue;
        }
        out = out.header(k, v);
    }
    out = out.header(header::HOST, format!("{ip}:{port}"));
    let out = out
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(format!("cannot forward the request: {e}")))?;
    let unavailable =
        |e: String| ApiError::unavailable(format!("error trying to reach {ip}:{port}: {e}"));
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((ip.as_str(), port)),
    )
    .await
    .map_err(|_| unavailable("timed out".into()))?
    .map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "proxied connection ended");
        }
    });
    let response = sender
        .send_request(out)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut reply = Response::builder().status(response.status());
    for (k, v) in response.headers() {
        reply = reply.header(k, v);
    }
    let frames = http_body_util::BodyStream::new(response.into_body())
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| futures::future::ready(r.ok().map(Ok::<_, std::convert::Infallible>)));
    reply
        .body(http_body_util::StreamBody::new(frames).boxed_unsync())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A ready endpoint of the service port `port` (name or number; empty
/// means the only port).
async fn service_endpoint<S: Store>(
    api: &super::handlers::Api<S>,
    svc: &Value,
    ns: &str,
    name: &str,
    port: &str,
) -> Result<(String, u16), ApiError> {
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let chosen = if port.is_empty() {
        match ports.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "service {name:?} has several ports; name one (services/{name}:PORT/proxy)"
                )));
            }
        }
    } else {
        ports
            .iter()
            .find(|p| {
                p["name"] == port
                    || p["port"].as_i64().map(|n| n.to_string()).as_deref() == Some(port)
            })
            .cloned()
            .ok_or_else(|| {
                ApiError::unavailable(format!(
                    "no service port {port:?} found for service {name:?}"
                ))
            })?
    };
    let port_name = chosen["name"].as_str().unwrap_or("").to_string();
    let info = super::registry::resources::find("", "v1", "endpoints")
        .ok_or_else(|| ApiError::internal("endpoints resource missing"))?;
    let (endpoints, _) = api
        .current(info, &info.key(Some(ns), name), name)
        .await
        .map_err(|_| {
            ApiError::unavailable(format!("no endpoints available for service {name:?}"))
        })?;
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let Some(target_port) = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        if let Some(ip) = subset["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|a| a["ip"].as_str())
        {
            return Ok((ip.to_string(), target_port));
        }
    }
    Err(ApiError::unavailable(format!(
        "no endpoints available for service {name:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_like_upstream() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(
            split_scheme_name_port("web:8080"),
            Some(("", "web", "8080"))
        );
        assert_eq!(
            split_scheme_name_port("http:web:80"),
            Some(("http", "web", "80"))
        );
        assert_eq!(split_scheme_name_port("ftp:web:80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
    }
}
