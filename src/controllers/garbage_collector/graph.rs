//! The garbage collector's dependency graph (upstream `GraphBuilder.uidToNode`): one node per
//! object uid with its owner references, the reverse edges to its dependents, and deletion
//! state. Owners referenced before (or without) being observed get *virtual* nodes that the
//! workers verify against the apiserver.
//!
//! The graph is pure bookkeeping: every change returns the [`Work`] it implies (objects whose
//! owners may now be gone, owners that may be done waiting for their dependents) and the
//! workers decide with live reads. Keeping it free of I/O makes the event semantics — which
//! mirror upstream's `processGraphChanges` — unit-testable.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Finalizer asking the collector to orphan an object's dependents before it goes.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// Finalizer asking the collector to delete an object's dependents before it goes.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// Coordinates of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (for virtual owners: the namespace of the dependent that named them).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// An object as seen by a watch.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Its coordinates.
    pub identity: Identity,
    /// Its `metadata.ownerReferences`.
    pub owners: Vec<OwnerReference>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub being_deleted: bool,
    /// Its `metadata.finalizers`.
    pub finalizers: Vec<String>,
}

/// A graph node.
#[derive(Debug, Clone)]
pub struct GraphNode {
    /// Coordinates (from the object, or from an owner reference while virtual).
    pub identity: Identity,
    /// Owner references of the object.
    pub owners: Vec<OwnerReference>,
    /// UIDs of objects naming this one as owner.
    pub dependents: BTreeSet<String>,
    /// The object has a deletionTimestamp.
    pub being_deleted: bool,
    /// The object is being deleted in the foreground (waits for blocking dependents).
    pub deleting_dependents: bool,
    /// Known only from an owner reference, not (yet) observed.
    pub virtual_node: bool,
}

/// Work the graph asks the workers to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Check whether the object (by uid) should be deleted, or its owners released
    /// (upstream `attemptToDelete`).
    Delete(String),
    /// Orphan the object's dependents and release its `orphan` finalizer.
    Orphan(String),
}

/// The dependency graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, GraphNode>,
}

impl Graph {
    /// The node of `uid`.
    pub fn node(&self, uid: &str) -> Option<&GraphNode> {
        self.nodes.get(uid)
    }

    /// Number of nodes (virtual ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `uid` whose reference to it has `blockOwnerDeletion: true`.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&GraphNode> {
        let Some(node) = self.nodes.get(uid) else {
            return Vec::new();
        };
        node.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            })
            .collect()
    }

    /// Records an added or updated object.
    pub fn upsert(&mut self, observed: Observed) -> Vec<Work> {
        let uid = observed.identity.uid.clone();
        let mut work = Vec::new();
        let previous_owners = match self.nodes.get_mut(&uid) {
            Some(node) => {
                node.identity = observed.identity.clone();
                node.virtual_node = false;
                node.being_deleted |= observed.being_deleted;
                std::mem::replace(&mut node.owners, observed.owners.clone())
            }
            None => {
                self.nodes.insert(
                    uid.clone(),
                    GraphNode {
                        identity: observed.identity.clone(),
                        owners: observed.owners.clone(),
                        dependents: BTreeSet::new(),
                        being_deleted: observed.being_deleted,
                        deleting_dependents: false,
                        virtual_node: false,
                    },
                );
                Vec::new()
            }
        };
        self.rewire_owners(&observed, &previous_owners, &mut work);
        self.transitions(&observed, &mut work);
        work
    }

    /// Updates reverse edges after the owner list changed from `previous` to the observed one.
    fn rewire_owners(
        &mut self,
        observed: &Observed,
        previous: &[OwnerReference],
        work: &mut Vec<Work>,
    ) {
        let uid = &observed.identity.uid;
        for old in previous {
            let now = observed.owners.iter().find(|o| o.uid == old.uid);
            let unblocked = old.block_owner_deletion == Some(true)
                && now.is_none_or(|n| n.block_owner_deletion != Some(true));
            if let Some(owner) = self.nodes.get_mut(&old.uid) {
                if now.is_none() {
                    owner.dependents.remove(uid);
                }
                // An owner waiting for its blocking dependents may now be free to go.
                if unblocked && owner.deleting_dependents {
                    work.push(Work::Delete(old.uid.clone()));
                }
            }
        }
        for owner in observed
            .owners
            .iter()
            .filter(|o| !previous.iter().any(|p| p.uid == o.uid))
        {
            match self.nodes.get_mut(&owner.uid) {
                Some(node) => {
                    node.dependents.insert(uid.clone());
                }
                None => {
                    self.nodes
                        .insert(owner.uid.clone(), virtual_owner(owner, observed, uid));
                    work.push(Work::Delete(owner.uid.clone()));
                }
            }
        }
    }

    fn transitions(&mut self, observed: &Observed, work: &mut Vec<Work>) {
        if !observed.being_deleted {
            return;
        }
        let uid = &observed.identity.uid;
        if observed.finalizers.iter().any(|f| f == FINALIZER_ORPHAN) {
            work.push(Work::Orphan(uid.clone()));
        }
        if observed
            .finalizers
            .iter()
            .any(|f| f == FINALIZER_FOREGROUND)
        {
            if let Some(node) = self.nodes.get_mut(uid) {
                node.deleting_dependents = true;
                work.extend(node.dependents.iter().map(|d| Work::Delete(d.clone())));
            }
            work.push(Work::Delete(uid.clone()));
        }
    }

    /// Records an observed deletion: dependents must re-check their owners, and owners
    /// waiting for their dependents may be done.
    pub fn delete(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut work: Vec<Work> = node
            .dependents
            .iter()
            .map(|d| Work::Delete(d.clone()))
            .collect();
        for owner in &node.owners {
            if let Some(owner_node) = self.nodes.get_mut(&owner.uid) {
                owner_node.dependents.remove(uid);
                if owner_node.deleting_dependents {
                    work.push(Work::Delete(owner.uid.clone()));
                }
            }
        }
        work
    }

    /// A worker confirmed that the object `uid` does not exist (upstream virtual delete
    /// event). Virtual nodes are removed like a deletion; an observed node stays (its watch
    /// will report it) but its dependents re-check their own references.
    pub fn confirm_absent(&mut self, uid: &str) -> Vec<Work> {
        match self.nodes.get(uid) {
            Some(node) if node.virtual_node => self.delete(uid),
            Some(node) => node
                .dependents
                .iter()
                .map(|d| Work::Delete(d.clone()))
                .collect(),
            None => Vec::new(),
        }
    }
}

fn virtual_owner(owner: &OwnerReference, dependent: &Observed, dependent_uid: &str) -> GraphNode {
    GraphNode {
        identity: Identity {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            namespace: dependent.identity.namespace.clone(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
        },
        owners: Vec::new(),
        dependents: BTreeSet::from([dependent_uid.to_string()]),
        being_deleted: false,
        deleting_dependents: false,
        virtual_node: true,
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
