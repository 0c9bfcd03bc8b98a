//! Garbage collector workers: upstream's `attemptToDeleteItem`, `processDeletingDependentsItem`
//! and `attemptToOrphan`, acting on the apiserver with live reads.
//!
//! Writes to lists in metadata (ownerReferences, finalizers) are JSON patches that first
//! `test` the object's uid and the list's current value, so a concurrent writer makes the
//! patch fail (and the item retry) instead of being overwritten.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::graph::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, GraphNode, Identity, Work};
use crate::controllers::api_status::{is_conflict, is_not_found};
use crate::controllers::resource_discovery::DiscoveredResource;

/// Why one work item failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// An API call failed.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// A referenced kind is not served (yet).
    #[error("cannot resolve {api_version} {kind}")]
    Unresolvable {
        /// The apiVersion.
        api_version: String,
        /// The kind.
        kind: String,
    },
    /// A patch could not be built.
    #[error("building patch: {0}")]
    Encode(#[from] serde_json::Error),
    /// A virtual owner exists but has not been observed by its monitor yet.
    #[error("owner {0} exists but is not observed yet")]
    Unobserved(String),
}

/// Processes work items until `cancel` fires; waits for the graph to be synced first.
pub async fn run(shared: Arc<Shared>, synced: Arc<AtomicBool>, cancel: CancellationToken) {
    while !synced.load(Ordering::SeqCst) {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => return,
            item = shared.queue.get() => item,
        };
        let result = match &item {
            Work::Delete(uid) => attempt_to_delete(&shared, uid).await,
            Work::Orphan(uid) => attempt_to_orphan(&shared, uid).await,
        };
        match result {
            Ok(()) => shared.queue.forget(&item),
            Err(err) => {
                let level_debug = matches!(err, WorkError::Unobserved(_))
                    || matches!(&err, WorkError::Api(e) if is_conflict(e));
                if level_debug {
                    tracing::debug!(work = ?item, error = %err, "garbage collection retry");
                } else {
                    tracing::warn!(work = ?item, error = %err, "garbage collection failed, retrying");
                }
                shared.queue.retry(item.clone());
            }
        }
        shared.queue.done(&item);
    }
}

fn resolve(
    shared: &Shared,
    api_version: &str,
    kind: &str,
) -> Result<DiscoveredResource, WorkError> {
    shared
        .resolve(api_version, kind)
        .ok_or_else(|| WorkError::Unresolvable {
            api_version: api_version.into(),
            kind: kind.into(),
        })
}

fn namespace_for<'a>(resource: &DiscoveredResource, namespace: Option<&'a str>) -> Option<&'a str> {
    if resource.namespaced { namespace } else { None }
}

fn dynamic_api(
    shared: &Shared,
    resource: &DiscoveredResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace_for(resource, namespace) {
        Some(ns) => Api::namespaced_with(shared.client.clone(), ns, &resource.resource),
        None => Api::all_with(shared.client.clone(), &resource.resource),
    }
}

