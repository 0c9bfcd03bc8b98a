//! ResourceQuota controller: keeps each quota's `status.hard` equal to its
//! `spec.hard` and recounts `status.used` from the objects stored in its
//! namespace (upstream `pkg/controller/resourcequota`).
//!
//! The apiserver's quota admission charges new objects as they are
//! created; this controller is what gives usage back when objects go away,
//! and what corrects a charge for a write that was admitted but then
//! failed. Pods, Services and PersistentVolumeClaims come from shared
//! informers: one going away (or a pod finishing, a Service changing type)
//! recounts the quotas of its namespace at once, as upstream's
//! replenishment does; creations were charged at admission already. Other object counts (`count/deployments.apps`,
//! `configmaps`, `secrets`…) are counted with a metadata-only list and
//! refreshed every [`COUNT_RESYNC`], as the informers upstream's controller
//! would need for them are not worth their memory here.
//!
//! The charging rules are shared with the admission plugin
//! ([`crate::client::resource_quota`]), so both always agree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Service};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::informer::{self, Backoff, Change, Queue};
use super::resource_discovery::{self, DiscoveredResource};
use crate::client::informer::{SharedInformers, key_of};
use crate::client::quantity::Quantity;
use crate::client::resource_quota::{self as quota, Usage};

/// How often object counts that no informer watches are recounted.
const COUNT_RESYNC: Duration = Duration::from_secs(30);
/// How long discovery results are reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(60);

/// Failures of the quota controller.
#[derive(Debug, thiserror::Error)]
pub enum ResourceQuotaError {
    /// Writing the quota's status failed.
    #[error("updating status of quota {namespace}/{name}: {source}")]
    Status {
        /// Namespace of the quota.
        namespace: String,
        /// Name of the quota.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Counting objects the informers do not hold failed.
    #[error("counting {resource} in {namespace}: {source}")]
    Count {
        /// The counted resource.
        resource: String,
        /// The namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    services: Store<Service>,
    claims: Store<PersistentVolumeClaim>,
    discovered: tokio::sync::Mutex<Option<(Instant, Vec<DiscoveredResource>)>>,
    backoff: Backoff,
}

/// Runs the quota controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    cancel: CancellationToken,
) -> Result<(), ResourceQuotaError> {
    let client = informers.client();
    let queue = Queue::<ResourceQuota>::new();
    // Only a new quota or a new `spec.hard` is recounted at once: the
    // admission plugin's own status writes must not trigger a recount that
    // could run before the object they charged is stored.
    let sender = queue.sender.clone();
    let (quotas, quota_task) = informer::spawn(
        &informers.get::<ResourceQuota>(),
        cancel.clone(),
        move |change, _| {
            let hard = |q: &ResourceQuota| q.spec.as_ref().and_then(|s| s.hard.clone());
            let recount = match change {
                Change::Added(q) => Some(q),
                Change::Updated { old, new } if hard(old) != hard(new) => Some(new),
                _ => None,
            };
            if let Some(q) = recount {
                let _ = sender.unbounded_send(ObjectRef::from_obj(&**q));
            }
        },
    );
    let (pods, pod_task) = informer::spawn(
        &informers.get::<Pod>(),
        cancel.clone(),
        replenish(
            queue.sender.clone(),
            quotas.clone(),
            |old: &Pod, new: &Pod| {
                let terminal = |p: &Pod| {
                    matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
                };
                !terminal(old) && terminal(new)
            },
        ),
    );
    let (services, svc_task) = informer::spawn(
        &informers.get::<Service>(),
        cancel.clone(),
        replenish(
            queue.sender.clone(),
            quotas.clone(),
            |old: &Service, new: &Service| {
                let kind = |s: &Service| s.spec.as_ref().and_then(|s| s.type_.clone());
                kind(old) != kind(new)
            },
        ),
    );
    let (claims, pvc_task) = informer::spawn(
        &informers.get::<PersistentVolumeClaim>(),
        cancel.clone(),
        replenish(queue.sender.clone(), quotas.clone(), |_, _| false),
    );
    let ready = informer::wait_ready(&[&pods], &cancel).await
        && informer::wait_ready(&[&services], &cancel).await
        && informer::wait_ready(&[&claims], &cancel).await;
    if ready {
        let ctx = Arc::new(Ctx {
            client,
            pods,
            services,
            claims,
            discovered: tokio::sync::Mutex::new(None),
            backoff: Backoff::default(),
        });
        informer::drive(
            quotas,
            queue,
            reconcile_boxed,
            error_policy,
            ctx,
            Config::default().concurrency(2),
            cancel,
        )
        .await;
    }
    for task in [quota_task, pod_task, svc_task, pvc_task] {
        task.abort();
    }
    Ok(())
}

/// A hook that recounts the quotas of a namespace when usage there may
/// have gone down (upstream's replenishment): an object deleted, or an
/// update `frees` says releases usage. Creations are charged at admission
/// and need no recount.
fn replenish<K>(
    sender: futures::channel::mpsc::UnboundedSender<ObjectRef<ResourceQuota>>,
    quotas: Store<ResourceQuota>,
    frees: impl Fn(&K, &K) -> bool + Send + 'static,
) -> impl FnMut(&informer::Change<K>, &Store<K>) + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    move |event, _| {
        let obj = match event {
            Change::Deleted(o) => o,
            Change::Updated { old, new } if frees(old, new) => new,
            _ => return,
        };
        let Some(ns) = obj.meta().namespace.clone() else {
            return;
        };
        for q in quotas.state() {
            if q.metadata.namespace.as_deref() == Some(ns.as_str()) {
                let _ = sender.unbounded_send(ObjectRef::from_obj(&*q));
            }
        }
    }
}

