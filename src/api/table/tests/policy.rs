//! Horizontal pod autoscalers, pod disruption budgets and the default table.

use serde_json::{Value, json};

use super::support::{ago, now, row};
use crate::api::table::{cells, columns, human_age};

fn hpa(spec_metrics: Value, current: Value) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "creationTimestamp": ago(100)},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 2, "maxReplicas": 10, "metrics": spec_metrics},
        "status": {"currentReplicas": 3, "currentMetrics": current}})
}

fn cpu_utilization(target: i64) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
}

#[test]
fn hpa_row_with_observed_cpu() {
    let h = hpa(
        json!([cpu_utilization(80)]),
        json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35, "averageValue": "70m"}}}]),
    );
    assert_eq!(
        row("autoscaling", "horizontalpodautoscalers", &h),
        [
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 35%/80%"),
            json!("2"),
            json!(10),
            json!(3),
            json!("100s"),
        ]
    );
}

#[test]
fn hpa_metric_kinds_and_overflow() {
    let specs = json!([
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
        {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}
    ]);
    let statuses = json!([
        {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "200Mi"}}}
    ]);
    let cells = row(
        "autoscaling",
        "horizontalpodautoscalers",
        &hpa(specs, statuses),
    );
    assert_eq!(
        cells[2],
        json!("memory: 200Mi/500Mi, <unknown>/1k + 1 more...")
    );

    let external_avg = json!([{"type": "External", "external": {"metric": {"name": "q"},
        "target": {"type": "AverageValue", "averageValue": "10"}}}]);
    let status = json!([{"type": "External", "external": {"current": {"averageValue": "4"}}}]);
    assert_eq!(
        row(
            "autoscaling",
            "horizontalpodautoscalers",
            &hpa(external_avg, status)
        )[2],
        json!("4/10 (avg)")
    );

    let object =
        json!([{"type": "Object", "object": {"target": {"type": "Value", "value": "2k"}}}]);
    let status = json!([{"type": "Object", "object": {"current": {"value": "1500"}}}]);
    assert_eq!(
        row(
            "autoscaling",
            "horizontalpodautoscalers",
            &hpa(object, status)
        )[2],
        json!("1500/2k")
    );

    let container = json!([{"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
        "target": {"type": "Utilization"}}}]);
    assert_eq!(
        row(
            "autoscaling",
            "horizontalpodautoscalers",
            &hpa(container, json!([]))
        )[2],
        json!("cpu: <unknown>/<auto>")
    );
    let odd = json!([{"type": "Magic"}]);
    assert_eq!(
        row(
            "autoscaling",
            "horizontalpodautoscalers",
            &hpa(odd, json!([]))
        )[2],
        json!("<unknown type>")
    );
}

#[test]
fn hpa_v1_and_defaults() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "legacy"},
        "spec": {"scaleTargetRef": {"kind": "ReplicaSet", "name": "rs"}, "maxReplicas": 4,
                 "targetCPUUtilizationPercentage": 50},
        "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 12}});
    let cells = row("autoscaling", "horizontalpodautoscalers", &v1);
    assert_eq!(
        cells[1..6],
        [
            json!("ReplicaSet/rs"),
            json!("cpu: 12%/50%"),
            json!("1"),
            json!(4),
            json!(1)
        ]
    );
    let bare = json!({"metadata": {"name": "b"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}}});
    assert_eq!(
        row("autoscaling", "horizontalpodautoscalers", &bare)[2],
        json!("cpu: <unknown>/80%")
    );
}

#[test]
fn pod_disruption_budget_rows() {
    let pdb = json!({"metadata": {"name": "web", "creationTimestamp": ago(100)},
        "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        row("policy", "poddisruptionbudgets", &pdb),
        [
            json!("web"),
            json!("2"),
            json!("N/A"),
            json!(1),
            json!("100s")
        ]
    );
    let pct = json!({"metadata": {"name": "p"}, "spec": {"maxUnavailable": "25%"}});
    assert_eq!(
        row("policy", "poddisruptionbudgets", &pct)[1..4],
        [json!("N/A"), json!("25%"), json!(0)]
    );
}

#[test]
fn default_table_for_resources_without_printers() {
    let role =
        json!({"metadata": {"name": "reader", "creationTimestamp": "2023-12-31T22:04:05+01:00"}});
    for (group, resource) in [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("", "limitranges"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("example.com", "widgets"),
    ] {
        let cols = columns(group, resource);
        let summary: Vec<_> = cols.iter().map(|c| (c.name, c.type_, c.format)).collect();
        assert_eq!(
            summary,
            [("Name", "string", "name"), ("Created At", "date", "")],
            "{resource}"
        );
        assert_eq!(
            cells(group, resource, &role, now()),
            [json!("reader"), json!("2023-12-31T21:04:05Z")]
        );
    }
    let unset = json!({"metadata": {"name": "x"}});
    assert_eq!(
        cells("", "limitranges", &unset, now())[1],
        json!("0001-01-01T00:00:00Z")
    );
}

#[test]
fn human_age_public_api() {
    assert_eq!(human_age(Some(&ago(150)), now()), "2m30s");
    assert_eq!(human_age(Some(&ago(5)), now()), "5s");
    assert_eq!(human_age(None, now()), "<unknown>");
    assert_eq!(human_age(Some("2024-01-02T03:04:09Z"), now()), "<invalid>");
}

#[test]
fn every_row_has_one_cell_per_column() {
    let resources = [
        ("", "pods"),
        ("", "nodes"),
        ("", "namespaces"),
        ("", "services"),
        ("", "endpoints"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("", "events"),
        ("", "limitranges"),
        ("", "resourcequotas"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "componentstatuses"),
        ("", "replicationcontrollers"),
        ("", "podtemplates"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("apps", "controllerrevisions"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("coordination.k8s.io", "leases"),
        ("discovery.k8s.io", "endpointslices"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("storage.k8s.io", "storageclasses"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "networkpolicies"),
        ("policy", "poddisruptionbudgets"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("events.k8s.io", "events"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ];
    for (group, resource) in resources {
        let cols = columns(group, resource);
        let name_col = cols.iter().find(|c| c.name == "Name");
        assert!(
            name_col.is_some_and(|c| c.format == "name"),
            "{group}/{resource}"
        );
        for obj in [
            json!({}),
            json!(null),
            json!({"metadata": {"name": "n"}, "spec": 7, "status": []}),
        ] {
            assert_eq!(
                cells(group, resource, &obj, now()).len(),
                cols.len(),
                "{group}/{resource}"
            );
        }
    }
}
