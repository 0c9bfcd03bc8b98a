//! Pod and claim writes of the StatefulSet controller (upstream `StatefulPodControl`), with
//! upstream's event reasons and messages ("create Pod web-0 in StatefulSet web successful").
//!
//! Claims are created before their pod and never deleted here: deletion is left to the
//! garbage collector through the owner references the retention policy asks for.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Ctx;
use super::identity::{
    ClaimOwners, claim_owner_refs, claims_for, in_range, ordinal, wanted_claim_owners,
};
use crate::controllers::batch_common::ControllerError;
use crate::controllers::batch_common::error::{is_already_exists, is_not_found};
use crate::controllers::batch_common::runtime::object_ref;

/// A non-controller owner reference to the set.
pub(super) fn set_ref(set: &StatefulSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: set.name_any(),
        uid: set.uid().unwrap_or_default(),
        ..Default::default()
    }
}

/// A non-controller owner reference to a pod.
pub(super) fn pod_ref(pod: &Pod) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.metadata.name.clone()?,
        uid: pod.metadata.uid.clone()?,
        ..Default::default()
    })
}

fn pod_event(ctx: &Ctx, set: &StatefulSet, verb: &str, pod: &str, error: Option<&ControllerError>) {
    match error {
        None => {
            let reason = format!("Successful{}", capitalize(verb));
            ctx.events.normal(
                set,
                &reason,
                format!(
                    "{verb} Pod {pod} in StatefulSet {} successful",
                    set.name_any()
                ),
            );
        }
        Some(e) => {
            let reason = format!("Failed{}", capitalize(verb));
            let note = format!(
                "{verb} Pod {pod} in StatefulSet {} failed error: {e}",
                set.name_any()
            );
            ctx.events.warning(set, &reason, note);
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// The claims a pod should use whose owner references the policy wants changed, with the
/// new reference lists.
pub(super) fn claims_needing_owners(
    ctx: &Ctx,
    set: &StatefulSet,
    pod: &Pod,
) -> Vec<(Arc<PersistentVolumeClaim>, Vec<OwnerReference>)> {
    let Some(ord) = ordinal(pod) else {
        return Vec::new();
    };
    let wanted: ClaimOwners = wanted_claim_owners(set, !in_range(set, ord));
    let (sref, pref) = (set_ref(set), pod_ref(pod));
    let ns = set.namespace().unwrap_or_default();
    claims_for(set, ord)
        .values()
        .filter_map(|c| ctx.claims.get(&object_ref(&ns, &c.name_any())))
        .filter_map(|c| {
            let current = c.metadata.owner_references.clone().unwrap_or_default();
            claim_owner_refs(&current, &sref, pref.as_ref(), wanted).map(|refs| (c, refs))
        })
        .collect()
}

/// Upstream `UpdatePodClaimForRetentionPolicy`.
pub(super) async fn update_claim_owners(
    ctx: &Ctx,
    set: &StatefulSet,
    pod: &Pod,
) -> Result<(), ControllerError> {
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    for (claim, refs) in claims_needing_owners(ctx, set, pod) {
        let patch = Patch::Merge(json!({"metadata": {
            "ownerReferences": refs,
            "resourceVersion": claim.metadata.resource_version,
        }}));
        match api
            .patch(&claim.name_any(), &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Upstream `createPersistentVolumeClaims`: creates the pod's missing claims.
pub(super) async fn create_claims(
    ctx: &Ctx,
    set: &StatefulSet,
    pod: &Pod,
) -> Result<(), ControllerError> {
    let Some(ord) = ordinal(pod) else {
        return Ok(());
    };
    let ns = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let mut first_error = None;
    for claim in claims_for(set, ord).into_values() {
        let name = claim.name_any();
        if let Some(existing) = ctx.claims.get(&object_ref(&ns, &name)) {
            if existing.metadata.deletion_timestamp.is_some() {
                first_error.get_or_insert(ControllerError::InvalidSpec {
                    field: "volumeClaimTemplates",
                    reason: format!("pvc {name} is being deleted"),
                });
            }
            continue;
        }
        let pod_name = pod.name_any();
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => {
                let note = format!(
                    "create Claim {name} Pod {pod_name} in StatefulSet {} success",
                    set.name_any()
                );
                ctx.events.normal(set, "SuccessfulCreate", note);
            }
            Err(e) if is_already_exists(&e) => {}
            Err(e) => {
                let note = format!(
                    "create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: {e}",
                    set.name_any()
                );
                ctx.events.warning(set, "FailedCreate", note);
                first_error.get_or_insert(e.into());
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Upstream `CreateStatefulPod`: claims first, then the pod, then claim owners.
///
/// Returns false if a pod with that name still exists (an old one terminating).
pub(super) async fn create_pod(
    ctx: &Ctx,
    set: &StatefulSet,
    pod: &Pod,
) -> Result<bool, ControllerError> {
    let name = pod.name_any();
    if let Err(e) = create_claims(ctx, set, pod).await {
        pod_event(ctx, set, "create", &name, Some(&e));
        return Err(e);
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let created = match api.create(&PostParams::default(), pod).await {
        Ok(p) => p,
        Err(e) if is_already_exists(&e) => return Ok(false),
        Err(e) => {
            let err = ControllerError::from(e);
            pod_event(ctx, set, "create", &name, Some(&err));
            return Err(err);
        }
    };
    ctx.expectations.expect_creation(
        &set.uid().unwrap_or_default(),
        &name,
        &created.uid().unwrap_or_default(),
    );
    let result = update_claim_owners(ctx, set, &created).await;
    pod_event(ctx, set, "create", &name, None);
    result.map(|()| true)
}

/// Upstream `DeleteStatefulPod`.
pub(super) async fn delete_pod(
    ctx: &Ctx,
    set: &StatefulSet,
    pod: &Pod,
) -> Result<(), ControllerError> {
    let name = pod.name_any();
    let owner = set.uid().unwrap_or_default();
    ctx.expectations
        .expect_deletion(&owner, &name, &pod.uid().unwrap_or_default());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let result = match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => {
            ctx.expectations
                .forget_child(&owner, &pod.uid().unwrap_or_default());
            Err(e.into())
        }
    };
    pod_event(ctx, set, "delete", &name, result.as_ref().err());
    result
}

/// Upstream `UpdateStatefulPod`: writes a pod whose identity or storage was fixed.
pub(super) async fn update_pod(
    ctx: &Ctx,
    set: &StatefulSet,
    pod: &Pod,
) -> Result<(), ControllerError> {
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let result = api
        .replace(&name, &PostParams::default(), pod)
        .await
        .map(|_| ())
        .map_err(ControllerError::from);
    pod_event(ctx, set, "update", &name, result.as_ref().err());
    result
}
