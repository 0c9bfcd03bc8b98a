//! InterPodAffinity filter: required pod affinity, required anti-affinity, and the
//! anti-affinity of pods already running.
//!
//! PreFilter turns the cluster into counts per topology pair (key, value): pods matching all
//! of the incoming pod's affinity terms, pods matching each of its anti-affinity terms, and
//! existing pods whose anti-affinity terms match the incoming pod. The per-node filter is then
//! a few map lookups. As upstream, the first pod of a self-affine group may go anywhere that
//! has the topology keys when no pod matches yet.

use std::collections::HashMap;

use super::Reason;
use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::podinfo::{AffinityTerm, PodInfo};
use crate::scheduler::selector::Labels;

/// Counts keyed by topology key, then topology value.
pub type TopologyCounts = HashMap<String, HashMap<String, i64>>;

fn bump(m: &mut TopologyCounts, key: &str, labels: &Labels) {
    if let Some(v) = labels.get(key) {
        *m.entry(key.to_string())
            .or_default()
            .entry(v.clone())
            .or_insert(0) += 1;
    }
}

fn count(m: &TopologyCounts, key: &str, value: &str) -> i64 {
    m.get(key)
        .and_then(|vals| vals.get(value))
        .copied()
        .unwrap_or(0)
}

/// Precomputed pair counts for one incoming pod.
#[derive(Debug, Default)]
pub struct InterPodState {
    existing_anti: TopologyCounts,
    affinity: TopologyCounts,
    anti: TopologyCounts,
    /// The pod matches all its own affinity terms (first pod of a group).
    self_affine: bool,
}

impl InterPodState {
    /// Computes the counts; None when the pod has no required terms and no running pod's
    /// anti-affinity matches it (the plugin is skipped, as upstream).
    pub fn compute(cache: &Cache, pod: &PodInfo) -> Option<Self> {
        let own_ns = cache.namespace_labels(&pod.namespace);
        let mut s = InterPodState {
            self_affine: all_match(&pod.required_affinity, pod, own_ns),
            ..Default::default()
        };
        for (existing, node_labels) in cache.affinity_pods() {
            for term in &existing.required_anti_affinity {
                if term.matches(pod, own_ns) {
                    bump(&mut s.existing_anti, &term.topology_key, node_labels);
                }
            }
        }
        if !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty() {
            for node in cache.nodes() {
                for p in &node.pods {
                    let ns = cache.namespace_labels(&p.namespace);
                    if all_match(&pod.required_affinity, p, ns) {
                        for t in &pod.required_affinity {
                            bump(&mut s.affinity, &t.topology_key, &node.labels);
                        }
                    }
                    for t in pod
                        .required_anti_affinity
                        .iter()
                        .filter(|t| t.matches(p, ns))
                    {
                        bump(&mut s.anti, &t.topology_key, &node.labels);
                    }
                }
            }
        } else if s.existing_anti.is_empty() {
            return None;
        }
        Some(s)
    }

    /// Checks affinity, then anti-affinity, then existing pods' anti-affinity.
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
        if !self.satisfies_affinity(pod, node) {
            return Some(Reason::AffinityRules);
        }
        let anti_hit = pod.required_anti_affinity.iter().any(|t| {
            node.labels
                .get(&t.topology_key)
                .is_some_and(|v| count(&self.anti, &t.topology_key, v) > 0)
        });
        if anti_hit {
            return Some(Reason::AntiAffinityRules);
        }
        let existing_hit = self.existing_anti.iter().any(|(key, values)| {
            node.labels
                .get(key)
                .is_some_and(|v| values.get(v).is_some_and(|n| *n > 0))
        });
        existing_hit.then_some(Reason::ExistingAntiAffinity)
    }

    fn satisfies_affinity(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            let Some(v) = node.labels.get(&t.topology_key) else {
                return false;
            };
            if count(&self.affinity, &t.topology_key, v) <= 0 {
                pods_exist = false;
            }
        }
        pods_exist || (self.affinity.is_empty() && self.self_affine)
    }
}

fn all_match(terms: &[AffinityTerm], p: &PodInfo, ns_labels: Option<&Labels>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(p, ns_labels))
}
