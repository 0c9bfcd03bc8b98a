//! The decisions of a DaemonSet sync as pure functions: which pods sit on which node, what
//! each node needs (upstream `podsShouldBeOnNode`), what a rolling update may replace
//! (upstream `rollingUpdate`), and the status counts (upstream `updateDaemonSetStatus`).
//!
//! [`super::sync`] gathers the inputs from the caches and performs the writes; keeping the
//! decisions here makes the rollout math testable without an apiserver.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::predicates::target_node;
use crate::controllers::batch_common::history::REVISION_HASH_LABEL;
use crate::controllers::batch_common::pods::{
    is_available, is_ready, is_terminal, oldest_scheduled_first, phase,
};

/// The label carrying the (deprecated) template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Daemon pods grouped by the node they are bound or pinned to.
pub type NodePods = BTreeMap<String, Vec<Arc<Pod>>>;

/// Upstream `getNodesToDaemonPods`; deleted terminal pods are left out unless asked for.
pub fn group_by_node(pods: &[Arc<Pod>], include_deleted_terminal: bool) -> NodePods {
    let mut out = NodePods::new();
    for p in pods {
        if !include_deleted_terminal && is_terminal(p) && p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(p) {
            out.entry(node).or_default().push(p.clone());
        }
    }
    out
}

/// Upstream `IsPodUpdated`: the pod carries the current hash (or template generation).
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<&str>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let by_hash = !hash.is_empty() && label(REVISION_HASH_LABEL) == Some(hash);
    let by_generation = generation.is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(g));
    by_hash || by_generation
}

/// What the DaemonSet's rollout settings and revision say about pods.
#[derive(Debug, Clone, Copy)]
pub struct Rollout<'a> {
    /// The current revision's hash.
    pub hash: &'a str,
    /// `deprecated.daemonset.template.generation`, if annotated.
    pub generation: Option<&'a str>,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
    /// Whether the update strategy allows surging (maxSurge > 0).
    pub surge: bool,
    /// The instant decisions are made at.
    pub now: Timestamp,
}

/// What one node needs.
#[derive(Debug, Default)]
pub struct NodeNeeds {
    /// Create a daemon pod on the node.
    pub create: bool,
    /// Pods to delete outright.
    pub delete: Vec<Arc<Pod>>,
    /// Failed pods to delete, subject to the failure backoff.
    pub failed: Vec<Arc<Pod>>,
}

/// Upstream `podsShouldBeOnNode`.
pub fn node_needs(
    should_run: bool,
    keep_running: bool,
    pods: Option<&Vec<Arc<Pod>>>,
    r: &Rollout<'_>,
) -> NodeNeeds {
    let mut needs = NodeNeeds::default();
    let pods = pods.map(Vec::as_slice).unwrap_or_default();
    if should_run && pods.is_empty() {
        needs.create = true;
        return needs;
    }
    if !keep_running {
        needs.delete = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        return needs;
    }
    let mut running = Vec::new();
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        match phase(p) {
            "Failed" => needs.failed.push(p.clone()),
            "Succeeded" => needs.delete.push(p.clone()),
            _ => running.push(p.clone()),
        }
    }
    running.sort_by(|a, b| oldest_scheduled_first(a, b));
    if !r.surge {
        needs.delete.extend(running.iter().skip(1).cloned());
        return needs;
    }
    if running.is_empty() {
        needs.create = should_run;
        return needs;
    }
    let (mut oldest_new, mut oldest_old) = (None, None);
    for p in running {
        let slot = if is_updated(&p, r.hash, None) {
            &mut oldest_new
        } else {
            &mut oldest_old
        };
        if slot.is_none() {
            *slot = Some(p);
        } else {
            needs.delete.push(p);
        }
    }
    if let (Some(new), Some(old)) = (oldest_new, oldest_old)
        && (!is_ready(&old) || is_available(&new, r.min_ready_seconds, r.now))
    {
        needs.delete.push(old);
    }
    needs
}

/// A node's (new pod, old pod), either possibly absent.
pub type NewAndOld = (Option<Arc<Pod>>, Option<Arc<Pod>>);

