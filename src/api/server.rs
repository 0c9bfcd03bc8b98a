//! The HTTPS listener and the top of request handling.
//!
//! Each connection: TLS handshake (client certificate optional), identity
//! from the certificate, then hyper (HTTP/1.1 with upgrades, or HTTP/2 by
//! ALPN). Each request: authenticate, route the path (health, version,
//! OpenAPI, discovery, resources), cap the body, run the handler and
//! render the reply or its `metav1.Status`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::aggregator;
use super::authn::{self, User};
use super::authz;
use super::connection_limits as limits;
use super::discovery;
use super::handlers::{Api, Call, Rendering, Reply};
use super::openapi::OpenApi;
use super::request::{self, Query, Route};
use super::status::ApiError;
use crate::pki::ClusterPki;
use crate::store::Store;

/// Largest request body accepted (upstream: 3 MiB).
pub const MAX_BODY: usize = 3 << 20;

/// Response body of every API answer.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// An empty body (upgrade answers).
pub(crate) fn empty_body() -> Body {
    full(Bytes::new())
}

/// Everything a request needs.
pub struct Server<S: Store> {
    /// Resource handlers.
    pub api: Arc<Api<S>>,
    /// Cluster PKI (bearer token checks, /cacerts).
    pub pki: Arc<ClusterPki>,
    /// OpenAPI documents.
    pub openapi: OpenApi,
    /// `host:port` clients should use, for discovery.
    pub advertise: String,
    /// How to reach kubelets for logs, exec and port-forward.
    pub kubelets: super::node_proxy::KubeletDialer,
    /// Whether requests without credentials run as `system:anonymous`
    /// (`--anonymous-auth`); otherwise they get 401.
    pub anonymous_auth: bool,
    /// The join endpoint's settings (None: no join endpoint).
    pub join: Option<super::join::JoinSettings>,
    /// The store's encryption keys (`/v1-kelp/encrypt/*`).
    pub encryption: Option<Arc<crate::store::encryption::Keyring>>,
    /// Aggregated APIs (APIServices backed by a Service).
    pub aggregator: Arc<super::aggregator::Aggregator>,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn respond(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON body in upstream's field order, ending with a newline as Go's
/// `json.Encoder` writes it (clients comparing text see upstream's bytes).
fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut bytes = super::protobuf::json_order::to_vec(body);
    bytes.push(b'\n');
    respond(code, "application/json", bytes)
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// Accepts connections until `cancel` fires.
///
/// Each connection must finish TLS within [`limits::TLS_HANDSHAKE_TIMEOUT`]
/// and send its first request within [`limits::HEADER_READ_TIMEOUT`];
/// HTTP/1.1 headers (and idle keep-alive gaps) get the same bound, and
/// HTTP/2 connections are pinged. Connections beyond the budget are closed
/// at once (see [`limits`]).
pub async fn accept_loop<S: Store>(
    server: Arc<Server<S>>,
    listener: TcpListener,
    tls: TlsAcceptor,
    cancel: CancellationToken,
) {
    let budget = limits::ConnectionBudget::default();
    let mut refused: u64 = 0;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, open = budget.open(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let Some(admitted) = budget.admit() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, open = budget.open(), refused, "connection limit reached; closing new connections");
            }
            drop(tcp);
            continue;
        };
        let (server, tls, cancel) = (server.clone(), tls.clone(), cancel.clone());
        tokio::spawn(async move {
            let admitted = Arc::new(admitted);
            let evicted = admitted.evicted.clone();
            let _ = tcp.set_nodelay(true);
            let handshake = tokio::time::timeout(limits::TLS_HANDSHAKE_TIMEOUT, tls.accept(tcp));
            let stream = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                _ = evicted.cancelled() => return,
            };
            let cert_user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| authn::from_certificate(c));
            let spoke = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let heard = spoke.clone();
            let graduate = admitted.clone();
            let service = hyper::service::service_fn(move |req| {
                if !heard.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    graduate.graduate();
                }
                let (server, user) = (server.clone(), cert_user.clone());
                async move { Ok::<_, Infallible>(handle(&server, user, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits::HEADER_READ_TIMEOUT);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(limits::H2_PING_INTERVAL)
                .keep_alive_timeout(limits::H2_PING_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            // A client that never sends a request (before HTTP/1 or HTTP/2
            // is even known) is dropped when the header timeout passes.
            tokio::select! {
                r = &mut conn => {
                    if let Err(e) = r { tracing::debug!(%peer, error = %e, "connection ended with error") }
                    return;
                }
                _ = tokio::time::sleep(limits::HEADER_READ_TIMEOUT) => {
                    if !spoke.load(std::sync::atomic::Ordering::Relaxed) {
                        tracing::debug!(%peer, "no request in time; closing");
                        return;
                    }
                }
                _ = evicted.cancelled() => return,
                _ = cancel.cancelled() => return,
            }
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(%peer, error = %e, "connection ended with error") },
                _ = cancel.cancelled() => {}
            }
        });
    }
}

