//! Filter plugins: which nodes can run a pod, and why the others cannot.
//!
//! Plugins run in upstream's default order (NodeUnschedulable, NodeName, TaintToleration,
//! NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread, InterPodAffinity) and a node
//! is rejected by the first plugin that fails, which is what makes the "N node(s) ..."
//! histogram in FailedScheduling messages comparable with kube-scheduler's. Plugins needing
//! cluster-wide counts (spread, inter-pod affinity) precompute them once per pod in
//! [`prefilter`], keeping the per-node check O(constraints). Filters are pure functions of
//! the cache: they cannot fail, they only reject.

pub mod interpod;
pub mod node;
pub mod resources;
pub mod spread;

use std::fmt;

use super::cache::{Cache, NodeInfo};
use super::podinfo::PodInfo;

/// Why a node was rejected; `Display` gives upstream's wording.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// NodeName.
    NodeName,
    /// NodeUnschedulable.
    Unschedulable,
    /// TaintToleration: the first untolerated NoSchedule/NoExecute taint.
    UntoleratedTaint {
        /// Taint key.
        key: String,
        /// Taint value.
        value: String,
    },
    /// NodeAffinity (nodeSelector or required node affinity).
    NodeAffinity,
    /// NodePorts.
    HostPorts,
    /// NodeResourcesFit: pod count.
    TooManyPods,
    /// NodeResourcesFit: a resource.
    Insufficient(String),
    /// PodTopologySpread: node lacks a topology key.
    SpreadMissingLabel,
    /// PodTopologySpread: maxSkew would be exceeded.
    SpreadSkew,
    /// InterPodAffinity: the pod's required affinity.
    AffinityRules,
    /// InterPodAffinity: the pod's required anti-affinity.
    AntiAffinityRules,
    /// InterPodAffinity: anti-affinity of pods already running.
    ExistingAntiAffinity,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NodeName => f.write_str("node(s) didn't match the requested node name"),
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NodeAffinity => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::HostPorts => {
                f.write_str("node(s) didn't have free ports for the requested pod ports")
            }
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::Insufficient(r) => write!(f, "Insufficient {r}"),
            Reason::SpreadMissingLabel => f.write_str(
                "node(s) didn't match pod topology spread constraints (missing required label)",
            ),
            Reason::SpreadSkew => {
                f.write_str("node(s) didn't match pod topology spread constraints")
            }
            Reason::AffinityRules => f.write_str("node(s) didn't match pod affinity rules"),
            Reason::AntiAffinityRules => {
                f.write_str("node(s) didn't match pod anti-affinity rules")
            }
            Reason::ExistingAntiAffinity => {
                f.write_str("node(s) didn't satisfy existing pods anti-affinity rules")
            }
        }
    }
}

/// Plugins that can reject a pod, as bits (used to decide which cluster events retry it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plugins(u16);

impl Plugins {
    /// PodTopologySpread or InterPodAffinity: retried when assigned pods appear.
    pub const POD_DEPENDENT: Plugins = Plugins(0b11);

    /// Adds the plugin that produced `reason`.
    pub fn insert(&mut self, reason: &Reason) {
        self.0 |= match reason {
            Reason::SpreadMissingLabel | Reason::SpreadSkew => 0b01,
            Reason::AffinityRules | Reason::AntiAffinityRules | Reason::ExistingAntiAffinity => {
                0b10
            }
            _ => 0b100,
        };
    }

    /// Whether any plugin of `other` is in `self`.
    pub fn intersects(self, other: Plugins) -> bool {
        self.0 & other.0 != 0
    }
}

/// Per-pod precomputed state for the filters.
#[derive(Debug)]
pub struct FilterState<'a> {
    /// The pod being scheduled.
    pub pod: &'a PodInfo,
    spread: Option<spread::SpreadState>,
    interpod: Option<interpod::InterPodState>,
}

/// Precomputes cluster-wide counts the spread and inter-pod affinity filters need.
pub fn prefilter<'a>(cache: &Cache, pod: &'a PodInfo) -> FilterState<'a> {
    FilterState {
        pod,
        spread: spread::SpreadState::compute(cache, pod),
        interpod: interpod::InterPodState::compute(cache, pod),
    }
}

/// Runs all filters on `node`; on rejection pushes the failing plugin's reasons.
pub fn filter(state: &FilterState<'_>, node: &NodeInfo, reasons: &mut Vec<Reason>) -> bool {
    let pod = state.pod;
    let single = node::node_unschedulable(pod, node)
        .or_else(|| node::node_name(pod, node))
        .or_else(|| node::taint_toleration(pod, node))
        .or_else(|| node::node_affinity(pod, node))
        .or_else(|| resources::node_ports(pod, node));
    if let Some(r) = single {
        reasons.push(r);
        return false;
    }
    if !resources::node_resources_fit(pod, node, reasons) {
        return false;
    }
    let late = state
        .spread
        .as_ref()
        .and_then(|s| s.filter(pod, node))
        .or_else(|| state.interpod.as_ref().and_then(|s| s.filter(pod, node)));
    match late {
        Some(r) => {
            reasons.push(r);
            false
        }
        None => true,
    }
}

#[cfg(test)]
mod tests;
