//! The kubelet's HTTPS streaming server (:10250): health, container logs, exec, attach
//! and port-forward, speaking the same wire protocols as upstream kubelet so that
//! kelp's apiserver can splice clients (kubectl, kube-rs) straight through to it.
//!
//! Routing and the pre-upgrade checks live here; every failure before an upgrade is a
//! metav1.Status JSON with the matching HTTP code. After an upgrade, protocol handlers
//! run in their own tasks: [`exec_streams`] over the WebSocket channel protocol
//! ([`websocket_channels`]), [`port_forward`] over SPDY/3.1 ([`spdy`]) either raw or
//! tunnelled in a WebSocket ([`ws_tunnel`]), or over channels. Containers are reached only
//! through the [`NodeBackend`] trait so this module owns protocols and nothing else.
//! Exec/attach over SPDY (kubectl's fallback when WebSockets fail) is refused with 400.

pub mod authorization;
pub mod backend;
pub mod error;
pub mod exec_streams;
pub mod port_forward;
pub mod request;
pub mod spdy;
pub mod upgrade;
pub mod websocket_channels;
pub mod ws_tunnel;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

pub use authorization::{Caller, NodeRequest, RequestAuthorizer, Verdict};
pub use backend::{
    AsyncIo, BoxedIo, ContainerTarget, ExecOutcome, ExecStreams, NodeBackend, PodTarget,
    TerminalSize,
};
pub use error::{BackendError, ServerError};

use request::{ExecOptions, Route};
use websocket_channels::{ChannelConn, V1_BASE64, V1_BINARY, V4_BASE64, V4_BINARY, V5_BINARY};

/// Response body of every route.
type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// WebSocket subprotocols accepted for exec/attach, as upstream kubelet.
const EXEC_PROTOCOLS: &[&str] = &[V5_BINARY, V4_BINARY, V4_BASE64, V1_BINARY, V1_BASE64, ""];
/// Streaming protocol of SPDY port-forwarding.
const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// WebSocket subprotocols accepted for channel-framed port-forwarding.
const PORT_FORWARD_CHANNEL_PROTOCOLS: &[&str] = &[V4_BINARY, V4_BASE64, PORT_FORWARD_PROTOCOL, ""];
/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the kubelet API until `shutdown` is cancelled. `tls: None` serves plain HTTP
/// (tests); client-certificate checks are the caller's `ServerConfig`'s business. With
/// an `authorizer`, every request but `/healthz` is authorized for the certificate's
/// identity (see [`authorization`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    backend: Arc<dyn NodeBackend>,
    authorizer: Option<Arc<dyn RequestAuthorizer>>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Running out of descriptors is transient; do not spin on it.
                tracing::warn!(error = %e, "kubelet server accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (backend, shutdown, acceptor) = (backend.clone(), shutdown.clone(), acceptor.clone());
        let authorizer = authorizer.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(tcp, backend, None, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let caller = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| crate::pki::client_identity(c).ok())
                                .map(|(name, groups)| Caller { name, groups });
                            let gate = authorizer.map(|a| Gate {
                                authorizer: a,
                                caller,
                            });
                            serve_connection(tls, backend, gate, shutdown).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "kubelet TLS handshake failed"),
                        Err(_) => tracing::debug!("kubelet TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// The authorizer and the connection's caller.
#[derive(Clone)]
struct Gate {
    authorizer: Arc<dyn RequestAuthorizer>,
    caller: Option<Caller>,
}

impl Gate {
    /// `None` when the request may go on, else the refusal.
    async fn refuse(&self, req: &Request<Incoming>) -> Option<Response<Body>> {
        if req.uri().path() == "/healthz" {
            return None;
        }
        let Some(caller) = &self.caller else {
            return Some(status_response(StatusCode::UNAUTHORIZED, "Unauthorized"));
        };
        let asked = authorization::node_request(req.method(), req.uri().path());
        match self.authorizer.allowed(caller, &asked).await {
            Ok(true) => None,
            Ok(false) => Some(status_response(
                StatusCode::FORBIDDEN,
                &format!(
                    "Forbidden (user={}, verb={}, resource=nodes, subresource={})",
                    caller.name, asked.verb, asked.subresource
                ),
            )),
            Err(e) => Some(status_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!(
                    "Authorization error (user={}, verb={}, resource=nodes, subresource={}): {e}",
                    caller.name, asked.verb, asked.subresource
                ),
            )),
        }
    }
}

