//! Upstream-faithful validation of built-in kinds on their wire JSON.
//!
//! [`validate_create`] and [`validate_update`] return kube-apiserver's field errors for an
//! object: the same field paths (`spec.template.spec.containers[0].name`), cause types and
//! message texts as `pkg/apis/*/validation` plus the registry strategies' immutability
//! checks, so `kubectl` and client libraries see the `422 Invalid` they would see upstream.
//! An empty list means the object is valid; there is no other failure mode, and unknown
//! kinds (custom resources included) yield no errors.
//!
//! The functions expect what upstream validates: an object that has been defaulted (see
//! `super::defaults::apply_defaults`) and whose `metadata.namespace` is already set from the
//! request for namespaced kinds and cleared for cluster-scoped ones. A missing
//! `metadata.name` is accepted when `metadata.generateName` is set, since the caller
//! generates the name. Identity fields (name, namespace, uid, creationTimestamp) and
//! resourceVersion preconditions on update are the caller's, as are checks that need other
//! objects or cluster configuration (node-port ranges, quota, admission).
//!
//! The reference is Kubernetes 1.35/1.36 with default feature gates: environment variable
//! names use the relaxed (printable ASCII) rule, label-key errors say "bytes", Services
//! are named by DNS-1035 labels and StatefulSets by DNS-1123 labels. Where upstream would
//! reject a request while decoding it (a malformed quantity, bad base64 in a Secret), the
//! same text is reported here as an `Invalid` field error instead.

mod apps;
mod batch;
mod cluster;
pub(crate) mod config;
mod cron;
mod endpoints;
mod equality;
mod event;
pub(crate) mod field;
pub(crate) mod json;
mod meta;
mod netaddr;
mod networking;
mod pod;
pub(crate) use crate::client::quantity;
mod rbac;
mod service;
mod storage;

#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

use crate::api::registry::names::{
    NameFn, name_is_dns_label, name_is_dns_subdomain, name_is_dns1035_label, name_is_path_segment,
};
use meta::MetaRules;

/// The kinds of field error (upstream `metav1.CauseType` / `field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CauseType {
    /// A required field is missing.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// A value repeats one that must be unique.
    Duplicate,
    /// A value is not one of the supported ones.
    NotSupported,
    /// A field may not be set (or changed) here.
    Forbidden,
    /// A value is longer than allowed.
    TooLong,
    /// A list has more items than allowed.
    TooMany,
    /// A reference names something that does not exist (e.g. a volume mount's volume).
    NotFound,
}

impl CauseType {
    /// The `metav1.StatusCause.reason` string, e.g. `FieldValueRequired`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CauseType::Required => "FieldValueRequired",
            CauseType::Invalid => "FieldValueInvalid",
            CauseType::Duplicate => "FieldValueDuplicate",
            CauseType::NotSupported => "FieldValueNotSupported",
            CauseType::Forbidden => "FieldValueForbidden",
            CauseType::TooLong => "FieldValueTooLong",
            CauseType::TooMany => "FieldValueTooMany",
            CauseType::NotFound => "FieldValueNotFound",
        }
    }
}

/// One field error (upstream `field.Error`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: CauseType,
    /// The field path, e.g. `spec.template.spec.containers[0].name` or `metadata.labels`.
    pub field: String,
    /// Upstream's error body: `Required value`, `Invalid value: "Foo": a lowercase RFC 1123
    /// label must ...`, `Unsupported value: "X": supported values: "A", "B"`.
    pub message: String,
}

