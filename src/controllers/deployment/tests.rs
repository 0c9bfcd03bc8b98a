use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::Event;
use serde_json::json;

use super::hash::POD_TEMPLATE_HASH_LABEL;
use super::rollout::old_pods_running;
use super::scaling::tests::{deployment, rs};
use super::*;
use crate::client::informer::Change;

fn with_template(rs: &Arc<ReplicaSet>, d: &Deployment, hash: &str) -> Arc<ReplicaSet> {
    let mut copy = (**rs).clone();
    let mut template = d.spec.template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    }
    copy.spec.template = Some(template);
    Arc::new(copy)
}

fn controlled_by(rs: &Arc<ReplicaSet>, kind: &str, name: &str, uid: &str) -> Arc<ReplicaSet> {
    let mut copy = (**rs).clone();
    copy.metadata.owner_references = Some(vec![OwnerReference {
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        ..Default::default()
    }]);
    copy.metadata.labels = Some([("app".to_string(), "d".to_string())].into());
    Arc::new(copy)
}

fn pod(phase: &str) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": phase}}))
            .unwrap_or_default(),
    )
}

#[test]
fn the_new_replica_set_is_the_oldest_with_an_equal_template() {
    let d = deployment(3, IntOrString::Int(1), IntOrString::Int(0));
    let mut other = d.clone();
    other.spec.template.spec = None;
    let a = with_template(&rs("a", 1, 1, 5, &[]), &d, "h1");
    let b = with_template(&rs("b", 1, 1, 2, &[]), &d, "h2");
    let c = with_template(&rs("c", 1, 1, 1, &[]), &other, "h3");
    let found = sync::find_new_rs(&d, &[a, b, c]);
    assert_eq!(
        found.and_then(|r| r.metadata.name.clone()).as_deref(),
        Some("b")
    );
    assert!(sync::find_new_rs(&d, &[rs("plain", 1, 1, 1, &[])]).is_none());
}

#[test]
fn recreate_waits_for_every_old_pod_to_finish() {
    let new = rs("new", 0, 0, 2, &[]);
    let old = rs("old", 0, 0, 1, &[]);
    let mut pods: rollout::PodMap =
        [("old-uid".to_string(), vec![pod("Succeeded"), pod("Failed")])].into();
    assert!(!old_pods_running(
        Some(&new),
        std::slice::from_ref(&old),
        &pods
    ));
    pods.insert("new-uid".into(), vec![pod("Running")]);
    assert!(
        !old_pods_running(Some(&new), std::slice::from_ref(&old), &pods),
        "new pods do not count"
    );
    pods.insert("old-uid".into(), vec![pod("Unknown")]);
    assert!(
        old_pods_running(Some(&new), std::slice::from_ref(&old), &pods),
        "unknown counts as running"
    );
    let reporting = rs("old2", 0, 0, 1, &[]);
    let mut busy = (*reporting).clone();
    if let Some(s) = busy.status.as_mut() {
        s.replicas = 1;
    }
    assert!(old_pods_running(
        None,
        &[Arc::new(busy)],
        &rollout::PodMap::new()
    ));
}

#[test]
fn new_replica_sets_are_named_labeled_and_owned_by_hash() {
    let d = deployment(3, IntOrString::Int(1), IntOrString::Int(0));
    let made = sync::new_rs_object(&d);
    assert!(made.is_ok());
    let Ok(made) = made else { return };
    let hash = hash::compute_hash(&d.spec.template, None).unwrap_or_default();
    assert_eq!(made.metadata.name, Some(format!("d-{hash}")));
    let label = |m: Option<&std::collections::BTreeMap<String, String>>| {
        m.and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL)).cloned()
    };
    assert_eq!(label(made.metadata.labels.as_ref()), Some(hash.clone()));
    assert_eq!(
        label(made.spec.selector.match_labels.as_ref()),
        Some(hash.clone())
    );
    let template_labels = made
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    assert_eq!(label(template_labels), Some(hash));
    assert_eq!(made.spec.replicas, Some(0));
    let owner = owner::controller_of(&made.metadata)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "d-uid")
    );
    // A collision count yields another name.
    let mut bumped = d.clone();
    bumped.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus {
        collision_count: Some(1),
        ..Default::default()
    });
    assert_ne!(
        sync::new_rs_object(&bumped)
            .ok()
            .and_then(|r| r.metadata.name),
        made.metadata.name
    );
}

fn context(d: &Deployment, rss: &[Arc<ReplicaSet>]) -> Option<Context> {
    let client =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().ok()?)).ok()?;
    let (deployments, mut dw) = reflector::store();
    dw.apply_watcher_event(&Event::Apply(d.clone()));
    let (replica_sets, mut rw) = reflector::store();
    for rs in rss {
        rw.apply_watcher_event(&Event::Apply((**rs).clone()));
    }
    let (pods, _) = reflector::store();
    Some(Context {
        events: EventSink::new(client.clone(), "test"),
        client,
        deployments,
        replica_sets,
        pods,
    })
}

#[tokio::test]
async fn replica_set_changes_reach_their_deployment() {
    let d = deployment(3, IntOrString::Int(1), IntOrString::Int(0));
    let owned = controlled_by(&rs("owned", 1, 1, 1, &[]), "Deployment", "d", "d-uid");
    let Some(ctx) = context(&d, std::slice::from_ref(&owned)) else {
        return;
    };
    let target = vec![ObjectRef::new("d").within("ns")];
    assert_eq!(
        ctx.on_replica_set_change(Change::Added(owned.clone())),
        target
    );
    assert_eq!(
        ctx.on_replica_set_change(Change::Deleted(owned.clone())),
        target
    );
    // Someone else's controller reference is ignored.
    let foreign = controlled_by(&rs("f", 1, 1, 1, &[]), "Deployment", "d", "other-uid");
    assert!(ctx.on_replica_set_change(Change::Added(foreign)).is_empty());
    // A matching orphan is offered to the deployment.
    let mut orphan = (*owned).clone();
    orphan.metadata.owner_references = None;
    assert_eq!(
        ctx.on_replica_set_change(Change::Added(Arc::new(orphan))),
        target
    );
}

#[tokio::test]
async fn pod_deletions_only_wake_recreate_deployments() {
    let mut d = deployment(3, IntOrString::Int(1), IntOrString::Int(0));
    let owned = controlled_by(&rs("owned", 1, 1, 1, &[]), "Deployment", "d", "d-uid");
    let mut p = (*pod("Running")).clone();
    p.metadata.namespace = Some("ns".into());
    p.metadata.owner_references = Some(vec![OwnerReference {
        kind: "ReplicaSet".into(),
        name: "owned".into(),
        uid: "owned-uid".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    let p = Arc::new(p);
    let Some(ctx) = context(&d, std::slice::from_ref(&owned)) else {
        return;
    };
    assert!(ctx.on_pod_change(Change::Deleted(p.clone())).is_empty());
    if let Some(s) = d.spec.strategy.as_mut() {
        s.type_ = Some("Recreate".into());
    }
    let Some(ctx) = context(&d, &[owned]) else {
        return;
    };
    assert_eq!(ctx.on_pod_change(Change::Deleted(p.clone())).len(), 1);
    assert!(ctx.on_pod_change(Change::Added(p)).is_empty());
}
