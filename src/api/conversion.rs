//! Conversion between a served version and the version its objects are
//! stored as, for the resources served in more than one shape:
//! `autoscaling/v1` HorizontalPodAutoscalers (stored as `autoscaling/v2`)
//! and `events.k8s.io/v1` Events (stored as core `v1` Events), as upstream
//! stores one copy and converts on the way in and out.
//!
//! The rules are upstream's (`pkg/apis/autoscaling/v1/conversion.go`,
//! `pkg/apis/events/v1/conversion.go`): what the older HPA shape cannot
//! hold (metrics other than CPU, behavior, conditions, current metrics)
//! travels in `autoscaling.alpha.kubernetes.io/*` annotations, so a v1
//! client that reads and writes back loses nothing. Conversion never fails:
//! fields it does not know are dropped, as a Go decode into the target type
//! would.

use serde_json::{Map, Value, json};

use super::registry::resources::ResourceInfo;

const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

/// `served` to its storage version.
pub fn to_storage(served: &ResourceInfo, mut obj: Value) -> Value {
    match (served.group, served.version) {
        ("autoscaling", "v1") => hpa_v1_to_v2(obj),
        ("events.k8s.io", _) => event_to_core(obj),
        _ => {
            // conversion: None (custom resources): only apiVersion changes.
            let stored = served.storage().unwrap_or(served);
            obj["apiVersion"] = json!(stored.api_version());
            obj
        }
    }
}

/// A stored object to the `served` version; lists, Tables and Statuses are
/// handled by [`from_storage_body`].
pub fn from_storage(served: &ResourceInfo, obj: Value) -> Value {
    match (served.group, served.version) {
        ("autoscaling", "v1") => hpa_v2_to_v1(obj),
        ("events.k8s.io", _) => event_from_core(obj),
        _ => obj,
    }
}

/// A response body from the storage version to the served one: objects
/// and the items of lists are converted; Statuses, Tables and partial
/// metadata are version-free and pass through.
pub fn from_storage_body(served: &ResourceInfo, body: Value) -> Value {
    if is_version_free(&body) {
        return body;
    }
    let kind = body["kind"].as_str().unwrap_or("").to_string();
    if kind.ends_with("List") {
        let mut body = body;
        body["apiVersion"] = json!(served.api_version());
        if let Some(items) = body["items"].as_array_mut() {
            for item in items.iter_mut() {
                *item = from_storage(served, std::mem::take(item));
                item["apiVersion"] = json!(served.api_version());
                item["kind"] = json!(served.kind);
            }
        }
        return body;
    }
    let mut obj = from_storage(served, body);
    obj["apiVersion"] = json!(served.api_version());
    obj["kind"] = json!(served.kind);
    obj
}

/// Whether a response body is the same in every version of a resource:
/// Statuses, Tables and partial metadata.
pub fn is_version_free(body: &Value) -> bool {
    matches!(
        body["kind"].as_str().unwrap_or(""),
        "Status" | "Table" | "PartialObjectMetadata" | "PartialObjectMetadataList"
    ) || body["apiVersion"] == "meta.k8s.io/v1"
}

