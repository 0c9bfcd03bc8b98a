//! The join endpoint: where `kelp agent` trades its token for node
//! credentials (k3s's `/v1-k3s/client-kubelet.crt`, `serving-kubelet.crt`
//! and `config`, in one request).
//!
//! The token is checked first (the server secret, the agent-only secret,
//! or an unexpired bootstrap token), then the node password: the first
//! join of a name stores a hash of it in the Secret
//! `kube-system/<node>.node-password.kelp`, and later joins of that name
//! must bring the same password while the Node exists. Only then are
//! certificates issued. Every refusal is a `metav1.Status`.

use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::authn::User;
use super::handlers::Api;
use super::registry::names::is_dns1123_subdomain;
use super::registry::resources;
use super::status::ApiError;
use super::strategy;
use super::watch_cache;
use crate::client::join_protocol::{
    ClusterSettings, JOIN_PATH, JoinRequest, JoinResponse, MAX_REQUEST,
};
use crate::store::{Store, StoreError};

/// What the join endpoint needs from the server's configuration.
#[derive(Debug, Clone)]
pub struct JoinSettings {
    /// The server's token file (`<data>/server/token`): its secret lets
    /// agents (and, with HA, servers) join. Read at each join, so that
    /// `kelp token rotate` takes effect at once.
    pub token_file: std::path::PathBuf,
    /// `--agent-token`: lets agents join, never servers.
    pub agent_secret: Option<String>,
    /// Handed to every joining node.
    pub cluster: ClusterSettings,
}

/// The Secret holding a node's password hash.
pub fn node_password_secret(node: &str) -> String {
    format!("{node}.node-password.kelp")
}

/// Handles `POST /v1-kelp/join`. A node that already joined may renew
/// its certificates with its current client certificate (`cert_user`,
/// `system:node:<name>` in `system:nodes`) instead of a token, for its own
/// name only.
pub async fn handle<S: Store>(
    api: &Api<S>,
    settings: &JoinSettings,
    cert_user: Option<&User>,
    req: Request<Incoming>,
) -> Result<Value, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(
            req.method().as_str(),
            JOIN_PATH,
        ));
    }
    let renewing = cert_user.and_then(|u| {
        let node = u.name.strip_prefix("system:node:")?;
        u.groups
            .iter()
            .any(|g| g == "system:nodes")
            .then(|| node.to_string())
    });
    if renewing.is_none() {
        let secret = basic_secret(&req).ok_or_else(ApiError::unauthorized)?;
        check_token(api, settings, &secret).await?;
    }
    let body = Limited::new(req.into_body(), MAX_REQUEST)
        .collect()
        .await
        .map_err(|_| ApiError::too_large("join request larger than 64 KiB"))?
        .to_bytes();
    let join: JoinRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("join request: {e}")))?;
    let problems = is_dns1123_subdomain(&join.node_name);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(format!(
            "node name {:?}: {}",
            join.node_name,
            problems.join("; ")
        )));
    }
    if let Some(node) = &renewing
        && *node != join.node_name
    {
        return Err(ApiError::forbidden(format!(
            "node {node:?} may renew only its own certificates, not those of {:?}",
            join.node_name
        )));
    }
    if join.node_password.is_empty() {
        return Err(ApiError::bad_request("join request: nodePassword is empty"));
    }
    check_node_password(api, &join.node_name, &join.node_password).await?;
    let user = format!("system:node:{}", join.node_name);
    let (client_cert, client_key) = api
        .pki
        .issue_client_cert(&user, &["system:nodes"])
        .map_err(|e| ApiError::internal(format!("cannot issue the kubelet certificate: {e}")))?;
    let mut names = vec![join.node_name.clone()];
    names.extend(
        join.hostnames
            .iter()
            .filter(|h| is_dns1123_subdomain(h).is_empty())
            .cloned(),
    );
    names.push("localhost".into());
    names.dedup();
    let (serving_cert, serving_key) = api
        .pki
        .issue_serving_cert(
            &names,
            &[join.node_ip, std::net::Ipv4Addr::LOCALHOST.into()],
        )
        .map_err(|e| ApiError::internal(format!("cannot issue the serving certificate: {e}")))?;
    tracing::info!(node = %join.node_name, ip = %join.node_ip, "node joined");
    let response = JoinResponse {
        client_cert,
        client_key,
        serving_cert,
        serving_key,
        cluster: settings.cluster.clone(),
    };
    serde_json::to_value(response).map_err(|e| ApiError::internal(e.to_string()))
}

/// The password of `Authorization: Basic base64(user:password)`.
fn basic_secret(req: &Request<Incoming>) -> Option<String> {
    use base64::Engine;
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_string())
}

/// Equal in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(a).as_ref() == digest(b).as_ref()
}

