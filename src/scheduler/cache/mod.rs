//! The scheduler cache: nodes with per-node pod aggregates, assumed pods, namespace labels.
//!
//! Watch handlers feed it; the scheduling thread reads it under a read lock and writes only
//! to assume or forget a pod. "Assume" counts a pod on its chosen node as soon as binding
//! starts (like upstream's scheduler cache), so the next pod already sees the capacity as
//! taken even though the watch has not confirmed the binding yet; a failed binding forgets
//! it, and the watch event of the bound pod confirms it. Nodes deleted while pods still sit
//! on them are kept aside as "ghosts" until those pods go, so accounting never goes negative
//! and a quickly re-created node gets its pods back.
//!
//! Nodes are visited in upstream's "node tree" order: round-robin over zones, so that the
//! sampling window of a large cluster always covers every zone. The order is rebuilt lazily
//! (see [`Cache::refresh_order`]); until then plain insertion order is used.

mod node;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

pub use node::NodeInfo;

use super::podinfo::PodInfo;
use super::selector::Labels;

/// What happened to the cache when a node object arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChange {
    /// A node the scheduler did not know.
    Added,
    /// A known node whose scheduling fields changed.
    Updated,
    /// Nothing the scheduler looks at changed (heartbeats, conditions...).
    Unchanged,
}

/// What happened when an assigned pod arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodChange {
    /// The watch confirmed a pod this scheduler had assumed on the same node.
    Confirmed,
    /// A pod not known before (bound by someone else, or listed at start).
    Added,
    /// A known pod changed.
    Updated,
}

#[derive(Debug)]
struct PodEntry {
    node: String,
    info: Arc<PodInfo>,
    assumed: bool,
}

/// Cluster state as the scheduler sees it.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    ghosts: HashMap<String, NodeInfo>,
    pods: HashMap<String, PodEntry>,
    affinity_pods: HashSet<String>,
    namespaces: HashMap<String, Labels>,
    order: Vec<usize>,
    order_stale: bool,
}

/// Region/zone of a node, as upstream's `GetZoneKey` (GA labels, then beta ones).
fn zone_key(labels: &Labels) -> (String, String) {
    let get = |ga: &str, beta: &str| {
        labels
            .get(ga)
            .or_else(|| labels.get(beta))
            .cloned()
            .unwrap_or_default()
    };
    (
        get(
            "topology.kubernetes.io/region",
            "failure-domain.beta.kubernetes.io/region",
        ),
        get(
            "topology.kubernetes.io/zone",
            "failure-domain.beta.kubernetes.io/zone",
        ),
    )
}

impl Cache {
    /// Live nodes, in no particular order (see [`node_at`](Self::node_at) for sampling).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The `k`-th live node in zone round-robin order (`k < nodes().len()`).
    pub fn node_at(&self, k: usize) -> &NodeInfo {
        match self.order.get(k) {
            Some(&i) if !self.order_stale => &self.nodes[i],
            _ => &self.nodes[k],
        }
    }

    /// Whether [`refresh_order`](Self::refresh_order) has work to do.
    pub fn order_is_stale(&self) -> bool {
        self.order_stale
    }

