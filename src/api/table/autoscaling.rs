//! Tables of scaling and disruption policy: horizontal pod autoscalers and pod disruption
//! budgets.
//!
//! HPA TARGETS renders each metric as `current/target` the way upstream's `formatHPAMetrics`
//! does (`cpu: 30%/80%`, `<unknown>` before the first observation, `(avg)` for average
//! values), showing two metrics and `+ N more...`. `autoscaling/v1` objects are read through
//! their CPU-utilisation fields; an HPA without metrics reads as the v2 default of 80% CPU,
//! and a missing `minReplicas` as 1. Quantities show as stored; a missing one as `<nil>`,
//! which is what upstream prints for an absent pointer.

use serde_json::{Value, json};

use super::fields::{arr_at, at, i64_at, name, opt_i64, str_at};
use super::time::Instant;
use super::{AGE, NAME, Printer, age, col, docs};

/// `kubectl get horizontalpodautoscalers`.
pub(super) const HORIZONTAL_POD_AUTOSCALERS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Reference",
            "string",
            docs::HORIZONTAL_POD_AUTOSCALER_SPEC_SCALE_TARGET_REF,
        ),
        col(
            "Targets",
            "string",
            docs::HORIZONTAL_POD_AUTOSCALER_SPEC_METRICS,
        ),
        col(
            "MinPods",
            "string",
            docs::HORIZONTAL_POD_AUTOSCALER_SPEC_MIN_REPLICAS,
        ),
        col(
            "MaxPods",
            "string",
            docs::HORIZONTAL_POD_AUTOSCALER_SPEC_MAX_REPLICAS,
        ),
        col(
            "Replicas",
            "string",
            docs::HORIZONTAL_POD_AUTOSCALER_STATUS_CURRENT_REPLICAS,
        ),
        AGE,
    ],
    cells: hpa_cells,
};

/// `kubectl get poddisruptionbudgets`.
pub(super) const POD_DISRUPTION_BUDGETS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    cells: pdb_cells,
};

/// Metrics shown before `+ N more...`.
const MAX_METRICS: usize = 2;

fn hpa_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(obj, &["spec", "scaleTargetRef", "kind"]),
        str_at(obj, &["spec", "scaleTargetRef", "name"])
    );
    let (specs, statuses) = metrics(obj);
    let min_pods = opt_i64(obj, &["spec", "minReplicas"]).unwrap_or(1);
    vec![
        name(obj).into(),
        reference.into(),
        format_metrics(&specs, &statuses).into(),
        min_pods.to_string().into(),
        i64_at(obj, &["spec", "maxReplicas"]).into(),
        i64_at(obj, &["status", "currentReplicas"]).into(),
        age(obj, now),
    ]
}

/// Metric specs and statuses in v2 shape, converting v1's CPU fields and applying the
/// default CPU target.
fn metrics(obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let specs = arr_at(obj, &["spec", "metrics"]).to_vec();
    let statuses = arr_at(obj, &["status", "currentMetrics"]).to_vec();
    if !specs.is_empty() {
        return (specs, statuses);
    }
    let target = opt_i64(obj, &["spec", "targetCPUUtilizationPercentage"]).unwrap_or(80);
    let spec = json!({"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}});
    let statuses = match opt_i64(obj, &["status", "currentCPUUtilizationPercentage"]) {
        Some(current) => vec![json!({"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization": current}}})],
        None => statuses,
    };
    (vec![spec], statuses)
}

/// `formatHPAMetrics`.
fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| format_metric(spec, statuses.get(i)))
        .collect();
    let shown = list[..list.len().min(MAX_METRICS)].join(", ");
    if list.len() > MAX_METRICS {
        format!("{shown} + {} more...", list.len() - MAX_METRICS)
    } else {
        shown
    }
}

/// One metric as `current/target`; `status` is the status at the same index, if any.
fn format_metric(spec: &Value, status: Option<&Value>) -> String {
    let (field, named) = match str_at(spec, &["type"]) {
        "External" => ("external", false),
        "Pods" => ("pods", false),
        "Object" => ("object", false),
        "Resource" => ("resource", true),
        "ContainerResource" => ("containerResource", true),
        _ => return "<unknown type>".to_string(),
    };
    let target = at(spec, &[field, "target"]);
    let current = status
        .and_then(|s| at(s, &[field]))
        .filter(|s| !s.is_null());
    let current_qty = |key: &str| match current {
        Some(c) => qty(at(c, &["current", key])),
        None => "<unknown>".to_string(),
    };
    let target_avg = target
        .and_then(|t| t.get("averageValue"))
        .filter(|v| !v.is_null());
    if field == "pods" {
        return format!("{}/{}", current_qty("averageValue"), qty(target_avg));
    }
    if !named {
        return match target_avg {
            Some(avg) => {
                let cur = current
                    .and_then(|c| at(c, &["current", "averageValue"]))
                    .filter(|v| !v.is_null());
                let cur = cur.map_or_else(|| "<unknown>".to_string(), |v| qty(Some(v)));
                format!("{cur}/{} (avg)", qty(Some(avg)))
            }
            None => format!(
                "{}/{}",
                current_qty("value"),
                qty(target.and_then(|t| t.get("value")))
            ),
        };
    }
    let resource = str_at(spec, &[field, "name"]);
    if let Some(avg) = target_avg {
        return format!(
            "{resource}: {}/{}",
            current_qty("averageValue"),
            qty(Some(avg))
        );
    }
    let percent = |v: Option<&Value>| v.and_then(Value::as_i64).map(|p| format!("{p}%"));
    let cur = percent(current.and_then(|c| at(c, &["current", "averageUtilization"])))
        .unwrap_or_else(|| "<unknown>".to_string());
    let goal = percent(target.and_then(|t| t.get("averageUtilization")))
        .unwrap_or_else(|| "<auto>".to_string());
    format!("{resource}: {cur}/{goal}")
}

/// A quantity as stored, or `<nil>` for a missing one (upstream prints a nil pointer so).
fn qty(v: Option<&Value>) -> String {
    super::fields::quantity(v).unwrap_or_else(|| "<nil>".to_string())
}

fn pdb_cells(obj: &Value, now: Instant) -> Vec<Value> {
    vec![
        name(obj).into(),
        int_or_string(at(obj, &["spec", "minAvailable"])).into(),
        int_or_string(at(obj, &["spec", "maxUnavailable"])).into(),
        i64_at(obj, &["status", "disruptionsAllowed"]).into(),
        age(obj, now),
    ]
}

/// An `IntOrString` as text, `N/A` when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".to_string(),
    }
}
