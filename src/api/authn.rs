//! Authentication: who is making a request.
//!
//! Two ways in, as upstream: a client certificate signed by the cluster CA
//! (CN = user, O = groups; rustls has already verified the chain during
//! the handshake) and a bearer token that is a service-account JWT signed
//! by this server. Requests with neither are anonymous and may only reach
//! the health, version and CA endpoints.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::pki::{self, ClusterPki};

/// An authenticated (or anonymous) caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name (`system:admin`, `system:serviceaccount:ns:name`, …).
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl User {
    /// The anonymous user.
    pub fn anonymous() -> Self {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }
}

/// The identity in a client certificate the TLS layer verified.
pub fn from_certificate(der: &[u8]) -> Option<User> {
    let (name, mut groups) = pki::client_identity(der).ok()?;
    groups.push("system:authenticated".into());
    Some(User { name, groups })
}

/// Why a presented credential was refused (the client gets a plain 401;
/// the reason is for the log).
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// Not `Bearer <token>`.
    #[error("authorization header is not a bearer token")]
    NotBearer,
    /// The token did not verify.
    #[error("invalid bearer token: {0}")]
    InvalidToken(#[from] crate::pki::PkiError),
}

/// Authenticates an `Authorization: Bearer …` header. `Err` for a token
/// that is present but invalid (401, not anonymous).
pub fn from_bearer(pki: &ClusterPki, header: &str) -> Result<User, AuthnError> {
    let token = header
        .strip_prefix("Bearer ")
        .ok_or(AuthnError::NotBearer)?
        .trim();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = pki.verify_service_account_token(token, now)?;
    let ns = claims.kubernetes.namespace.clone();
    Ok(User {
        name: claims.sub.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    })
}

/// Paths anonymous callers may reach.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/cacerts"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}
