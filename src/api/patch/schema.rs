//! Patch metadata of the built-in types: which lists merge by which key.
//!
//! Upstream gets this from Go struct tags (`patchStrategy`, `patchMergeKey`) for
//! strategic merge patch and from the OpenAPI list extensions
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`) for server-side apply.
//! Both are position dependent (a `ports` list means something else under a
//! container than under a Service spec), so the table here is a small type graph:
//! a [`Node`] names a Go struct, and [`Node::field`] tells what a JSON field of
//! it holds. Only the structs that carry merge metadata (or lead to one that does)
//! are modelled; every other field falls back to "replace / atomic", which is what
//! upstream does for fields without tags. Lookups never fail: an unknown field is
//! simply an unknown struct, so bad input cannot make this module error.
//!
//! Custom resources are walked by their CRD's structural schema
//! ([`Node::Schema`]): `x-kubernetes-list-type` and `-list-map-keys` decide
//! how server-side apply merges their lists (atomic when unset, as
//! upstream). Without a schema they are [`Node::Opaque`]: every list atomic.
//! Upstream refuses strategic merge patch for them either way.

use super::TypeRef;

/// A Go struct (or a family of them) that fields are looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// A built-in struct without modelled fields (`conditions` still merge by type).
    Unknown,
    /// A custom resource: nothing known, every list atomic.
    Opaque,
    /// A node of a custom resource's structural schema.
    Schema(SchemaRef),
    /// The top of a custom object, or an embedded resource in one:
    /// `metadata` is ObjectMeta, the rest follows the schema.
    SchemaRoot(SchemaRef),
    /// `map[string]T` such as labels: keys are data, not field names.
    FreeMap,
    /// Top level of a built-in object; the kind picks `spec`/`status`.
    Root(RootKind),
    /// `metav1.ObjectMeta`.
    ObjectMeta,
    /// `metav1.LabelSelector`.
    LabelSelector,
    /// `PodTemplateSpec`: metadata plus a pod spec.
    PodTemplateSpec,
    /// `PodSpec`.
    PodSpec,
    /// `Container` / `EphemeralContainer`.
    Container,
    /// `ResourceRequirements` / `VolumeResourceRequirements`.
    Resources,
    /// `PodStatus`.
    PodStatus,
    /// Spec of a workload holding a pod template (Deployment, Job, ...).
    WorkloadSpec,
    /// `ReplicationControllerSpec` (its selector is a plain map).
    RcSpec,
    /// `CronJobSpec`.
    CronJobSpec,
    /// `JobTemplateSpec`.
    JobTemplateSpec,
    /// `ServiceSpec`.
    ServiceSpec,
    /// `NodeSpec` (of the Node kind).
    HostSpec,
    /// `NodeStatus` (of the Node kind).
    HostStatus,
    /// `PersistentVolumeClaimSpec`.
    PvcSpec,
    /// A status whose resource maps (capacity, allocatable) are free maps.
    CapacityStatus,
    /// Spec whose `selector` uses patchStrategy=replace (PodDisruptionBudget).
    PdbSpec,
    /// `CSINodeSpec`.
    CsiNodeSpec,
    /// Admission webhook (mutating or validating).
    Webhook,
    /// `ValidatingAdmissionPolicySpec` / `MutatingAdmissionPolicySpec`.
    AdmissionPolicySpec,
}

/// A CRD schema node, compared by identity (the schemas of served CRDs
/// live as long as the process).
#[derive(Clone, Copy)]
pub(crate) struct SchemaRef(pub &'static crate::api::custom::schema::Node);

impl PartialEq for SchemaRef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for SchemaRef {}

impl std::fmt::Debug for SchemaRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SchemaRef({:p})", self.0)
    }
}

/// The built-in kinds whose top level differs from a bare object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RootKind {
    /// Any built-in kind with nothing special at the top.
    Plain,
    /// `Pod`.
    Pod,
    /// `PodTemplate` (`template` at the top).
    PodTemplate,
    /// Deployment, ReplicaSet, DaemonSet, StatefulSet, Job.
    Workload,
    /// `ReplicationController`.
    ReplicationController,
    /// `CronJob`.
    CronJob,
    /// `Service`.
    Service,
    /// `Node`.
    Node,
    /// `PersistentVolumeClaim`.
    Pvc,
    /// `PersistentVolume`.
    Pv,
    /// ConfigMap / Secret (`data` maps).
    DataMap,
    /// `ServiceAccount`.
    ServiceAccount,
    /// Mutating/ValidatingWebhookConfiguration.
    WebhookConfiguration,
    /// Validating/MutatingAdmissionPolicy.
    AdmissionPolicy,
    /// `PodDisruptionBudget`.
    Pdb,
    /// `CSINode`.
    CsiNode,
}

/// How server-side apply treats a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Owned and replaced as a whole.
    Atomic,
    /// A set of scalars; items are `v:` path elements.
    Set,
    /// A map keyed by these fields; items are `k:` path elements.
    Map(&'static [ListKey]),
    /// A map keyed by a CRD's `x-kubernetes-list-map-keys` (no defaults).
    Keys(&'static [String]),
}

/// One key field of an associative list, with the OpenAPI default used when absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListKey {
    /// Field name.
    pub name: &'static str,
    /// Value assumed when the item omits the field.
    pub default: Option<&'static str>,
}

/// Strategic merge patch strategy of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Smp {
    /// No tag: lists are replaced, maps merged.
    None,
    /// `patchStrategy:"merge"`, with `patchMergeKey` for lists of maps.
    Merge(Option<&'static str>),
    /// `patchStrategy:"replace"`.
    Replace,
}

/// What a field of a [`Node`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// The struct of the value (or of each list item).
    pub node: Node,
    /// Apply semantics when the value is a list.
    pub list: ListType,
    /// Strategic merge patch semantics.
    pub smp: Smp,
}

const NAME: &[ListKey] = &[key("name")];
const TYPE: &[ListKey] = &[key("type")];
const IP: &[ListKey] = &[key("ip")];
const UID: &[ListKey] = &[key("uid")];
const MOUNT_PATH: &[ListKey] = &[key("mountPath")];
const DEVICE_PATH: &[ListKey] = &[key("devicePath")];
const CONTAINER_PORT: &[ListKey] = &[key("containerPort"), tcp("protocol")];
const SERVICE_PORT: &[ListKey] = &[key("port"), tcp("protocol")];
const SPREAD: &[ListKey] = &[key("topologyKey"), key("whenUnsatisfiable")];

const fn key(name: &'static str) -> ListKey {
    ListKey {
        name,
        default: None,
    }
}

const fn tcp(name: &'static str) -> ListKey {
    ListKey {
        name,
        default: Some("TCP"),
    }
}

impl Field {
    /// A plain field of struct `node`: replaced when a list, merged when a map.
    pub(crate) const fn plain(node: Node) -> Self {
        Field {
            node,
            list: ListType::Atomic,
            smp: Smp::None,
        }
    }

    /// A list merged by `keys[0]` in SMP and keyed by all `keys` in apply.
    const fn keyed(node: Node, keys: &'static [ListKey]) -> Self {
        Field {
            node,
            list: ListType::Map(keys),
            smp: Smp::Merge(Some(keys[0].name)),
        }
    }

    /// A list of scalars merged as a set in both SMP and apply.
    const fn set() -> Self {
        Field {
            node: Node::Unknown,
            list: ListType::Set,
            smp: Smp::Merge(None),
        }
    }

    /// The field describing one item of this list (nested lists are atomic).
    pub(crate) const fn item(self) -> Self {
        Field::plain(self.node)
    }
}

/// The root field for objects of type `ty`.
pub(crate) fn root(ty: TypeRef<'_>) -> Field {
    Field::plain(match (root_kind(ty), ty.schema) {
        (Some(kind), _) => Node::Root(kind),
        (None, Some(schema)) => Node::SchemaRoot(SchemaRef(schema)),
        (None, None) => Node::Opaque,
    })
}

/// A field of a custom object by its schema node's property `name`.
fn schema_field(node: &'static crate::api::custom::schema::Node, name: &str) -> Field {
    let child = node
        .properties
        .get(name)
        .or(node.additional_properties.as_deref());
    let Some(child) = child else {
        // Unknown to the schema (x-kubernetes-preserve-unknown-fields):
        // atomic, as upstream's deduced types are.
        return Field::plain(Node::Opaque);
    };
    let node_of = |n: &'static crate::api::custom::schema::Node| {
        if n.embedded_resource {
            Node::SchemaRoot(SchemaRef(n))
        } else {
            Node::Schema(SchemaRef(n))
        }
    };
    if child.type_.as_deref() == Some("array") {
        let items = child.items.as_deref().map_or(Node::Opaque, node_of);
        let list = match child.list_type.as_deref() {
            Some("map") if !child.list_map_keys.is_empty() => ListType::Keys(&child.list_map_keys),
            Some("set") => ListType::Set,
            _ => ListType::Atomic,
        };
        return Field {
            node: items,
            list,
            smp: Smp::None,
        };
    }
    Field::plain(node_of(child))
}

/// Whether upstream has Go types (and so strategic merge patch) for `ty`.
pub(crate) fn has_strategic_schema(ty: TypeRef<'_>) -> bool {
    root_kind(ty).is_some()
}

fn root_kind(ty: TypeRef<'_>) -> Option<RootKind> {
    use RootKind::*;
    let kind = match (ty.group, ty.kind) {
        ("", "Pod") => Pod,
        ("", "PodTemplate") => PodTemplate,
        ("", "ReplicationController") => ReplicationController,
        ("", "Service") => Service,
        ("", "Node") => Node,
        ("", "PersistentVolumeClaim") => Pvc,
        ("", "PersistentVolume") => Pv,
        ("", "ConfigMap" | "Secret") => DataMap,
        ("", "ServiceAccount") => ServiceAccount,
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => Workload,
        ("batch", "Job") => Workload,
        ("batch", "CronJob") => CronJob,
        ("policy", "PodDisruptionBudget") => Pdb,
        ("storage.k8s.io", "CSINode") => CsiNode,
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => WebhookConfiguration,
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy" | "MutatingAdmissionPolicy",
        ) => AdmissionPolicy,
        (group, kind) if is_plain_builtin(group, kind) => Plain,
        _ => return None,
    };
    Some(kind)
}

/// Built-in kinds with no merge metadata at their top level.
fn is_plain_builtin(group: &str, kind: &str) -> bool {
    let kinds: &[&str] = match group {
        "" => &[
            "Namespace",
            "Endpoints",
            "Event",
            "LimitRange",
            "ResourceQuota",
            "Binding",
            "ComponentStatus",
        ],
        "apps" => &["ControllerRevision"],
        "autoscaling" => &["HorizontalPodAutoscaler", "Scale"],
        "networking.k8s.io" => &[
            "Ingress",
            "IngressClass",
            "NetworkPolicy",
            "ServiceCIDR",
            "IPAddress",
        ],
        "rbac.authorization.k8s.io" => {
            &["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
        }
        "storage.k8s.io" => &[
            "StorageClass",
            "CSIDriver",
            "VolumeAttachment",
            "CSIStorageCapacity",
            "VolumeAttributesClass",
        ],
        "coordination.k8s.io" => &["Lease", "LeaseCandidate"],
        "discovery.k8s.io" => &["EndpointSlice"],
        "events.k8s.io" => &["Event"],
        "scheduling.k8s.io" => &["PriorityClass"],
        "node.k8s.io" => &["RuntimeClass"],
        "apiextensions.k8s.io" => &["CustomResourceDefinition"],
        "apiregistration.k8s.io" => &["APIService"],
        "admissionregistration.k8s.io" => &[
            "ValidatingAdmissionPolicyBinding",
            "MutatingAdmissionPolicyBinding",
        ],
        "certificates.k8s.io" => &["CertificateSigningRequest", "ClusterTrustBundle"],
        "flowcontrol.apiserver.k8s.io" => &["FlowSchema", "PriorityLevelConfiguration"],
        "resource.k8s.io" => &[
            "ResourceClaim",
            "ResourceClaimTemplate",
            "ResourceSlice",
            "DeviceClass",
        ],
        "storagemigration.k8s.io" => &["StorageVersionMigration"],
        _ => &[],
    };
    kinds.contains(&kind)
}

impl Node {
    /// Whether keys of a map at this node are data (labels) rather than fields.
    pub(crate) fn is_free_map(self) -> bool {
        self == Node::FreeMap
    }

    /// What field `name` of this struct holds.
    pub(crate) fn field(self, name: &str) -> Field {
        match self {
            Node::Opaque => Field::plain(Node::Opaque),
            Node::SchemaRoot(schema) => match name {
                "metadata" => Field::plain(Node::ObjectMeta),
                "apiVersion" | "kind" => Field::plain(Node::Opaque),
                _ => schema_field(schema.0, name),
            },
            Node::Schema(schema) => schema_field(schema.0, name),
            Node::FreeMap => Field::plain(Node::Unknown),
            Node::Root(kind) => root_field(kind, name),
            Node::ObjectMeta => object_meta_field(name),
            Node::LabelSelector => match name {
                "matchLabels" => Field::plain(Node::FreeMap),
                _ => common_field(name),
            },
            Node::PodTemplateSpec | Node::JobTemplateSpec => template_field(self, name),
            Node::PodSpec => pod_spec_field(name),
            Node::Container => container_field(name),
            Node::Resources => match name {
                "limits" | "requests" => Field::plain(Node::FreeMap),
                "claims" => Field {
                    node: Node::Unknown,
                    list: ListType::Map(NAME),
                    smp: Smp::None,
                },
                _ => common_field(name),
            },
            Node::PodStatus => pod_status_field(name),
            _ => spec_field(self, name),
        }
    }
}

/// Fields shared by every built-in struct: `conditions` merge by type.
fn common_field(name: &str) -> Field {
    match name {
        "conditions" => Field::keyed(Node::Unknown, TYPE),
        _ => Field::plain(Node::Unknown),
    }
}

fn root_field(kind: RootKind, name: &str) -> Field {
    use RootKind as K;
    let node = match (kind, name) {
        (_, "metadata") => Node::ObjectMeta,
        (K::Pod, "spec") => Node::PodSpec,
        (K::Pod, "status") => Node::PodStatus,
        (K::PodTemplate, "template") => Node::PodTemplateSpec,
        (K::Workload, "spec") => Node::WorkloadSpec,
        (K::ReplicationController, "spec") => Node::RcSpec,
        (K::CronJob, "spec") => Node::CronJobSpec,
        (K::Service, "spec") => Node::ServiceSpec,
        (K::Node, "spec") => Node::HostSpec,
        (K::Node, "status") => Node::HostStatus,
        (K::Pvc, "spec") => Node::PvcSpec,
        (K::Pvc | K::Pv, "status") => Node::CapacityStatus,
        (K::Pv, "spec") => Node::CapacityStatus,
        (K::DataMap, "data" | "binaryData" | "stringData") => Node::FreeMap,
        (K::ServiceAccount, "secrets") => return Field::keyed(Node::Unknown, NAME),
        (K::WebhookConfiguration, "webhooks") => return Field::keyed(Node::Webhook, NAME),
        (K::AdmissionPolicy, "spec") => Node::AdmissionPolicySpec,
        (K::Pdb, "spec") => Node::PdbSpec,
        (K::CsiNode, "spec") => Node::CsiNodeSpec,
        _ => return common_field(name),
    };
    Field::plain(node)
}

fn object_meta_field(name: &str) -> Field {
    match name {
        "labels" | "annotations" => Field::plain(Node::FreeMap),
        "ownerReferences" => Field::keyed(Node::Unknown, UID),
        "finalizers" => Field::set(),
        _ => Field::plain(Node::Unknown),
    }
}

fn template_field(node: Node, name: &str) -> Field {
    match (node, name) {
        (_, "metadata") => Field::plain(Node::ObjectMeta),
        (Node::PodTemplateSpec, "spec") => Field::plain(Node::PodSpec),
        (_, "spec") => Field::plain(Node::WorkloadSpec),
        _ => common_field(name),
    }
}

fn pod_spec_field(name: &str) -> Field {
    match name {
        "containers" | "initContainers" | "ephemeralContainers" => {
            Field::keyed(Node::Container, NAME)
        }
        "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims" => {
            Field::keyed(Node::Unknown, NAME)
        }
        "hostAliases" => Field::keyed(Node::Unknown, IP),
        "topologySpreadConstraints" => Field::keyed(Node::Unknown, SPREAD),
        "nodeSelector" | "overhead" => Field::plain(Node::FreeMap),
        "resources" => Field::plain(Node::Resources),
        _ => common_field(name),
    }
}

fn container_field(name: &str) -> Field {
    match name {
        "ports" => Field::keyed(Node::Unknown, CONTAINER_PORT),
        "env" => Field::keyed(Node::Unknown, NAME),
        "volumeMounts" => Field::keyed(Node::Unknown, MOUNT_PATH),
        "volumeDevices" => Field::keyed(Node::Unknown, DEVICE_PATH),
        "resources" => Field::plain(Node::Resources),
        _ => common_field(name),
    }
}

fn pod_status_field(name: &str) -> Field {
    match name {
        "podIPs" | "hostIPs" => Field::keyed(Node::Unknown, IP),
        "resourceClaimStatuses" => Field::keyed(Node::Unknown, NAME),
        _ => common_field(name),
    }
}

/// Fields of the remaining spec/status structs.
fn spec_field(node: Node, name: &str) -> Field {
    let plain = match (node, name) {
        (Node::WorkloadSpec | Node::RcSpec, "template") => Node::PodTemplateSpec,
        (Node::WorkloadSpec, "selector") => Node::LabelSelector,
        (Node::RcSpec, "selector") => Node::FreeMap,
        (Node::CronJobSpec, "jobTemplate") => Node::JobTemplateSpec,
        (Node::ServiceSpec, "ports") => return Field::keyed(Node::Unknown, SERVICE_PORT),
        (Node::ServiceSpec, "selector") => Node::FreeMap,
        (Node::HostSpec, "podCIDRs") => return Field::set(),
        (Node::HostStatus, "addresses") => return Field::keyed(Node::Unknown, TYPE),
        (Node::HostStatus | Node::CapacityStatus, "capacity" | "allocatable") => Node::FreeMap,
        (Node::CapacityStatus, "allocatedResources") => Node::FreeMap,
        (Node::PvcSpec, "resources") => Node::Resources,
        (Node::PvcSpec, "selector") => Node::LabelSelector,
        (Node::PdbSpec, "selector") => {
            return Field {
                node: Node::LabelSelector,
                list: ListType::Atomic,
                smp: Smp::Replace,
            };
        }
        (Node::CsiNodeSpec, "drivers") => return Field::keyed(Node::Unknown, NAME),
        (Node::Webhook | Node::AdmissionPolicySpec, "matchConditions") => {
            return Field::keyed(Node::Unknown, NAME);
        }
        (Node::AdmissionPolicySpec, "variables") => return Field::keyed(Node::Unknown, NAME),
        (Node::Webhook, "namespaceSelector" | "objectSelector") => Node::LabelSelector,
        _ => return common_field(name),
    };
    Field::plain(plain)
}

#[cfg(test)]
mod tests;
