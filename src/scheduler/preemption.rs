//! Preemption (upstream's DefaultPreemption PostFilter): when a pod fits
//! nowhere, find a node where removing pods of lower priority would let it
//! fit, and the fewest, least important such pods.
//!
//! For each node the search removes every lower-priority pod, checks the
//! filters pass, then gives pods back, most important first, as long as
//! the pod still fits (upstream's "reprieve"); what cannot be given back
//! are the victims. Among candidate nodes the one whose most important
//! victim has the lowest priority wins, then the lowest sum of victim
//! priorities, then the fewest victims, as upstream's `pickOneNodeForPreemption`.
//!
//! The worker then nominates the node on the preemptor
//! (`status.nominatedNodeName`) and deletes the victims; the preemptor is
//! retried when they are gone. A pod whose nominated node still has
//! lower-priority pods terminating waits for them instead of preempting
//! again, and a pod with `preemptionPolicy: Never` never preempts.

use std::sync::Arc;

use super::cache::{Cache, NodeInfo};
use super::filter;
use super::podinfo::PodInfo;

/// A node where deleting `victims` lets the pod fit.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The node to nominate.
    pub node: String,
    /// The pods to delete, least important first.
    pub victims: Vec<Arc<PodInfo>>,
}

/// Whether `pod` may preempt now (upstream `PodEligibleToPreemptOthers`).
fn eligible(cache: &Cache, pod: &PodInfo) -> bool {
    if pod.never_preempts {
        return false;
    }
    if pod.nominated_node.is_empty() {
        return true;
    }
    // Victims chosen earlier are still going away: wait for them.
    !cache.node(&pod.nominated_node).is_some_and(|n| {
        n.pods
            .iter()
            .any(|p| p.terminating && p.priority < pod.priority)
    })
}

/// The victims needed on `node`, if removing lower-priority pods helps.
fn victims_on(
    state: &filter::FilterState<'_>,
    node: &NodeInfo,
    pod: &PodInfo,
) -> Option<Vec<Arc<PodInfo>>> {
    let mut lower: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority && !p.terminating)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    let mut trial = node.clone();
    for p in &lower {
        trial.remove_pod(&p.uid);
    }
    let mut reasons = Vec::new();
    if !filter::filter(state, &trial, &mut reasons) {
        return None;
    }
    lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
    let mut victims = Vec::new();
    for p in lower {
        trial.add_pod(p.clone());
        reasons.clear();
        if !filter::filter(state, &trial, &mut reasons) {
            trial.remove_pod(&p.uid);
            victims.push(p);
        }
    }
    victims.reverse();
    Some(victims)
}

/// The best node to preempt on for `pod`, if any.
pub fn find_candidate(cache: &Cache, pod: &PodInfo) -> Option<Candidate> {
    if !eligible(cache, pod) {
        return None;
    }
    let state = filter::prefilter(cache, pod);
    let mut best: Option<((i32, i64, usize), Candidate)> = None;
    for node in cache.nodes() {
        let Some(victims) = victims_on(&state, node, pod) else {
            continue;
        };
        if victims.is_empty() {
            // It fits already (the cache changed since the cycle): no one
            // needs to go.
            continue;
        }
        let rank = (
            victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN),
            victims.iter().map(|v| i64::from(v.priority)).sum::<i64>(),
            victims.len(),
        );
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((
                rank,
                Candidate {
                    node: node.name.clone(),
                    victims,
                },
            ));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::fixtures::{cache, info, node, pod};

    fn placed(name: &str, cpu: &str, node: &str, priority: i32) -> k8s_openapi::api::core::v1::Pod {
        pod(
            name,
            cpu,
            "",
            json!({"spec": {"nodeName": node, "priority": priority}}),
        )
    }

    #[test]
    fn the_fewest_least_important_pods_are_chosen() {
        let nodes = [
            node("n1", "2", "4Gi", json!({})),
            node("n2", "2", "4Gi", json!({})),
        ];
        let c = cache(
            &nodes,
            &[
                placed("low", "1500m", "n1", 10),
                placed("mid", "1500m", "n2", 100),
            ],
        );
        let high = info(&pod("high", "1", "", json!({"spec": {"priority": 1000}})));
        let found = find_candidate(&c, &high).expect("a candidate");
        assert_eq!(found.node, "n1");
        assert_eq!(found.victims.len(), 1);
        assert_eq!(found.victims[0].name, "low");
    }

    #[test]
    fn equal_or_higher_priority_pods_are_never_victims() {
        let c = cache(
            &[node("n1", "1", "4Gi", json!({}))],
            &[placed("other", "1", "n1", 1000)],
        );
        let same = info(&pod("p", "1", "", json!({"spec": {"priority": 1000}})));
        assert!(find_candidate(&c, &same).is_none());
        let never = info(&pod(
            "n",
            "1",
            "",
            json!({"spec": {"priority": 5000, "preemptionPolicy": "Never"}}),
        ));
        assert!(find_candidate(&c, &never).is_none());
    }

    #[test]
    fn only_the_pods_that_must_go_are_victims() {
        let c = cache(
            &[node("n1", "2", "4Gi", json!({}))],
            &[placed("a", "500m", "n1", 1), placed("b", "1", "n1", 2)],
        );
        let high = info(&pod("high", "1", "", json!({"spec": {"priority": 100}})));
        let found = find_candidate(&c, &high).expect("a candidate");
        let names: Vec<&str> = found.victims.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["a"]);
    }
}
