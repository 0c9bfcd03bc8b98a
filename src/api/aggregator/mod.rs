//! API aggregation (kube-aggregator's part of kube-apiserver): APIServices
//! of `apiregistration.k8s.io/v1`, and requests for a Service-backed
//! group/version proxied to the server behind it (metrics-server's way in).
//!
//! - [`controller`] keeps the APIServices: one local APIService per
//!   built-in and CRD group/version (upstream's autoregister and
//!   crdregistration controllers), and for each Service-backed one an
//!   `Available` condition from a discovery call, as upstream's
//!   availability controller does. What it learns is published here as the
//!   [`Aggregator`]'s table, which the request path reads without locking
//!   for long.
//! - [`proxy`] forwards a request, streaming the answer back (watches work),
//!   with the caller's identity in `X-Remote-User`/`-Group`/`-Extra-` and
//!   the front-proxy client certificate that vouches for those headers.
//! - [`discovery`] merges the remote groups into `/apis`, both legacy and
//!   aggregated.
//!
//! Deviation from upstream, on purpose: upstream signs the front-proxy
//! certificate with a separate request-header CA. kelp has one cluster CA
//! (DESIGN's PKI), so the front-proxy client certificate chains to it and
//! `extension-apiserver-authentication` publishes that CA as the
//! request-header CA, with `front-proxy-client` as the only allowed name.

pub mod controller;
pub mod discovery;
pub mod proxy;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::extension_client::Backend;
use super::handlers::Api;
use crate::pki::ClusterPki;
use crate::store::Store;

/// The common name of the front-proxy client certificate.
pub const FRONT_PROXY_USER: &str = "front-proxy-client";

/// A Service-backed group/version, as the controller last saw it.
#[derive(Clone, Debug)]
pub struct Remote {
    /// The APIService's name (`v1beta1.metrics.k8s.io`).
    pub name: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Where its server is.
    pub backend: Backend,
    /// `spec.groupPriorityMinimum`.
    pub group_priority: i64,
    /// `spec.versionPriority`.
    pub version_priority: i64,
    /// Whether the last check passed.
    pub available: bool,
    /// The server's `APIResourceList` for this group/version, once fetched.
    pub resources: Option<Value>,
}

/// The Service-backed group/versions by (group, version).
pub type Remotes = BTreeMap<(String, String), Arc<Remote>>;

/// The apiserver's view of aggregated APIs, shared by the request path and
/// the controller.
pub struct Aggregator {
    remotes: parking_lot::RwLock<Arc<Remotes>>,
    identity: (String, String),
}

impl Aggregator {
    /// An aggregator whose proxy presents a fresh front-proxy client
    /// certificate from the cluster CA.
    pub fn new(pki: &ClusterPki) -> Result<Self, crate::pki::PkiError> {
        let identity = pki.issue_client_cert(FRONT_PROXY_USER, &[])?;
        Ok(Self {
            remotes: parking_lot::RwLock::new(Arc::new(BTreeMap::new())),
            identity,
        })
    }

    /// The Service-backed group/version `group/version`, if there is one.
    pub fn remote(&self, group: &str, version: &str) -> Option<Arc<Remote>> {
        self.remotes
            .read()
            .get(&(group.to_string(), version.to_string()))
            .cloned()
    }

    /// Every Service-backed group/version.
    pub fn remotes(&self) -> Arc<Remotes> {
        self.remotes.read().clone()
    }

    /// The front-proxy client certificate and key (PEM).
    pub fn identity(&self) -> (&str, &str) {
        (&self.identity.0, &self.identity.1)
    }

    fn publish(&self, remotes: Remotes) {
        *self.remotes.write() = Arc::new(remotes);
    }
}

/// Publishes kube-system's `extension-apiserver-authentication` ConfigMap:
/// how extension servers check callers (client CA) and the aggregator's
/// proxied identities (request-header CA, names and headers).
pub async fn publish_authentication_config<S: Store>(
    api: &Api<S>,
    pki: &ClusterPki,
) -> Result<(), String> {
    let ca = pki.ca_pem();
    let list = |v: &[&str]| serde_json::to_string(v).unwrap_or_default();
    let config = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": {
            "client-ca-file": ca,
            "requestheader-client-ca-file": ca,
            "requestheader-allowed-names": list(&[FRONT_PROXY_USER]),
            "requestheader-username-headers": list(&["X-Remote-User"]),
            "requestheader-uid-headers": list(&["X-Remote-Uid"]),
            "requestheader-group-headers": list(&["X-Remote-Group"]),
            "requestheader-extra-headers-prefix": list(&["X-Remote-Extra-"]),
        }
    });
    super::bootstrap::ensure_object(api, "", "configmaps", config, &["data"]).await
}
