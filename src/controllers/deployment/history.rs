//! Revision bookkeeping for Deployments (upstream `deployment/util`): the
//! `deployment.kubernetes.io/revision` annotation on ReplicaSets and the
//! deployment, the `revision-history` an old ReplicaSet accumulates when a
//! rollback revives it, the desired-replicas/max-replicas annotations used
//! to tell scaling from rolling out, and which old ReplicaSets
//! `revisionHistoryLimit` lets go.
//!
//! `kubectl rollout history` and `kubectl rollout undo` read exactly these
//! annotations. Unparsable revisions are skipped like upstream does, never
//! treated as errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::scaling::{self, by_creation};

/// The rollout sequence number of a ReplicaSet (and of its deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a revived ReplicaSet served.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The deployment's replicas when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The deployment's replicas plus maxSurge when the ReplicaSet was last sized.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Longest `revision-history` kept (upstream's `maxRevHistoryLengthInChars`).
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations never copied onto its ReplicaSets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The revision recorded on an object: 0 when absent, `None` when garbled.
pub fn revision(meta: &ObjectMeta) -> Option<i64> {
    match annotation(meta, REVISION) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// The highest parsable revision among `rss` (0 if none).
pub fn max_revision(rss: &[Arc<ReplicaSet>]) -> i64 {
    rss.iter()
        .filter_map(|rs| revision(&rs.metadata))
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Sets the deployment's revision annotation; true if it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.into(), revision.into());
    true
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(&rs.metadata, key)?.parse().ok()
}

/// The desired-replicas annotation of a ReplicaSet.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS)
}

/// The max-replicas annotation of a ReplicaSet.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS)
}

/// Whether the replicas annotations differ from `desired` / `max`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Sets the replicas annotations; true if they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let changed = replicas_annotations_need_update(rs, desired, max);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
    annotations.insert(MAX_REPLICAS.into(), max.to_string());
    changed
}

/// Copies the deployment's annotations (except the bookkeeping ones) onto
/// the ReplicaSet; true if anything changed. Never removes annotations.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Upstream's `SetNewReplicaSetAnnotations`: copies deployment annotations,
/// raises the revision to `new_revision` (recording the previous one in the
/// revision history when a rollback revives the ReplicaSet), and sizes the
/// replicas annotations of a ReplicaSet about to be created. True if any
/// annotation changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = annotations.get(REVISION).cloned();
    let old = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    let Ok(new) = new_revision.parse::<i64>() else {
        return false;
    };
    if old < new {
        annotations.insert(REVISION.into(), new_revision.into());
        changed = true;
        if let Some(old_revision) = old_revision {
            append_revision_history(annotations, &old_revision);
        }
    }
    if !exists {
        let desired = scaling::deployment_replicas(d);
        changed |= set_replicas_annotations(rs, desired, scaling::max_replicas(d));
    }
    changed
}

fn append_revision_history(annotations: &mut BTreeMap<String, String>, old_revision: &str) {
    let history = annotations
        .get(REVISION_HISTORY)
        .cloned()
        .unwrap_or_default();
    if history.is_empty() {
        annotations.insert(REVISION_HISTORY.into(), old_revision.into());
        return;
    }
    let entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old_revision.len() + 1;
    let mut start = 0;
    while total > MAX_REVISION_HISTORY_CHARS && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total <= MAX_REVISION_HISTORY_CHARS {
        let mut kept: Vec<&str> = entries[start..].to_vec();
        kept.push(old_revision);
        annotations.insert(REVISION_HISTORY.into(), kept.join(","));
    }
}

/// Orders by revision, ties (or garbled revisions) by creation time.
fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    match (revision(&a.metadata), revision(&b.metadata)) {
        (Some(ra), Some(rb)) if ra != rb => ra.cmp(&rb),
        _ => by_creation(a, b),
    }
}

/// The old ReplicaSets `revisionHistoryLimit` lets go, oldest revision
/// first: only scaled-down, fully observed, not already deleting ones.
pub fn history_to_clean_up(d: &Deployment, old: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    let Some(limit) = d.spec.revision_history_limit.filter(|l| *l != i32::MAX) else {
        return Vec::new();
    };
    let mut alive: Vec<Arc<ReplicaSet>> = old
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    let excess = alive
        .len()
        .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
    alive.sort_by(|a, b| by_revision(a, b));
    alive
        .into_iter()
        .take(excess)
        .filter(|rs| {
            let status = rs.status.clone().unwrap_or_default();
            status.replicas == 0
                && scaling::rs_replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= status.observed_generation.unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
