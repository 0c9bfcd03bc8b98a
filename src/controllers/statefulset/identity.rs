//! Stable identity and storage of StatefulSet pods (upstream `stateful_set_utils.go`):
//! names `<set>-<ordinal>`, hostname and subdomain, the pod-name/pod-index labels, one PVC
//! per volume claim template named `<claim>-<set>-<ordinal>`, and the claim owner
//! references demanded by `persistentVolumeClaimRetentionPolicy`.
//!
//! Pure functions only; [`super::control`] applies them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use crate::controllers::batch_common::history::REVISION_HASH_LABEL;
use crate::controllers::batch_common::ownership::controller_ref;

/// Label holding the pod's name (for per-pod Services).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label holding the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Upstream `getParentNameAndOrdinal`: `web-3` → (`web`, 3).
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

/// The pod's ordinal, if its name has one.
pub fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod.metadata.name.as_deref()?).map(|(_, o)| o)
}

/// Upstream `isMemberOf`: the pod's name says it belongs to the set.
pub fn is_member(set: &StatefulSet, pod: &Pod) -> bool {
    pod.metadata
        .name
        .as_deref()
        .and_then(parent_and_ordinal)
        .is_some_and(|(parent, _)| Some(parent) == set.metadata.name.as_deref())
}

/// `spec.ordinals.start`, 0 by default.
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// `spec.replicas`, 1 by default.
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.replicas.unwrap_or(1).max(0)
}

/// Whether an ordinal lies in `[start, start + replicas)`.
pub fn in_range(set: &StatefulSet, ord: i32) -> bool {
    let start = start_ordinal(set);
    ord >= start && ord < start.saturating_add(replicas(set))
}

/// `<set>-<ordinal>`.
pub fn pod_name(set: &StatefulSet, ord: i32) -> String {
    format!("{}-{ord}", set.name_any())
}

/// `<claim>-<set>-<ordinal>`.
pub fn claim_name(claim: &PersistentVolumeClaim, set: &StatefulSet, ord: i32) -> String {
    format!("{}-{}-{ord}", claim.name_any(), set.name_any())
}

/// The revision (name) a pod was created from.
pub fn pod_revision(pod: &Pod) -> &str {
    pod.labels()
        .get(REVISION_HASH_LABEL)
        .map_or("", String::as_str)
}

fn set_identity(set: &StatefulSet, pod: &mut Pod, ord: i32) {
    let name = pod_name(set, ord);
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
    pod.metadata.name = Some(name);
    pod.metadata.namespace = set.namespace();
}

/// Upstream `identityMatches`.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ord) = ordinal(pod).filter(|_| is_member(set, pod)) else {
        return false;
    };
    let labels = pod.labels();
    pod.metadata.namespace == set.metadata.namespace
        && labels.get(POD_NAME_LABEL) == pod.metadata.name.as_ref()
        && labels.get(POD_INDEX_LABEL) == Some(&ord.to_string())
}

/// Upstream `updateIdentity` (labels and name; hostname/subdomain are only set at creation).
pub fn fix_identity(set: &StatefulSet, pod: &mut Pod) {
    if let Some(ord) = ordinal(pod) {
        set_identity(set, pod, ord);
    }
}

/// Upstream `getPersistentVolumeClaims`: the claims a pod needs, by template name.
pub fn claims_for(set: &StatefulSet, ord: i32) -> BTreeMap<String, PersistentVolumeClaim> {
    let selector = set.spec.selector.match_labels.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for template in set.spec.volume_claim_templates.iter().flatten() {
        let mut claim = template.clone();
        claim.metadata.name = Some(claim_name(template, set, ord));
        claim.metadata.namespace = set.namespace();
        let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(selector.clone());
        claim.status = None;
        out.insert(template.name_any(), claim);
    }
    out
}

/// Upstream `storageMatches`.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ord) = ordinal(pod) else {
        return false;
    };
    let volumes = pod
        .spec
        .as_ref()
        .map(|s| s.volumes.clone().unwrap_or_default())
        .unwrap_or_default();
    claims_for(set, ord).iter().all(|(template, claim)| {
        volumes.iter().any(|v| {
            &v.name == template
                && v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| Some(&c.claim_name) == claim.metadata.name.as_ref())
        })
    })
}

/// Upstream `updateStorage`: one volume per claim template, replacing same-named volumes.
pub fn fix_storage(set: &StatefulSet, pod: &mut Pod) {
    let Some(ord) = ordinal(pod) else {
        return;
    };
    let claims = claims_for(set, ord);
    let spec = pod.spec.get_or_insert_with(Default::default);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(template, claim)| Volume {
            name: template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.name_any(),
                read_only: Some(false),
            }),
            ..Default::default()
        })
        .collect();
    volumes.extend(
        spec.volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !claims.contains_key(&v.name)),
    );
    spec.volumes = Some(volumes);
}

/// Upstream `newStatefulSetPod`: the pod for an ordinal, labelled with its revision.
pub fn new_pod(set: &StatefulSet, ord: i32, revision: &str) -> Pod {
    let template = set.spec.template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut pod = Pod {
        spec: template.spec,
        ..Default::default()
    };
    pod.metadata.labels = meta.labels;
    pod.metadata.annotations = meta.annotations;
    pod.metadata.finalizers = meta.finalizers;
    pod.metadata.owner_references = controller_ref(set).map(|r| vec![r]);
    set_identity(set, &mut pod, ord);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(pod_name(set, ord));
    spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    fix_storage(set, &mut pod);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_HASH_LABEL.into(), revision.into());
    pod
}

/// Which owners `persistentVolumeClaimRetentionPolicy` wants on a pod's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimOwners {
    /// Owned by the StatefulSet (deleted with it).
    pub set: bool,
    /// Owned by the pod (deleted with it, i.e. on scale-down).
    pub pod: bool,
}

/// Upstream `updateClaimOwnerRefForSetAndPod`'s policy table.
pub fn wanted_claim_owners(set: &StatefulSet, pod_scaled_down: bool) -> ClaimOwners {
    let policy = set.spec.persistent_volume_claim_retention_policy.as_ref();
    let deleted = policy.and_then(|p| p.when_deleted.as_deref()) == Some("Delete");
    let scaled = policy.and_then(|p| p.when_scaled.as_deref()) == Some("Delete");
    match (scaled, deleted) {
        (false, false) => ClaimOwners {
            set: false,
            pod: false,
        },
        (false, true) => ClaimOwners {
            set: true,
            pod: false,
        },
        (true, false) => ClaimOwners {
            set: false,
            pod: pod_scaled_down,
        },
        (true, true) => ClaimOwners {
            set: !pod_scaled_down,
            pod: pod_scaled_down,
        },
    }
}

/// Applies wanted owners to a claim's references; returns the new list if it changed.
pub fn claim_owner_refs(
    current: &[OwnerReference],
    set_ref: &OwnerReference,
    pod_ref: Option<&OwnerReference>,
    wanted: ClaimOwners,
) -> Option<Vec<OwnerReference>> {
    let mut refs = current.to_vec();
    let mut changed = false;
    let mut apply = |owner: &OwnerReference, want: bool| {
        let has = refs.iter().any(|r| r.uid == owner.uid);
        if want && !has {
            refs.push(OwnerReference {
                controller: None,
                block_owner_deletion: None,
                ..owner.clone()
            });
            changed = true;
        } else if !want && has {
            refs.retain(|r| r.uid != owner.uid);
            changed = true;
        }
    };
    apply(set_ref, wanted.set);
    if let Some(p) = pod_ref {
        apply(p, wanted.pod);
    }
    changed.then_some(refs)
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
