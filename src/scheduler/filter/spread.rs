//! PodTopologySpread filter (whenUnsatisfiable: DoNotSchedule).
//!
//! PreFilter counts matching pods per topology domain over every eligible node (nodes with
//! all the constraints' keys and, per nodeAffinityPolicy/nodeTaintsPolicy, matching the
//! pod's node affinity / tolerating its taints); the filter then checks
//! `count(domain) + selfMatch - globalMin <= maxSkew`, with the global minimum treated as 0
//! while fewer than `minDomains` domains exist.

use std::collections::HashMap;

use super::Reason;
use super::node::tolerates_hard_taints;
use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::podinfo::{PodInfo, SpreadConstraint};
use crate::scheduler::selector::Selector;

/// Pods on `node` in namespace `ns` matched by `selector`, terminating ones excluded.
/// An empty selector counts nothing, like upstream's `countPodsMatchSelector`.
pub fn count_matching(node: &NodeInfo, selector: &Selector, ns: &str) -> i64 {
    if selector.is_everything() {
        return 0;
    }
    let matching = node
        .pods
        .iter()
        .filter(|p| !p.terminating && p.namespace == ns && selector.matches(&p.labels));
    matching.count() as i64
}

/// Whether `node` counts for constraint `c` of `pod` under the node inclusion policies.
pub fn node_included(pod: &PodInfo, c: &SpreadConstraint, node: &NodeInfo) -> bool {
    (!c.honor_node_affinity || pod.required_node.matches(&node.name, &node.labels))
        && (!c.honor_taints || tolerates_hard_taints(pod, node))
}

/// Whether `node` carries every topology key of `constraints`.
pub fn has_all_keys<'a>(node: &NodeInfo, mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.all(|k| node.labels.contains_key(k))
}

/// Matching-pod counts per domain for each hard constraint.
#[derive(Debug)]
pub struct SpreadState {
    /// Indexes of the hard constraints in `pod.spread`.
    constraints: Vec<usize>,
    counts: Vec<HashMap<String, i64>>,
    min: Vec<i64>,
}

impl SpreadState {
    /// Counts pods per domain; None when the pod has no hard constraint.
    pub fn compute(cache: &Cache, pod: &PodInfo) -> Option<Self> {
        let constraints: Vec<usize> = (0..pod.spread.len())
            .filter(|&i| pod.spread[i].hard)
            .collect();
        if constraints.is_empty() {
            return None;
        }
        let mut counts = vec![HashMap::new(); constraints.len()];
        let keys = || {
            constraints
                .iter()
                .map(|&i| pod.spread[i].topology_key.as_str())
        };
        for node in cache.nodes().iter().filter(|n| has_all_keys(n, keys())) {
            for (slot, &ci) in constraints.iter().enumerate() {
                let c = &pod.spread[ci];
                if !node_included(pod, c, node) {
                    continue;
                }
                let Some(value) = node.labels.get(&c.topology_key) else {
                    continue;
                };
                let n = count_matching(node, &c.selector, &pod.namespace);
                *counts[slot].entry(value.clone()).or_insert(0) += n;
            }
        }
        let min = constraints
            .iter()
            .zip(&counts)
            .map(|(&ci, domains)| {
                if (domains.len() as i64) < pod.spread[ci].min_domains {
                    0
                } else {
                    domains
                        .values()
                        .copied()
                        .min()
                        .unwrap_or(i64::from(i32::MAX))
                }
            })
            .collect();
        Some(SpreadState {
            constraints,
            counts,
            min,
        })
    }

    /// Checks the skew every hard constraint would have with the pod on `node`.
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
        for (slot, &ci) in self.constraints.iter().enumerate() {
            let c = &pod.spread[ci];
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Some(Reason::SpreadMissingLabel);
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let count = self.counts[slot].get(value).copied().unwrap_or(0);
            if count + self_match - self.min[slot] > c.max_skew {
                return Some(Reason::SpreadSkew);
            }
        }
        None
    }
}
