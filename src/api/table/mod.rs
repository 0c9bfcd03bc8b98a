//! Server-side `meta.k8s.io/v1` Table printing for built-in resources.
//!
//! This is what `kubectl get` shows: the apiserver, asked for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, answers with column definitions
//! and one row of cells per object. The columns (names, types, priorities, descriptions) and
//! the cell contents reproduce upstream's `pkg/printers/internalversion/printers.go`; resources
//! upstream leaves to `rest.NewDefaultTableConvertor` (roles, limit ranges, CRDs, ...) and any
//! resource unknown here get its Name + "Created At" table.
//!
//! Upstream's apiserver always generates the wide (`-o wide`) cells; clients hide priority-1
//! columns themselves. So [`cells`] always returns one cell per column of [`columns`].
//!
//! Printing never fails: objects are `serde_json::Value`s and a missing or malformed field
//! reads as the zero value a decoded Go struct would hold (see `fields`). Where v1 defaulting
//! always fills a field the printer shows (replicas, service type, ...), a missing field reads
//! as that default, so rows match what a real cluster shows for the same object.

mod autoscaling;
mod batch;
mod cluster;
mod config;
mod docs;
mod events;
mod extensions;
mod fields;
mod labels;
mod network;
mod pod;
mod rbac;
mod storage;
mod time;
mod workloads;

#[cfg(test)]
mod tests;

use serde_json::Value;
use std::time::SystemTime;

use self::time::Instant;

/// One column definition of a meta.k8s.io/v1 Table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Human-readable column name, e.g. `"Name"` or `"Nominated Node"`.
    pub name: &'static str,
    /// OpenAPI type of the column: `"string"`, `"integer"`, `"number"`, `"boolean"` or `"date"`.
    pub type_: &'static str,
    /// OpenAPI format: `"name"` for the column holding the object name, else empty.
    pub format: &'static str,
    /// What the column shows, as upstream describes it.
    pub description: &'static str,
    /// 0 for default output; 1 for columns shown only with `-o wide`.
    pub priority: i32,
}

/// How to print one resource: its columns and the function computing a row's cells.
#[derive(Clone, Copy)]
struct Printer {
    columns: &'static [Column],
    cells: fn(&Value, Instant) -> Vec<Value>,
}

/// Columns for a resource (group `""` for core; `resource` is the plural lower-case name,
/// e.g. `"pods"`). Unknown resources get upstream's default: Name + "Created At".
pub fn columns(group: &str, resource: &str) -> Vec<Column> {
    printer(group, resource).columns.to_vec()
}

/// The cells of one row for `obj`, in the same order as [`columns`] (strings, integers,
/// booleans as upstream emits them). `now` is the current time for AGE-style cells.
pub fn cells(group: &str, resource: &str, obj: &Value, now: SystemTime) -> Vec<Value> {
    (printer(group, resource).cells)(obj, Instant::from_system(now))
}

/// Whether `text` is an RFC 3339 time (as a Table's date cell needs).
pub fn parses_as_time(text: &str) -> bool {
    Instant::parse_rfc3339(text).is_some()
}

/// Upstream's `translateTimestampSince`: the `duration.HumanDuration` of the time elapsed
/// since `created_rfc3339` (e.g. `"5s"`, `"2m30s"`, `"3h5m"`, `"4d2h"`), or `"<unknown>"`
/// when the timestamp is missing, malformed or Go's zero time.
pub fn human_age(created_rfc3339: Option<&str>, now: SystemTime) -> String {
    time::age_of(created_rfc3339, Instant::from_system(now))
}

