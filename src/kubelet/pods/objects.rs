//! ConfigMaps and Secrets as pods consume them (env, volumes), read from
//! the API on demand.
//!
//! Upstream's kubelet watches each referenced object; kelp reads them when a
//! container starts and when volumes are refreshed (once a minute), which
//! keeps an idle node from holding watches for every Secret it ever used.
//! A missing object is `None`; other API failures are also `None` but
//! logged, so a pod shows "not found" rather than hanging.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

/// Reads ConfigMaps and Secrets for one node.
#[derive(Clone)]
pub struct ObjectSource {
    client: kube::Client,
}

impl ObjectSource {
    /// A source over `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// The ConfigMap's data (binaryData decoded as UTF-8 where possible).
    pub async fn config_map(&self, ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        match api.get_opt(name).await {
            Ok(Some(cm)) => {
                let mut data = cm.data.unwrap_or_default();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                Some(data)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(%ns, %name, error = %e, "cannot read configmap");
                None
            }
        }
    }

    /// The ConfigMap's data as bytes (for volumes, which keep binaryData exact).
    pub async fn config_map_bytes(
        &self,
        ns: &str,
        name: &str,
    ) -> Option<BTreeMap<String, Vec<u8>>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        match api.get_opt(name).await {
            Ok(Some(cm)) => {
                let mut data: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                data.extend(
                    cm.binary_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0)),
                );
                Some(data)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(%ns, %name, error = %e, "cannot read configmap");
                None
            }
        }
    }

    /// The Secret's data (decoded).
    pub async fn secret(&self, ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        match api.get_opt(name).await {
            Ok(Some(s)) => Some(
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            ),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(%ns, %name, error = %e, "cannot read secret");
                None
            }
        }
    }

    /// The client, for TokenRequests of projected service-account tokens.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }
}
