//! PodTopologySpread score (whenUnsatisfiable: ScheduleAnyway).
//!
//! Nodes lacking a constraint's key are ignored (score 0). For the others each constraint
//! adds `matching pods in the node's domain * ln(#domains + 2) + (maxSkew - 1)`; lower sums
//! are better, so the result is inverted as `100 * (max + min - s) / max`.

use std::collections::HashMap;

use super::MAX_NODE_SCORE;
use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::filter::spread::{count_matching, has_all_keys, node_included};
use crate::scheduler::podinfo::{PodInfo, SpreadConstraint};

const HOSTNAME: &str = "kubernetes.io/hostname";

/// Spread score into `out`; returns false when the pod has no soft constraint.
pub fn score(cache: &Cache, pod: &PodInfo, nodes: &[&NodeInfo], out: &mut [i64]) -> bool {
    let soft: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| !c.hard).collect();
    if soft.is_empty() {
        return false;
    }
    let keys = || soft.iter().map(|c| c.topology_key.as_str());
    let ignored: Vec<bool> = nodes.iter().map(|n| !has_all_keys(n, keys())).collect();
    let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); soft.len()];
    for (n, _) in nodes.iter().zip(&ignored).filter(|(_, ig)| !**ig) {
        for (i, c) in soft.iter().enumerate() {
            if let (false, Some(v)) = (c.topology_key == HOSTNAME, n.labels.get(&c.topology_key)) {
                counts[i].entry(v.as_str()).or_insert(0);
            }
        }
    }
    let scored = ignored.iter().filter(|ig| !**ig).count();
    let weights: Vec<f64> = soft
        .iter()
        .zip(&counts)
        .map(|(c, m)| {
            let size = if c.topology_key == HOSTNAME {
                scored
            } else {
                m.len()
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    for node in cache.nodes().iter().filter(|n| has_all_keys(n, keys())) {
        for (i, c) in soft.iter().enumerate() {
            if c.topology_key == HOSTNAME || !node_included(pod, c, node) {
                continue;
            }
            let Some(v) = node.labels.get(&c.topology_key) else {
                continue;
            };
            if let Some(slot) = counts[i].get_mut(v.as_str()) {
                *slot += count_matching(node, &c.selector, &pod.namespace);
            }
        }
    }
    for ((o, n), ig) in out.iter_mut().zip(nodes).zip(&ignored) {
        if *ig {
            continue;
        }
        let mut s = 0.0;
        for (i, c) in soft.iter().enumerate() {
            let Some(v) = n.labels.get(&c.topology_key) else {
                continue;
            };
            let cnt = if c.topology_key == HOSTNAME {
                count_matching(n, &c.selector, &pod.namespace)
            } else {
                counts[i].get(v.as_str()).copied().unwrap_or(0)
            };
            s += cnt as f64 * weights[i] + (c.max_skew - 1) as f64;
        }
        *o = s.round() as i64;
    }
    normalize(out, &ignored);
    true
}

fn normalize(out: &mut [i64], ignored: &[bool]) {
    let live = out
        .iter()
        .zip(ignored)
        .filter(|(_, ig)| !**ig)
        .map(|(s, _)| *s);
    let (min, max) = live.fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
    for (o, ig) in out.iter_mut().zip(ignored) {
        *o = if *ig {
            0
        } else if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *o) / max
        };
    }
}
