//! ControllerRef bookkeeping: finding an object's controlling owner, building
//! controller references, and claiming objects (adopt matching orphans,
//! release owned objects that stopped matching) like upstream's
//! `ControllerRefManager`.
//!
//! The decision of what to do with each object is a pure function
//! ([`claim_decision`]) so it can be tested without a server; the patches it
//! leads to are the strategic-merge patches upstream sends, carrying the
//! object's UID as a precondition. A failed adopt or release is reported as
//! an error after every object has been looked at, so one bad object does not
//! hide the others; objects that vanished meanwhile are silently skipped.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, Patch, PatchParams};
use kube::core::Resource;
use serde_json::{Value, json};

use super::error::ControllerError;

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A controller reference to `owner` (upstream's `NewControllerRef`): both
/// `controller` and `blockOwnerDeletion` are set.
pub fn new_controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The strategic-merge patch that makes `owner` the controller of the object
/// with `object_uid`.
pub fn adopt_patch(owner: &OwnerReference, object_uid: &str) -> Value {
    json!({
        "metadata": {
            "ownerReferences": [{
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": owner.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
            "uid": object_uid,
        }
    })
}

/// The strategic-merge patch that removes the reference to `owner_uid` from
/// the object with `object_uid`.
pub fn release_patch(owner_uid: &str, object_uid: &str) -> Value {
    json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
            "uid": object_uid,
        }
    })
}

/// What claiming should do with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Already ours and still matching: it belongs to the owner.
    Keep,
    /// A matching orphan: adopt it.
    Adopt,
    /// Ours but no longer matching: release it.
    Release,
    /// Not ours to touch.
    Ignore,
}

/// The owner side of a claim.
#[derive(Debug, Clone)]
pub struct Claimant {
    /// Controller reference to set on adopted objects.
    pub reference: OwnerReference,
    /// Namespace of the owner.
    pub namespace: String,
    /// Whether the owner has a deletion timestamp.
    pub deleting: bool,
}

/// Upstream's `ClaimObject` decision for one object.
pub fn claim_decision(claimant: &Claimant, object: &ObjectMeta, matches: bool) -> Claim {
    if let Some(owner) = controller_of(object) {
        if owner.uid != claimant.reference.uid {
            return Claim::Ignore;
        }
        if matches {
            return Claim::Keep;
        }
        // Being deleted, the owner leaves its objects to the garbage collector.
        return if claimant.deleting {
            Claim::Ignore
        } else {
            Claim::Release
        };
    }
    if claimant.deleting || !matches || object.deletion_timestamp.is_some() {
        return Claim::Ignore;
    }
    if object.namespace.as_deref().unwrap_or_default() != claimant.namespace {
        return Claim::Ignore;
    }
    Claim::Adopt
}

/// Claims `objects` for `claimant`: returns the ones it controls afterwards.
///
/// `recheck` runs once, before the first adoption, and must fail if the
/// owner is gone or being deleted (a fresh read, not the cache).
pub async fn claim<K, F>(
    api: &Api<K>,
    kind: &'static str,
    claimant: &Claimant,
    objects: Vec<Arc<K>>,
    matches: F,
    recheck: impl AsyncFnOnce() -> Result<(), ControllerError>,
) -> Result<Vec<Arc<K>>, ControllerError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let mut recheck = Some(recheck);
    let mut claimed = Vec::new();
    let mut errors = Vec::new();
    for object in objects {
        let meta = object.meta();
        let name = meta.name.clone().unwrap_or_default();
        let uid = meta.uid.clone().unwrap_or_default();
        match claim_decision(claimant, meta, matches(&object)) {
            Claim::Keep => claimed.push(object),
            Claim::Ignore => {}
            Claim::Release => {
                let patch = release_patch(&claimant.reference.uid, &uid);
                if let Err(err) = send_patch(api, kind, &name, patch, "release").await
                    && !err.is_not_found()
                    && !err.is_invalid()
                {
                    errors.push(err);
                }
            }
            Claim::Adopt => {
                if let Some(check) = recheck.take()
                    && let Err(err) = check().await
                {
                    // Without a live owner nothing may be adopted this round.
                    errors.push(err);
                    break;
                }
                let patch = adopt_patch(&claimant.reference, &uid);
                match send_patch(api, kind, &name, patch, "adopt").await {
                    Ok(adopted) => claimed.push(Arc::new(adopted)),
                    Err(err) if err.is_not_found() => {}
                    Err(err) => errors.push(err),
                }
            }
        }
    }
    match ControllerError::aggregate(errors) {
        Some(err) => Err(err),
        None => Ok(claimed),
    }
}

