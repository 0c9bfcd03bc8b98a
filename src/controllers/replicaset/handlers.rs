//! Which ReplicaSets to sync when a watched object changes, and the
//! expectation bookkeeping those changes settle — upstream's
//! `addPod`/`updatePod`/`deletePod` and ReplicaSet handlers.
//!
//! A pod with a controller reference concerns only that ReplicaSet; an
//! orphan concerns every ReplicaSet whose selector matches it (one of them
//! may adopt it). A pod that shows up already terminating counts as a
//! deletion, not a creation, so a restarted controller does not mistake it
//! for one of its own creations.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;

use super::{Context, namespace};
use crate::client::informer::{Change, key_of};
use crate::controllers::label_selector::LabelMatcher;
use crate::controllers::owner;

type Targets = Vec<ObjectRef<ReplicaSet>>;

impl Context {
    /// ReplicaSets to sync after a ReplicaSet change.
    pub(super) fn on_replica_set_change(&self, change: Change<ReplicaSet>) -> Targets {
        match change {
            Change::Added(rs) | Change::Updated { new: rs, .. } => vec![ObjectRef::from_obj(&*rs)],
            Change::Deleted(rs) => {
                self.expectations.forget(&key_of(&*rs));
                Vec::new()
            }
            Change::Synced => Vec::new(),
        }
    }

    /// ReplicaSets to sync after a pod change.
    pub(super) fn on_pod_change(&self, change: Change<Pod>) -> Targets {
        match change {
            Change::Added(pod) => self.pod_added(&pod),
            Change::Updated { old, new } => self.pod_updated(&old, &new),
            Change::Deleted(pod) => self.pod_deleted(&pod),
            Change::Synced => Vec::new(),
        }
    }

    fn pod_added(&self, pod: &Pod) -> Targets {
        if pod.metadata.deletion_timestamp.is_some() {
            return self.pod_deleted(pod);
        }
        if let Some(reference) = owner::controller_of(&pod.metadata) {
            let Some(rs) = self.resolve_controller_ref(namespace(&pod.metadata), reference) else {
                return Vec::new();
            };
            self.expectations.creation_observed(&key_of(&*rs));
            return vec![ObjectRef::from_obj(&*rs)];
        }
        // No controller is waiting for an orphan; just offer it for adoption.
        self.matching_replica_sets(pod)
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) -> Targets {
        if old.metadata.resource_version == new.metadata.resource_version {
            return Vec::new();
        }
        let labels_changed = old.metadata.labels != new.metadata.labels;
        if new.metadata.deletion_timestamp.is_some() {
            // Graceful deletion: act now rather than when the kubelet finishes.
            let mut targets = self.pod_deleted(new);
            if labels_changed {
                targets.extend(self.pod_deleted(old));
            }
            return targets;
        }
        let (old_ref, new_ref) = (
            owner::controller_of(&old.metadata),
            owner::controller_of(&new.metadata),
        );
        let ref_changed = old_ref != new_ref;
        let mut targets = Vec::new();
        if ref_changed
            && let Some(reference) = old_ref
            && let Some(rs) = self.resolve_controller_ref(namespace(&old.metadata), reference)
        {
            targets.push(ObjectRef::from_obj(&*rs));
        }
        if let Some(reference) = new_ref {
            if let Some(rs) = self.resolve_controller_ref(namespace(&new.metadata), reference) {
                targets.push(ObjectRef::from_obj(&*rs));
            }
            return targets;
        }
        if labels_changed || ref_changed {
            targets.extend(self.matching_replica_sets(new));
        }
        targets
    }

    fn pod_deleted(&self, pod: &Pod) -> Targets {
        let Some(reference) = owner::controller_of(&pod.metadata) else {
            return Vec::new();
        };
        let Some(rs) = self.resolve_controller_ref(namespace(&pod.metadata), reference) else {
            return Vec::new();
        };
        let rs_key = key_of(&*rs);
        self.expectations.deletion_observed(&rs_key, &key_of(pod));
        vec![ObjectRef::from_obj(&*rs)]
    }

    /// ReplicaSets in the pod's namespace whose selector matches it
    /// (upstream's `getPodReplicaSets`).
    fn matching_replica_sets(&self, pod: &Pod) -> Targets {
        let ns = namespace(&pod.metadata);
        self.replica_sets
            .state_filter(|rs| namespace(&rs.metadata) == ns && selects(rs, pod))
            .iter()
            .map(|rs| ObjectRef::from_obj(&**rs))
            .collect()
    }
}

fn selects(rs: &ReplicaSet, pod: &Pod) -> bool {
    let selector = Some(&rs.spec.selector);
    // An empty selector would claim every pod; upstream skips those here.
    if crate::controllers::label_selector::selects_everything(selector) {
        return false;
    }
    LabelMatcher::parse(selector).is_ok_and(|m| m.matches(pod.metadata.labels.as_ref()))
}
