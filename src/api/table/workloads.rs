//! Tables of pod controllers: deployments, replica sets, daemon sets, stateful sets,
//! controller revisions, replication controllers and pod templates.
//!
//! Replica counts are integers except where upstream joins them into `ready/desired`
//! strings. A missing `spec.replicas` reads as 1, the v1 default every stored object carries.
//! The wide CONTAINERS/IMAGES cells join the template's containers with commas; the batch
//! printers reuse that layout.

use serde_json::Value;

use super::fields::{arr_at, i64_at, name, obj_at, opt_i64, str_at};
use super::labels::{format_label_selector, format_labels, selector_string};
use super::time::Instant;
use super::{AGE, CONTAINERS, IMAGES, NAME, Printer, age, col, docs, wide};

/// `kubectl get deployments`.
pub(super) const DEPLOYMENTS: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        col(
            "Up-to-date",
            "string",
            docs::DEPLOYMENT_STATUS_UPDATED_REPLICAS,
        ),
        col(
            "Available",
            "string",
            docs::DEPLOYMENT_STATUS_AVAILABLE_REPLICAS,
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", docs::DEPLOYMENT_SPEC_SELECTOR),
    ],
    cells: deployment_cells,
};

/// `kubectl get replicasets`.
pub(super) const REPLICA_SETS: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", docs::REPLICA_SET_SPEC_REPLICAS),
        col("Current", "integer", docs::REPLICA_SET_STATUS_REPLICAS),
        col("Ready", "integer", docs::REPLICA_SET_STATUS_READY_REPLICAS),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", docs::REPLICA_SET_SPEC_SELECTOR),
    ],
    cells: replica_set_cells,
};

/// `kubectl get replicationcontrollers`.
pub(super) const REPLICATION_CONTROLLERS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Desired",
            "integer",
            docs::REPLICATION_CONTROLLER_SPEC_REPLICAS,
        ),
        col(
            "Current",
            "integer",
            docs::REPLICATION_CONTROLLER_STATUS_REPLICAS,
        ),
        col(
            "Ready",
            "integer",
            docs::REPLICATION_CONTROLLER_STATUS_READY_REPLICAS,
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", docs::REPLICATION_CONTROLLER_SPEC_SELECTOR),
    ],
    cells: replication_controller_cells,
};

/// `kubectl get daemonsets`.
pub(super) const DAEMON_SETS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Desired",
            "integer",
            docs::DAEMON_SET_STATUS_DESIRED_NUMBER_SCHEDULED,
        ),
        col(
            "Current",
            "integer",
            docs::DAEMON_SET_STATUS_CURRENT_NUMBER_SCHEDULED,
        ),
        col("Ready", "integer", docs::DAEMON_SET_STATUS_NUMBER_READY),
        col(
            "Up-to-date",
            "integer",
            docs::DAEMON_SET_STATUS_UPDATED_NUMBER_SCHEDULED,
        ),
        col(
            "Available",
            "integer",
            docs::DAEMON_SET_STATUS_NUMBER_AVAILABLE,
        ),
        col("Node Selector", "string", docs::POD_SPEC_NODE_SELECTOR),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", docs::DAEMON_SET_SPEC_SELECTOR),
    ],
    cells: daemon_set_cells,
};

/// `kubectl get statefulsets`.
pub(super) const STATEFUL_SETS: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: stateful_set_cells,
};

/// `kubectl get controllerrevisions`.
pub(super) const CONTROLLER_REVISIONS: Printer = Printer {
    columns: &[
        NAME,
        col("Controller", "string", "Controller of the object"),
        col("Revision", "string", docs::CONTROLLER_REVISION_REVISION),
        AGE,
    ],
    cells: controller_revision_cells,
};

/// `kubectl get podtemplates`.
pub(super) const POD_TEMPLATES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Containers",
            "string",
            "Names of each container in the template.",
        ),
        col(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        ),
        col("Pod Labels", "string", "The labels for the pod template."),
    ],
    cells: pod_template_cells,
};

