//! Preference scores: TaintToleration (PreferNoSchedule), preferred NodeAffinity and
//! InterPodAffinity (preferred terms of the pod, and terms of running pods about it).
//!
//! InterPodAffinity sums term weights per topology pair over the existing pods (all pods when
//! the incoming pod has preferred terms, otherwise only pods with affinity), adds
//! `hardPodAffinityWeight` (1) for running pods whose required affinity the incoming pod
//! satisfies, then min-max normalises across the scored nodes.

use std::collections::HashMap;

use super::MAX_NODE_SCORE;
use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::podinfo::{AffinityTerm, Effect, PodInfo};
use crate::scheduler::selector::Labels;

/// Upstream's default `hardPodAffinityWeight`.
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// Number of PreferNoSchedule taints the pod does not tolerate (lower is better).
pub fn intolerable_prefer_no_schedule(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let intolerable = node.taints.iter().filter(|t| {
        t.effect == Effect::PreferNoSchedule
            && !pod
                .tolerations
                .iter()
                .any(|tol| tol.covers_prefer_no_schedule() && tol.tolerates(t))
    });
    intolerable.count() as i64
}

/// Sum of the weights of the preferred node affinity terms the node matches.
pub fn preferred_node_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node
        .iter()
        .filter(|(_, t)| t.matches(&node.name, &node.labels))
        .map(|(w, _)| *w)
        .sum()
}

type TopologyScore = HashMap<String, HashMap<String, i64>>;

fn add_term(m: &mut TopologyScore, term: &AffinityTerm, node_labels: &Labels, sign: i64) {
    if let Some(v) = node_labels.get(&term.topology_key) {
        *m.entry(term.topology_key.clone())
            .or_default()
            .entry(v.clone())
            .or_insert(0) += term.weight * sign;
    }
}

/// Accumulates what one running pod contributes to the incoming pod's topology scores.
fn process_existing(
    m: &mut TopologyScore,
    cache: &Cache,
    incoming: &PodInfo,
    existing: &PodInfo,
    node_labels: &Labels,
) {
    if node_labels.is_empty() {
        return;
    }
    let existing_ns = cache.namespace_labels(&existing.namespace);
    let incoming_ns = cache.namespace_labels(&incoming.namespace);
    for t in incoming
        .preferred_affinity
        .iter()
        .filter(|t| t.matches(existing, existing_ns))
    {
        add_term(m, t, node_labels, 1);
    }
    for t in incoming
        .preferred_anti_affinity
        .iter()
        .filter(|t| t.matches(existing, existing_ns))
    {
        add_term(m, t, node_labels, -1);
    }
    for t in existing
        .required_affinity
        .iter()
        .filter(|t| t.matches(incoming, incoming_ns))
    {
        if let Some(v) = node_labels.get(&t.topology_key) {
            *m.entry(t.topology_key.clone())
                .or_default()
                .entry(v.clone())
                .or_insert(0) += HARD_POD_AFFINITY_WEIGHT;
        }
    }
    for t in existing
        .preferred_affinity
        .iter()
        .filter(|t| t.matches(incoming, incoming_ns))
    {
        add_term(m, t, node_labels, 1);
    }
    for t in existing
        .preferred_anti_affinity
        .iter()
        .filter(|t| t.matches(incoming, incoming_ns))
    {
        add_term(m, t, node_labels, -1);
    }
}

/// InterPodAffinity score into `out`; returns false when the plugin has nothing to score.
pub fn inter_pod_affinity(
    cache: &Cache,
    pod: &PodInfo,
    nodes: &[&NodeInfo],
    out: &mut [i64],
) -> bool {
    let has_preferred =
        !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    let mut m = TopologyScore::new();
    if has_preferred {
        for node in cache.nodes() {
            for p in &node.pods {
                process_existing(&mut m, cache, pod, p, &node.labels);
            }
        }
    } else {
        for (p, labels) in cache.affinity_pods() {
            process_existing(&mut m, cache, pod, p, labels);
        }
    }
    if m.is_empty() {
        return false;
    }
    for (o, n) in out.iter_mut().zip(nodes) {
        *o = m
            .iter()
            .filter_map(|(key, values)| n.labels.get(key).and_then(|v| values.get(v)))
            .sum();
    }
    let (min, max) = out
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    let diff = max.saturating_sub(min);
    for o in out.iter_mut() {
        *o = if diff > 0 {
            (MAX_NODE_SCORE as f64 * ((*o - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
    true
}
