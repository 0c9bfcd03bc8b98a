//! NodeResourcesFit (LeastAllocated strategy) and NodeResourcesBalancedAllocation scores.
//!
//! LeastAllocated uses non-zero requests (defaults for containers without requests) so that
//! best-effort pods still spread; BalancedAllocation uses exact requests and is skipped for
//! best-effort pods, as upstream does since kubernetes#129138. Both weigh cpu and memory 1:1.

use super::MAX_NODE_SCORE;
use crate::scheduler::cache::NodeInfo;
use crate::scheduler::podinfo::PodInfo;

/// True when the pod requests neither cpu nor memory.
pub fn is_best_effort(pod: &PodInfo) -> bool {
    pod.requests.requests.milli_cpu == 0 && pod.requests.requests.memory == 0
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// `(free after placing the pod) / allocatable`, averaged over cpu and memory.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let pairs = [
        (
            node.nonzero_milli_cpu + pod.requests.nonzero_milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (
            node.nonzero_memory + pod.requests.nonzero_memory,
            node.allocatable.memory,
        ),
    ];
    let (mut sum, mut weight) = (0, 0);
    for (req, cap) in pairs {
        if cap == 0 {
            continue;
        }
        sum += least_requested(req, cap);
        weight += 1;
    }
    if weight == 0 { 0 } else { sum / weight }
}

/// `(1 - stddev of the cpu and memory utilisation fractions) * 100`.
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let req = &pod.requests.requests;
    let fraction = |r: i64, cap: i64| (cap != 0).then(|| (r as f64 / cap as f64).min(1.0));
    let cpu = fraction(
        node.requested.milli_cpu + req.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = fraction(node.requested.memory + req.memory, node.allocatable.memory);
    // With one resource the deviation is zero; with two it is half their difference.
    let std = match (cpu, mem) {
        (Some(a), Some(b)) => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}
