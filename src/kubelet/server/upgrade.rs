//! HTTP/1.1 upgrade handshakes: WebSocket (RFC 6455 plus Kubernetes subprotocols) and
//! SPDY/3.1 (`X-Stream-Protocol-Version` negotiation, as apimachinery's httpstream).
//!
//! These functions only inspect headers and build the 101 responses; the caller spawns
//! the protocol on the connection hyper hands over once the 101 is sent. Refusals are
//! ordinary error responses built by the caller from the returned [`BackendError`] or,
//! for SPDY negotiation failures, the 403 upstream sends.

use http::header::{CONNECTION, HeaderMap, HeaderValue, UPGRADE};
use http::{Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::backend::BackendError;

/// Header carrying the streaming protocol versions of a SPDY upgrade.
pub const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// Header listing the versions we accept when negotiation fails.
const ACCEPTED_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";

fn header_contains(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.to_ascii_lowercase().contains(token))
            .unwrap_or(false)
    })
}

/// Whether the request asks for a WebSocket upgrade.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    header_contains(headers, CONNECTION, "upgrade")
        && header_contains(headers, UPGRADE, "websocket")
}

/// Whether the request asks for a SPDY/3.1 upgrade.
pub fn is_spdy(headers: &HeaderMap) -> bool {
    header_contains(headers, CONNECTION, "upgrade") && header_contains(headers, UPGRADE, "spdy/3.1")
}

/// Every value of a possibly repeated, comma-separated header, trimmed, in order.
pub fn list_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The 101 answer to a WebSocket upgrade, echoing `protocol` unless it is empty.
pub fn websocket_response<B: Default>(
    headers: &HeaderMap,
    protocol: &str,
) -> Result<Response<B>, BackendError> {
    let key = headers
        .get("sec-websocket-key")
        .ok_or_else(|| BackendError::BadRequest("missing Sec-WebSocket-Key".into()))?;
    let version_ok = headers
        .get("sec-websocket-version")
        .is_some_and(|v| v == "13");
    if !version_ok {
        return Err(BackendError::BadRequest(
            "unsupported Sec-WebSocket-Version".into(),
        ));
    }
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    h.insert("sec-websocket-accept", accept);
    if !protocol.is_empty() {
        let value =
            HeaderValue::from_str(protocol).map_err(|e| BackendError::Internal(e.to_string()))?;
        h.insert("sec-websocket-protocol", value);
    }
    Ok(response)
}

/// Negotiates a SPDY streaming protocol: the first client version the server supports.
/// On failure returns upstream's error text, for a 403 carrying
/// `X-Accepted-Stream-Protocol-Versions`.
pub fn negotiate_spdy(
    headers: &HeaderMap,
    supported: &[&'static str],
) -> Result<&'static str, String> {
    let offered = list_values(headers, STREAM_PROTOCOL_VERSION);
    if offered.is_empty() {
        return Err("unable to upgrade: X-Stream-Protocol-Version is required".into());
    }
    offered
        .iter()
        .find_map(|o| supported.iter().find(|s| **s == o.as_str()).copied())
        .ok_or_else(|| {
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, \
                 server accepts {supported:?}"
            )
        })
}

/// The 403 upstream answers when no SPDY protocol version matches.
pub fn spdy_refusal<B>(body: B, supported: &[&str]) -> Response<B> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::FORBIDDEN;
    for version in supported {
        if let Ok(v) = HeaderValue::from_str(version) {
            response.headers_mut().append(ACCEPTED_PROTOCOL_VERSIONS, v);
        }
    }
    response
}

/// The 101 answer to a SPDY/3.1 upgrade.
pub fn spdy_response<B: Default>(protocol: &'static str) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(STREAM_PROTOCOL_VERSION, HeaderValue::from_static(protocol));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn websocket_accept_key_follows_rfc6455() {
        let h = headers(&[
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ]);
        let r: Response<String> = websocket_response(&h, "v5.channel.k8s.io").unwrap();
        assert_eq!(
            r.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(r.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
        assert!(websocket_response::<String>(&HeaderMap::new(), "").is_err());
    }

    #[test]
    fn upgrade_kinds_are_detected_case_insensitively() {
        assert!(is_websocket(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(is_spdy(&headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "SPDY/3.1")
        ])));
        assert!(!is_spdy(&headers(&[("upgrade", "SPDY/3.1")])));
    }

    #[test]
    fn spdy_negotiation_takes_the_first_supported_client_version() {
        let h = headers(&[
            (STREAM_PROTOCOL_VERSION, "v9.channel.k8s.io"),
            (STREAM_PROTOCOL_VERSION, "portforward.k8s.io"),
        ]);
        assert_eq!(
            negotiate_spdy(&h, &["portforward.k8s.io"]),
            Ok("portforward.k8s.io")
        );
        assert!(
            negotiate_spdy(&h, &["v4.channel.k8s.io"])
                .unwrap_err()
                .contains("unable to negotiate")
        );
        assert!(
            negotiate_spdy(&HeaderMap::new(), &["x"])
                .unwrap_err()
                .contains("is required")
        );
    }
}