impl fmt::Display for FieldError {
    /// Upstream `field.Error.Error()`: `<field>: <message>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Upstream `FieldImmutableErrorMsg`.
const FIELD_IMMUTABLE: &str = "field is immutable";

type Errs = Vec<FieldError>;
type CreateFn = fn(&Value, &mut Errs);
type UpdateFn = fn(&Value, &Value, &mut Errs);

/// How one kind is validated.
struct KindRules {
    /// Metadata rules; `None` for kinds whose upstream validation skips ObjectMeta.
    meta: Option<MetaRules>,
    /// Validation of a new object beyond metadata.
    create: CreateFn,
    /// Validation of an update beyond metadata: `(old, new, errs)`.
    update: UpdateFn,
}

fn rules(ns: bool, name: NameFn, create: CreateFn, update: UpdateFn) -> KindRules {
    KindRules {
        meta: Some(MetaRules {
            namespaced: ns,
            name,
        }),
        create,
        update,
    }
}

fn nothing(_: &Value, _: &mut Errs) {}

fn nothing_update(_: &Value, _: &Value, _: &mut Errs) {}

fn kind_rules(group: &str, kind: &str) -> Option<KindRules> {
    let sub = name_is_dns_subdomain as NameFn;
    Some(match (group, kind) {
        ("", kind) => return core_rules(kind),
        ("events.k8s.io", "Event") => rules(true, sub, event::validate_v1, event::update_v1),
        ("apps", "Deployment") => rules(true, sub, apps::validate_deploy, apps::update_deploy),
        ("apps", "ReplicaSet") => rules(true, sub, apps::validate_rs, apps::update_rs),
        ("apps", "DaemonSet") => rules(true, sub, apps::validate_ds, apps::update_ds),
        ("apps", "StatefulSet") => rules(
            true,
            name_is_dns_label,
            apps::validate_sts,
            apps::update_sts,
        ),
        ("batch", "Job") => rules(true, sub, batch::validate_job, batch::update_job),
        ("batch", "CronJob") => rules(true, sub, batch::validate_cronjob, batch::update_cronjob),
        ("discovery.k8s.io", "EndpointSlice") => rules(
            true,
            sub,
            endpoints::validate_slice,
            endpoints::update_slice,
        ),
        ("networking.k8s.io", "Ingress") => rules(
            true,
            sub,
            networking::validate_ingress,
            networking::update_ingress,
        ),
        ("coordination.k8s.io", "Lease") => {
            rules(true, sub, cluster::validate_lease, cluster::update_lease)
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            rules(false, sub, cluster::validate_pc, cluster::update_pc)
        }
        ("rbac.authorization.k8s.io", kind) => return rbac_rules(kind),
        _ => return None,
    })
}

fn core_rules(kind: &str) -> Option<KindRules> {
    let sub = name_is_dns_subdomain as NameFn;
    Some(match kind {
        "Pod" => rules(true, sub, pod::validate_pod, pod::validate_pod_update),
        "PodTemplate" => rules(true, sub, pod::validate_pod_template, pod::update_template),
        "ReplicationController" => rules(true, sub, apps::validate_rc, apps::update_rc),
        "Service" => rules(
            true,
            name_is_dns1035_label,
            service::validate,
            service::validate_update,
        ),
        "ConfigMap" => rules(true, sub, config::validate_cm, config::update_cm),
        "Secret" => rules(true, sub, config::validate_secret, config::update_secret),
        "Namespace" => rules(
            false,
            name_is_dns_label,
            cluster::validate_ns,
            nothing_update,
        ),
        "Node" => rules(false, sub, cluster::validate_node, cluster::update_node),
        "ServiceAccount" => rules(true, sub, nothing, nothing_update),
        "PersistentVolumeClaim" => rules(true, sub, storage::validate, storage::update),
        "Endpoints" => rules(true, sub, endpoints::validate_ep, endpoints::update_ep),
        "Event" => KindRules {
            meta: None,
            create: event::validate_legacy,
            update: event::update_legacy,
        },
        _ => return None,
    })
}

fn rbac_rules(kind: &str) -> Option<KindRules> {
    let seg = name_is_path_segment as NameFn;
    Some(match kind {
        "Role" => rules(true, seg, rbac::validate_role, rbac::update_role),
        "ClusterRole" => rules(
            false,
            seg,
            rbac::validate_cluster_role,
            rbac::update_cluster_role,
        ),
        "RoleBinding" => rules(true, seg, rbac::validate_rb, rbac::update_rb),
        "ClusterRoleBinding" => rules(false, seg, rbac::validate_crb, rbac::update_crb),
        _ => return None,
    })
}

/// Validates a new object of the given API group (`""` for core) and kind.
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let Some(rules) = kind_rules(group, kind) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if let Some(meta) = rules.meta {
        meta::validate_object_meta(obj, meta, &mut errs);
    }
    (rules.create)(obj, &mut errs);
    errs
}

/// ObjectMeta's rules for a custom resource's object (names are DNS
/// subdomains, as upstream's customResourceStrategy checks).
pub fn validate_custom_meta(namespaced: bool, old: Option<&Value>, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match old {
        None => meta::validate_object_meta(
            obj,
            MetaRules {
                namespaced,
                name: name_is_dns_subdomain,
            },
            &mut errs,
        ),
        Some(old) => meta::validate_object_meta_update(old, obj, &mut errs),
    }
    errs
}

/// Validates replacing `old` by `new`: the new object's own validity plus the fields
/// upstream forbids changing (selectors, Job templates, Service cluster IPs, PVC specs,
/// immutable ConfigMap/Secret data, Pod specs beyond images, RoleBinding roleRefs, ...).
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let Some(rules) = kind_rules(group, kind) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if rules.meta.is_some() {
        meta::validate_object_meta_update(old, new, &mut errs);
    }
    (rules.update)(old, new, &mut errs);
    errs
}
