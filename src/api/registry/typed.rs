//! Decoding bodies into the k8s-openapi types, to find what JSON alone
//! cannot: unknown fields and wrongly-typed values.
//!
//! The apiserver keeps objects as JSON, but it must reject
//! `replicas: "three"` (400, like upstream's decoder) and report fields
//! that no version of the type has (`fieldValidation=Strict|Warn`). Both
//! fall out of a round trip through the typed struct: a decode error is a
//! type error, and any non-null input key missing from the re-encoded
//! value is unknown.

use serde_json::Value;

/// Round-trips `obj` through the k8s-openapi type of `group`/`kind`.
/// `None` if the kind has no typed representation here.
pub fn round_trip(group: &str, kind: &str, obj: &Value) -> Option<Result<Value, String>> {
    macro_rules! types {
        ($( ($g:literal, $k:literal) => $t:ty ),* $(,)?) => {
            match (group, kind) {
                $( ($g, $k) => Some(
                    serde_json::from_value::<$t>(obj.clone())
                        .map_err(|e| e.to_string())
                        .and_then(|typed| serde_json::to_value(typed).map_err(|e| e.to_string())),
                ), )*
                _ => None,
            }
        };
    }
    use k8s_openapi::api::{
        admissionregistration, apps, autoscaling, batch, coordination, core, discovery, events,
        networking, policy, rbac, scheduling, storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;
    types! {
        ("", "Binding") => core::v1::Binding,
        ("", "ConfigMap") => core::v1::ConfigMap,
        ("", "Endpoints") => core::v1::Endpoints,
        ("", "Event") => core::v1::Event,
        ("", "LimitRange") => core::v1::LimitRange,
        ("", "Namespace") => core::v1::Namespace,
        ("", "Node") => core::v1::Node,
        ("", "PersistentVolume") => core::v1::PersistentVolume,
        ("", "PersistentVolumeClaim") => core::v1::PersistentVolumeClaim,
        ("", "Pod") => core::v1::Pod,
        ("", "PodTemplate") => core::v1::PodTemplate,
        ("", "ReplicationController") => core::v1::ReplicationController,
        ("", "ResourceQuota") => core::v1::ResourceQuota,
        ("", "Secret") => core::v1::Secret,
        ("", "Service") => core::v1::Service,
        ("", "ServiceAccount") => core::v1::ServiceAccount,
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => admissionregistration::v1::MutatingWebhookConfiguration,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => admissionregistration::v1::ValidatingAdmissionPolicy,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => admissionregistration::v1::ValidatingWebhookConfiguration,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => apiextensions::v1::CustomResourceDefinition,
        ("apiregistration.k8s.io", "APIService") => apiregistration::v1::APIService,
        ("apps", "ControllerRevision") => apps::v1::ControllerRevision,
        ("apps", "DaemonSet") => apps::v1::DaemonSet,
        ("apps", "Deployment") => apps::v1::Deployment,
        ("apps", "ReplicaSet") => apps::v1::ReplicaSet,
        ("apps", "StatefulSet") => apps::v1::StatefulSet,
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::v2::HorizontalPodAutoscaler,
        ("batch", "CronJob") => batch::v1::CronJob,
        ("batch", "Job") => batch::v1::Job,
        ("coordination.k8s.io", "Lease") => coordination::v1::Lease,
        ("discovery.k8s.io", "EndpointSlice") => discovery::v1::EndpointSlice,
        ("events.k8s.io", "Event") => events::v1::Event,
        ("networking.k8s.io", "Ingress") => networking::v1::Ingress,
        ("networking.k8s.io", "IngressClass") => networking::v1::IngressClass,
        ("networking.k8s.io", "NetworkPolicy") => networking::v1::NetworkPolicy,
        ("policy", "PodDisruptionBudget") => policy::v1::PodDisruptionBudget,
        ("rbac.authorization.k8s.io", "ClusterRole") => rbac::v1::ClusterRole,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => rbac::v1::ClusterRoleBinding,
        ("rbac.authorization.k8s.io", "Role") => rbac::v1::Role,
        ("rbac.authorization.k8s.io", "RoleBinding") => rbac::v1::RoleBinding,
        ("scheduling.k8s.io", "PriorityClass") => scheduling::v1::PriorityClass,
        ("storage.k8s.io", "StorageClass") => storage::v1::StorageClass,
    }
}

/// The status a new object starts with: empty, but with the fields Go
/// always writes at their zero values (`{"replicas": 0}` for a ReplicaSet),
/// as clients such as the official Python client expect.
pub fn zero_status(group: &str, kind: &str) -> Value {
    let empty = serde_json::json!({"status": {}});
    match round_trip(group, kind, &empty) {
        Some(Ok(typed)) if typed["status"].is_object() => typed["status"].clone(),
        _ => serde_json::json!({}),
    }
}

/// Paths of non-null keys in `input` that `typed` (its round trip) lacks,
/// as upstream prints them (`spec.template.spec.containers[0].foo`).
pub fn unknown_fields(input: &Value, typed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, typed, &mut String::new(), &mut out);
    out
}

/// Makes `input` what upstream would store after decoding it into its Go
/// type: unknown fields (non-null keys the typed round trip lacks) are
/// dropped, and the scalar fields Go always writes (no `omitempty`; the
/// fields k8s-openapi holds without `Option`) are added with their zero
/// value where missing, inside the objects the input has. Values the input
/// has are kept as written.
pub fn conform(input: &mut Value, typed: &Value) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            a.retain(|k, v| v.is_null() || b.contains_key(k));
            for (k, tv) in b {
                match a.get_mut(k) {
                    Some(v) => conform(v, tv),
                    None if matches!(tv, Value::Number(_) | Value::String(_) | Value::Bool(_)) => {
                        a.insert(k.clone(), tv.clone());
                    }
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (v, tv) in a.iter_mut().zip(b) {
                conform(v, tv);
            }
        }
        _ => {}
    }
}

fn walk(input: &Value, typed: &Value, path: &mut String, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match b.get(k) {
                    Some(tv) => walk(v, tv, path, out),
                    None if !v.is_null() => out.push(path.clone()),
                    None => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, tv)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(v, tv, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields_and_type_errors() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 1, "bogus": 2, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "colour": "red"}]}}}});
        let typed = round_trip("apps", "Deployment", &d).unwrap().unwrap();
        assert_eq!(
            unknown_fields(&d, &typed),
            vec!["spec.bogus", "spec.template.spec.containers[0].colour"]
        );
        let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "three"}});
        assert!(round_trip("apps", "Deployment", &bad).unwrap().is_err());
        assert!(round_trip("example.com", "Widget", &d).is_none());
    }

    #[test]
    fn conforming_drops_unknown_fields_and_adds_go_zero_values() {
        let mut rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
            "spec": {"bogus": 1, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"creationTimestamp": null}}}, "status": {}});
        let typed = round_trip("apps", "ReplicaSet", &rs).unwrap().unwrap();
        conform(&mut rs, &typed);
        assert_eq!(rs["status"], json!({"replicas": 0}));
        assert!(rs["spec"].get("bogus").is_none());
        assert!(
            rs["spec"].get("replicas").is_none(),
            "a pointer field stays unset"
        );
        assert_eq!(
            rs["spec"]["template"]["metadata"]["creationTimestamp"],
            Value::Null
        );
    }
}
