//! What upstream's ServiceAccount admission plugin does to a new pod:
//! the pod runs as a service account (`default` unless named), and unless
//! `automountServiceAccountToken` is false on the pod or on that account,
//! its containers get the `kube-api-access-…` projected volume at
//! `/var/run/secrets/kubernetes.io/serviceaccount` (a bound token, the
//! cluster CA and the namespace), which in-cluster clients read. A pod
//! without `imagePullSecrets` gets the account's.
//!
//! A pod naming a service account that does not exist is refused, as
//! upstream ("error looking up service account ns/name: serviceaccount
//! "name" not found"). The `default` account is made by the
//! serviceaccount controller moments after its namespace; a pod created in
//! that window waits up to [`DEFAULT_ACCOUNT_WAIT`] for it rather than
//! failing, as upstream's live lookup with retries does.

use std::time::Duration;

use serde_json::{Value, json};

use super::Attributes;
use crate::api::handlers::Api;
use crate::api::object;
use crate::api::status::{ApiError, ApiResult};
use crate::api::watch_cache;
use crate::store::Store;

/// How long a new pod waits for its namespace's `default` account.
const DEFAULT_ACCOUNT_WAIT: Duration = Duration::from_secs(3);

/// Where in-cluster clients look for their credentials.
const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl<S: Store> Api<S> {
    /// Adds the service-account volume to a pod being created.
    pub(super) async fn admit_service_account(
        &self,
        attrs: &Attributes<'_>,
        pod: &mut Value,
    ) -> ApiResult<()> {
        if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
            return Ok(());
        }
        let spec = &pod["spec"];
        let account = [&spec["serviceAccountName"], &spec["serviceAccount"]]
            .into_iter()
            .filter_map(Value::as_str)
            .find(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let Some(sa) = self.wait_for_account(pod, &account).await? else {
            let ns = object::namespace(pod).unwrap_or("default");
            return Err(attrs.forbidden(
                Some(pod),
                format!(
                    "error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"
                ),
            ));
        };
        let sa = Some(sa);
        if pod["spec"].is_object()
            && pod["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("")
                .is_empty()
        {
            pod["spec"]["serviceAccountName"] = json!(account);
        }
        let has_pull_secrets = pod["spec"]["imagePullSecrets"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if !has_pull_secrets
            && let Some(secrets) = sa.as_ref().and_then(|sa| sa["imagePullSecrets"].as_array())
            && !secrets.is_empty()
            && pod["spec"].is_object()
        {
            let refs: Vec<Value> = secrets
                .iter()
                .filter_map(|s| s["name"].as_str())
                .map(|n| json!({"name": n}))
                .collect();
            pod["spec"]["imagePullSecrets"] = Value::Array(refs);
        }
        let spec = &pod["spec"];
        let automount = match spec["automountServiceAccountToken"].as_bool() {
            Some(pod_says) => pod_says,
            // The account's own setting; default true, also when the account does not exist yet.
            None => sa
                .as_ref()
                .and_then(|sa| sa["automountServiceAccountToken"].as_bool())
                .unwrap_or(true),
        };
        let already = ["containers", "initContainers"].iter().any(|list| {
            spec[*list].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["volumeMounts"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT_PATH))
                })
            })
        });
        if !automount || already || !spec.is_object() {
            return Ok(());
        }
        let name = format!("kube-api-access-{}", object::random_suffix(5));
        let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}});
        let spec = &mut pod["spec"];
        push(&mut spec["volumes"], volume);
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec[list].as_array_mut() {
                for c in containers {
                    push(
                        &mut c["volumeMounts"],
                        json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH}),
                    );
                }
            }
        }
        Ok(())
    }

    /// The pod's service account; `default` may be waited for a moment.
    async fn wait_for_account(&self, pod: &Value, account: &str) -> ApiResult<Option<Value>> {
        let deadline = tokio::time::Instant::now() + DEFAULT_ACCOUNT_WAIT;
        loop {
            let found = self.account(pod, account).await?;
            if found.is_some() || account != "default" || tokio::time::Instant::now() >= deadline {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pod's service account, if it exists.
    async fn account(&self, pod: &Value, account: &str) -> ApiResult<Option<Value>> {
        let ns = object::namespace(pod).unwrap_or("default");
        let key = crate::api::registry::resources::find("", "v1", "serviceaccounts")
            .map(|i| i.key(Some(ns), account))
            .unwrap_or_default();
        let (kv, _) = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(kv
            .and_then(|kv| watch_cache::decode(&kv, kv.mod_revision))
            .map(|sa| (*sa).clone()))
    }
}

fn push(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(items) => items.push(item),
        None => *list = json!([item]),
    }
}
