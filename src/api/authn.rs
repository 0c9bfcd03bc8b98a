//! Authentication: who is making a request.
//!
//! Two ways in, as upstream: a client certificate signed by the cluster CA
//! (CN = user, O = groups; rustls has already verified the chain during
//! the handshake) and a bearer token that is a service-account JWT signed
//! by this server. A token must name one of the API audiences, and the
//! objects it is bound to (its ServiceAccount, and the pod or secret it was
//! issued for) must still exist with the UIDs it names: deleting a pod or a
//! ServiceAccount revokes its tokens, as upstream's bound-token checks do.
//! Requests with neither credential are anonymous (or refused, with
//! `--anonymous-auth=false`); what they may reach is up to authorization.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::watch_cache::WatchCache;
use crate::pki::{self, ClusterPki, DEFAULT_API_AUDIENCES, ServiceAccountClaims};

/// An authenticated (or anonymous) caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// User name (`system:admin`, `system:serviceaccount:ns:name`, …).
    pub name: String,
    /// UID (a service account's UID for its tokens; may be empty).
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (`authentication.kubernetes.io/pod-name`, …).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Name of the anonymous user.
pub const ANONYMOUS: &str = "system:anonymous";

impl User {
    /// A user with a name and groups only.
    pub fn named(name: &str, groups: &[&str]) -> Self {
        User {
            name: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    /// The anonymous user.
    pub fn anonymous() -> Self {
        User::named(ANONYMOUS, &["system:unauthenticated"])
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS
    }
}

/// The identity in a client certificate the TLS layer verified.
pub fn from_certificate(der: &[u8]) -> Option<User> {
    let (name, mut groups) = pki::client_identity(der).ok()?;
    groups.push("system:authenticated".into());
    Some(User {
        name,
        groups,
        ..Default::default()
    })
}

/// Why a presented credential was refused (the client gets a plain 401;
/// the reason is for the log and for TokenReview's `status.error`).
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// Not `Bearer <token>`.
    #[error("authorization header is not a bearer token")]
    NotBearer,
    /// The token did not verify.
    #[error("invalid bearer token: {0}")]
    InvalidToken(#[from] crate::pki::PkiError),
    /// The token is for other audiences.
    #[error("token audiences {0:?} is invalid for the target audiences {DEFAULT_API_AUDIENCES:?}")]
    Audience(Vec<String>),
    /// An object the token is bound to is gone or was replaced.
    #[error("{0}")]
    Revoked(String),
}

/// Authenticates an `Authorization: Bearer …` header.
pub fn from_bearer(pki: &ClusterPki, cache: &WatchCache, header: &str) -> Result<User, AuthnError> {
    let token = header
        .strip_prefix("Bearer ")
        .ok_or(AuthnError::NotBearer)?
        .trim();
    from_token(pki, cache, token, &[])
}

/// Authenticates a service-account token for `audiences` (none = the API
/// audiences).
pub fn from_token(
    pki: &ClusterPki,
    cache: &WatchCache,
    token: &str,
    audiences: &[String],
) -> Result<User, AuthnError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = pki.verify_service_account_token(token, now)?;
    let accepted = |a: &String| {
        if audiences.is_empty() {
            DEFAULT_API_AUDIENCES.contains(&a.as_str())
        } else {
            audiences.contains(a)
        }
    };
    if !claims.aud.iter().any(accepted) {
        return Err(AuthnError::Audience(claims.aud.clone()));
    }
    check_bound_objects(cache, &claims)?;
    let k = &claims.kubernetes;
    let ns = k.namespace.clone();
    let mut extra = BTreeMap::new();
    if let Some(pod) = &k.pod {
        extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![pod.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![pod.uid.clone()],
        );
    }
    if let Some(node) = &k.node {
        extra.insert(
            "authentication.kubernetes.io/node-name".into(),
            vec![node.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/node-uid".into(),
            vec![node.uid.clone()],
        );
    }
    if let Some(jti) = &claims.jti {
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    Ok(User {
        name: claims.sub.clone(),
        uid: k.serviceaccount.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
        extra,
    })
}

/// Upstream's bound-token validation: the ServiceAccount, and the pod or
/// secret the token names, must exist with the same UID and not be
/// deleted (a deletion timestamp older than 60 s revokes too).
fn check_bound_objects(
    cache: &WatchCache,
    claims: &ServiceAccountClaims,
) -> Result<(), AuthnError> {
    let k = &claims.kubernetes;
    let ns = &k.namespace;
    let live = |resource: &str, name: &str, uid: &str| -> Result<(), AuthnError> {
        let key = format!("/registry/core/{resource}/{ns}/{name}");
        let singular = resource.trim_end_matches('s');
        let Some(obj) = cache.get(&key) else {
            return Err(AuthnError::Revoked(format!(
                "{singular} \"{name}\" not found"
            )));
        };
        let v = obj.value();
        let actual = v["metadata"]["uid"].as_str().unwrap_or_default();
        if !uid.is_empty() && actual != uid {
            return Err(AuthnError::Revoked(format!(
                "{singular} {ns}/{name} has been deleted: the UID in the token ({uid}) does not match the current UID ({actual})"
            )));
        }
        if v["metadata"]["deletionTimestamp"].is_string() && resource != "pods" {
            return Err(AuthnError::Revoked(format!(
                "{singular} {ns}/{name} is being deleted"
            )));
        }
        Ok(())
    };
    live(
        "serviceaccounts",
        &k.serviceaccount.name,
        &k.serviceaccount.uid,
    )?;
    if let Some(pod) = &k.pod {
        live("pods", &pod.name, &pod.uid)?;
    }
    if let Some(secret) = &k.secret {
        live("secrets", &secret.name, &secret.uid)?;
    }
    Ok(())
}
