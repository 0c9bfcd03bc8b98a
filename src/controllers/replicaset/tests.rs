use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::Event;

use super::*;
use crate::client::informer::Change;
use crate::controllers::pod_state::tests::pod_with;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn replica_set(replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web-abc".into()),
            namespace: Some("ns".into()),
            uid: Some("rs-uid".into()),
            generation: Some(3),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(10),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", "web"), ("pod-template-hash", "abc")])),
                    annotations: Some(labels(&[("note", "x")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            }),
        },
        status: None,
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_900_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn owned_pod(name: &str, ready_for: Option<i64>, labels_: &[(&str, &str)]) -> Arc<Pod> {
    let mut pod = match ready_for {
        Some(secs) => pod_with(
            "Running",
            Some(true),
            now() - SignedDuration::from_secs(secs),
        ),
        None => pod_with("Pending", None, now()),
    };
    pod.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        uid: Some(format!("{name}-uid")),
        resource_version: Some("1".into()),
        labels: Some(labels(labels_)),
        owner_references: Some(vec![OwnerReference {
            kind: "ReplicaSet".into(),
            name: "web-abc".into(),
            uid: "rs-uid".into(),
            controller: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    Arc::new(pod)
}

#[tokio::test]
async fn slow_start_doubles_batches_and_stops_at_first_failure() {
    let calls = AtomicUsize::new(0);
    let (ok, err) = slow_start_batch(10, 1, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
    .await;
    assert_eq!(
        (ok, err.is_none(), calls.load(Ordering::SeqCst)),
        (10, true, 10)
    );

    // Fail from the 4th call on: batches 1, 2 succeed, batch of 4 fails.
    let calls = AtomicUsize::new(0);
    let (ok, err) = slow_start_batch(30, 1, || async {
        if calls.fetch_add(1, Ordering::SeqCst) >= 3 {
            return Err(ControllerError::UnknownStrategy("quota".into()));
        }
        Ok(())
    })
    .await;
    assert_eq!(ok, 3);
    assert!(err.is_some());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        7,
        "1 + 2 + 4 attempts, then stop"
    );
}

#[test]
fn pods_from_template_are_controlled_and_labeled() {
    let rs = replica_set(3);
    let pod = pod_from_template(&super::REPLICA_SET, &rs);
    let pod = pod.as_ref().ok();
    let meta = pod.map(|p| &p.metadata);
    assert_eq!(
        meta.and_then(|m| m.generate_name.as_deref()),
        Some("web-abc-")
    );
    assert_eq!(meta.and_then(|m| m.namespace.as_deref()), Some("ns"));
    let hash = meta
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get("pod-template-hash"));
    assert_eq!(hash.map(String::as_str), Some("abc"));
    let reference = meta.and_then(|m| owner::controller_of(m));
    assert_eq!(
        reference.map(|r| (r.kind.as_str(), r.uid.as_str())),
        Some(("ReplicaSet", "rs-uid"))
    );
    assert_eq!(reference.and_then(|r| r.block_owner_deletion), Some(true));
}

#[test]
fn templates_without_labels_are_rejected() {
    let mut rs = replica_set(1);
    if let Some(t) = rs.spec.template.as_mut() {
        t.metadata = None;
    }
    assert!(matches!(
        pod_from_template(&super::REPLICA_SET, &rs),
        Err(ControllerError::MissingField { .. })
    ));
}

#[test]
fn status_counts_ready_available_and_fully_labeled_pods() {
    let rs = replica_set(4);
    let full = [("app", "web"), ("pod-template-hash", "abc")];
    let pods = vec![
        owned_pod("a", Some(60), &full),
        owned_pod("b", Some(3), &full),
        owned_pod("c", None, &full),
        owned_pod("d", Some(60), &[("app", "web")]),
    ];
    let status = status::calculate(&rs, &pods, 2, None, now());
    assert_eq!(status.replicas, 4);
    assert_eq!(status.fully_labeled_replicas, Some(3));
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(
        status.available_replicas,
        Some(2),
        "b is ready for less than minReadySeconds"
    );
    assert_eq!(status.terminating_replicas, Some(2));
    assert!(status::needs_update(&rs, &status));
}

#[test]
fn failures_set_and_clear_the_replica_failure_condition() {
    let rs = replica_set(3);
    let err = ControllerError::UnknownStrategy("boom".into());
    let failed = status::calculate(&rs, &[], 0, Some(&err), now());
    let cond = failed
        .conditions
        .as_deref()
        .unwrap_or_default()
        .first()
        .cloned();
    assert_eq!(
        cond.as_ref().and_then(|c| c.type_.as_deref()),
        Some("ReplicaFailure")
    );
    assert_eq!(
        cond.as_ref().and_then(|c| c.reason.as_deref()),
        Some("FailedCreate")
    );
    let mut rs2 = rs.clone();
    rs2.status = Some(failed);
    let healed = status::calculate(&rs2, &[], 0, None, now());
    assert!(healed.conditions.unwrap_or_default().is_empty());
}

#[test]
fn unchanged_observed_status_is_not_rewritten() {
    let mut rs = replica_set(0);
    rs.status = Some(ReplicaSetStatus {
        replicas: 0,
        observed_generation: Some(3),
        fully_labeled_replicas: Some(0),
        ready_replicas: Some(0),
        available_replicas: Some(0),
        terminating_replicas: Some(0),
        conditions: None,
    });
    let status = status::calculate(&rs, &[], 0, None, now());
    assert!(!status::needs_update(&rs, &status));
    rs.metadata.generation = Some(4);
    assert!(status::needs_update(&rs, &status));
}

fn test_context(rs: &ReplicaSet) -> Option<Context> {
    let client =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().ok()?)).ok()?;
    let (replica_sets, mut rs_writer) = reflector::store();
    rs_writer.apply_watcher_event(&Event::Apply(rs.clone()));
    let (pods, _pod_writer) = reflector::store();
    Some(Context {
        events: EventSink::new(client.clone(), "test"),
        client,
        replica_sets,
        pods,
        expectations: Expectations::default(),
        flavor: &super::REPLICA_SET,
    })
}

#[tokio::test]
async fn pod_events_settle_creation_and_deletion_expectations() {
    let rs = replica_set(2);
    let ctx = test_context(&rs);
    assert!(ctx.is_some(), "an offline client can be built");
    let Some(ctx) = ctx else { return };
    let key = "ns/web-abc";
    ctx.expectations.expect_creations(key, 1);
    let pod = owned_pod("a", None, &[("app", "web")]);
    let targets = ctx.on_pod_change(Change::Added(pod.clone()));
    assert_eq!(targets, vec![ObjectRef::new("web-abc").within("ns")]);
    assert!(ctx.expectations.satisfied(key));

    ctx.expectations.expect_deletions(key, ["ns/a".to_string()]);
    let mut going = (*pod).clone();
    going.metadata.resource_version = Some("2".into());
    going.metadata.deletion_timestamp = Some(Time(now()));
    let targets = ctx.on_pod_change(Change::Updated {
        old: pod,
        new: Arc::new(going),
    });
    assert_eq!(targets.len(), 1);
    assert!(
        ctx.expectations.satisfied(key),
        "a graceful deletion counts as observed"
    );
}

#[tokio::test]
async fn orphans_are_offered_to_matching_replica_sets() {
    let rs = replica_set(2);
    let Some(ctx) = test_context(&rs) else { return };
    let mut orphan = (*owned_pod("o", None, &[("app", "web")])).clone();
    orphan.metadata.owner_references = None;
    let targets = ctx.on_pod_change(Change::Added(Arc::new(orphan.clone())));
    assert_eq!(targets.len(), 1);
    orphan.metadata.labels = Some(labels(&[("app", "other")]));
    assert!(
        ctx.on_pod_change(Change::Added(Arc::new(orphan)))
            .is_empty()
    );
}
