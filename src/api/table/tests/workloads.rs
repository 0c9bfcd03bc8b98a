//! Deployments, replica sets, daemon sets, stateful sets, replication controllers,
//! controller revisions and pod templates.

use serde_json::{Value, json};

use super::support::{ago, row};
use crate::api::table::columns;

fn meta(name: &str, age_secs: u64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(age_secs)})
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.25"},
        {"name": "sidecar", "image": "envoy:v1.30"}
    ]}})
}

fn names(group: &str, resource: &str) -> Vec<(&'static str, i32)> {
    columns(group, resource)
        .iter()
        .map(|c| (c.name, c.priority))
        .collect()
}

#[test]
fn deployment_row_and_columns() {
    assert_eq!(
        names("apps", "deployments"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ]
    );
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web", 3 * 3600 + 120),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "frontend"}},
                 "template": template()},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    assert_eq!(
        row("apps", "deployments", &d),
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("3h2m"),
            json!("nginx,sidecar"),
            json!("nginx:1.25,envoy:v1.30"),
            json!("app=web,tier=frontend"),
        ]
    );
}

#[test]
fn deployment_defaults_and_odd_selectors() {
    let fresh = json!({"metadata": meta("new", 5), "spec": {"selector": {}}});
    let cells = row("apps", "deployments", &fresh);
    assert_eq!(cells[1..5], [json!("0/1"), json!(0), json!(0), json!("5s")]);
    assert_eq!(cells[5..], [json!(""), json!(""), json!("")]);
    let bad =
        json!({"metadata": meta("bad", 5), "spec": {"selector": {"matchLabels": {"-x": "y"}}}});
    assert_eq!(row("apps", "deployments", &bad)[7], json!("<invalid>"));
}

#[test]
fn replica_set_row() {
    let rs = json!({
        "metadata": meta("web-5d4f", 600),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}},
                 "template": template()},
        "status": {"replicas": 2, "readyReplicas": 1}
    });
    assert_eq!(
        row("apps", "replicasets", &rs),
        [
            json!("web-5d4f"),
            json!(2),
            json!(2),
            json!(1),
            json!("10m"),
            json!("nginx,sidecar"),
            json!("nginx:1.25,envoy:v1.30"),
            json!("app=web,pod-template-hash=5d4f"),
        ]
    );
    assert_eq!(columns("apps", "replicasets")[1].type_, "integer");
}

#[test]
fn daemon_set_row() {
    let ds = json!({
        "metadata": meta("fluentd", 2 * 86_400),
        "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["fluentd"]}]},
                 "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                     "containers": [{"name": "fluentd", "image": "fluentd:v1"}]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}
    });
    assert_eq!(
        row("apps", "daemonsets", &ds),
        [
            json!("fluentd"),
            json!(3),
            json!(3),
            json!(2),
            json!(3),
            json!(2),
            json!("kubernetes.io/os=linux"),
            json!("2d"),
            json!("fluentd"),
            json!("fluentd:v1"),
            json!("app in (fluentd)"),
        ]
    );
    assert_eq!(names("apps", "daemonsets")[6], ("Node Selector", 0));
}

#[test]
fn stateful_set_row() {
    let sts = json!({"metadata": meta("db", 45), "spec": {"replicas": 3, "template": template()},
        "status": {"readyReplicas": 3}});
    assert_eq!(
        row("apps", "statefulsets", &sts),
        [
            json!("db"),
            json!("3/3"),
            json!("45s"),
            json!("nginx,sidecar"),
            json!("nginx:1.25,envoy:v1.30")
        ]
    );
}

#[test]
fn replication_controller_row() {
    let rc = json!({"metadata": meta("legacy", 60),
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template()},
        "status": {"replicas": 2, "readyReplicas": 2}});
    assert_eq!(
        row("", "replicationcontrollers", &rc),
        [
            json!("legacy"),
            json!(2),
            json!(2),
            json!(2),
            json!("60s"),
            json!("nginx,sidecar"),
            json!("nginx:1.25,envoy:v1.30"),
            json!("app=legacy"),
        ]
    );
}

#[test]
fn controller_revision_names_its_controller() {
    let rev = json!({"metadata": {"name": "db-7b9", "creationTimestamp": ago(30), "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "x"},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]},
        "revision": 4});
    assert_eq!(
        row("apps", "controllerrevisions", &rev),
        [
            json!("db-7b9"),
            json!("statefulset.apps/db"),
            json!(4),
            json!("30s")
        ]
    );
    let orphan = json!({"metadata": {"name": "o"}, "revision": 1});
    assert_eq!(
        row("apps", "controllerrevisions", &orphan)[1],
        json!("<none>")
    );
}

#[test]
fn pod_template_row() {
    let pt = json!({"metadata": {"name": "tpl"}, "template": template()});
    assert_eq!(
        row("", "podtemplates", &pt),
        [
            json!("tpl"),
            json!("nginx,sidecar"),
            json!("nginx:1.25,envoy:v1.30"),
            json!("app=web")
        ]
    );
}
