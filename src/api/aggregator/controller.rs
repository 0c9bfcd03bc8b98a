//! Keeps the APIServices and the [`Aggregator`]'s table in line.
//!
//! One loop, woken by APIService changes, by a change in the set of CRDs,
//! and every [`RECHECK`] (a backend can go away without any object
//! changing):
//! 1. every served built-in and CRD group/version has a local APIService
//!    (built-ins labelled `automanaged: onstart`, CRDs `true`; the latter
//!    go when their CRD does), always `Available`;
//! 2. each Service-backed APIService is checked as upstream's
//!    availability controller checks it: the Service exists and has the
//!    port, its Endpoints have an address, and `GET /apis/<g>/<v>` on the
//!    server answers 2xx within [`CHECK_TIMEOUT`]. The answer is kept as
//!    that group/version's discovery document.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Aggregator, Remote};
use crate::api::extension_client::{self, Backend, CallError};
use crate::api::handlers::Api;
use crate::api::object;
use crate::api::registry::resources::{self, ResourceInfo};
use crate::store::Store;

/// How often Service-backed APIServices are checked again.
pub const RECHECK: Duration = Duration::from_secs(10);
/// Bound on one availability check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";

/// The APIService resource.
pub fn apiservice_info() -> &'static ResourceInfo {
    resources::find("apiregistration.k8s.io", "v1", "apiservices")
        .expect("apiservices is a built-in resource")
}

/// Runs until cancelled.
pub async fn run<S: Store + Clone + 'static>(
    api: Arc<Api<S>>,
    aggregator: Arc<Aggregator>,
    cancel: CancellationToken,
) {
    let prefix = apiservice_info().key_prefix();
    let mut crd_generation = None;
    loop {
        let mut sub = match api.cache.subscribe(&prefix, None) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "aggregator cannot watch apiservices; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let generation = api.custom.generation();
            if crd_generation != Some(generation) {
                register_local(&api).await;
                crd_generation = Some(generation);
            }
            let span = tracing::debug_span!("apiservice_reconcile");
            reconcile(&api, &aggregator).instrument(span).await;
            // CRD changes are not on this prefix: poll their generation
            // each second, a counter read.
            let deadline = tokio::time::Instant::now() + RECHECK;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if crd_generation != Some(api.custom.generation()) {
                            break;
                        }
                    }
                    change = sub.live.recv() => match change {
                        Ok(c) if !c.key.starts_with(&sub.prefix) => {}
                        Ok(_) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(_) => return,
                    },
                }
            }
        }
    }
}

/// The local APIServices that should exist: name → (group, version,
/// group priority, version priority, automanaged label).
fn desired_local(custom: &[&'static ResourceInfo]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let builtin = resources::groups_of(resources::RESOURCES.iter());
    for (group, versions) in builtin {
        for (i, version) in versions.iter().enumerate() {
            let priority = if group.is_empty() { 18000 } else { 17000 };
            out.insert(
                format!("{version}.{group}"),
                local(group, version, priority, 15 - i as i64, "onstart"),
            );
        }
    }
    for (group, versions) in resources::groups_of(custom.iter().copied()) {
        for version in versions {
            out.entry(format!("{version}.{group}"))
                .or_insert_with(|| local(group, version, 1000, 100, "true"));
        }
    }
    out
}

fn local(
    group: &str,
    version: &str,
    group_priority: i64,
    version_priority: i64,
    managed: &str,
) -> Value {
    json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": format!("{version}.{group}"), "labels": {AUTOMANAGED: managed}},
        "spec": {
            "group": group, "version": version,
            "groupPriorityMinimum": group_priority, "versionPriority": version_priority,
        },
    })
}

/// Creates the missing local APIServices and deletes the CRD ones whose
/// group/version is no longer served.
async fn register_local<S: Store>(api: &Api<S>) {
    let info = apiservice_info();
    let desired = desired_local(&api.custom.all());
    let (stored, _) = api.cache.list(&info.key_prefix(), |_| true);
    let mut present = BTreeSet::new();
    for obj in stored {
        let obj = obj.value();
        let name = object::name(&obj).unwrap_or_default().to_string();
        let managed = obj["metadata"]["labels"][AUTOMANAGED].as_str() == Some("true");
        if managed && !desired.contains_key(&name) {
            if let Err(e) = api.store.delete(&info.key(None, &name), None).await {
                tracing::warn!(apiservice = %name, error = %e, "removing a CRD's APIService");
            }
            continue;
        }
        present.insert(name);
    }
    for (name, obj) in desired {
        if present.contains(&name) {
            continue;
        }
        if let Err(e) =
            crate::api::bootstrap::ensure_object(api, info.group, info.resource, obj, &[]).await
        {
            tracing::warn!(apiservice = %name, error = %e, "registering a local APIService");
        }
    }
}

