//! `pods/{log,exec,attach,portforward}` and `nodes/proxy`: the apiserver
//! forwards these to the kubelet of the pod's node, as upstream does.
//!
//! The request goes out unchanged except for its path (the kubelet's
//! `/containerLogs`, `/exec`, … routes) and credentials (the apiserver's
//! own client certificate, CN=kube-apiserver-kubelet-client). Upgrades
//! (WebSocket or SPDY for exec and port-forward) are spliced byte for byte,
//! so whatever streaming protocol the client and kubelet agree on works
//! through the apiserver without it knowing the protocol.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::request::Target;
use super::status::ApiError;
use crate::store::Store;

/// How the apiserver reaches kubelets.
pub struct KubeletDialer {
    /// TLS client config presenting the apiserver's kubelet-client cert.
    pub tls: Arc<rustls::ClientConfig>,
}

/// The subresources this module serves.
pub fn is_node_subresource(target: &Target) -> bool {
    matches!(
        (target.info.resource, target.subresource.as_deref()),
        ("pods", Some("log" | "exec" | "attach" | "portforward")) | ("nodes", Some("proxy"))
    )
}

/// Forwards `req` to the right kubelet and returns its answer (for an
/// upgrade: the 101, with the two connections spliced in the background).
pub async fn forward<S: Store>(
    api: &super::handlers::Api<S>,
    dialer: &KubeletDialer,
    target: &Target,
    rest: &str,
    mut req: Request<Incoming>,
) -> Result<Response<super::server::Body>, ApiError> {
    let name = target.name.clone().unwrap_or_default();
    let key = target.info.key(target.namespace.as_deref(), &name);
    let (obj, _) = api.current(target.info, &key, &name).await?;
    let query = req.uri().query().unwrap_or("").to_string();
    let (node_name, path) = if target.info.resource == "nodes" {
        (name.clone(), format!("/{rest}"))
    } else {
        kubelet_path(&obj, target, &query)?
    };
    let node_key = super::registry::resources::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes resource missing"))?;
    let (node, _) = api
        .current(node_key, &node_key.key(None, &node_name), &node_name)
        .await
        .map_err(|_| {
            ApiError::unavailable(format!(
                "node {node_name:?} of pod {name:?} is not registered"
            ))
        })?;
    let (host, port) = kubelet_address(&node).ok_or_else(|| {
        ApiError::unavailable(format!(
            "node {node_name:?} has no InternalIP or kubelet port"
        ))
    })?;
    let path_and_query = if query.is_empty() || target.info.resource == "nodes" {
        format!(
            "{path}{}",
            if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            }
        )
    } else {
        format!("{path}?{query}")
    };
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(&path_and_query);
    for (k, v) in req.headers() {
        if k == header::HOST || k == header::AUTHORIZATION || k == header::CONTENT_LENGTH {
            continue;
        }
        out = out.header(k, v);
    }
    out = out.header(header::HOST, format!("{host}:{port}"));
    let out = out
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| ApiError::bad_request(format!("cannot forward the request: {e}")))?;
    let mut sender = connect(dialer, &host, port).await?;
    let mut response = sender.send_request(out).await.map_err(|e| {
        ApiError::unavailable(format!(
            "error talking to the kubelet on {host}:{port}: {e}"
        ))
    })?;
    let status = response.status();
    let mut reply = Response::builder().status(status);
    for (k, v) in response.headers() {
        reply = reply.header(k, v);
    }
    if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
        let client_side = hyper::upgrade::on(&mut req);
        let kubelet_side = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(a), Ok(b)) = (client_side.await, kubelet_side.await) else {
                tracing::debug!("upgrade to the kubelet failed");
                return;
            };
            let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        return reply
            .body(super::server::empty_body())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    // A kubelet body error ends the stream (the client sees a truncated
    // log, as with upstream); the server's body type cannot fail.
    let frames = http_body_util::BodyStream::new(response.into_body())
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| futures::future::ready(r.ok().map(Ok::<_, std::convert::Infallible>)));
    let body = http_body_util::StreamBody::new(frames).boxed_unsync();
    reply
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Node name and kubelet path for a pod subresource.
fn kubelet_path(pod: &Value, target: &Target, query: &str) -> Result<(String, String), ApiError> {
    let name = target.name.clone().unwrap_or_default();
    let ns = target.namespace.clone().unwrap_or_default();
    let node = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?
        .to_string();
    let sub = target.subresource.as_deref().unwrap_or("");
    if sub == "portforward" {
        return Ok((node, format!("/portForward/{ns}/{name}")));
    }
    let container = container_for(pod, &name, query)?;
    let kind = match sub {
        "log" => "containerLogs",
        "exec" => "exec",
        _ => "attach",
    };
    if sub != "log"
        && pod["status"]["phase"]
            .as_str()
            .is_some_and(|p| p == "Succeeded" || p == "Failed")
    {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {}",
            pod["status"]["phase"].as_str().unwrap_or("")
        )));
    }
    Ok((node, format!("/{kind}/{ns}/{name}/{container}")))
}

/// The container a request means: `container=` or the pod's only (or
/// default-annotated) container, with upstream's error otherwise.
fn container_for(pod: &Value, name: &str, query: &str) -> Result<String, ApiError> {
    let asked = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.into_owned())
        .filter(|c| !c.is_empty());
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let all: Vec<String> = [
        names("initContainers"),
        containers.clone(),
        names("ephemeralContainers"),
    ]
    .concat();
    if let Some(c) = asked {
        if all.contains(&c) {
            return Ok(c);
        }
        return Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        )));
    }
    if let Some(d) =
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str()
    {
        return Ok(d.to_string());
    }
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// InternalIP (else the first address) and the kubelet port of a node.
fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let addresses = node["status"]["addresses"].as_array()?;
    let ip = addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addresses.first())?["address"]
        .as_str()?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250);
    Some((ip, u16::try_from(port).ok()?))
}

async fn connect(
    dialer: &KubeletDialer,
    host: &str,
    port: u16,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>, ApiError> {
    let unavailable = |e: String| {
        ApiError::unavailable(format!("cannot reach the kubelet on {host}:{port}: {e}"))
    };
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| unavailable("timed out".into()))?
    .map_err(|e| unavailable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let server_name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| unavailable(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(dialer.tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(format!("TLS: {e}")))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended");
        }
    });
    Ok(sender)
}