    /// Rebuilds the zone round-robin visiting order after nodes changed.
    pub fn refresh_order(&mut self) {
        let mut zones: Vec<((String, String), Vec<usize>)> = Vec::new();
        let mut slot: HashMap<(String, String), usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let key = zone_key(&n.labels);
            let z = *slot.entry(key.clone()).or_insert_with(|| {
                zones.push((key, Vec::new()));
                zones.len() - 1
            });
            zones[z].1.push(i);
        }
        self.order.clear();
        let longest = zones.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        for round in 0..longest {
            self.order
                .extend(zones.iter().filter_map(|(_, v)| v.get(round)));
        }
        self.order_stale = false;
    }

    /// A live node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Adds or updates a node.
    pub fn upsert_node(&mut self, node: &Node) -> NodeChange {
        let Some(name) = node.metadata.name.as_deref() else {
            return NodeChange::Unchanged;
        };
        if let Some(&i) = self.index.get(name) {
            let zone = zone_key(&self.nodes[i].labels);
            if !self.nodes[i].set_node(node) {
                return NodeChange::Unchanged;
            }
            self.order_stale |= zone != zone_key(&self.nodes[i].labels);
            return NodeChange::Updated;
        }
        self.order_stale = true;
        let mut info = self
            .ghosts
            .remove(name)
            .unwrap_or_else(|| NodeInfo::empty(name));
        info.set_node(node);
        self.index.insert(name.to_string(), self.nodes.len());
        self.nodes.push(info);
        NodeChange::Added
    }

    /// Removes a node; its pods stay accounted on a ghost entry until they go.
    pub fn delete_node(&mut self, name: &str) -> bool {
        let Some(i) = self.index.remove(name) else {
            return false;
        };
        self.order_stale = true;
        let info = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        if !info.pods.is_empty() {
            self.ghosts.insert(info.name.clone(), info);
        }
        true
    }

    /// Names of live nodes (for relist reconciliation).
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn node_entry(&mut self, name: &str) -> &mut NodeInfo {
        match self.index.get(name) {
            Some(&i) => &mut self.nodes[i],
            None => self
                .ghosts
                .entry(name.to_string())
                .or_insert_with(|| NodeInfo::empty(name)),
        }
    }

    fn detach(&mut self, uid: &str) -> Option<PodEntry> {
        let entry = self.pods.remove(uid)?;
        self.affinity_pods.remove(uid);
        let node = entry.node.as_str();
        if let Some(&i) = self.index.get(node) {
            self.nodes[i].remove_pod(uid);
        } else if let Some(g) = self.ghosts.get_mut(node) {
            g.remove_pod(uid);
            if g.pods.is_empty() {
                self.ghosts.remove(node);
            }
        }
        Some(entry)
    }

    fn attach(&mut self, info: Arc<PodInfo>, node: &str, assumed: bool) {
        if info.has_pod_affinity() {
            self.affinity_pods.insert(info.uid.clone());
        }
        self.node_entry(node).add_pod(info.clone());
        let entry = PodEntry {
            node: node.to_string(),
            info,
            assumed,
        };
        self.pods.insert(entry.info.uid.clone(), entry);
    }

    /// Records a pod the watch reports as bound to `info.node_name`.
    pub fn add_assigned_pod(&mut self, info: Arc<PodInfo>) -> PodChange {
        let node = info.node_name.clone();
        let change = match self.detach(&info.uid) {
            Some(old) if old.assumed && old.node == node => PodChange::Confirmed,
            Some(_) => PodChange::Updated,
            None => PodChange::Added,
        };
        self.attach(info, &node, false);
        change
    }

    /// Removes a pod (deleted, terminal, or gone at relist). Returns whether it was counted.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        self.detach(uid).is_some()
    }

    /// Counts `info` on `node` before the binding is confirmed.
    pub fn assume(&mut self, info: Arc<PodInfo>, node: &str) {
        self.detach(&info.uid);
        self.attach(info, node, true);
    }

    /// Undoes [`assume`](Self::assume) unless the watch already confirmed the pod.
    pub fn forget(&mut self, uid: &str) -> bool {
        if self.pods.get(uid).is_some_and(|e| e.assumed) {
            self.detach(uid);
            return true;
        }
        false
    }

    /// Whether the pod is counted on some node (assumed or confirmed).
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// UIDs of all counted pods (for relist reconciliation).
    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// Counted pods that have pod affinity or anti-affinity, with their node's labels.
    pub fn affinity_pods(&self) -> impl Iterator<Item = (&PodInfo, &Labels)> + '_ {
        self.affinity_pods.iter().filter_map(move |uid| {
            let entry = self.pods.get(uid)?;
            let node = self.node(&entry.node)?;
            Some((entry.info.as_ref(), &node.labels))
        })
    }

    /// Labels of a namespace, when known.
    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns)
    }

    /// Records a namespace's labels.
    pub fn set_namespace(&mut self, name: &str, labels: Labels) {
        self.namespaces.insert(name.to_string(), labels);
    }

    /// Forgets a namespace.
    pub fn delete_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Names of known namespaces (for relist reconciliation).
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
