//! Forwards a request for an aggregated group/version to its server.
//!
//! The caller has been authenticated and authorized here already; the
//! extension server learns who it is from the request headers, which it
//! trusts because the connection presents the front-proxy certificate.
//! Any `X-Remote-*`, `Impersonate-*` or `Authorization` header the client
//! sent is dropped first, so nobody can speak for someone else. The request
//! body is read (bounded, as every body is); the answer streams back, so
//! that watches through the aggregator work.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};

use super::{Aggregator, Remote};
use crate::api::authn::User;
use crate::api::extension_client;
use crate::api::handlers::Api;
use crate::api::server::Body;
use crate::api::status::ApiError;
use crate::store::Store;

/// Bound on reaching the server and getting its response headers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a header must not pass from the client to the extension server.
fn is_dropped(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == "authorization"
        || name == "host"
        || name == "content-length"
        || name.starts_with("x-remote-")
        || name.starts_with("impersonate-")
}

/// Sends `parts` + `body` to `remote` as `user`; the response streams back.
pub async fn forward<S: Store>(
    api: &Api<S>,
    aggregator: &Aggregator,
    remote: &Remote,
    user: &User,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    if !remote.available {
        return Err(ApiError::unavailable("service unavailable"));
    }
    let unavailable =
        |e: String| ApiError::unavailable(format!("error trying to reach service: {e}"));
    let connecting =
        extension_client::connect(&api.cache, &remote.backend, Some(aggregator.identity()));
    let mut connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| unavailable("context deadline exceeded".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path_and_query}", connection.path));
    for (name, value) in &parts.headers {
        if !is_dropped(name) {
            out = out.header(name, value);
        }
    }
    out = out.header(http::header::HOST, connection.host.as_str());
    for (name, value) in identity_headers(user) {
        out = out.header(name, value);
    }
    let out = out
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(format!("cannot forward the request: {e}")))?;
    let response = tokio::time::timeout(CONNECT_TIMEOUT, connection.sender.send_request(out))
        .await
        .map_err(|_| unavailable("context deadline exceeded".into()))?
        .map_err(|e| unavailable(extension_client::error_chain(&e)))?;
    let (head, incoming) = response.into_parts();
    // A body error from the server ends the stream; the client sees a
    // truncated answer, as it would through upstream's proxy.
    let frames = http_body_util::BodyStream::new(incoming)
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| futures::future::ready(r.ok().map(Ok::<_, std::convert::Infallible>)));
    let body = http_body_util::StreamBody::new(frames).boxed_unsync();
    Ok(Response::from_parts(head, body))
}

/// The caller's identity in the request-header scheme.
fn identity_headers(user: &User) -> Vec<(String, HeaderValue)> {
    let mut out = Vec::new();
    let mut push = |name: String, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.push((name, v));
        }
    };
    push("X-Remote-User".into(), &user.name);
    if !user.uid.is_empty() {
        push("X-Remote-Uid".into(), &user.uid);
    }
    for group in &user.groups {
        push("X-Remote-Group".into(), group);
    }
    for (key, values) in &user.extra {
        // Extra keys are case-insensitive header suffixes: upstream
        // percent-encodes them so that `/` and upper case survive.
        let key = percent_encode(key);
        for value in values {
            push(format!("X-Remote-Extra-{key}"), value);
        }
    }
    out
}

fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b.to_ascii_lowercase() as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_travels_in_request_headers_and_client_ones_are_dropped() {
        let mut user = User {
            name: "jane".into(),
            uid: String::new(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: Default::default(),
        };
        user.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec!["p".into()],
        );
        let headers = identity_headers(&user);
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "X-Remote-User",
                "X-Remote-Group",
                "X-Remote-Group",
                "X-Remote-Extra-authentication.kubernetes.io%2Fpod-name"
            ]
        );
        assert!(is_dropped(&HeaderName::from_static("x-remote-user")));
        assert!(is_dropped(&HeaderName::from_static("impersonate-user")));
        assert!(is_dropped(&HeaderName::from_static("authorization")));
        assert!(!is_dropped(&HeaderName::from_static("accept")));
    }
}
