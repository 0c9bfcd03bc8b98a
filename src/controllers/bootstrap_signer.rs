//! The bootstrap signer (kube-controller-manager's `bootstrapsigner`): the
//! `kube-public/cluster-info` ConfigMap holds a kubeconfig naming this
//! cluster's API server and CA, and one `jws-kubeconfig-<id>` signature per
//! bootstrap token allowed to sign (`usage-bootstrap-signing: "true"`).
//!
//! A client holding only a bootstrap token (`kubeadm join --discovery-token`)
//! reads the ConfigMap anonymously and trusts the CA in it once the
//! signature checks out with its token: an HS256 JWS whose key is the
//! token secret, in detached form (`header..signature`), as upstream's
//! `computeDetachedSignature`. Upstream leaves creating the ConfigMap to
//! kubeadm; kelp has no kubeadm, so this controller writes the kubeconfig
//! too, and keeps it current when the CA or address changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::informer;
use super::token_cleaner::{TOKEN_TYPE, expiration};
use crate::client::informer::SharedInformers;

/// Where the cluster's public information lives.
pub const NAMESPACE: &str = "kube-public";
/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "cluster-info";
/// The key of the kubeconfig in it.
const KUBECONFIG_KEY: &str = "kubeconfig";
/// The prefix of the signature keys.
pub const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";
/// Resync even without a change, so that expired tokens lose their
/// signature.
const RESYNC: Duration = Duration::from_secs(60);

/// Failures of the bootstrap signer.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapSignerError {
    /// Writing the ConfigMap failed.
    #[error("writing {NAMESPACE}/{CONFIG_MAP}: {0}")]
    Write(#[source] kube::Error),
}

/// What the kubeconfig in `cluster-info` says.
#[derive(Clone, Debug)]
pub struct ClusterInfo {
    /// `https://host:port` of the API server.
    pub server: String,
    /// The cluster CA (PEM).
    pub ca_pem: String,
}

/// The kubeconfig published in `cluster-info` (kubeadm's shape: one cluster
/// with an empty name, no users).
pub fn kubeconfig(info: &ClusterInfo) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(&info.ca_pem);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        info.server
    )
}

/// The detached JWS (`header..signature`, HS256, `kid` = token id) of
/// `content` under `token_secret`.
pub fn detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(json!({"alg": "HS256", "kid": token_id}).to_string());
    let payload = b64.encode(content);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}..{}", b64.encode(tag.as_ref()))
}

/// The (id, secret) of a token that may sign, if `secret` is one.
fn signing_token(secret: &Secret, now: SystemTime) -> Option<(String, String)> {
    if secret.type_.as_deref() != Some(TOKEN_TYPE) {
        return None;
    }
    if expiration(secret).is_some_and(|t| t <= now) {
        return None;
    }
    let data = secret.data.as_ref()?;
    let text = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    if text("usage-bootstrap-signing").as_deref() != Some("true") {
        return None;
    }
    Some((text("token-id")?, text("token-secret")?))
}

/// Runs until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    info: ClusterInfo,
    cancel: CancellationToken,
) -> Result<(), BootstrapSignerError> {
    let client = informers.client();
    let changed = Arc::new(Notify::new());
    let (n1, n2) = (changed.clone(), changed.clone());
    let (secrets, secret_task) = informer::spawn(
        &informers.get_namespaced::<Secret>("kube-system"),
        cancel.clone(),
        move |_, _| n1.notify_one(),
    );
    let (maps, map_task) = informer::spawn(
        &informers.get_namespaced::<ConfigMap>(NAMESPACE),
        cancel.clone(),
        move |_, _| n2.notify_one(),
    );
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let result = async {
        if !informer::wait_ready(&[&secrets], &cancel).await
            || !informer::wait_ready(&[&maps], &cancel).await
        {
            return Ok(());
        }
        loop {
            if let Err(e) = sync(&api, &info, &secrets, &maps).await {
                tracing::warn!(error = %e, "bootstrap signer sync failed");
            }
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(RESYNC) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
        }
    }
    .await;
    secret_task.abort();
    map_task.abort();
    result
}

async fn sync(
    api: &Api<ConfigMap>,
    info: &ClusterInfo,
    secrets: &Store<Secret>,
    maps: &Store<ConfigMap>,
) -> Result<(), BootstrapSignerError> {
    let content = kubeconfig(info);
    let now = SystemTime::now();
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    want.insert(KUBECONFIG_KEY.into(), content.clone());
    for secret in secrets.state() {
        if let Some((id, token)) = signing_token(&secret, now) {
            want.insert(
                format!("{SIGNATURE_PREFIX}{id}"),
                detached_signature(&content, &id, &token),
            );
        }
    }
    let current = maps
        .state()
        .into_iter()
        .find(|m| m.metadata.name.as_deref() == Some(CONFIG_MAP));
    let Some(current) = current else {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
            "data": want,
        }))
        .unwrap_or_default();
        return match api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(BootstrapSignerError::Write(e)),
        };
    };
    let have = current.data.clone().unwrap_or_default();
    // Keys other than ours (anything a user added) are left alone.
    let ours = |k: &str| k == KUBECONFIG_KEY || k.starts_with(SIGNATURE_PREFIX);
    let mut patch = serde_json::Map::new();
    for (k, v) in &want {
        if have.get(k) != Some(v) {
            patch.insert(k.clone(), json!(v));
        }
    }
    for k in have.keys().filter(|k| ours(k) && !want.contains_key(*k)) {
        patch.insert(k.clone(), Value::Null);
    }
    if patch.is_empty() {
        return Ok(());
    }
    api.patch(
        CONFIG_MAP,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": patch})),
    )
    .await
    .map(|_| ())
    .map_err(BootstrapSignerError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_detached_hs256_keyed_by_the_token_secret() {
        let sig = detached_signature("content", "abcdef", "0123456789abcdef");
        let (header, rest) = sig.split_once("..").expect("detached form");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: Value = serde_json::from_slice(&b64.decode(header).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "kid": "abcdef"}));
        assert_eq!(b64.decode(rest).unwrap().len(), 32);
        assert_ne!(
            sig,
            detached_signature("content", "abcdef", "another-secret!!")
        );
    }
}