/// Whether an `Accept` header names something the apiserver can produce
/// (upstream answers anything else with 406).
fn acceptable(accept: &str) -> bool {
    accept.trim().is_empty()
        || accept.split(',').any(|part| {
            let media = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                media.as_str(),
                "application/json"
                    | "application/yaml"
                    | "application/vnd.kubernetes.protobuf"
                    | "application/*"
                    | "*/*"
            )
        })
}

/// Handles one request.
pub async fn handle<S: Store>(
    server: &Server<S>,
    cert_user: Option<User>,
    req: Request<Incoming>,
) -> Response<Body> {
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), user = tracing::field::Empty, code = tracing::field::Empty);
    let response = async {
        // k3s serves the CA bundle to anyone: joining agents fetch it
        // before they hold any credential, and check it against the token.
        if req.uri().path() == "/cacerts" {
            return respond(
                200,
                "text/plain; charset=utf-8",
                server.pki.ca_pem().to_string(),
            );
        }
        // Joining nodes hold no credential yet: the endpoint checks their
        // token itself.
        if req.uri().path() == crate::client::join_protocol::JOIN_PATH
            && let Some(join) = &server.join
        {
            return match super::join::handle(&server.api, join, cert_user.as_ref(), req).await {
                Ok(body) => json_response(200, &body),
                Err(e) => error_response(&e),
            };
        }
        let user = match authenticate(server, cert_user, &req).await {
            Ok(u) => u,
            Err(e) => return error_response(&e),
        };
        tracing::Span::current().record("user", user.name.as_str());
        if req
            .uri()
            .path()
            .starts_with(super::encryption_admin::PATH_PREFIX)
        {
            return match super::encryption_admin::handle(
                &server.api.store,
                server.encryption.as_ref(),
                &user,
                req.method(),
                req.uri().path(),
            )
            .await
            {
                Ok(body) => json_response(200, &body),
                Err(e) => error_response(&e),
            };
        }
        if let Err(e) = authorize(server, &user, &req).await {
            return error_response(&e);
        }
        let answer = match super::request_timeout::deadline(&req) {
            None => route_request(server, &user, req).await,
            Some(budget) => tokio::time::timeout(budget, route_request(server, &user, req))
                .await
                .unwrap_or_else(|_| Err(super::request_timeout::timed_out())),
        };
        match answer {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }
    .instrument(span.clone())
    .await;
    span.record("code", response.status().as_u16());
    response
}

/// Who is asking: certificate, bearer token or anonymous, then any
/// impersonation the caller is allowed.
async fn authenticate<S: Store>(
    server: &Server<S>,
    cert_user: Option<User>,
    req: &Request<Incoming>,
) -> Result<User, ApiError> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match (cert_user, bearer) {
        (Some(u), _) => u,
        (None, Some(bearer)) => authn::from_bearer(&server.pki, &server.api.cache, bearer)
            .map_err(|e| {
                tracing::debug!(error = %e, "bearer token refused");
                ApiError::unauthorized()
            })?,
        (None, None) if server.anonymous_auth => User::anonymous(),
        (None, None) => return Err(ApiError::unauthorized()),
    };
    if !authz::impersonation::requested(req.headers()) {
        return Ok(user);
    }
    authz::impersonation::impersonate(
        &server.api.authz,
        &user,
        req.headers(),
        server.api.store.current_revision(),
    )
    .await
}

/// Authorizes the request's verb and target (resource or path) for `user`.
async fn authorize<S: Store>(
    server: &Server<S>,
    user: &User,
    req: &Request<Incoming>,
) -> Result<(), ApiError> {
    let query = Query::parse(req.uri().query());
    let (verb, target) = authz::from_request(
        req.method().as_str(),
        req.uri().path(),
        query.flag("watch").unwrap_or(false),
        name_selector(&query),
    );
    let revision = server.api.store.current_revision();
    let attrs = authz::Attributes {
        user,
        verb: &verb,
        target: &target,
    };
    server.api.authz.check(&attrs, revision).await?;
    // A websocket exec/attach/port-forward is a GET, but it runs commands:
    // upstream (1.35+) also asks for `create`, as the SPDY POST always did.
    if let authz::Target::Resource(r) = &target
        && verb.as_str() == "get"
        && r.group.is_empty()
        && r.resource == "pods"
        && matches!(r.subresource.as_str(), "exec" | "attach" | "portforward")
    {
        let create = authz::Attributes {
            user,
            verb: "create",
            target: &target,
        };
        server.api.authz.check(&create, revision).await?;
    }
    Ok(())
}

