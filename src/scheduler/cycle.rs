//! One scheduling cycle: sample nodes, filter, score, pick.
//!
//! Like kube-scheduler, the search stops once `numFeasibleNodesToFind` nodes passed the
//! filters (adaptive percentageOfNodesToScore: all nodes below 100, else 50% minus 1% per
//! 125 nodes, at least 5% and at least 100 nodes), starting where the previous cycle
//! stopped so that every node gets its turn. This bounds per-pod work by the sample, not the
//! cluster: at 5 000 nodes a pod looks at ~500. Ties between best-scored nodes are broken
//! uniformly at random (reservoir sampling), which also spreads identical pods.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::cache::{Cache, NodeInfo};
use super::events::FitError;
use super::filter::{self, Plugins};
use super::podinfo::PodInfo;
use super::score;

const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// Outcome of a cycle.
#[derive(Debug)]
pub enum Decision {
    /// Bind to this node.
    Bind(String),
    /// No node fits.
    Unschedulable(FitError),
}

/// How many feasible nodes to find before scoring, for a cluster of `all` nodes.
pub fn num_feasible_nodes_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let pct = 50usize
        .saturating_sub(all / 125)
        .max(MIN_FEASIBLE_NODES_PERCENTAGE);
    (all * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// A small, fast PRNG (SplitMix64) for tie-breaking; no cryptographic needs here.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from the clock.
    pub fn from_clock() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(1);
        Rng(nanos as u64 ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// A fixed seed (tests).
    pub fn seeded(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Scheduling-cycle state kept across pods.
#[derive(Debug, Clone)]
pub struct Cycle {
    next_start: usize,
    rng: Rng,
}

impl Cycle {
    /// A fresh cycle state.
    pub fn new(rng: Rng) -> Self {
        Cycle { next_start: 0, rng }
    }

    /// Finds a node for `pod` in `cache`.
    pub fn schedule(&mut self, cache: &Cache, pod: &PodInfo) -> Decision {
        let nodes = cache.nodes();
        if let Some(err) = &pod.parse_error {
            return Decision::Unschedulable(FitError {
                num_all_nodes: nodes.len(),
                pre_filter_msg: Some(format!("parsing pod: {err}")),
                ..Default::default()
            });
        }
        if nodes.is_empty() {
            return Decision::Unschedulable(FitError::default());
        }
        let feasible = match self.find_feasible(cache, pod) {
            Ok(f) => f,
            Err(fit) => return Decision::Unschedulable(fit),
        };
        if let [only] = feasible.as_slice() {
            return Decision::Bind(only.name.clone());
        }
        let scores = score::score(cache, pod, &feasible);
        Decision::Bind(self.select(&feasible, &scores).to_string())
    }

    fn find_feasible<'c>(
        &mut self,
        cache: &'c Cache,
        pod: &PodInfo,
    ) -> Result<Vec<&'c NodeInfo>, FitError> {
        let n = cache.nodes().len();
        let want = num_feasible_nodes_to_find(n);
        let state = filter::prefilter(cache, pod);
        let mut feasible = Vec::with_capacity(want);
        let mut reasons = HashMap::new();
        let mut plugins = Plugins::default();
        let mut buf = Vec::new();
        let start = self.next_start % n;
        let mut processed = 0;
        for k in 0..n {
            let node = cache.node_at((start + k) % n);
            processed += 1;
            if filter::filter(&state, node, &mut buf) {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            }
            for r in buf.drain(..) {
                plugins.insert(&r);
                *reasons.entry(r).or_insert(0) += 1;
            }
        }
        self.next_start = (start + processed) % n;
        if feasible.is_empty() {
            return Err(FitError {
                num_all_nodes: n,
                reasons,
                pre_filter_msg: None,
                plugins,
            });
        }
        Ok(feasible)
    }

    /// The best-scored node, ties broken uniformly at random.
    fn select<'n>(&mut self, nodes: &[&'n NodeInfo], scores: &[i64]) -> &'n str {
        let mut best = 0;
        let mut ties = 0u64;
        for (i, s) in scores.iter().enumerate() {
            if i == 0 || *s > scores[best] {
                best = i;
                ties = 1;
            } else if *s == scores[best] {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    best = i;
                }
            }
        }
        nodes.get(best).map_or("", |n| n.name.as_str())
    }
}

#[cfg(test)]
mod tests;
