//! The token cleaner: deletes bootstrap tokens once they expire, as
//! kube-controller-manager's `tokencleaner`.
//!
//! A bootstrap token is a Secret `kube-system/bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token`; its `expiration` is RFC 3339. The join
//! endpoint refuses an expired token at once. Unlike upstream, which
//! deletes it at the second it expires, kelp keeps it for [`GRACE`] more:
//! an agent still holding it is then told that its token *expired*, not
//! that it is unknown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::informer;
use crate::client::informer::SharedInformers;

/// The namespace bootstrap tokens live in.
const NAMESPACE: &str = "kube-system";
/// Their Secret type.
pub const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// How long an expired token is kept (see the module docs).
pub const GRACE: Duration = Duration::from_secs(600);
/// How long to sleep when no token expires (a new one wakes the loop).
const IDLE: Duration = Duration::from_secs(3600);

/// Failures of the token cleaner.
#[derive(Debug, thiserror::Error)]
pub enum TokenCleanerError {
    /// Deleting an expired token failed.
    #[error("deleting expired bootstrap token {name}: {source}")]
    Delete {
        /// The Secret.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// The time a bootstrap-token Secret expires, if it is one and has an
/// expiration.
pub fn expiration(secret: &Secret) -> Option<SystemTime> {
    if secret.type_.as_deref() != Some(TOKEN_TYPE) {
        return None;
    }
    let raw = secret.data.as_ref()?.get("expiration")?;
    crate::client::timestamps::parse_rfc3339(&raw.0)
}

/// Runs until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    cancel: CancellationToken,
) -> Result<(), TokenCleanerError> {
    let api: Api<Secret> = Api::namespaced(informers.client(), NAMESPACE);
    let changed = Arc::new(Notify::new());
    let notify = changed.clone();
    let (secrets, task) = informer::spawn(
        &informers.get_namespaced::<Secret>(NAMESPACE),
        cancel.clone(),
        move |_, _| notify.notify_one(),
    );
    let result = async {
        if !informer::wait_ready(&[&secrets], &cancel).await {
            return Ok(());
        }
        loop {
            let next = clean(&api, &secrets).await?;
            let wait = next
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .map_or(IDLE, |d| d.min(IDLE) + Duration::from_millis(100));
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
        }
    }
    .await;
    task.abort();
    result
}

/// Deletes the tokens expired for longer than [`GRACE`]; returns when
/// the next one is due.
async fn clean(
    api: &Api<Secret>,
    secrets: &Store<Secret>,
) -> Result<Option<SystemTime>, TokenCleanerError> {
    let now = SystemTime::now();
    let mut next: Option<SystemTime> = None;
    for secret in secrets.state() {
        let Some(expires) = expiration(&secret).map(|t| t + GRACE) else {
            continue;
        };
        if expires > now {
            next = Some(next.map_or(expires, |n| n.min(expires)));
            continue;
        }
        let name = secret.metadata.name.clone().unwrap_or_default();
        tracing::info!(token = %name, "deleting an expired bootstrap token");
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(TokenCleanerError::Delete { name, source }),
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bootstrap_tokens_have_an_expiration() {
        let secret = |type_: &str| -> Secret {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "bootstrap-token-abcdef"},
                "type": type_,
                "data": {"expiration": "MjAyMC0wMS0wMVQwMDowMDowMFo="},
            }))
            .unwrap()
        };
        let t = expiration(&secret(TOKEN_TYPE)).expect("an expiration");
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_577_836_800
        );
        assert_eq!(expiration(&secret("Opaque")), None);
    }
}