/// The name a `fieldSelector=metadata.name=X` list or watch is about.
fn name_selector(query: &Query) -> Option<&str> {
    let selector = query.get("fieldSelector")?;
    if selector.contains(',') {
        return None;
    }
    let value = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!value.is_empty()).then_some(value)
}

/// `/livez`, `/readyz`, `/healthz`: "ok", or with `?verbose` one line per
/// check and a summary, as upstream; a failing check makes a 500 listing
/// every check.
fn health_report<S: Store>(server: &Server<S>, which: &str, verbose: bool) -> Response<Body> {
    let mut checks: Vec<(&str, Result<(), String>)> = vec![("ping", Ok(())), ("log", Ok(()))];
    checks.push(("etcd", server.api.store.failure().map_or(Ok(()), Err)));
    if which == "readyz" {
        checks.push((
            "informer-sync",
            if server.api.cache.is_ready() {
                Ok(())
            } else {
                Err("not synced yet".to_string())
            },
        ));
        checks.push(("shutdown", Ok(())));
    }
    let failed = checks.iter().any(|(_, r)| r.is_err());
    if !failed && !verbose {
        return respond(200, "text/plain; charset=utf-8", "ok");
    }
    let mut lines: Vec<String> = checks
        .iter()
        .map(|(name, r)| match r {
            Ok(()) => format!("[+]{name} ok"),
            Err(why) => format!("[-]{name} failed: {why}"),
        })
        .collect();
    lines.push(format!(
        "{which} check {}",
        if failed { "failed" } else { "passed" }
    ));
    respond(
        if failed { 500 } else { 200 },
        "text/plain; charset=utf-8",
        lines.join("\n"),
    )
}

async fn route_request<S: Store>(
    server: &Server<S>,
    user: &User,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => {
            let verbose = req.uri().query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p == "verbose" || p.starts_with("verbose="))
            });
            return Ok(health_report(server, &path[1..], verbose));
        }
        "/healthz/ping" | "/livez/ping" | "/readyz/ping" => {
            return Ok(respond(200, "text/plain; charset=utf-8", "ok"));
        }
        "/version" => return Ok(json_response(200, &super::version_info())),
        "/openapi/v3" => {
            return Ok(respond(
                200,
                "application/json",
                server.openapi.root(&server.api.custom),
            ));
        }
        "/openapi/v2" => return Ok(openapi_v2(server, req.headers(), accept.as_deref())),
        _ => {}
    }
    if let Some(gv) = path.strip_prefix("/openapi/v3/") {
        return match server.openapi.document(gv, &server.api.custom) {
            Some((body, _hash)) => Ok(respond(200, "application/json", body)),
            None => Err(ApiError::no_route(&path)),
        };
    }
    if !(path == "/api"
        || path.starts_with("/api/")
        || path == "/apis"
        || path.starts_with("/apis/"))
    {
        return Err(ApiError::no_route(&path));
    }
    if let Some(remote) = aggregated_target(&path)
        .and_then(|(group, version)| server.aggregator.remote(group, version))
    {
        let (parts, body) = req.into_parts();
        let body = read_body(body).await?;
        return super::aggregator::proxy::forward(
            &server.api,
            &server.aggregator,
            &remote,
            user,
            parts,
            body,
        )
        .await;
    }
    let route = request::route(&path, &server.api.custom)?;
    let target = match route {
        Route::Resource(t) => t,
        other => return discovery_response(server, other, accept.as_deref(), req.method()),
    };
    if super::pod_proxy::is_proxy(&target) {
        let rest = node_proxy_tail(&path);
        return super::pod_proxy::forward(&server.api, &target, &rest, req).await;
    }
    if super::node_proxy::is_node_subresource(&target) {
        let rest = node_proxy_tail(&path);
        return super::node_proxy::forward(&server.api, &server.kubelets, &target, &rest, req)
            .await;
    }
    if let Some(accept) = accept.as_deref()
        && !acceptable(accept)
    {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        ));
    }
    let method = req.method().as_str().to_string();
    let query = Query::parse(req.uri().query());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_body(req.into_body()).await?;
    let call = Call {
        method: &method,
        target: &target,
        query: &query,
        body: &body,
        content_type: content_type.as_deref(),
        rendering: Rendering::from_accept(accept.as_deref()),
        user,
        user_agent: user_agent.as_deref(),
    };
    Ok(match server.api.dispatch(&call).await? {
        Reply::Json {
            code,
            body,
            warnings,
        } => {
            let mut r = json_response(code, &body);
            for w in warnings {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "299 - {}",
                    serde_json::to_string(&w).unwrap_or_default()
                )) {
                    r.headers_mut().append(header::WARNING, v);
                }
            }
            r
        }
        Reply::Raw {
            code,
            content_type,
            body,
        } => respond(code, content_type, body),
        Reply::Watch(stream) => {
            let frames = futures::stream::unfold(stream.lines, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
            });
            let mut r = Response::new(StreamBody::new(frames.boxed()).boxed_unsync());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    })
}

