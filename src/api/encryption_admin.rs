//! `/v1-kelp/encrypt/*`: status and key rotation of encryption at rest,
//! behind `kelp secrets-encrypt` (k3s serves the same under `/v1-k3s/`).
//!
//! Only `system:masters` may call it: it rewrites every encrypted object.
//!
//! Rotation is upstream's documented procedure done in one step: a new key
//! goes first (new writes use it, the old keys still read), every object of
//! an encrypted resource is rewritten, and only then are the old keys
//! dropped. A rewrite whose compare-and-swap loses to a concurrent write is
//! retried, because that concurrent write may have been sealed with the old
//! key just before the switch.

use std::sync::Arc;

use serde_json::{Value, json};

use super::authn::User;
use super::authz::PRIVILEGED_GROUP;
use super::status::ApiError;
use crate::store::encryption::{EncryptionConfiguration, Key, Keyring};
use crate::store::{RangeRequest, Store, StoreError};

/// Where the endpoints live.
pub const PATH_PREFIX: &str = "/v1-kelp/encrypt/";

/// Objects rewritten per store page.
const PAGE: usize = 500;
/// Rewrites of one object that may lose to concurrent writers before the
/// rotation gives up (and keeps the old key, so nothing becomes unreadable).
const MAX_RETRIES: usize = 20;

/// Serves `GET status` and `POST rotate-keys`.
pub async fn handle<S: Store>(
    store: &S,
    keyring: Option<&Arc<Keyring>>,
    user: &User,
    method: &hyper::Method,
    path: &str,
) -> Result<Value, ApiError> {
    if !user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "user {:?} cannot manage secrets encryption: only {PRIVILEGED_GROUP} may",
                user.name
            ),
        ));
    }
    let keyring = keyring.filter(|k| k.path().is_some()).ok_or_else(|| {
        ApiError::new(
            400,
            "BadRequest",
            "secrets encryption is not enabled on this server (start it with --secrets-encryption)",
        )
    })?;
    match (method.as_str(), path.strip_prefix(PATH_PREFIX)) {
        ("GET", Some("status")) => Ok(json!(keyring.status())),
        ("POST", Some("rotate-keys")) => {
            let rewritten = rotate_keys(store, keyring).await?;
            Ok(json!({ "status": keyring.status(), "rewritten": rewritten }))
        }
        _ => Err(ApiError::new(
            404,
            "NotFound",
            format!(
                "no such endpoint: {method} {path} (try GET {PATH_PREFIX}status or POST {PATH_PREFIX}rotate-keys)"
            ),
        )),
    }
}

fn config_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("key rotation: {e}"))
}

/// Adds a new first key, rewrites every encrypted object, drops the old
/// keys. Returns how many objects were rewritten.
async fn rotate_keys<S: Store>(store: &S, keyring: &Keyring) -> Result<usize, ApiError> {
    let path = keyring
        .path()
        .ok_or_else(|| config_error("no configuration file"))?
        .to_path_buf();
    let mut config = EncryptionConfiguration::read(&path).map_err(config_error)?;
    let now = crate::client::timestamps::now_rfc3339_micros();
    let new_key = Key::generate(&now).map_err(config_error)?;
    let new_name = new_key.name.clone();
    let keys = config
        .secrets_keys_mut()
        .ok_or_else(|| config_error("the configuration has no aesgcm provider for secrets"))?;
    if keys.iter().any(|k| k.name == new_name) {
        return Err(ApiError::new(
            409,
            "Conflict",
            "a key of that name already exists; try again",
        ));
    }
    keys.insert(0, new_key);
    config.write(&path).map_err(config_error)?;
    keyring.reload().map_err(config_error)?;
    tracing::info!(key = %new_name, "encryption key added; rewriting encrypted objects");
    let mut rewritten = 0;
    for prefix in keyring.prefixes() {
        rewritten += rewrite_all(store, &prefix).await?;
    }
    let keys = config
        .secrets_keys_mut()
        .ok_or_else(|| config_error("the configuration lost its aesgcm provider"))?;
    keys.truncate(1);
    config.write(&path).map_err(config_error)?;
    keyring.reload().map_err(config_error)?;
    tracing::info!(key = %new_name, rewritten, "encryption keys rotated; old keys removed");
    Ok(rewritten)
}

async fn rewrite_all<S: Store>(store: &S, prefix: &str) -> Result<usize, ApiError> {
    let mut after = None;
    let mut count = 0;
    loop {
        let page = store
            .range(RangeRequest {
                prefix: prefix.to_string(),
                continue_after: after.take(),
                limit: PAGE,
                revision: None,
            })
            .await
            .map_err(config_error)?;
        for kv in &page.kvs {
            if rewrite_one(store, &kv.key).await? {
                count += 1;
            }
        }
        match (page.more, page.kvs.last()) {
            (true, Some(last)) => after = Some(last.key.clone()),
            _ => return Ok(count),
        }
    }
}

/// Rewrites `key` with its current value, so it is sealed with the first
/// key. `false` when it was deleted meanwhile.
async fn rewrite_one<S: Store>(store: &S, key: &str) -> Result<bool, ApiError> {
    for _ in 0..MAX_RETRIES {
        let Some(kv) = store.get(key).await.map_err(config_error)?.0 else {
            return Ok(false);
        };
        match store.update(key, kv.value, Some(kv.mod_revision)).await {
            Ok(_) => return Ok(true),
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(config_error(e)),
        }
    }
    Err(config_error(format!(
        "{key} kept changing during the rewrite; the old key was kept, run rotate-keys again"
    )))
}
