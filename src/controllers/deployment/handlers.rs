//! Which Deployments to sync when a watched object changes (upstream's
//! deployment, ReplicaSet and pod event handlers).
//!
//! A ReplicaSet with a controller reference concerns only that deployment;
//! an orphan concerns every deployment whose selector matches it. Pods only
//! matter to Recreate deployments, which wait for old pods to disappear.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;

use super::{Context, KIND, namespace, scaling};
use crate::client::informer::Change;
use crate::controllers::label_selector::{LabelMatcher, selects_everything};
use crate::controllers::owner;

type Targets = Vec<ObjectRef<Deployment>>;

impl Context {
    /// Deployments to sync after a deployment change.
    pub(super) fn on_deployment_change(&self, change: Change<Deployment>) -> Targets {
        match change {
            Change::Added(d) | Change::Updated { new: d, .. } => vec![ObjectRef::from_obj(&*d)],
            Change::Deleted(_) | Change::Synced => Vec::new(),
        }
    }

    /// Deployments to sync after a ReplicaSet change.
    pub(super) fn on_replica_set_change(&self, change: Change<ReplicaSet>) -> Targets {
        match change {
            Change::Added(rs) => {
                if rs.metadata.deletion_timestamp.is_some() {
                    return self.owner_of(&rs);
                }
                match owner::controller_of(&rs.metadata) {
                    Some(_) => self.owner_of(&rs),
                    None => self.matching_deployments(&rs),
                }
            }
            Change::Updated { old, new } => self.replica_set_updated(&old, &new),
            Change::Deleted(rs) => self.owner_of(&rs),
            Change::Synced => Vec::new(),
        }
    }

    fn replica_set_updated(&self, old: &ReplicaSet, new: &ReplicaSet) -> Targets {
        if old.metadata.resource_version == new.metadata.resource_version {
            return Vec::new();
        }
        let (old_ref, new_ref) = (
            owner::controller_of(&old.metadata),
            owner::controller_of(&new.metadata),
        );
        let ref_changed = old_ref != new_ref;
        let mut targets = Vec::new();
        if ref_changed && let Some(reference) = old_ref {
            targets.extend(self.resolve(namespace(&old.metadata), reference));
        }
        if let Some(reference) = new_ref {
            targets.extend(self.resolve(namespace(&new.metadata), reference));
            return targets;
        }
        if ref_changed || old.metadata.labels != new.metadata.labels {
            targets.extend(self.matching_deployments(new));
        }
        targets
    }

    /// Deployments to sync after a pod change: a Recreate deployment whose
    /// old pod went away may now create its new ReplicaSet.
    pub(super) fn on_pod_change(&self, change: Change<Pod>) -> Targets {
        let Change::Deleted(pod) = change else {
            return Vec::new();
        };
        let Some(reference) = owner::controller_of(&pod.metadata) else {
            return Vec::new();
        };
        if reference.kind != "ReplicaSet" {
            return Vec::new();
        }
        let ns = namespace(&pod.metadata);
        let Some(rs) = self
            .replica_sets
            .get(&ObjectRef::new(&reference.name).within(ns))
        else {
            return Vec::new();
        };
        if rs.metadata.uid.as_deref() != Some(reference.uid.as_str()) {
            return Vec::new();
        }
        self.owner_of(&rs)
            .into_iter()
            .filter(|r| {
                self.deployments
                    .get(r)
                    .is_some_and(|d| scaling::is_recreate(&d))
            })
            .collect()
    }

    fn owner_of(&self, rs: &ReplicaSet) -> Targets {
        match owner::controller_of(&rs.metadata) {
            Some(reference) => self
                .resolve(namespace(&rs.metadata), reference)
                .into_iter()
                .collect(),
            None => Vec::new(),
        }
    }

    /// The deployment a controller reference points at, if known with the
    /// same UID.
    fn resolve(&self, ns: &str, reference: &OwnerReference) -> Option<ObjectRef<Deployment>> {
        if reference.kind != KIND {
            return None;
        }
        let key = ObjectRef::new(&reference.name).within(ns);
        let d: Arc<Deployment> = self.deployments.get(&key)?;
        (d.metadata.uid.as_deref() == Some(reference.uid.as_str())).then_some(key)
    }

    /// Deployments in the ReplicaSet's namespace selecting it (upstream's
    /// `getDeploymentsForReplicaSet`); empty selectors select nothing here.
    fn matching_deployments(&self, rs: &ReplicaSet) -> Targets {
        let ns = namespace(&rs.metadata);
        let found: Vec<Arc<Deployment>> = self.deployments.state_filter(|d| {
            namespace(&d.metadata) == ns
                && !selects_everything(Some(&d.spec.selector))
                && LabelMatcher::parse(Some(&d.spec.selector))
                    .is_ok_and(|m| m.matches(rs.metadata.labels.as_ref()))
        });
        if found.len() > 1 {
            tracing::info!(
                replicaset = rs.metadata.name.as_deref().unwrap_or_default(),
                "more than one deployment selects this ReplicaSet"
            );
        }
        found.iter().map(|d| ObjectRef::from_obj(&**d)).collect()
    }
}
