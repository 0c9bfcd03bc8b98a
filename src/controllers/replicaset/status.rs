//! Computing and writing a ReplicaSet's status (upstream's
//! `calculateStatus` and `updateReplicaSetStatus`).
//!
//! The status is written only when something changed or the generation was
//! not yet observed; a conflicting write is retried once against a fresh
//! read, after which the error goes back to the driver for a backoff retry.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

use super::{Flavor, min_ready_seconds, name, namespace, replicas};
use crate::controllers::error::ControllerError;
use crate::controllers::pod_state;

const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The status `rs` should report given its claimed active pods, the number
/// of its terminating pods and the outcome of this sync's pod management.
pub(super) fn calculate(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    terminating: usize,
    manage_error: Option<&ControllerError>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let ready: Vec<&Arc<Pod>> = pods.iter().filter(|p| pod_state::is_ready(p)).collect();
    let min_ready = min_ready_seconds(rs);
    let available = ready
        .iter()
        .filter(|p| pod_state::is_available(p, min_ready, now))
        .count();

    let has_failure = condition(&status, REPLICA_FAILURE).is_some();
    match manage_error {
        Some(err) if !has_failure => {
            let diff = i64::try_from(pods.len()).unwrap_or(i64::MAX) - i64::from(replicas(rs));
            let reason = match diff {
                d if d < 0 => "FailedCreate",
                d if d > 0 => "FailedDelete",
                _ => "",
            };
            set_condition(&mut status, failure_condition(reason, err.to_string(), now));
        }
        None if has_failure => remove_condition(&mut status, REPLICA_FAILURE),
        _ => {}
    }
    status.replicas = count(pods.len());
    status.fully_labeled_replicas = Some(count(fully_labeled));
    status.ready_replicas = Some(count(ready.len()));
    status.available_replicas = Some(count(available));
    status.terminating_replicas = Some(count(terminating));
    status
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn failure_condition(reason: &str, message: String, now: Timestamp) -> ReplicaSetCondition {
    ReplicaSetCondition {
        type_: Some(REPLICA_FAILURE.into()),
        status: Some("True".into()),
        last_transition_time: Some(Time(now)),
        reason: Some(reason.into()),
        message: Some(message),
    }
}

fn condition<'a>(status: &'a ReplicaSetStatus, type_: &str) -> Option<&'a ReplicaSetCondition> {
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

fn set_condition(status: &mut ReplicaSetStatus, cond: ReplicaSetCondition) {
    let type_ = cond.type_.clone().unwrap_or_default();
    if let Some(current) = condition(status, &type_)
        && current.status == cond.status
        && current.reason == cond.reason
    {
        return;
    }
    remove_condition(status, &type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

fn remove_condition(status: &mut ReplicaSetStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

/// Whether `new` differs from what `rs` reports or its generation is
/// unobserved.
pub(super) fn needs_update(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let current = rs.status.clone().unwrap_or_default();
    let observed = current.observed_generation.unwrap_or(0);
    current.replicas != new.replicas
        || current.fully_labeled_replicas.unwrap_or(0) != new.fully_labeled_replicas.unwrap_or(0)
        || current.ready_replicas.unwrap_or(0) != new.ready_replicas.unwrap_or(0)
        || current.available_replicas.unwrap_or(0) != new.available_replicas.unwrap_or(0)
        || current.terminating_replicas != new.terminating_replicas
        || rs.metadata.generation.unwrap_or(0) != observed
        || current.conditions.unwrap_or_default() != new.conditions.clone().unwrap_or_default()
}

/// Writes `new` as the status of `rs` (with `observedGeneration` set to the
/// generation acted on), retrying once after a conflict.
pub(super) async fn update(
    client: &Client,
    flavor: &Flavor,
    rs: &ReplicaSet,
    mut new: ReplicaSetStatus,
) -> Result<(), ControllerError> {
    if !needs_update(rs, &new) {
        return Ok(());
    }
    // The generation we acted on, not a newer one a retry might read.
    new.observed_generation = rs.metadata.generation;
    let meta = &rs.metadata;
    let fail =
        |action, e| ControllerError::api(action, flavor.kind, namespace(meta), name(meta), e);
    if flavor.kind != "ReplicaSet" {
        // A ReplicationController's status has the same fields; a merge
        // patch of all of them (null clears) writes it without a typed copy.
        let mut status = serde_json::to_value(&new).unwrap_or_default();
        if let Some(map) = status.as_object_mut() {
            for field in ["conditions", "terminatingReplicas"] {
                map.entry(field).or_insert(serde_json::Value::Null);
            }
            // Upstream's ReplicationControllerStatus has no terminatingReplicas.
            map.remove("terminatingReplicas");
        }
        let api = Api::<kube::api::DynamicObject>::namespaced_with(
            client.clone(),
            namespace(meta),
            &flavor.api_resource(),
        );
        return api
            .patch_status(
                name(meta),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .map(|_| ())
            .map_err(|e| fail("update status of", e));
    }
    let api = Api::<ReplicaSet>::namespaced(client.clone(), namespace(meta));
    let mut target = rs.clone();
    for attempt in 0..2 {
        target.status = Some(new.clone());
        match api
            .replace_status(name(meta), &PostParams::default(), &target)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if attempt == 0 => {
                tracing::debug!(replicaset = name(meta), error = %e, "status update failed, retrying on a fresh copy");
                target = api.get(name(meta)).await.map_err(|e| fail("get", e))?;
            }
            Err(e) => return Err(fail("update status of", e)),
        }
    }
    Ok(())
}
