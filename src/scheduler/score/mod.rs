//! Score plugins and their combination into one number per feasible node.
//!
//! Each plugin produces a raw score per node, normalises it to 0..=100 the way its upstream
//! counterpart does, and is added with upstream's default weight: TaintToleration 3,
//! NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit
//! (LeastAllocated) 1, NodeResourcesBalancedAllocation 1. Plugins with nothing to say for a
//! pod (no preferred terms, no soft constraints, best-effort pod for balance) are skipped
//! entirely, which is equivalent to adding the same constant to every node.

pub mod affinity;
pub mod resources;
pub mod spread;

use super::cache::{Cache, NodeInfo};
use super::podinfo::PodInfo;

/// Highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

const WEIGHT_TAINT: i64 = 3;
const WEIGHT_NODE_AFFINITY: i64 = 2;
const WEIGHT_SPREAD: i64 = 2;
const WEIGHT_INTERPOD: i64 = 2;
const WEIGHT_FIT: i64 = 1;
const WEIGHT_BALANCED: i64 = 1;

/// Total weighted score of each node in `nodes`, in the same order.
pub fn score(cache: &Cache, pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut total = vec![0i64; nodes.len()];
    let mut raw = vec![0i64; nodes.len()];
    let mut add = |raw: &[i64], weight: i64| {
        for (t, r) in total.iter_mut().zip(raw) {
            *t += r * weight;
        }
    };
    for (r, n) in raw.iter_mut().zip(nodes) {
        *r = resources::least_allocated(pod, n);
    }
    add(&raw, WEIGHT_FIT);
    if !resources::is_best_effort(pod) {
        for (r, n) in raw.iter_mut().zip(nodes) {
            *r = resources::balanced_allocation(pod, n);
        }
        add(&raw, WEIGHT_BALANCED);
    }
    for (r, n) in raw.iter_mut().zip(nodes) {
        *r = affinity::intolerable_prefer_no_schedule(pod, n);
    }
    default_normalize(&mut raw, true);
    add(&raw, WEIGHT_TAINT);
    if !pod.preferred_node.is_empty() {
        for (r, n) in raw.iter_mut().zip(nodes) {
            *r = affinity::preferred_node_affinity(pod, n);
        }
        default_normalize(&mut raw, false);
        add(&raw, WEIGHT_NODE_AFFINITY);
    }
    if spread::score(cache, pod, nodes, &mut raw) {
        add(&raw, WEIGHT_SPREAD);
    }
    if affinity::inter_pod_affinity(cache, pod, nodes, &mut raw) {
        add(&raw, WEIGHT_INTERPOD);
    }
    total
}

/// Upstream `DefaultNormalizeScore`: scale to 0..=100 by the maximum, optionally reversed.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
mod tests;