async fn check_token<S: Store>(
    api: &Api<S>,
    settings: &JoinSettings,
    secret: &str,
) -> Result<(), ApiError> {
    let server_secret = std::fs::read_to_string(&settings.token_file)
        .ok()
        .and_then(|t| crate::pki::parse_join_token(t.trim()).ok())
        .map(|(_, secret)| secret);
    if server_secret.is_some_and(|s| same_secret(secret, &s))
        || settings
            .agent_secret
            .as_deref()
            .is_some_and(|a| same_secret(secret, a))
    {
        return Ok(());
    }
    if let Some((id, token_secret)) = crate::pki::split_bootstrap_token(secret) {
        return check_bootstrap_token(api, id, token_secret).await;
    }
    tracing::info!("join refused: the token does not match");
    Err(rejected("the join token was rejected"))
}

/// `data[key]` of a Secret, base64-decoded, as text.
fn secret_data(secret: &Value, key: &str) -> Option<String> {
    use base64::Engine;
    let data = secret.get("data")?.get(key)?.as_str()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    String::from_utf8(raw).ok()
}

fn rejected(message: &str) -> ApiError {
    ApiError::new(401, "Unauthorized", message)
}

/// A kubeadm-style bootstrap token: Secret `kube-system/bootstrap-token-<id>`
/// holding `token-secret`, `usage-bootstrap-authentication: "true"` and an
/// optional RFC 3339 `expiration`.
async fn check_bootstrap_token<S: Store>(
    api: &Api<S>,
    id: &str,
    token_secret: &str,
) -> Result<(), ApiError> {
    let info =
        resources::find("", "v1", "secrets").ok_or_else(|| ApiError::internal("no secrets"))?;
    let key = info.key(Some("kube-system"), &format!("bootstrap-token-{id}"));
    let (kv, _) = api
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let secret = kv.and_then(|kv| watch_cache::decode(&kv, kv.mod_revision));
    let field = |name: &str| secret_data(secret.as_deref()?, name);
    let valid = secret
        .as_ref()
        .is_some_and(|s| s["type"] == "bootstrap.kubernetes.io/token")
        && field("token-secret").is_some_and(|s| same_secret(&s, token_secret))
        && field("usage-bootstrap-authentication").as_deref() == Some("true");
    if !valid {
        tracing::info!(token_id = id, "join refused: unknown bootstrap token");
        return Err(rejected("the join token was rejected"));
    }
    if let Some(expiration) = field("expiration") {
        let expires = crate::client::timestamps::parse_rfc3339(expiration.as_bytes());
        if expires.is_none_or(|t| t <= SystemTime::now()) {
            tracing::info!(token_id = id, %expiration, "join refused: bootstrap token expired");
            return Err(rejected(&format!(
                "the join token {id} expired at {expiration}; create a new one with `kelp token create`"
            )));
        }
    }
    Ok(())
}

/// Stores the password's hash on a name's first join; afterwards the
/// same password is required while the Node exists (once it is deleted,
/// the name is free again).
async fn check_node_password<S: Store>(
    api: &Api<S>,
    node: &str,
    password: &str,
) -> Result<(), ApiError> {
    let secrets =
        resources::find("", "v1", "secrets").ok_or_else(|| ApiError::internal("no secrets"))?;
    let nodes = resources::find("", "v1", "nodes").ok_or_else(|| ApiError::internal("no nodes"))?;
    let key = secrets.key(Some("kube-system"), &node_password_secret(node));
    let store_error = |e: StoreError| ApiError::internal(format!("node password: {e}"));
    let (existing, _) = api.store.get(&key).await.map_err(store_error)?;
    if let Some(kv) = &existing {
        let stored = watch_cache::decode(kv, kv.mod_revision)
            .and_then(|s| secret_data(&s, "hash"))
            .unwrap_or_default();
        if crate::pki::verify_node_password(password, &stored) {
            return Ok(());
        }
        let (node_obj, _) = api
            .store
            .get(&nodes.key(None, node))
            .await
            .map_err(store_error)?;
        if node_obj.is_some() {
            tracing::info!(%node, "join refused: node password does not match");
            return Err(ApiError::forbidden(format!(
                "node password for {node:?} does not match: another machine holds this node name. \
                 Give this agent another name (--node-name, or --with-node-id to add a unique suffix), \
                 or delete the node (kubectl delete node {node}) if this machine replaces it"
            )));
        }
    }
    let hash = crate::pki::hash_node_password(password)
        .map_err(|e| ApiError::internal(format!("node password: {e}")))?;
    use base64::Engine;
    let mut secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": node_password_secret(node), "namespace": "kube-system"},
        "type": "kelp.io/node-password",
        "data": {"hash": base64::engine::general_purpose::STANDARD.encode(hash)},
    });
    strategy::prepare_create(secrets, &mut secret);
    strategy::apply_defaults(secrets, &mut secret);
    let stored: Bytes = strategy::to_stored(&secret);
    let written = match existing {
        None => api.store.create(&key, stored).await,
        Some(kv) => api.store.update(&key, stored, Some(kv.mod_revision)).await,
    };
    match written {
        Ok(_) => Ok(()),
        // Two joins of one name at once: the other one wrote first.
        Err(StoreError::AlreadyExists { .. } | StoreError::Conflict { .. }) => Err(ApiError::new(
            409,
            "Conflict",
            format!("node {node:?} is joining from elsewhere at the same time; retry"),
        )),
        Err(e) => Err(store_error(e)),
    }
}