/// Upstream `findUpdatedPodsOnNode`: (new pod, old pod), or `None` if there are several of
/// either (the manage step prunes those first).
pub fn updated_and_old(pods: &[Arc<Pod>], r: &Rollout<'_>) -> Option<NewAndOld> {
    let (mut new, mut old) = (None, None);
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(p, r.hash, r.generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(p.clone()).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// What a rolling update step does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UpdateStep {
    /// Old pods to delete (by name).
    pub delete: Vec<String>,
    /// Nodes to create a new pod on.
    pub create: Vec<String>,
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// Upstream `rollingUpdate` without surge: delete old pods up to `max_unavailable`, always
/// replacing old pods that are already unavailable.
pub fn update_without_surge(
    by_node: &NodePods,
    r: &Rollout<'_>,
    max_unavailable: i32,
) -> UpdateStep {
    let (mut unavailable, mut replace, mut candidates) = (0, Vec::new(), Vec::new());
    for pods in by_node.values() {
        let Some((new, old)) = updated_and_old(pods, r) else {
            unavailable += 1;
            continue;
        };
        match (new, old) {
            (None, None) | (Some(_), Some(_)) => unavailable += 1,
            (Some(new), None) => {
                if !is_available(&new, r.min_ready_seconds, r.now) {
                    unavailable += 1;
                }
            }
            (None, Some(old)) => {
                if !is_available(&old, r.min_ready_seconds, r.now) {
                    replace.push(name(&old));
                    unavailable += 1;
                } else if unavailable < max_unavailable {
                    candidates.push(name(&old));
                }
            }
        }
    }
    let room = usize::try_from(max_unavailable - unavailable)
        .unwrap_or(0)
        .min(candidates.len());
    replace.extend(candidates.into_iter().take(room));
    UpdateStep {
        delete: replace,
        create: Vec::new(),
    }
}

/// Upstream `rollingUpdate` with surge: start new pods next to old ones (up to `max_surge`
/// at once) and delete an old pod once its replacement is available.
/// `should_run(node)` tells whether the node still wants a daemon pod.
pub fn update_with_surge(
    by_node: &NodePods,
    r: &Rollout<'_>,
    max_surge: i32,
    desired: i32,
    should_run: impl Fn(&str) -> bool,
) -> UpdateStep {
    let mut step = UpdateStep::default();
    let (mut surging, mut available, mut candidates, mut sunset) = (0, 0, Vec::new(), Vec::new());
    for (node, pods) in by_node {
        let Some((new, old)) = updated_and_old(pods, r) else {
            surging += 1;
            continue;
        };
        let counted = old.as_ref().or(new.as_ref());
        if counted.is_some_and(|p| is_available(p, r.min_ready_seconds, r.now)) {
            available += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) if !is_available(&old, r.min_ready_seconds, r.now) => {
                if should_run(node) {
                    step.create.push(node.clone());
                } else {
                    step.delete.push(name(&old));
                }
            }
            (None, Some(old)) => {
                if !should_run(node) {
                    sunset.push(name(&old));
                } else if surging < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if is_available(&new, r.min_ready_seconds, r.now) {
                    step.delete.push(name(&old));
                } else {
                    surging += 1;
                }
            }
        }
    }
    let deletable = usize::try_from(available - desired)
        .unwrap_or(0)
        .min(sunset.len());
    step.delete.extend(sunset.into_iter().take(deletable));
    let room = usize::try_from(max_surge - surging)
        .unwrap_or(0)
        .min(candidates.len());
    step.create.extend(candidates.into_iter().take(room));
    step
}

/// The counts of `DaemonSetStatus`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Nodes that should run a daemon pod.
    pub desired: i32,
    /// Of those, nodes that have one.
    pub current: i32,
    /// Nodes that have one but should not.
    pub misscheduled: i32,
    /// Desired nodes whose (oldest) pod is ready.
    pub ready: i32,
    /// Desired nodes whose pod runs the current revision.
    pub updated: i32,
    /// Desired nodes whose pod is available.
    pub available: i32,
}

/// Upstream `updateDaemonSetStatus` counting, node by node.
pub fn count(nodes: &[(String, bool)], by_node: &NodePods, r: &Rollout<'_>) -> Counts {
    let mut c = Counts::default();
    for (node, should_run) in nodes {
        let mut pods = by_node.get(node).cloned().unwrap_or_default();
        pods.sort_by(|a, b| oldest_scheduled_first(a, b));
        match (*should_run, pods.first()) {
            (true, None) => c.desired += 1,
            (true, Some(pod)) => {
                c.desired += 1;
                c.current += 1;
                if is_ready(pod) {
                    c.ready += 1;
                    if is_available(pod, r.min_ready_seconds, r.now) {
                        c.available += 1;
                    }
                }
                if is_updated(pod, r.hash, r.generation) {
                    c.updated += 1;
                }
            }
            (false, Some(_)) => c.misscheduled += 1,
            (false, None) => {}
        }
    }
    c
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