fn reconcile_boxed(
    q: Arc<ResourceQuota>,
    ctx: Arc<Ctx>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Action, ResourceQuotaError>> + Send>> {
    Box::pin(reconcile(q, ctx))
}

fn error_policy(q: Arc<ResourceQuota>, err: &ResourceQuotaError, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "quota sync failed");
    Action::requeue(
        ctx.backoff
            .next_delay(&key_of(&*q), Duration::from_secs(60)),
    )
}

fn values<K: Serialize>(objects: impl Iterator<Item = Arc<K>>) -> Vec<Value> {
    objects
        .filter_map(|o| serde_json::to_value(&*o).ok())
        .collect()
}

#[tracing::instrument(skip_all, fields(quota = %key_of(&*q)))]
async fn reconcile(q: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action, ResourceQuotaError> {
    let namespace = q.namespace().unwrap_or_default();
    let name = q.name_any();
    let quota_value = serde_json::to_value(&*q).unwrap_or(Value::Null);
    let hard = quota::parse_list(&quota_value["spec"]["hard"]);
    let mut used: Usage = hard.keys().map(|k| (k.clone(), Quantity::zero())).collect();
    let in_namespace = |ns: Option<&String>| ns.map(String::as_str) == Some(namespace.as_str());
    let informed: [(&str, Vec<Value>); 3] = [
        (
            "pods",
            values(
                ctx.pods
                    .state()
                    .into_iter()
                    .filter(|p| in_namespace(p.metadata.namespace.as_ref())),
            ),
        ),
        (
            "services",
            values(
                ctx.services
                    .state()
                    .into_iter()
                    .filter(|s| in_namespace(s.metadata.namespace.as_ref())),
            ),
        ),
        (
            "persistentvolumeclaims",
            values(
                ctx.claims
                    .state()
                    .into_iter()
                    .filter(|c| in_namespace(c.metadata.namespace.as_ref())),
            ),
        ),
    ];
    let mut counted = std::collections::BTreeSet::new();
    for (resource, objects) in &informed {
        let names: Vec<&String> = hard
            .keys()
            .filter(|n| quota::charged_by(n, "", resource))
            .collect();
        if names.is_empty() {
            continue;
        }
        counted.extend(names.iter().map(|n| n.to_string()));
        for obj in objects {
            if !quota::matches_scopes(&quota_value, "", resource, obj) {
                continue;
            }
            let charge = quota::usage("", resource, obj);
            for n in &names {
                if let Some(amount) = charge.get(*n) {
                    let total = used[*n].checked_add(amount).unwrap_or(used[*n]);
                    used.insert((*n).clone(), total);
                }
            }
        }
    }
    let scoped = quota_value["spec"]["scopes"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
        || quota_value["spec"]["scopeSelector"].is_object();
    let mut needs_resync = false;
    for n in hard.keys().filter(|n| !counted.contains(*n)) {
        let Some((group, resource)) = counted_resource(n) else {
            continue;
        };
        needs_resync = true;
        if scoped {
            continue;
        }
        if let Some(count) = count_objects(&ctx, &group, &resource, &namespace).await? {
            used.insert(n.clone(), Quantity::from_int(count));
        }
    }
    let status_hard = quota::to_list(&hard);
    let status_used = quota::to_list(&used);
    let current = &quota_value["status"];
    if current["hard"] != status_hard || current["used"] != status_used {
        let used_patch = merge_patch(&status_used, &current["used"]);
        let hard_patch = merge_patch(&status_hard, &current["hard"]);
        Api::<ResourceQuota>::namespaced(ctx.client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"hard": hard_patch, "used": used_patch}})),
            )
            .await
            .map_err(|source| ResourceQuotaError::Status {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
    }
    ctx.backoff.reset(&key_of(&*q));
    Ok(if needs_resync {
        Action::requeue(COUNT_RESYNC)
    } else {
        Action::requeue(Duration::from_secs(300))
    })
}

