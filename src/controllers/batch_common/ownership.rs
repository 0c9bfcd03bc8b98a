//! Controller references: building them, reading them, and claiming children (upstream's
//! `ControllerRefManager`: keep what we own, adopt matching orphans, release what no longer
//! matches).
//!
//! The decision of what to adopt or release is a pure function ([`plan_claims`]) so it can be
//! tested without an apiserver; the patches are strategic merge patches that carry the
//! child's `uid`, which makes the apiserver reject them if the name now belongs to a
//! different object. Adoption first re-reads the owner with a quorum GET (upstream's
//! `RecheckDeletionTimestamp`): a cached owner may already be gone or deleting, and adopting
//! into a dying owner would hand the child to the garbage collector.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::error::{ControllerError, is_not_found};

/// The controller reference an owner puts on the children it creates.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let meta = owner.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether the object's controller reference points at the owner with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == owner_uid)
}

/// Whether the controller reference names a `kind` in API group `group` ("" for core).
pub fn ref_is_kind(reference: &OwnerReference, group: &str, kind: &str) -> bool {
    let ref_group = reference
        .api_version
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    reference.kind == kind && ref_group == group
}

/// What claiming a set of candidate children decided.
#[derive(Debug)]
pub struct ClaimPlan<C> {
    /// Children the owner already controls and that still match.
    pub owned: Vec<Arc<C>>,
    /// Orphans that match and should be adopted.
    pub adopt: Vec<Arc<C>>,
    /// Controlled children that no longer match and should be released.
    pub release: Vec<Arc<C>>,
}

/// Decides, for children in the owner's namespace, which are kept, adopted or released.
///
/// Mirrors upstream `ClaimObject`: children controlled by someone else are ignored; while
/// the owner is deleting nothing is adopted or released; deleting orphans are not adopted.
pub fn plan_claims<C: Resource>(
    candidates: Vec<Arc<C>>,
    owner_uid: &str,
    owner_deleting: bool,
    matches: impl Fn(&C) -> bool,
) -> ClaimPlan<C> {
    let mut plan = ClaimPlan {
        owned: Vec::new(),
        adopt: Vec::new(),
        release: Vec::new(),
    };
    for child in candidates {
        match controller_of(child.meta()) {
            Some(r) if r.uid != owner_uid => {}
            Some(_) if matches(&child) => plan.owned.push(child),
            Some(_) if !owner_deleting => plan.release.push(child),
            Some(_) => {}
            None if owner_deleting || !matches(&child) => {}
            None if child.meta().deletion_timestamp.is_some() => {}
            None => plan.adopt.push(child),
        }
    }
    plan
}

/// Executes a claim plan: adopts (after `recheck` confirms the owner) and releases.
///
/// Returns the children the owner controls afterwards. `extra_finalizers` are added to
/// adopted children in the same patch (the Job controller's tracking finalizer).
pub async fn execute_claims<C, F, Fut>(
    api: &Api<C>,
    plan: ClaimPlan<C>,
    owner_ref: &OwnerReference,
    extra_finalizers: &[&str],
    recheck: F,
) -> Result<Vec<Arc<C>>, ControllerError>
where
    C: Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + Debug,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), ControllerError>>,
{
    let ClaimPlan {
        mut owned,
        adopt,
        release,
    } = plan;
    for child in &release {
        release_child(api, child.as_ref(), &owner_ref.uid).await?;
    }
    if !adopt.is_empty() {
        recheck().await?;
        for child in adopt {
            if let Some(adopted) =
                adopt_child(api, child.as_ref(), owner_ref, extra_finalizers).await?
            {
                owned.push(Arc::new(adopted));
            }
        }
    }
    Ok(owned)
}

/// Adds the controller reference (and finalizers) to an orphan; `None` if it vanished.
async fn adopt_child<C>(
    api: &Api<C>,
    child: &C,
    owner_ref: &OwnerReference,
    finalizers: &[&str],
) -> Result<Option<C>, ControllerError>
where
    C: Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + Debug,
{
    let mut meta = json!({
        "ownerReferences": [owner_ref],
        "uid": child.meta().uid,
    });
    if !finalizers.is_empty() {
        meta["finalizers"] = json!(finalizers);
    }
    let patch = Patch::Strategic(json!({ "metadata": meta }));
    match api
        .patch(&child.name_any(), &PatchParams::default(), &patch)
        .await
    {
        Ok(c) => Ok(Some(c)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the owner's reference from a child that no longer matches its selector.
async fn release_child<C>(api: &Api<C>, child: &C, owner_uid: &str) -> Result<(), ControllerError>
where
    C: Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + Debug,
{
    let patch = Patch::Strategic(json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
            "uid": child.meta().uid,
        }
    }));
    match api
        .patch(&child.name_any(), &PatchParams::default(), &patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Re-reads the owner and fails unless it is the same object and not being deleted.
pub async fn recheck_owner<K>(api: &Api<K>, owner: &K) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + k8s_openapi::serde::de::DeserializeOwned + Debug,
{
    let name = owner.name_any();
    let fresh = api.get(&name).await?;
    if fresh.meta().uid != owner.meta().uid {
        return Err(ControllerError::OwnerGone(format!(
            "original {} {}/{} is gone: got uid {:?}, wanted {:?}",
            K::kind(&()),
            owner.namespace().unwrap_or_default(),
            name,
            fresh.meta().uid,
            owner.meta().uid
        )));
    }
    if fresh.meta().deletion_timestamp.is_some() {
        return Err(ControllerError::OwnerGone(format!(
            "{}/{} has just been deleted at {:?}",
            owner.namespace().unwrap_or_default(),
            name,
            fresh.meta().deletion_timestamp
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, controller: Option<&str>, app: &str) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        if let Some(uid) = controller {
            p.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "j".into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]);
        }
        Arc::new(p)
    }

    fn names(v: &[Arc<Pod>]) -> Vec<String> {
        v.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn claims_keep_adopt_release_and_ignore_foreign_children() {
        let candidates = vec![
            pod("mine", Some("owner"), "web"),
            pod("stale", Some("owner"), "db"),
            pod("orphan", None, "web"),
            pod("stranger", None, "db"),
            pod("theirs", Some("other"), "web"),
        ];
        let is_web = |p: &Pod| p.labels().get("app").is_some_and(|a| a == "web");
        let plan = plan_claims(candidates, "owner", false, is_web);
        assert_eq!(names(&plan.owned), ["mine"]);
        assert_eq!(names(&plan.adopt), ["orphan"]);
        assert_eq!(names(&plan.release), ["stale"]);
    }

    #[test]
    fn deleting_owner_neither_adopts_nor_releases() {
        let candidates = vec![
            pod("stale", Some("owner"), "db"),
            pod("orphan", None, "web"),
        ];
        let plan = plan_claims(candidates, "owner", true, |p: &Pod| {
            p.labels().get("app").is_some_and(|a| a == "web")
        });
        assert!(plan.adopt.is_empty() && plan.release.is_empty() && plan.owned.is_empty());
    }

    #[test]
    fn ref_kind_check_compares_group_and_kind() {
        let r = OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            ..Default::default()
        };
        assert!(ref_is_kind(&r, "batch", "Job"));
        assert!(!ref_is_kind(&r, "apps", "Job"));
        let core = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            ..Default::default()
        };
        assert!(ref_is_kind(&core, "", "Pod"));
    }
}