/// Live metadata of an object, `None` when absent (or, for a namespaced resource, when no
/// namespace is known: such a reference can never resolve).
async fn get_meta(
    shared: &Shared,
    resource: &DiscoveredResource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<ObjectMeta>, WorkError> {
    let ns = namespace_for(resource, namespace);
    if resource.namespaced && ns.is_none() {
        return Ok(None);
    }
    let api: Api<PartialObjectMeta<DynamicObject>> = match ns {
        Some(ns) => Api::namespaced_with(shared.client.clone(), ns, &resource.resource),
        None => Api::all_with(shared.client.clone(), &resource.resource),
    };
    Ok(api.get_opt(name).await?.map(|o| o.metadata))
}

#[tracing::instrument(skip(shared))]
async fn attempt_to_delete(shared: &Shared, uid: &str) -> Result<(), WorkError> {
    let Some(node) = shared.graph.lock().node(uid).cloned() else {
        return Ok(());
    };
    if node.being_deleted && !node.deleting_dependents {
        return Ok(());
    }
    let id = &node.identity;
    let resource = resolve(shared, &id.api_version, &id.kind)?;
    let latest = get_meta(shared, &resource, id.namespace.as_deref(), &id.name).await?;
    let Some(latest) = latest.filter(|m| m.uid.as_deref() == Some(uid)) else {
        tracing::debug!(object = ?id, "object is absent");
        let work = shared.graph.lock().confirm_absent(uid);
        shared.enqueue(work);
        return Ok(());
    };
    if node.deleting_dependents {
        return process_deleting_dependents(shared, &node, &resource).await;
    }
    let owners = latest.owner_references.clone().unwrap_or_default();
    if owners.is_empty() {
        return if node.virtual_node {
            Err(WorkError::Unobserved(uid.into()))
        } else {
            Ok(())
        };
    }
    if id.namespace.is_none()
        && owners.iter().any(|o| {
            shared
                .resolve(&o.api_version, &o.kind)
                .is_some_and(|r| r.namespaced)
        })
    {
        // Upstream: a cluster-scoped object naming a namespaced owner has an unresolvable
        // reference and is never collected.
        tracing::warn!(object = ?id, "cluster-scoped object has a namespaced owner; not collecting it");
        return Ok(());
    }
    let (solid, dangling, waiting) = classify(shared, &owners, id.namespace.as_deref()).await?;
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        let drop: Vec<&str> = dangling
            .iter()
            .chain(&waiting)
            .map(|o| o.uid.as_str())
            .collect();
        let kept: Vec<OwnerReference> = owners
            .iter()
            .filter(|o| !drop.contains(&o.uid.as_str()))
            .cloned()
            .collect();
        tracing::info!(object = ?id, removed = ?drop, "removing references to absent or deleting owners");
        return patch_list(
            shared,
            &resource,
            id,
            "ownerReferences",
            json!(owners),
            json!(kept),
        )
        .await;
    }
    let policy = if !waiting.is_empty() && !node.dependents.is_empty() {
        unblock_if_cyclic(shared, &node, &resource, &owners, &waiting).await?;
        PropagationPolicy::Foreground
    } else {
        own_policy(latest.finalizers.as_deref().unwrap_or_default())
    };
    delete_object(shared, &resource, id, latest.resource_version, policy).await
}

/// The propagation an object asked for through its own finalizers (upstream: an item with no
/// owner waiting on it keeps the deletion mode it already chose).
fn own_policy(finalizers: &[String]) -> PropagationPolicy {
    if finalizers.iter().any(|f| f == FINALIZER_ORPHAN) {
        PropagationPolicy::Orphan
    } else if finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    }
}

/// Splits owner references into solid (present), dangling (absent or replaced) and waiting
/// (present, being deleted in the foreground).
async fn classify(
    shared: &Shared,
    owners: &[OwnerReference],
    namespace: Option<&str>,
) -> Result<
    (
        Vec<OwnerReference>,
        Vec<OwnerReference>,
        Vec<OwnerReference>,
    ),
    WorkError,
> {
    let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
    for owner in owners {
        let resource = resolve(shared, &owner.api_version, &owner.kind)?;
        match get_meta(shared, &resource, namespace, &owner.name).await? {
            Some(meta) if meta.uid.as_deref() == Some(owner.uid.as_str()) => {
                let foreground = meta
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FINALIZER_FOREGROUND);
                if meta.deletion_timestamp.is_some() && foreground {
                    waiting.push(owner.clone());
                } else {
                    solid.push(owner.clone());
                }
            }
            _ => dangling.push(owner.clone()),
        }
    }
    Ok((solid, dangling, waiting))
}

/// When a dependent of the item is itself deleting its dependents, the item's blocking
/// references to its waiting owners are cleared to break a possible cycle (upstream does the
/// same, accepting false positives).
async fn unblock_if_cyclic(
    shared: &Shared,
    node: &GraphNode,
    resource: &DiscoveredResource,
    owners: &[OwnerReference],
    waiting: &[OwnerReference],
) -> Result<(), WorkError> {
    let cyclic = {
        let graph = shared.graph.lock();
        node.dependents
            .iter()
            .any(|d| graph.node(d).is_some_and(|d| d.deleting_dependents))
    };
    if !cyclic {
        return Ok(());
    }
    let unblocked: Vec<OwnerReference> = owners
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if waiting.iter().any(|w| w.uid == o.uid) {
                o.block_owner_deletion = Some(false);
            }
            o
        })
        .collect();
    patch_list(
        shared,
        resource,
        &node.identity,
        "ownerReferences",
        json!(owners),
        json!(unblocked),
    )
    .await
}