/// A merge patch turning the map `old` into `new`: removed keys become null.
fn merge_patch(new: &Value, old: &Value) -> Value {
    let mut patch = new.clone();
    if let (Some(p), Some(old)) = (patch.as_object_mut(), old.as_object()) {
        for k in old.keys() {
            if !p.contains_key(k) {
                p.insert(k.clone(), Value::Null);
            }
        }
    }
    patch
}

/// The `(group, resource)` an object-count quota name counts, for the
/// resources no informer here holds.
fn counted_resource(name: &str) -> Option<(String, String)> {
    if let Some(rest) = name.strip_prefix("count/") {
        let (resource, group) = rest.split_once('.').unwrap_or((rest, ""));
        return Some((group.to_string(), resource.to_string()));
    }
    matches!(
        name,
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"
    )
    .then(|| (String::new(), name.to_string()))
}

/// How many objects of a resource the namespace holds (None when the
/// resource is not served).
async fn count_objects(
    ctx: &Ctx,
    group: &str,
    resource: &str,
    namespace: &str,
) -> Result<Option<i64>, ResourceQuotaError> {
    let found = {
        let mut cached = ctx.discovered.lock().await;
        let stale = cached
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > DISCOVERY_TTL);
        if stale && let Ok(d) = resource_discovery::discover(&ctx.client).await {
            *cached = Some((Instant::now(), d.resources));
        }
        cached.as_ref().and_then(|(_, all)| {
            all.iter()
                .find(|r| {
                    r.resource.group == group && r.resource.plural == resource && r.namespaced
                })
                .cloned()
        })
    };
    let Some(found) = found else {
        return Ok(None);
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &found.resource);
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(|source| ResourceQuotaError::Count {
            resource: found.group_resource(),
            namespace: namespace.to_string(),
            source,
        })?;
    Ok(Some(list.items.len() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_count_names_map_to_resources() {
        assert_eq!(
            counted_resource("count/deployments.apps"),
            Some(("apps".into(), "deployments".into()))
        );
        assert_eq!(
            counted_resource("count/configmaps"),
            Some((String::new(), "configmaps".into()))
        );
        assert_eq!(
            counted_resource("secrets"),
            Some((String::new(), "secrets".into()))
        );
        assert_eq!(counted_resource("requests.cpu"), None);
    }
}