/// The path after `/proxy/` of a `nodes/NAME/proxy/...` request.
fn node_proxy_tail(path: &str) -> String {
    path.split_once("/proxy/")
        .map(|(_, tail)| tail.to_string())
        .unwrap_or_default()
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(format!(
                "the request body is larger than the {MAX_BODY} byte limit"
            )))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// `GET /openapi/v2`, negotiated as kube-openapi does: the first Accept
/// clause that names JSON or gnostic's protobuf (either spelling; the reply
/// always uses the dotted one, which Go's mime parser accepts) wins, `*`
/// picks JSON, and anything else is a 406. `If-None-Match` is honoured.
fn openapi_v2<S: Store>(
    server: &Server<S>,
    headers: &hyper::HeaderMap,
    accept: Option<&str>,
) -> Response<Body> {
    const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
    let mut chosen = None;
    for clause in accept.unwrap_or("*/*").split(',') {
        let media = clause.split(';').next().unwrap_or_default().trim();
        chosen = match media {
            "application/json" | "application/*" | "*/*" => Some(false),
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf" | PROTOBUF => Some(true),
            _ => continue,
        };
        break;
    }
    let Some(protobuf) = chosen else {
        return respond(406, "text/plain; charset=utf-8", Bytes::new());
    };
    let doc = server.openapi.v2(&server.api.custom);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == doc.etag);
    let mut response = match (not_modified, protobuf) {
        (true, _) => respond(304, "application/json", Bytes::new()),
        (false, true) => respond(200, PROTOBUF, doc.protobuf.clone()),
        (false, false) => respond(200, "application/json", doc.json.clone()),
    };
    if let Ok(etag) = HeaderValue::from_str(&doc.etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// The group and version of an `/apis/<group>/<version>[/…]` path.
fn aggregated_target(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.strip_prefix("/apis/")?.split('/');
    let group = parts.next().filter(|g| !g.is_empty())?;
    let version = parts.next().filter(|v| !v.is_empty())?;
    Some((group, version))
}

fn discovery_response<S: Store>(
    server: &Server<S>,
    route: Route,
    accept: Option<&str>,
    method: &Method,
) -> Result<Response<Body>, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(method.as_str(), "discovery"));
    }
    let aggregated = discovery::wants_aggregated(accept);
    let custom = server.api.custom.all();
    let custom = custom.as_slice();
    let (body, content_type) = match (route, aggregated) {
        (Route::CoreVersions, Some(v)) => (
            discovery::aggregated(true, v, custom),
            discovery::aggregated_content_type(v),
        ),
        (Route::Groups, Some(v)) => {
            let mut list = discovery::aggregated(false, v, custom);
            aggregator::discovery::add_to_aggregated(&mut list, &server.aggregator.remotes());
            (list, discovery::aggregated_content_type(v))
        }
        (Route::CoreVersions, None) => (
            discovery::core_versions(&server.advertise),
            "application/json".to_string(),
        ),
        (Route::Groups, None) => {
            let mut list = discovery::group_list(custom);
            aggregator::discovery::add_to_group_list(&mut list, &server.aggregator.remotes());
            (list, "application/json".to_string())
        }
        (Route::Group(g), _) => (
            discovery::group(&g, custom)
                .or_else(|| aggregator::discovery::group(&g, &server.aggregator.remotes()))
                .ok_or_else(|| ApiError::no_route(&format!("/apis/{g}")))?,
            "application/json".into(),
        ),
        (Route::GroupVersion(g, v), _) => (
            discovery::resource_list(&g, &v, custom)
                .ok_or_else(|| ApiError::no_route(&format!("{g}/{v}")))?,
            "application/json".into(),
        ),
        (Route::Resource(_), _) => {
            return Err(ApiError::internal("resource route reached discovery"));
        }
    };
    Ok(respond(
        200,
        &content_type,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

/// `{"kind":"Status",…}` for a success, used by a few endpoints.
pub fn ok_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}
