//! Core and events.k8s.io events.

use serde_json::json;

use super::support::{ago, row};
use crate::api::table::columns;

#[test]
fn event_columns_match_upstream_order() {
    let cols = columns("", "events");
    let summary: Vec<_> = cols
        .iter()
        .map(|c| (c.name, c.priority, c.format))
        .collect();
    assert_eq!(
        summary,
        [
            ("Last Seen", 0, ""),
            ("Type", 0, ""),
            ("Reason", 0, ""),
            ("Object", 0, ""),
            ("Subobject", 1, ""),
            ("Source", 1, ""),
            ("Message", 0, ""),
            ("First Seen", 1, ""),
            ("Count", 1, ""),
            ("Name", 1, "name"),
        ]
    );
    assert_eq!(cols, columns("events.k8s.io", "events"));
    assert_eq!(cols[3].description, "The object that this event is about.");
}

#[test]
fn core_event_row() {
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-0.17a2b3c4d5e6f708", "namespace": "default", "creationTimestamp": ago(600)},
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default",
                           "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container app\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(30),
        "count": 7,
        "type": "Warning"
    });
    assert_eq!(
        row("", "events", &ev),
        [
            json!("30s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-0"),
            json!("spec.containers{app}"),
            json!("kubelet, node-1"),
            json!("Back-off restarting failed container app"),
            json!("10m"),
            json!(7),
            json!("web-0.17a2b3c4d5e6f708"),
        ]
    );
}

#[test]
fn new_style_core_event_uses_event_time_and_reporting_fields() {
    let ev = json!({
        "metadata": {"name": "n.1"},
        "involvedObject": {"kind": "Node"},
        "reason": "Starting", "message": "Starting kubelet.", "type": "Normal",
        "eventTime": "2024-01-02T03:02:05.123456Z",
        "reportingComponent": "kubelet", "reportingInstance": "",
        "source": {}
    });
    let cells = row("", "events", &ev);
    // 119.88s: Go truncates to whole seconds, so this is still "119s", not "2m".
    assert_eq!(cells[0], json!("119s"));
    assert_eq!(cells[3], json!("node"));
    assert_eq!(cells[5], json!("kubelet"));
    assert_eq!(cells[7..9], [json!("119s"), json!(1)]);
}

#[test]
fn event_series_overrides_last_seen_and_count() {
    let ev = json!({
        "metadata": {"name": "s"},
        "involvedObject": {"kind": "Deployment", "name": "web"},
        "eventTime": ago(3600),
        "series": {"count": 12, "lastObservedTime": ago(15)},
        "count": 2
    });
    let cells = row("", "events", &ev);
    assert_eq!(
        (cells[0].clone(), cells[7].clone(), cells[8].clone()),
        (json!("15s"), json!("60m"), json!(12))
    );
}

#[test]
fn event_without_any_time_is_unknown() {
    let cells = row("", "events", &json!({"metadata": {"name": "x"}}));
    assert_eq!(cells[0], json!("<unknown>"));
    assert_eq!(cells[7], json!("<unknown>"));
    assert_eq!(cells[3], json!(""));
}

#[test]
fn events_k8s_io_event_row() {
    let ev = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.17a", "creationTimestamp": ago(100)},
        "regarding": {"kind": "ReplicaSet", "name": "web-5d4f"},
        "reason": "SuccessfulCreate",
        "note": "Created pod: web-5d4f-abcde",
        "type": "Normal",
        "eventTime": null,
        "reportingController": "replicaset-controller",
        "reportingInstance": "",
        "deprecatedSource": {"component": "replicaset-controller"},
        "deprecatedFirstTimestamp": ago(100),
        "deprecatedLastTimestamp": ago(100),
        "deprecatedCount": 1
    });
    assert_eq!(
        row("events.k8s.io", "events", &ev),
        [
            json!("100s"),
            json!("Normal"),
            json!("SuccessfulCreate"),
            json!("replicaset/web-5d4f"),
            json!(""),
            json!("replicaset-controller"),
            json!("Created pod: web-5d4f-abcde"),
            json!("100s"),
            json!(1),
            json!("web.17a"),
        ]
    );
}
