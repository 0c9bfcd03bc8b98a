//! Objects every cluster has from its first second: the default
//! namespaces and the `kubernetes` Service with its Endpoints and
//! EndpointSlice pointing at this apiserver; and the TokenRequest signer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::handlers::{Api, BoundObject, TokenIssuer};
use super::object;
use super::registry::resources::{self, ResourceInfo};
use super::strategy;
use super::watch_cache;
use crate::pki::{ClusterPki, ServiceAccountClaims};
use crate::store::{Store, StoreError};

/// Namespaces that always exist.
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn info(group: &str, resource: &str) -> Result<&'static ResourceInfo, String> {
    resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == resource)
        .ok_or_else(|| format!("no resource {resource}"))
}

/// Creates `obj` unless it exists; if `replace` and it differs in `spec`
/// (or subsets/endpoints), overwrites those fields.
async fn ensure<S: Store>(
    api: &Api<S>,
    info: &ResourceInfo,
    mut obj: Value,
    replace: &[&str],
) -> Result<(), String> {
    let name = object::name(&obj).unwrap_or_default().to_string();
    let key = info.key(object::namespace(&obj), &name);
    let (existing, _) = api.store.get(&key).await.map_err(|e| e.to_string())?;
    match existing {
        None => {
            strategy::prepare_create(info, &mut obj);
            // Like upstream's endpoint reconciler, built-ins bypass validation
            // (the kubernetes Endpoints may point at a loopback address).
            strategy::apply_defaults(info, &mut obj);
            match api.store.create(&key, strategy::to_stored(&obj)).await {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        Some(kv) => {
            let Some(current) = watch_cache::decode(&kv, kv.mod_revision) else {
                return Ok(());
            };
            let mut updated = (*current).clone();
            for field in replace {
                updated[*field] = obj[*field].clone();
            }
            if updated == *current {
                return Ok(());
            }
            match api
                .store
                .update(&key, strategy::to_stored(&updated), Some(kv.mod_revision))
                .await
            {
                Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// [`ensure`] for the built-in resource `group`/`resource`: creates `obj`,
/// or brings the `replace` fields of the stored one in line.
pub(super) async fn ensure_object<S: Store>(
    api: &Api<S>,
    group: &str,
    resource: &str,
    obj: Value,
    replace: &[&str],
) -> Result<(), String> {
    ensure(api, info(group, resource)?, obj, replace).await
}

/// The PriorityClasses every cluster has (upstream `SystemPriorityClasses`).
const SYSTEM_PRIORITY_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// Creates the built-in namespaces, PriorityClasses and the `kubernetes`
/// Service.
pub async fn ensure_builtins<S: Store>(api: &Api<S>, advertise: SocketAddr) -> Result<(), String> {
    let namespaces = info("", "namespaces")?;
    for ns in DEFAULT_NAMESPACES {
        ensure(
            api,
            namespaces,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            &[],
        )
        .await?;
    }
    let classes = info("scheduling.k8s.io", "priorityclasses")?;
    for (name, value, description) in SYSTEM_PRIORITY_CLASSES {
        ensure(
            api,
            classes,
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description,
                "preemptionPolicy": "PreemptLowerPriority"}),
            &[],
        )
        .await?;
    }
    let first_ip = api
        .allocator
        .nth_ip(1)
        .ok_or("service CIDR has no first address")?;
    let services = info("", "services")?;
    let service_key = services.key(Some("default"), "kubernetes");
    if api
        .store
        .get(&service_key)
        .await
        .map_err(|e| e.to_string())?
        .0
        .is_none()
    {
        // Reserve it (a restart already loaded it from the store).
        let _ = api.allocator.allocate_ip(Some(first_ip));
    }
    let labels = json!({"component": "apiserver", "provider": "kubernetes"});
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
        "spec": {
            "type": "ClusterIP", "clusterIP": first_ip.to_string(), "clusterIPs": [first_ip.to_string()],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": advertise.port()}],
            "sessionAffinity": "None",
        },
    });
    ensure(api, services, service, &[]).await?;
    if let Some(dns) = api.settings.cluster_dns {
        ensure_kube_dns(api, services, dns).await?;
    }
    let ip = advertise.ip().to_string();
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": advertise.port(), "protocol": "TCP"}]}],
    });
    ensure(api, info("", "endpoints")?, endpoints, &["subsets"]).await?;
    let family = if advertise.is_ipv4() { "IPv4" } else { "IPv6" };
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": family,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": advertise.port(), "protocol": "TCP"}],
    });
    ensure(
        api,
        info("discovery.k8s.io", "endpointslices")?,
        slice,
        &["endpoints", "ports"],
    )
    .await?;
    Ok(())
}

/// `kube-system/kube-dns`, as CoreDNS's manifest makes it, for tools and
/// charts that look for it. It has no selector: every node answers DNS on
/// this address itself (`network::dns`).
async fn ensure_kube_dns<S: Store>(
    api: &Api<S>,
    services: &ResourceInfo,
    ip: std::net::IpAddr,
) -> Result<(), String> {
    let key = services.key(Some("kube-system"), "kube-dns");
    if api
        .store
        .get(&key)
        .await
        .map_err(|e| e.to_string())?
        .0
        .is_none()
        && api.allocator.allocate_ip(Some(ip)).is_err()
    {
        tracing::warn!(%ip, "--cluster-dns is taken by another Service; not creating kube-system/kube-dns");
        return Ok(());
    }
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
        "spec": {
            "type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}],
            "sessionAffinity": "None",
        },
    });
    ensure(api, services, service, &[]).await
}

/// Signs TokenRequests with the cluster's service-account key.
pub struct PkiTokens(pub Arc<ClusterPki>);

impl TokenIssuer for PkiTokens {
    fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        seconds: u64,
        bound: Option<BoundObject<'_>>,
    ) -> Result<(String, String), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let default_aud = [crate::pki::SERVICE_ACCOUNT_ISSUER.to_string()];
        let auds: Vec<&str> = if audiences.is_empty() {
            default_aud.iter()
        } else {
            audiences.iter()
        }
        .map(String::as_str)
        .collect();
        let mut claims = ServiceAccountClaims::new(namespace, name, uid, &auds, now, seconds);
        match bound {
            Some(BoundObject::Pod(pod, pod_uid)) => claims = claims.with_pod(pod, pod_uid),
            Some(BoundObject::Secret(secret, secret_uid)) => {
                claims = claims.with_secret(secret, secret_uid);
            }
            None => {}
        }
        let token = self
            .0
            .sign_service_account_token(&claims)
            .map_err(|e| e.to_string())?;
        let expires = object::rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(now + seconds));
        Ok((token, expires))
    }
}