/// A field selector written for `served` in the storage version's terms
/// (`regarding.name` → `involvedObject.name` for Events).
pub fn storage_field_selector(served: &ResourceInfo, selector: &str) -> String {
    if served.group != "events.k8s.io" {
        return selector.to_string();
    }
    selector
        .split(',')
        .map(|term| {
            if let Some(rest) = term.strip_prefix("regarding.") {
                format!("involvedObject.{rest}")
            } else if let Some(rest) = term.strip_prefix("deprecatedSource.") {
                format!("source.{rest}")
            } else if let Some(rest) = term.strip_prefix("reportingController") {
                format!("reportingComponent{rest}")
            } else {
                term.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"]
        .as_object_mut()
        .expect("made an object above")
}

fn drop_empty_annotations(obj: &mut Value) {
    if obj["metadata"]["annotations"]
        .as_object()
        .is_some_and(Map::is_empty)
        && let Some(m) = obj["metadata"].as_object_mut()
    {
        m.remove("annotations");
    }
}

fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && metric["resource"]["target"]["type"] == "Utilization"
}

fn hpa_v2_to_v1(mut obj: Value) -> Value {
    let spec = obj["spec"].take();
    let status = obj["status"].take();
    let mut v1_spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"].as_i64().unwrap_or(0),
    });
    if !spec["minReplicas"].is_null() {
        v1_spec["minReplicas"] = spec["minReplicas"].clone();
    }
    let mut others = Vec::new();
    for m in spec["metrics"].as_array().into_iter().flatten() {
        if is_cpu_utilization(m) && v1_spec.get("targetCPUUtilizationPercentage").is_none() {
            v1_spec["targetCPUUtilizationPercentage"] =
                m["resource"]["target"]["averageUtilization"].clone();
        } else {
            others.push(m.clone());
        }
    }
    let mut extra = Vec::new();
    if !others.is_empty() {
        extra.push((METRICS_ANNOTATION, Value::Array(others)));
    }
    if !spec["behavior"].is_null() {
        extra.push((BEHAVIOR_ANNOTATION, spec["behavior"].clone()));
    }
    let mut v1_status = json!({
        "currentReplicas": status["currentReplicas"].as_i64().unwrap_or(0),
        "desiredReplicas": status["desiredReplicas"].as_i64().unwrap_or(0),
    });
    for f in ["observedGeneration", "lastScaleTime"] {
        if !status[f].is_null() {
            v1_status[f] = status[f].clone();
        }
    }
    let mut other_current = Vec::new();
    for m in status["currentMetrics"].as_array().into_iter().flatten() {
        if m["type"] == "Resource"
            && m["resource"]["name"] == "cpu"
            && v1_status.get("currentCPUUtilizationPercentage").is_none()
            && !m["resource"]["current"]["averageUtilization"].is_null()
        {
            v1_status["currentCPUUtilizationPercentage"] =
                m["resource"]["current"]["averageUtilization"].clone();
        } else {
            other_current.push(m.clone());
        }
    }
    if !other_current.is_empty() {
        extra.push((CURRENT_METRICS_ANNOTATION, Value::Array(other_current)));
    }
    if status["conditions"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        extra.push((CONDITIONS_ANNOTATION, status["conditions"].clone()));
    }
    if !extra.is_empty() {
        let a = annotations(&mut obj);
        for (k, v) in extra {
            a.insert(
                k.into(),
                json!(serde_json::to_string(&v).unwrap_or_default()),
            );
        }
    }
    obj["spec"] = v1_spec;
    obj["status"] = v1_status;
    obj["apiVersion"] = json!("autoscaling/v1");
    obj
}

fn take_annotation(obj: &mut Value, key: &str) -> Value {
    let raw = obj["metadata"]["annotations"]
        .as_object_mut()
        .and_then(|a| a.remove(key));
    raw.and_then(|v| v.as_str().and_then(|s| serde_json::from_str(s).ok()))
        .unwrap_or(Value::Null)
}

fn hpa_v1_to_v2(mut obj: Value) -> Value {
    let spec = obj["spec"].take();
    let status = obj["status"].take();
    let mut metrics: Vec<Value> = Vec::new();
    if let Some(target) = spec["targetCPUUtilizationPercentage"].as_i64() {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": target}}}));
    }
    if let Value::Array(more) = take_annotation(&mut obj, METRICS_ANNOTATION) {
        metrics.extend(more);
    }
    let mut v2_spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"].as_i64().unwrap_or(0),
    });
    if !spec["minReplicas"].is_null() {
        v2_spec["minReplicas"] = spec["minReplicas"].clone();
    }
    if !metrics.is_empty() {
        v2_spec["metrics"] = Value::Array(metrics);
    }
    let behavior = take_annotation(&mut obj, BEHAVIOR_ANNOTATION);
    if !behavior.is_null() {
        v2_spec["behavior"] = behavior;
    }
    let mut v2_status = json!({
        "desiredReplicas": status["desiredReplicas"].as_i64().unwrap_or(0),
    });
    for f in ["observedGeneration", "lastScaleTime", "currentReplicas"] {
        if !status[f].is_null() {
            v2_status[f] = status[f].clone();
        }
    }
    let mut current: Vec<Value> = Vec::new();
    if let Some(cpu) = status["currentCPUUtilizationPercentage"].as_i64() {
        current.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": cpu}}}));
    }
    if let Value::Array(more) = take_annotation(&mut obj, CURRENT_METRICS_ANNOTATION) {
        current.extend(more);
    }
    if !current.is_empty() {
        v2_status["currentMetrics"] = Value::Array(current);
    }
    let conditions = take_annotation(&mut obj, CONDITIONS_ANNOTATION);
    if !conditions.is_null() {
        v2_status["conditions"] = conditions;
    }
    drop_empty_annotations(&mut obj);
    obj["spec"] = v2_spec;
    obj["status"] = v2_status;
    obj["apiVersion"] = json!("autoscaling/v2");
    obj
}