async fn send_patch<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    patch: Value,
    action: &'static str,
) -> Result<K, ControllerError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map_err(|e| {
            ControllerError::api(action, kind, api.namespace().unwrap_or_default(), name, e)
        })
}

/// Upstream's `RecheckDeletionTimestamp`: adoption needs a live owner, read
/// fresh from the server rather than from the cache.
pub async fn recheck_owner<K>(
    api: &Api<K>,
    kind: &'static str,
    meta: &ObjectMeta,
) -> Result<(), ControllerError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let ns = meta.namespace.as_deref().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    let fresh = api
        .get(name)
        .await
        .map_err(|e| ControllerError::api("get", kind, ns, name, e))?;
    let refuse = |reason: String| ControllerError::Adoption {
        kind,
        namespace: ns.to_owned(),
        name: name.to_owned(),
        reason,
    };
    let fresh = fresh.meta();
    if fresh.uid != meta.uid {
        return Err(refuse(format!(
            "original {kind} is gone: got uid {}, wanted {}",
            fresh.uid.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default()
        )));
    }
    if fresh.deletion_timestamp.is_some() {
        return Err(refuse("it has just been deleted".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn claimant(deleting: bool) -> Claimant {
        let owner = ObjectMeta {
            name: Some("rs".into()),
            uid: Some("owner-uid".into()),
            ..Default::default()
        };
        Claimant {
            reference: new_controller_ref("apps/v1", "ReplicaSet", &owner),
            namespace: "ns".into(),
            deleting,
        }
    }

    fn object(controller_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some("p-uid".into()),
            owner_references: controller_uid.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_owned_matching_and_releases_owned_non_matching() {
        let c = claimant(false);
        assert_eq!(
            claim_decision(&c, &object(Some("owner-uid")), true),
            Claim::Keep
        );
        assert_eq!(
            claim_decision(&c, &object(Some("owner-uid")), false),
            Claim::Release
        );
        // A deleting owner still keeps what it owns but releases nothing.
        let d = claimant(true);
        assert_eq!(
            claim_decision(&d, &object(Some("owner-uid")), true),
            Claim::Keep
        );
        assert_eq!(
            claim_decision(&d, &object(Some("owner-uid")), false),
            Claim::Ignore
        );
    }

    #[test]
    fn adopts_only_live_matching_orphans_in_the_same_namespace() {
        let c = claimant(false);
        assert_eq!(claim_decision(&c, &object(None), true), Claim::Adopt);
        assert_eq!(claim_decision(&c, &object(None), false), Claim::Ignore);
        assert_eq!(
            claim_decision(&claimant(true), &object(None), true),
            Claim::Ignore
        );
        let mut terminating = object(None);
        terminating.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(claim_decision(&c, &terminating, true), Claim::Ignore);
        let mut elsewhere = object(None);
        elsewhere.namespace = Some("other".into());
        assert_eq!(claim_decision(&c, &elsewhere, true), Claim::Ignore);
    }

    #[test]
    fn ignores_objects_of_other_controllers() {
        let c = claimant(false);
        assert_eq!(
            claim_decision(&c, &object(Some("someone")), true),
            Claim::Ignore
        );
    }

    #[test]
    fn patches_carry_uid_precondition_and_controller_flags() {
        let c = claimant(false);
        let adopt = adopt_patch(&c.reference, "p-uid");
        assert_eq!(adopt["metadata"]["uid"], "p-uid");
        assert_eq!(adopt["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            adopt["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        let release = release_patch("owner-uid", "p-uid");
        assert_eq!(
            release["metadata"]["ownerReferences"][0]["$patch"],
            "delete"
        );
        assert_eq!(
            release["metadata"]["ownerReferences"][0]["uid"],
            "owner-uid"
        );
    }
}
