use std::time::Duration;

use serde_json::json;

use super::*;
use crate::scheduler::podinfo::ScheduledCondition;

fn taint(key: &str) -> Reason {
    Reason::UntoleratedTaint {
        key: key.into(),
        value: String::new(),
    }
}

#[test]
fn message_lists_counts_sorted_as_strings() {
    let fit = FitError {
        num_all_nodes: 3,
        reasons: HashMap::from([
            (taint("node-role.kubernetes.io/control-plane"), 2),
            (Reason::Insufficient("cpu".into()), 1),
        ]),
        ..Default::default()
    };
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
         {node-role.kubernetes.io/control-plane: }."
    );
    let fit = FitError {
        num_all_nodes: 12,
        reasons: HashMap::from([
            (Reason::Insufficient("memory".into()), 2),
            (Reason::NodeAffinity, 10),
        ]),
        ..Default::default()
    };
    // Go sorts the "<count> <reason>" strings, so "10 ..." comes before "2 ...".
    assert_eq!(
        fit.message(),
        "0/12 nodes are available: 10 node(s) didn't match Pod's node affinity/selector, 2 Insufficient memory."
    );
}

#[test]
fn prefilter_messages_replace_the_histogram() {
    let fit = FitError {
        num_all_nodes: 2,
        pre_filter_msg: Some("parsing pod: x".into()),
        ..Default::default()
    };
    assert_eq!(fit.message(), "0/2 nodes are available: parsing pod: x.");
    assert_eq!(FitError::default().message(), NO_NODES_MESSAGE);
}

fn pod_info() -> PodInfo {
    PodInfo {
        uid: "u1".into(),
        namespace: "ns".into(),
        name: "web-0".into(),
        resource_version: "42".into(),
        ..Default::default()
    }
}

#[test]
fn failed_scheduling_event_describes_the_pod() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let ev = failed_scheduling_event(
        &pod_info(),
        "0/1 nodes are available",
        "default-scheduler",
        "default-scheduler-h",
        now,
    );
    let v = serde_json::to_value(&ev).unwrap_or_default();
    assert_eq!(v["reason"], "FailedScheduling");
    assert_eq!(v["type"], "Warning");
    assert_eq!(v["reportingComponent"], "default-scheduler");
    assert_eq!(v["source"]["component"], "default-scheduler");
    assert_eq!(
        v["involvedObject"],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "web-0",
        "namespace": "ns", "uid": "u1", "resourceVersion": "42"})
    );
    assert_eq!(v["metadata"]["namespace"], "ns");
    assert!(
        v["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("web-0."))
    );
    assert_eq!(v["firstTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(v["count"], 1);
}

#[test]
fn long_messages_are_truncated() {
    let long = "x".repeat(5000);
    let ev = failed_scheduling_event(&pod_info(), &long, "s", "s", UNIX_EPOCH);
    assert_eq!(ev.message.map(|m| m.len()), Some(1024));
}

#[test]
fn condition_patch_is_skipped_when_nothing_changes() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut p = pod_info();
    let patch = unschedulable_condition_patch(&p, "m1", now).unwrap_or_default();
    let cond = &patch["status"]["conditions"][0];
    assert_eq!(cond["type"], "PodScheduled");
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(cond["message"], "m1");
    assert_eq!(cond["lastTransitionTime"], "2023-11-14T22:13:20Z");
    p.scheduled_condition = Some(ScheduledCondition {
        status: "False".into(),
        reason: "Unschedulable".into(),
        message: "m1".into(),
    });
    assert!(unschedulable_condition_patch(&p, "m1", now).is_none());
    let changed = unschedulable_condition_patch(&p, "m2", now).unwrap_or_default();
    assert!(
        changed["status"]["conditions"][0]
            .get("lastTransitionTime")
            .is_none(),
        "status did not flip"
    );
}