/// `layoutContainerCells`: comma-joined names and images of the containers at `path`.
pub(super) fn container_cells(obj: &Value, path: &[&str]) -> [Value; 2] {
    let containers = arr_at(obj, path);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    [names.join(",").into(), images.join(",").into()]
}

const TEMPLATE_CONTAINERS: &[&str] = &["spec", "template", "spec", "containers"];

/// `spec.replicas`, defaulting to 1 as v1 defaulting does.
fn desired_replicas(obj: &Value) -> i64 {
    opt_i64(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn deployment_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let ready = i64_at(obj, &["status", "readyReplicas"]);
    let selector =
        selector_string(obj.pointer("/spec/selector")).unwrap_or_else(|| "<invalid>".to_string());
    let [names, images] = container_cells(obj, TEMPLATE_CONTAINERS);
    vec![
        name(obj).into(),
        format!("{ready}/{}", desired_replicas(obj)).into(),
        i64_at(obj, &["status", "updatedReplicas"]).into(),
        i64_at(obj, &["status", "availableReplicas"]).into(),
        age(obj, now),
        names,
        images,
        selector.into(),
    ]
}

fn replica_set_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let [names, images] = container_cells(obj, TEMPLATE_CONTAINERS);
    vec![
        name(obj).into(),
        desired_replicas(obj).into(),
        i64_at(obj, &["status", "replicas"]).into(),
        i64_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now),
        names,
        images,
        format_label_selector(obj.pointer("/spec/selector")).into(),
    ]
}

fn replication_controller_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let [names, images] = container_cells(obj, TEMPLATE_CONTAINERS);
    vec![
        name(obj).into(),
        desired_replicas(obj).into(),
        i64_at(obj, &["status", "replicas"]).into(),
        i64_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now),
        names,
        images,
        format_labels(obj_at(obj, &["spec", "selector"])).into(),
    ]
}

fn daemon_set_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let status = |field: &str| Value::from(i64_at(obj, &["status", field]));
    let [names, images] = container_cells(obj, TEMPLATE_CONTAINERS);
    vec![
        name(obj).into(),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        format_labels(obj_at(obj, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(obj, now),
        names,
        images,
        format_label_selector(obj.pointer("/spec/selector")).into(),
    ]
}

fn stateful_set_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let ready = i64_at(obj, &["status", "readyReplicas"]);
    let [names, images] = container_cells(obj, TEMPLATE_CONTAINERS);
    vec![
        name(obj).into(),
        format!("{ready}/{}", desired_replicas(obj)).into(),
        age(obj, now),
        names,
        images,
    ]
}

fn controller_revision_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let controller = arr_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(|| "<none>".to_string(), controller_name);
    vec![
        name(obj).into(),
        controller.into(),
        i64_at(obj, &["revision"]).into(),
        age(obj, now),
    ]
}

/// `kind.group/name` in lower case (`statefulset.apps/web`), or `kind/name` for core kinds.
fn controller_name(owner: &Value) -> String {
    let group = match str_at(owner, &["apiVersion"]).split_once('/') {
        Some((group, _version)) => group,
        None => "",
    };
    let kind = str_at(owner, &["kind"]);
    let owner_name = str_at(owner, &["name"]);
    match (kind, group) {
        ("", "") => owner_name.to_string(),
        (kind, "") => format!("{}/{owner_name}", kind.to_lowercase()),
        (kind, group) => format!("{}/{owner_name}", format!("{kind}.{group}").to_lowercase()),
    }
}

fn pod_template_cells(obj: &Value, _now: Instant) -> Vec<Value> {
    let [names, images] = container_cells(obj, &["template", "spec", "containers"]);
    let labels = format_labels(obj_at(obj, &["template", "metadata", "labels"]));
    vec![name(obj).into(), names, images, labels.into()]
}