fn printer(group: &str, resource: &str) -> Printer {
    match (group, resource) {
        ("", "pods") => pod::PODS,
        ("", "nodes") => cluster::NODES,
        ("", "namespaces") => cluster::NAMESPACES,
        ("", "componentstatuses") => cluster::COMPONENT_STATUSES,
        ("", "services") => network::SERVICES,
        ("", "endpoints") => network::ENDPOINTS,
        ("", "configmaps") => config::CONFIG_MAPS,
        ("", "secrets") => config::SECRETS,
        ("", "serviceaccounts") => config::SERVICE_ACCOUNTS,
        ("", "resourcequotas") => config::RESOURCE_QUOTAS,
        ("", "events") => events::CORE_EVENTS,
        ("", "persistentvolumes") => storage::PERSISTENT_VOLUMES,
        ("", "persistentvolumeclaims") => storage::PERSISTENT_VOLUME_CLAIMS,
        ("", "replicationcontrollers") => workloads::REPLICATION_CONTROLLERS,
        ("", "podtemplates") => workloads::POD_TEMPLATES,
        ("apps", "deployments") => workloads::DEPLOYMENTS,
        ("apps", "replicasets") => workloads::REPLICA_SETS,
        ("apps", "daemonsets") => workloads::DAEMON_SETS,
        ("apps", "statefulsets") => workloads::STATEFUL_SETS,
        ("apps", "controllerrevisions") => workloads::CONTROLLER_REVISIONS,
        ("batch", "jobs") => batch::JOBS,
        ("batch", "cronjobs") => batch::CRON_JOBS,
        ("coordination.k8s.io", "leases") => cluster::LEASES,
        ("discovery.k8s.io", "endpointslices") => network::ENDPOINT_SLICES,
        ("rbac.authorization.k8s.io", "rolebindings") => rbac::ROLE_BINDINGS,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => rbac::CLUSTER_ROLE_BINDINGS,
        ("scheduling.k8s.io", "priorityclasses") => cluster::PRIORITY_CLASSES,
        ("storage.k8s.io", "storageclasses") => storage::STORAGE_CLASSES,
        ("networking.k8s.io", "ingresses") => network::INGRESSES,
        ("networking.k8s.io", "ingressclasses") => network::INGRESS_CLASSES,
        ("networking.k8s.io", "networkpolicies") => network::NETWORK_POLICIES,
        ("policy", "poddisruptionbudgets") => autoscaling::POD_DISRUPTION_BUDGETS,
        ("autoscaling", "horizontalpodautoscalers") => autoscaling::HORIZONTAL_POD_AUTOSCALERS,
        ("events.k8s.io", "events") => events::EVENTS_V1,
        ("apiregistration.k8s.io", "apiservices") => extensions::API_SERVICES,
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
        | ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            extensions::WEBHOOK_CONFIGURATIONS
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            extensions::VALIDATING_ADMISSION_POLICIES
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            extensions::VALIDATING_ADMISSION_POLICY_BINDINGS
        }
        // Roles, cluster roles, limit ranges, CRDs and everything else: upstream registers
        // them with the default table convertor.
        _ => DEFAULT,
    }
}

/// The `Name` column every printer starts with (events put it last, as a wide column).
const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: docs::OBJECT_META_NAME,
    priority: 0,
};

/// The `Age` column (a string cell holding a human duration).
const AGE: Column = col("Age", "string", docs::OBJECT_META_CREATION_TIMESTAMP);

/// Shared wide columns of workload controllers.
const CONTAINERS: Column = wide("Containers", "Names of each container in the template.");
const IMAGES: Column = wide(
    "Images",
    "Images referenced by each container in the template.",
);

/// A default-priority column.
const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A priority-1 (wide only) string column.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_: "string",
        format: "",
        description,
        priority: 1,
    }
}

/// `rest.NewDefaultTableConvertor`: name and RFC 3339 creation time.
const DEFAULT: Printer = Printer {
    columns: &[
        NAME,
        col("Created At", "date", docs::OBJECT_META_CREATION_TIMESTAMP),
    ],
    cells: default_cells,
};

fn default_cells(obj: &Value, _now: Instant) -> Vec<Value> {
    // Go formats the zero time when the timestamp is unset.
    let created = fields::created(obj)
        .and_then(Instant::parse_rfc3339)
        .unwrap_or_else(time::zero_time);
    vec![fields::name(obj).into(), created.to_rfc3339_utc().into()]
}

/// The `Age` cell of an object.
fn age(obj: &Value, now: Instant) -> Value {
    time::age_of(fields::created(obj), now).into()
}
