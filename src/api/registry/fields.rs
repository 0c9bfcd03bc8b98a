//! Which fields each resource can be selected on (`?fieldSelector=`).
//!
//! Upstream lets every resource select on `metadata.name` and
//! `metadata.namespace`, and some on more (pods on `spec.nodeName`, events
//! on `involvedObject.*`); anything else is a 400 "field label not
//! supported". The values are read from the JSON object.

use serde_json::Value;

use super::resources::ResourceInfo;
use crate::api::selectors::object_field;

/// Extra selectable fields per resource, beyond metadata.name/namespace.
fn extra_fields(info: &ResourceInfo) -> &'static [&'static str] {
    match (info.group, info.resource) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "type",
            "reportingController",
        ],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "secrets") => &["type"],
        ("", "services") => &["spec.clusterIP", "spec.type"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

/// Every selectable field of a resource.
pub fn selectable(info: &ResourceInfo) -> Vec<&'static str> {
    let mut all = vec!["metadata.name", "metadata.namespace"];
    all.extend_from_slice(extra_fields(info));
    all
}

/// Whether `field` can be selected on for this resource.
pub fn is_selectable(info: &ResourceInfo, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
        || extra_fields(info).contains(&field)
        || info.custom.is_some_and(|c| {
            c.selectable_fields
                .iter()
                .any(|f| f.trim_start_matches('.') == field)
        })
}

/// The value of a selectable field on `obj` ("" when unset, like upstream).
pub fn field_value(info: &ResourceInfo, obj: &Value, field: &str) -> Option<String> {
    let path = match (info.resource, field) {
        ("events", "source") => "source.component",
        (_, f) => f,
    };
    let value = object_field(obj, path);
    match (value, field) {
        // Upstream renders unset booleans as "false" in field sets.
        (None, "spec.unschedulable" | "spec.hostNetwork") => Some("false".into()),
        (None, _) => Some(String::new()),
        (v, _) => v,
    }
}
