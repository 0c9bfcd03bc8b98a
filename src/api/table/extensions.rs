//! Tables of the API-extension resources: APIServices, admission webhook
//! configurations and ValidatingAdmissionPolicies with their bindings, as
//! kube-aggregator's and kube-apiserver's printers draw them. CRDs keep the
//! default table (upstream registers no printer for them).

use serde_json::Value;

use super::fields::{arr_at, name, obj_at, str_at};
use super::time::Instant;
use super::{AGE, NAME, Printer, age, col};

/// `kubectl get apiservices`.
pub(super) const API_SERVICES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Service",
            "string",
            "The reference to the service that hosts this API endpoint.",
        ),
        col("Available", "string", "Whether this service is available."),
        AGE,
    ],
    cells: api_service_cells,
};

/// `kubectl get mutatingwebhookconfigurations` / `validatingwebhookconfigurations`.
pub(super) const WEBHOOK_CONFIGURATIONS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        AGE,
    ],
    cells: webhook_configuration_cells,
};

/// `kubectl get validatingadmissionpolicies`.
pub(super) const VALIDATING_ADMISSION_POLICIES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Validations",
            "integer",
            "Validations indicates the number of validation rules defined in this configuration",
        ),
        col(
            "ParamKind",
            "string",
            "ParamKind specifies the kind of resources used to parameterize this policy",
        ),
        AGE,
    ],
    cells: policy_cells,
};

/// `kubectl get validatingadmissionpolicybindings`.
pub(super) const VALIDATING_ADMISSION_POLICY_BINDINGS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "PolicyName",
            "string",
            "PolicyName indicates the policy definition which the policy binding binded to",
        ),
        col(
            "ParamRef",
            "string",
            "ParamRef indicates the param resource which sets the configration param",
        ),
        AGE,
    ],
    cells: binding_cells,
};

fn api_service_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let service = match obj_at(obj, &["spec", "service"]) {
        Some(_) => format!(
            "{}/{}",
            str_at(obj, &["spec", "service", "namespace"]),
            str_at(obj, &["spec", "service", "name"])
        ),
        None => "Local".to_string(),
    };
    let available = arr_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| c["type"] == "Available")
        .map_or_else(
            || "Unknown".to_string(),
            |c| match (c["status"].as_str(), c["reason"].as_str()) {
                (Some("True"), _) => "True".to_string(),
                (Some(status), Some(reason)) if !reason.is_empty() => {
                    format!("{status} ({reason})")
                }
                (status, _) => status.unwrap_or("Unknown").to_string(),
            },
        );
    vec![
        name(obj).into(),
        service.into(),
        available.into(),
        age(obj, now),
    ]
}

fn webhook_configuration_cells(obj: &Value, now: Instant) -> Vec<Value> {
    vec![
        name(obj).into(),
        arr_at(obj, &["webhooks"]).len().into(),
        age(obj, now),
    ]
}

fn policy_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let param_kind = match obj_at(obj, &["spec", "paramKind"]) {
        Some(_) => format!(
            "{}/{}",
            str_at(obj, &["spec", "paramKind", "apiVersion"]),
            str_at(obj, &["spec", "paramKind", "kind"])
        ),
        None => "<unset>".to_string(),
    };
    vec![
        name(obj).into(),
        arr_at(obj, &["spec", "validations"]).len().into(),
        param_kind.into(),
        age(obj, now),
    ]
}

fn binding_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let param = match obj_at(obj, &["spec", "paramRef"]) {
        None => "<unset>".to_string(),
        Some(_) => {
            let r = &obj["spec"]["paramRef"];
            let ref_name = str_at(r, &["name"]);
            let namespace = str_at(r, &["namespace"]);
            if !ref_name.is_empty() {
                // As upstream: without a namespace the param may be
                // cluster-scoped or in the request's namespace.
                let namespace = if namespace.is_empty() { "*" } else { namespace };
                format!("{namespace}/{ref_name}")
            } else {
                selector_text(&r["selector"])
            }
        }
    };
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "policyName"]).into(),
        param.into(),
        age(obj, now),
    ]
}

/// A label selector as `metav1.LabelSelector`'s String() prints it, for
/// the common matchLabels and matchExpressions forms.
fn selector_text(selector: &Value) -> String {
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extension_rows_read_as_upstreams() {
        let now = Instant::from_system(std::time::SystemTime::now());
        let local = json!({"metadata": {"name": "v1.apps"},
            "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}});
        assert_eq!(api_service_cells(&local, now)[1], "Local");
        assert_eq!(api_service_cells(&local, now)[2], "True");
        let remote = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        assert_eq!(
            api_service_cells(&remote, now)[1],
            "kube-system/metrics-server"
        );
        assert_eq!(
            api_service_cells(&remote, now)[2],
            "False (MissingEndpoints)"
        );
        let binding = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p",
            "paramRef": {"selector": {"matchLabels": {"env": "test"}}}}});
        assert_eq!(binding_cells(&binding, now)[2], "env=test");
        let policy = json!({"metadata": {"name": "p"}, "spec": {"validations": [{}, {}]}});
        assert_eq!(policy_cells(&policy, now)[1], 2);
        assert_eq!(policy_cells(&policy, now)[2], "<unset>");
    }
}