/// One pass: checks every APIService, writes changed conditions and
/// publishes the table of Service-backed ones.
async fn reconcile<S: Store>(api: &Api<S>, aggregator: &Aggregator) {
    let info = apiservice_info();
    let (stored, _) = api.cache.list(&info.key_prefix(), |_| true);
    let mut remotes = BTreeMap::new();
    for obj in stored {
        let obj = obj.value();
        if object::is_deleting(&obj) {
            continue;
        }
        let name = object::name(&obj).unwrap_or_default().to_string();
        let spec = &obj["spec"];
        let (condition, remote) = if spec["service"].is_object() {
            let (condition, remote) = check(api, aggregator, &name, spec).await;
            (condition, Some(remote))
        } else {
            (
                (
                    "True",
                    "Local",
                    "Local APIServices are always available".to_string(),
                ),
                None,
            )
        };
        if let Some(remote) = remote {
            remotes.insert(
                (remote.group.clone(), remote.version.clone()),
                Arc::new(remote),
            );
        }
        if !condition_matches(&obj, &condition) {
            let result = api
                .guaranteed_update(info, None, &name, |current| {
                    if condition_matches(current, &condition) {
                        return Ok(None);
                    }
                    let mut next = current.clone();
                    next["status"] = json!({"conditions": [{
                        "type": "Available",
                        "status": condition.0,
                        "lastTransitionTime": crate::api::object::now_rfc3339(),
                        "reason": condition.1,
                        "message": condition.2,
                    }]});
                    Ok(Some(next))
                })
                .await;
            if let Err(e) = result {
                tracing::debug!(apiservice = %name, error = %e, "apiservice status");
            }
        }
    }
    aggregator.publish(remotes);
}

fn condition_matches(obj: &Value, (status, reason, message): &(&str, &str, String)) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Available"
                && c["status"] == *status
                && c["reason"] == *reason
                && c["message"].as_str() == Some(message.as_str())
        })
}

/// The availability check of one Service-backed APIService.
async fn check<S: Store>(
    api: &Api<S>,
    aggregator: &Aggregator,
    name: &str,
    spec: &Value,
) -> ((&'static str, &'static str, String), Remote) {
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let version = spec["version"].as_str().unwrap_or_default().to_string();
    let insecure = spec["insecureSkipTLSVerify"].as_bool().unwrap_or(false);
    let mut remote = Remote {
        name: name.to_string(),
        group: group.clone(),
        version: version.clone(),
        backend: Backend {
            destination: extension_client::Destination::Url(String::new()),
            ca_bundle: None,
            insecure,
        },
        group_priority: spec["groupPriorityMinimum"].as_i64().unwrap_or(0),
        version_priority: spec["versionPriority"].as_i64().unwrap_or(0),
        available: false,
        resources: None,
    };
    let backend = match Backend::from_client_config(spec, insecure) {
        Ok(b) => b,
        Err(e) => return (("False", "ServiceAccessError", e.to_string()), remote),
    };
    remote.backend = backend.clone();
    let svc_ns = spec["service"]["namespace"].as_str().unwrap_or_default();
    let svc_name = spec["service"]["name"].as_str().unwrap_or_default();
    let services = resources::find("", "v1", "services").expect("services is built in");
    if api
        .cache
        .get(&services.key(Some(svc_ns), svc_name))
        .is_none()
    {
        let message = format!("service/{svc_name} in \"{svc_ns}\" is not present");
        return (("False", "ServiceNotFound", message), remote);
    }
    let path = format!("/apis/{group}/{version}");
    let mut request = http::Request::new(bytes::Bytes::new());
    *request.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    let headers = request.headers_mut();
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "X-Remote-User",
        http::HeaderValue::from_static("system:kube-aggregator"),
    );
    headers.insert(
        "X-Remote-Group",
        http::HeaderValue::from_static("system:masters"),
    );
    let result = extension_client::call(
        &api.cache,
        &backend,
        request,
        Some(aggregator.identity()),
        CHECK_TIMEOUT,
    )
    .await;
    let url = backend.display_url(&path);
    match result {
        Err(CallError::Unresolved(e)) => {
            let message =
                format!("endpoints for service/{svc_name} in \"{svc_ns}\" have no addresses: {e}");
            (("False", "MissingEndpoints", message), remote)
        }
        Err(e) => {
            let message = format!("failing or missing response from {url}: {e}");
            (("False", "FailedDiscoveryCheck", message), remote)
        }
        Ok(response) if !response.status().is_success() => {
            let message = format!(
                "failing or missing response from {url}: bad status from {url}: {}",
                response.status().as_u16()
            );
            (("False", "FailedDiscoveryCheck", message), remote)
        }
        Ok(response) => {
            remote.available = true;
            remote.resources = serde_json::from_slice(response.body()).ok();
            (("True", "Passed", "all checks passed".to_string()), remote)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_group_version_has_a_local_apiservice() {
        let desired = desired_local(&[]);
        assert!(desired.contains_key("v1."));
        assert!(desired.contains_key("v1.apps"));
        assert!(desired.contains_key("v1.apiextensions.k8s.io"));
        let core = &desired["v1."];
        assert_eq!(core["spec"]["group"], "");
        assert_eq!(core["metadata"]["labels"][AUTOMANAGED], "onstart");
    }
}