/// Core field ↔ events.k8s.io field, for the fields that only moved.
const EVENT_FIELDS: [(&str, &str); 9] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("eventTime", "eventTime"),
    ("series", "series"),
];

/// Fields both shapes have under the same name.
const EVENT_SHARED: [&str; 6] = [
    "metadata",
    "type",
    "reason",
    "action",
    "reportingInstance",
    "related",
];

fn event_from_core(core: Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    for f in EVENT_SHARED {
        if !core[f].is_null() {
            out.insert(f.into(), core[f].clone());
        }
    }
    for (from, to) in EVENT_FIELDS {
        if !core[from].is_null() {
            out.insert(to.into(), core[from].clone());
        }
    }
    if let Some(series) = out.get_mut("series")
        && series.is_object()
    {
        // core: {count, lastObservedTime}; events.k8s.io: the same names.
        series.as_object_mut().map(|s| s.remove("state"));
    }
    // events.k8s.io/v1 requires eventTime, and typed clients (the Python
    // client's models) refuse an Event without one; a core Event written
    // by an older client has none, so its first timestamp stands in.
    if out.get("eventTime").is_none_or(Value::is_null) {
        let when = [
            &core["firstTimestamp"],
            &core["lastTimestamp"],
            &core["metadata"]["creationTimestamp"],
        ]
        .into_iter()
        .find_map(Value::as_str)
        .map(micro_time);
        out.insert("eventTime".into(), when.map_or(Value::Null, Value::String));
    }
    Value::Object(out)
}

/// `2026-01-02T03:04:05Z` as a MicroTime (`…05.000000Z`).
fn micro_time(t: &str) -> String {
    match t.strip_suffix('Z') {
        Some(base) if !base.contains('.') => format!("{base}.000000Z"),
        _ => t.to_string(),
    }
}

fn event_to_core(ev: Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    for f in EVENT_SHARED {
        if !ev[f].is_null() {
            out.insert(f.into(), ev[f].clone());
        }
    }
    for (to, from) in EVENT_FIELDS {
        if !ev[from].is_null() {
            out.insert(to.into(), ev[from].clone());
        }
    }
    // core/v1 wants an involvedObject even when the new shape has none.
    out.entry("involvedObject").or_insert_with(|| json!({}));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::resources::find;

    #[test]
    fn hpa_round_trips_through_v1_without_losing_v2_fields() {
        let v1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let served = from_storage(v1, v2.clone());
        assert_eq!(served["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(served["status"]["desiredReplicas"], 3);
        assert!(served["metadata"]["annotations"][METRICS_ANNOTATION].is_string());
        let back = to_storage(v1, served);
        assert_eq!(back["spec"], v2["spec"]);
        assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
        assert!(back["metadata"].get("annotations").is_none());
    }

    #[test]
    fn core_events_read_as_events_k8s_io() {
        let ev = find("events.k8s.io", "v1", "events").unwrap();
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "reason": "R",
            "type": "Normal", "count": 2, "source": {"component": "kubelet"}});
        let served = from_storage_body(ev, core.clone());
        assert_eq!(served["apiVersion"], "events.k8s.io/v1");
        assert_eq!(served["regarding"]["name"], "p");
        assert_eq!(served["note"], "hi");
        assert_eq!(served["deprecatedCount"], 2);
        assert!(
            served["eventTime"].is_null(),
            "no timestamp at all stays null"
        );
        let back = to_storage(ev, served);
        assert_eq!(back["involvedObject"], core["involvedObject"]);
        assert_eq!(back["message"], "hi");
        assert_eq!(
            storage_field_selector(ev, "regarding.name=p,type=Normal"),
            "involvedObject.name=p,type=Normal"
        );
    }
}
