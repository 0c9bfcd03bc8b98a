//! The ReplicationController controller: the ReplicaSet controller run over
//! ReplicationControllers converted to ReplicaSets, as upstream does
//! (`pkg/controller/replication` wraps `pkg/controller/replicaset` the same
//! way).
//!
//! A ReplicationController differs from a ReplicaSet only in its selector
//! (a plain label map, which becomes `matchLabels`) and in its kind and
//! group. Converted copies are kept in a store of their own, fed from the
//! shared ReplicationController informer; pods are owned, events are
//! recorded and status is written under the ReplicationController's own
//! kind (the [`Flavor`]).

use std::sync::Arc;

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::runtime::watcher;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Context, Flavor, reconcile};
use crate::client::events::EventSink;
use crate::client::informer::{Change, SharedInformers};
use crate::controllers::driver;
use crate::controllers::error::{ControllerConfig, ControllerError};
use crate::controllers::expectations::Expectations;

const REPLICATION_CONTROLLER: Flavor = Flavor {
    kind: "ReplicationController",
    group: "",
    version: "v1",
    plural: "replicationcontrollers",
};

/// The ReplicaSet a ReplicationController behaves as.
fn as_replica_set(rc: &ReplicationController) -> Option<ReplicaSet> {
    let mut v = serde_json::to_value(rc).ok()?;
    let mut selector = v["spec"]["selector"].take();
    if selector.as_object().is_none_or(|m| m.is_empty()) {
        // The apiserver defaults it to the template's labels.
        selector = v["spec"]["template"]["metadata"]["labels"].clone();
    }
    v["spec"]["selector"] = json!({ "matchLabels": selector });
    v["apiVersion"] = json!("apps/v1");
    v["kind"] = json!("ReplicaSet");
    serde_json::from_value(v).ok()
}

fn convert(change: Change<ReplicationController>) -> Option<Change<ReplicaSet>> {
    Some(match change {
        Change::Added(rc) => Change::Added(Arc::new(as_replica_set(&rc)?)),
        Change::Updated { old, new } => Change::Updated {
            old: Arc::new(as_replica_set(&old)?),
            new: Arc::new(as_replica_set(&new)?),
        },
        Change::Deleted(rc) => Change::Deleted(Arc::new(as_replica_set(&rc)?)),
        Change::Synced => Change::Synced,
    })
}

/// Runs the ReplicationController controller until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    config: ControllerConfig,
    cancel: CancellationToken,
) -> Result<(), ControllerError> {
    let client = informers.client();
    let (_, rc_changes) = informers.get::<ReplicationController>().feed();
    let (pods, pod_changes) = informers.get::<Pod>().feed();
    let (converted, mut writer) = kube::runtime::reflector::store::<ReplicaSet>();
    writer.apply_watcher_event(&watcher::Event::Init);
    let ctx = Arc::new(Context {
        events: EventSink::new(client.clone(), "replication-controller"),
        client,
        replica_sets: converted.clone(),
        pods,
        expectations: Expectations::default(),
        flavor: &REPLICATION_CONTROLLER,
    });
    let (rc_ctx, pod_ctx) = (ctx.clone(), ctx.clone());
    let mut listed = false;
    let rc_triggers = rc_changes.flat_map(move |change| {
        let Some(change) = convert(change) else {
            return stream::iter(Vec::new());
        };
        // The converted store must hold the change before the handlers
        // look at it, as the shared store does for ReplicaSets.
        match &change {
            Change::Added(rs) if !listed => {
                writer.apply_watcher_event(&watcher::Event::InitApply((**rs).clone()))
            }
            Change::Added(rs) | Change::Updated { new: rs, .. } => {
                writer.apply_watcher_event(&watcher::Event::Apply((**rs).clone()))
            }
            Change::Deleted(rs) => {
                writer.apply_watcher_event(&watcher::Event::Delete((**rs).clone()))
            }
            Change::Synced if !listed => {
                listed = true;
                writer.apply_watcher_event(&watcher::Event::InitDone);
            }
            Change::Synced => {}
        }
        stream::iter(rc_ctx.on_replica_set_change(change))
    });
    let triggers = stream::select(
        rc_triggers,
        pod_changes.flat_map(move |c| stream::iter(pod_ctx.on_pod_change(c))),
    );
    driver::drive(
        "replicationcontroller",
        converted,
        triggers,
        ctx,
        reconcile,
        &config,
        cancel,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replication_controller_becomes_a_replica_set_with_match_labels() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"replicas": 3, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": 1}
        }))
        .unwrap();
        let rs = as_replica_set(&rc).unwrap();
        assert_eq!(rs.spec.replicas, Some(3));
        assert_eq!(
            rs.spec
                .selector
                .match_labels
                .unwrap()
                .get("app")
                .map(String::as_str),
            Some("web")
        );
        assert_eq!(rs.status.unwrap().replicas, 1);
        assert_eq!(rs.metadata.uid.as_deref(), Some("u1"));
    }
}
