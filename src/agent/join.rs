//! Joining a cluster: CA pinning, then node credentials for a token.
//!
//! k3s's order, and for the same reason: nothing the server says is
//! believed until the CA it serves hashes to the value in the token. The
//! CA is fetched over an unverified TLS connection (the agent holds no
//! trust yet) and compared byte for byte; only then is the secret sent,
//! over a connection that trusts that CA alone.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use crate::client::join_protocol::{
    AGENT_USER, CACERTS_PATH, JOIN_PATH, JoinRequest, JoinResponse,
};

/// Largest answer read from a server (a CA bundle or node credentials).
const MAX_RESPONSE: usize = 1 << 20;
/// Bound on each connect, handshake and exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a join did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The server could not be reached, or answered with a server error:
    /// worth retrying.
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable {
        /// The server URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The CA the server serves is not the one the token names.
    #[error(
        "the server's CA does not match the token: the token expects CA hash {expected}, the server at {url} serves a CA with hash {served}; check --server and --token (read the token again from the server's <data-dir>/server/token)"
    )]
    CaMismatch {
        /// The server URL.
        url: String,
        /// The hash in the token.
        expected: String,
        /// The hash of what the server served.
        served: String,
    },
    /// The token was refused (401).
    #[error("the server rejected the token: {0}")]
    TokenRejected(String),
    /// The server refused this node (403), e.g. another node holds its name.
    #[error("the server refused this node: {0}")]
    Forbidden(String),
    /// Any other refusal or a malformed answer.
    #[error("join failed: {0}")]
    Failed(String),
}

impl JoinError {
    /// Whether waiting and trying again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, JoinError::Unreachable { .. })
    }
}

/// Where to join: `https://host:port` split into its parts.
#[derive(Debug, Clone)]
pub struct ServerAddress {
    /// `https://host:port`.
    pub url: String,
    host: String,
    port: u16,
}

impl ServerAddress {
    /// Parses `https://HOST[:PORT]` (port 6443 when omitted; IPv6 in brackets).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url:?}: expected https://HOST:PORT"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| format!("{url:?}: the port must be a number up to 65535"))?,
            None => 6443,
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        Ok(ServerAddress {
            url: url.trim_end_matches('/').to_string(),
            host,
            port,
        })
    }
}

/// Fetches the server's CA bundle and checks it against `expected_hash`
/// (the token's). Without a hash (a bare secret), the CA is taken as
/// served, as k3s does, with a warning.
pub async fn fetch_pinned_ca(
    server: &ServerAddress,
    expected_hash: Option<&str>,
) -> Result<String, JoinError> {
    let tls = crate::pki::unpinned_client_config()
        .map_err(|e| JoinError::Failed(format!("TLS setup: {e}")))?;
    let (status, body) = exchange(server, tls, Method::GET, CACERTS_PATH, None, None).await?;
    if status != StatusCode::OK {
        return Err(answer_error(server, status, &body));
    }
    let pem = String::from_utf8(body.to_vec())
        .map_err(|_| JoinError::Failed("the CA bundle is not text".into()))?;
    let served = crate::pki::ca_hash(&pem);
    match expected_hash {
        Some(expected) if expected != served => Err(JoinError::CaMismatch {
            url: server.url.clone(),
            expected: expected.to_string(),
            served,
        }),
        Some(_) => Ok(pem),
        None => {
            tracing::warn!(ca_hash = %served, "the token carries no CA hash: trusting the CA the server serves; use the full K10… token to pin it");
            Ok(pem)
        }
    }
}

/// How a join request proves it may join.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// A join token's secret (first join).
    Token(&'a str),
    /// The node's current client certificate (renewal).
    Certificate {
        /// Certificate PEM.
        cert_pem: &'a str,
        /// Key PEM.
        key_pem: &'a str,
    },
}

/// Posts the join request with `auth`, trusting only `ca_pem`.
pub async fn request_credentials(
    server: &ServerAddress,
    ca_pem: &str,
    auth: Auth<'_>,
    request: &JoinRequest,
) -> Result<JoinResponse, JoinError> {
    use base64::Engine;
    let (identity, header) = match auth {
        Auth::Token(secret) => {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{AGENT_USER}:{secret}"));
            (None, Some(format!("Basic {basic}")))
        }
        Auth::Certificate { cert_pem, key_pem } => (Some((cert_pem, key_pem)), None),
    };
    let tls = crate::pki::client_config_for_ca(ca_pem, identity)
        .map_err(|e| JoinError::Failed(format!("the server's CA: {e}")))?;
    let body = serde_json::to_vec(request).map_err(|e| JoinError::Failed(e.to_string()))?;
    let (status, answer) = exchange(
        server,
        tls,
        Method::POST,
        JOIN_PATH,
        header.as_deref(),
        Some(body),
    )
    .await?;
    if status != StatusCode::OK {
        return Err(answer_error(server, status, &answer));
    }
    serde_json::from_slice(&answer)
        .map_err(|e| JoinError::Failed(format!("malformed join answer: {e}")))
}

/// A refusal, with the message of the server's `metav1.Status`.
fn answer_error(server: &ServerAddress, status: StatusCode, body: &[u8]) -> JoinError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    match status {
        StatusCode::UNAUTHORIZED => JoinError::TokenRejected(message),
        StatusCode::FORBIDDEN => JoinError::Forbidden(message),
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => JoinError::Unreachable {
            url: server.url.clone(),
            reason: format!("{s}: {message}"),
        },
        s => JoinError::Failed(format!("{s}: {message}")),
    }
}

/// One HTTP/1.1 request over a fresh TLS connection, bounded in time and size.
async fn exchange(
    server: &ServerAddress,
    tls: Arc<rustls::ClientConfig>,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), JoinError> {
    let unreachable = |reason: String| JoinError::Unreachable {
        url: server.url.clone(),
        reason,
    };
    let work = async {
        let tcp = tokio::net::TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let name = rustls_pki_types::ServerName::try_from(server.host.clone())
            .map_err(|e| JoinError::Failed(format!("server name {:?}: {e}", server.host)))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, format!("{}:{}", server.host, server.port))
            .header(header::USER_AGENT, "kelp-agent");
        if let Some(auth) = authorization {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| JoinError::Failed(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, bytes))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, work)
        .await
        .map_err(|_| unreachable(format!("no answer in {} s", EXCHANGE_TIMEOUT.as_secs())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_parse_with_default_port_and_ipv6() {
        let a = ServerAddress::parse("https://10.0.0.1:6444/").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.url.as_str()),
            ("10.0.0.1", 6444, "https://10.0.0.1:6444")
        );
        let b = ServerAddress::parse("https://server.example").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("server.example", 6443));
        let c = ServerAddress::parse("https://[fd00::1]:7443").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("fd00::1", 7443));
        for bad in ["http://x:1", "https://:1", "https://x:port", "https://[::1"] {
            assert!(ServerAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