async fn serve_connection<I>(
    io: I,
    backend: Arc<dyn NodeBackend>,
    gate: Option<Gate>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let token = shutdown.clone();
    let service = hyper::service::service_fn(move |req| {
        let (backend, token, gate) = (backend.clone(), token.clone(), gate.clone());
        async move {
            if let Some(gate) = gate
                && let Some(refused) = gate.refuse(&req).await
            {
                return Ok::<_, Infallible>(refused);
            }
            Ok::<_, Infallible>(handle(req, backend, token).await)
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::select! {
        result = conn => if let Err(e) = result {
            tracing::debug!(error = %e, "kubelet connection ended with an error");
        },
        _ = shutdown.cancelled() => {}
    }
}

async fn handle(
    req: Request<Incoming>,
    backend: Arc<dyn NodeBackend>,
    shutdown: CancellationToken,
) -> Response<Body> {
    let Some(route) = request::route(req.uri().path()) else {
        return status_response(
            StatusCode::NOT_FOUND,
            "the server could not find the requested resource",
        );
    };
    let streaming = matches!(
        route,
        Route::Exec(_) | Route::Attach(_) | Route::PortForward(_)
    );
    let method_ok = req.method() == Method::GET || (streaming && req.method() == Method::POST);
    if !method_ok {
        return status_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let result = match route {
        Route::Healthz => Ok(text_response("ok")),
        Route::Logs(target) => logs(&req, target, &*backend).await,
        Route::Exec(target) => exec(req, target, backend, shutdown, false),
        Route::Attach(target) => exec(req, target, backend, shutdown, true),
        Route::PortForward(pod) => port_forward(req, pod, backend, shutdown),
    };
    result.unwrap_or_else(|e| status_response(e.status_code(), &e.to_string()))
}

async fn logs(
    req: &Request<Incoming>,
    target: ContainerTarget,
    backend: &dyn NodeBackend,
) -> Result<Response<Body>, BackendError> {
    let query = req.uri().query().unwrap_or_default().to_string();
    let stream = backend.container_logs(target, query).await?;
    let body = StreamBody::new(stream.map_ok(Frame::data));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

fn exec(
    mut req: Request<Incoming>,
    target: ContainerTarget,
    backend: Arc<dyn NodeBackend>,
    shutdown: CancellationToken,
    attach: bool,
) -> Result<Response<Body>, BackendError> {
    let query = request::parse_query(req.uri().query().unwrap_or_default());
    let opts = ExecOptions::from_query(&query)?;
    let headers = req.headers();
    if upgrade::is_spdy(headers) && !upgrade::is_websocket(headers) {
        return Err(BackendError::BadRequest(
            "exec and attach over SPDY are not supported by this kubelet; use WebSockets".into(),
        ));
    }
    if !upgrade::is_websocket(headers) {
        return Err(BackendError::BadRequest(
            "unable to upgrade: missing upgrade headers in request".into(),
        ));
    }
    let offered = upgrade::list_values(headers, "sec-websocket-protocol");
    let negotiated = websocket_channels::negotiate(&offered, EXEC_PROTOCOLS).ok_or_else(|| {
        BackendError::BadRequest(format!(
            "requested protocol(s) are not supported: {offered:?}; supports {EXEC_PROTOCOLS:?}"
        ))
    })?;
    let response = upgrade::websocket_response(headers, negotiated.protocol)?;
    let description = format!("[{}]", opts.command.join(" "));
    let command = opts.command.clone();
    let launch: exec_streams::Launch = if attach {
        Box::new(move |streams| backend.attach(target, streams))
    } else {
        Box::new(move |streams| backend.exec(target, command, streams))
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let conn = ChannelConn::start(ws, negotiated);
        exec_streams::run(conn, negotiated, opts, description, launch, shutdown).await;
    });
    Ok(response)
}

fn port_forward(
    mut req: Request<Incoming>,
    pod: PodTarget,
    backend: Arc<dyn NodeBackend>,
    shutdown: CancellationToken,
) -> Result<Response<Body>, BackendError> {
    let headers = req.headers();
    if upgrade::is_websocket(headers) {
        let offered = upgrade::list_values(headers, "sec-websocket-protocol");
        let tunnel = format!("{}{PORT_FORWARD_PROTOCOL}", ws_tunnel::TUNNELING_PREFIX);
        if offered.contains(&tunnel) {
            let response = upgrade::websocket_response(headers, &tunnel)?;
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let io = TokioIo::new(upgraded);
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                port_forward::serve_spdy(ws_tunnel::bridge(ws), backend, pod, shutdown).await;
            });
            return Ok(response);
        }
        let query = request::parse_query(req.uri().query().unwrap_or_default());
        let ports = request::forward_ports(&query)?;
        let negotiated = websocket_channels::negotiate(&offered, PORT_FORWARD_CHANNEL_PROTOCOLS)
            .ok_or_else(|| {
                BackendError::BadRequest(format!(
                    "requested protocol(s) are not supported: {offered:?}"
                ))
            })?;
        let response = upgrade::websocket_response(headers, negotiated.protocol)?;
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            let conn = ChannelConn::start(ws, negotiated);
            port_forward::serve_channels(conn, backend, pod, ports, shutdown).await;
        });
        return Ok(response);
    }
    if !upgrade::is_spdy(headers) {
        return Err(BackendError::BadRequest(
            "unable to upgrade: missing upgrade headers in request".into(),
        ));
    }
    let protocol = match upgrade::negotiate_spdy(headers, &[PORT_FORWARD_PROTOCOL]) {
        Ok(p) => p,
        Err(message) => {
            return Ok(upgrade::spdy_refusal(
                full(message),
                &[PORT_FORWARD_PROTOCOL],
            ));
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        port_forward::serve_spdy(TokioIo::new(upgraded), backend, pod, shutdown).await;
    });
    Ok(upgrade::spdy_response(protocol))
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn text_response(text: &str) -> Response<Body> {
    let mut response = Response::new(full(text.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// A metav1.Status error response, as upstream kubelet answers before an upgrade.
fn status_response(code: StatusCode, message: &str) -> Response<Body> {
    let status = error::failure_status(code, message);
    let mut response = Response::new(full(status.to_string()));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