async fn process_deleting_dependents(
    shared: &Shared,
    node: &GraphNode,
    resource: &DiscoveredResource,
) -> Result<(), WorkError> {
    let blocking: Vec<(String, bool)> = shared
        .graph
        .lock()
        .blocking_dependents(&node.identity.uid)
        .iter()
        .map(|d| (d.identity.uid.clone(), d.deleting_dependents))
        .collect();
    if blocking.is_empty() {
        tracing::info!(object = ?node.identity, "dependents deleted, removing foregroundDeletion finalizer");
        return remove_finalizer(shared, resource, &node.identity, FINALIZER_FOREGROUND).await;
    }
    for (uid, deleting) in blocking {
        if !deleting {
            shared.queue.add(Work::Delete(uid));
        }
    }
    Ok(())
}

#[tracing::instrument(skip(shared))]
async fn attempt_to_orphan(shared: &Shared, uid: &str) -> Result<(), WorkError> {
    let Some(node) = shared.graph.lock().node(uid).cloned() else {
        return Ok(());
    };
    let dependents: Vec<Identity> = {
        let graph = shared.graph.lock();
        node.dependents
            .iter()
            .filter_map(|d| graph.node(d).map(|n| n.identity.clone()))
            .collect()
    };
    for dep in &dependents {
        let resource = resolve(shared, &dep.api_version, &dep.kind)?;
        let Some(meta) = get_meta(shared, &resource, dep.namespace.as_deref(), &dep.name).await?
        else {
            continue;
        };
        if meta.uid.as_deref() != Some(dep.uid.as_str()) {
            continue;
        }
        let owners = meta.owner_references.unwrap_or_default();
        let kept: Vec<OwnerReference> = owners.iter().filter(|o| o.uid != uid).cloned().collect();
        if kept.len() != owners.len() {
            patch_list(
                shared,
                &resource,
                dep,
                "ownerReferences",
                json!(owners),
                json!(kept),
            )
            .await?;
        }
    }
    tracing::info!(object = ?node.identity, orphaned = dependents.len(), "dependents orphaned, removing orphan finalizer");
    let resource = resolve(shared, &node.identity.api_version, &node.identity.kind)?;
    remove_finalizer(shared, &resource, &node.identity, FINALIZER_ORPHAN).await
}

async fn remove_finalizer(
    shared: &Shared,
    resource: &DiscoveredResource,
    id: &Identity,
    finalizer: &str,
) -> Result<(), WorkError> {
    let Some(meta) = get_meta(shared, resource, id.namespace.as_deref(), &id.name).await? else {
        return Ok(());
    };
    if meta.uid.as_deref() != Some(id.uid.as_str()) {
        return Ok(());
    }
    let finalizers = meta.finalizers.unwrap_or_default();
    let kept: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
    if kept.len() == finalizers.len() {
        return Ok(());
    }
    patch_list(
        shared,
        resource,
        id,
        "finalizers",
        json!(finalizers),
        json!(kept),
    )
    .await
}

/// Replaces `metadata.<field>` if it still equals `old` on the object with this uid.
async fn patch_list(
    shared: &Shared,
    resource: &DiscoveredResource,
    id: &Identity,
    field: &str,
    old: serde_json::Value,
    new: serde_json::Value,
) -> Result<(), WorkError> {
    let path = format!("/metadata/{field}");
    let ops = json!([
        {"op": "test", "path": "/metadata/uid", "value": id.uid},
        {"op": "test", "path": path, "value": old},
        {"op": "replace", "path": path, "value": new},
    ]);
    let patch = Patch::Json::<()>(serde_json::from_value(ops)?);
    let api = dynamic_api(shared, resource, id.namespace.as_deref());
    match api.patch(&id.name, &PatchParams::default(), &patch).await {
        Ok(_) => Ok(()),
        Err(err) if is_not_found(&err) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

async fn delete_object(
    shared: &Shared,
    resource: &DiscoveredResource,
    id: &Identity,
    resource_version: Option<String>,
    policy: PropagationPolicy,
) -> Result<(), WorkError> {
    let params = DeleteParams {
        propagation_policy: Some(policy.clone()),
        preconditions: Some(Preconditions {
            uid: Some(id.uid.clone()),
            resource_version,
        }),
        ..DeleteParams::default()
    };
    let api = dynamic_api(shared, resource, id.namespace.as_deref());
    match api.delete(&id.name, &params).await {
        Ok(_) => {
            tracing::info!(object = ?id, policy = ?policy, "deleted object whose owners are gone");
            Ok(())
        }
        Err(err) if is_not_found(&err) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
