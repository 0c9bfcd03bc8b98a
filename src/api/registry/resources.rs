//! The table of built-in resources the apiserver serves.
//!
//! One static entry per resource: where it lives (group/version), how it is
//! named (plural, singular, kind, short names, categories), its scope, verbs
//! and subresources. Discovery, routing, OpenAPI and storage keys are all
//! derived from this table, so adding a resource is one line here plus, if
//! it has special semantics, a strategy hook.

/// A subresource (`pods/status`, `deployments/scale`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubresourceInfo {
    /// Name after the slash.
    pub name: &'static str,
    /// Kind of the object it takes/returns.
    pub kind: &'static str,
    /// Group of that kind, when different from the parent's.
    pub group: Option<&'static str>,
    /// Version of that kind, when different from the parent's.
    pub version: Option<&'static str>,
    /// Verbs allowed on it.
    pub verbs: &'static [&'static str],
}

/// A served resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: &'static str,
    /// Served version.
    pub version: &'static str,
    /// Plural lower-case name, as in URLs.
    pub resource: &'static str,
    /// Singular lower-case name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Verbs on the resource itself.
    pub verbs: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [SubresourceInfo],
    /// For a version served but not stored: the version whose objects it
    /// reads and writes, converted (`autoscaling/v1` HPAs are stored as
    /// `v2`; `events.k8s.io` Events as core Events).
    pub stored_as: Option<(&'static str, &'static str)>,
    /// For a custom resource: what its CustomResourceDefinition says
    /// (schema, printer columns, scale paths). None for built-ins.
    pub custom: Option<&'static crate::api::custom::Definition>,
}

impl ResourceInfo {
    /// A custom resource's structural schema (None for built-ins).
    pub fn schema(&self) -> Option<&'static crate::api::custom::schema::Node> {
        let definition: &'static crate::api::custom::Definition = self.custom?;
        definition.schema.as_ref().map(|s| s.root())
    }

    /// The resource this version is stored as, if it is a converted one.
    pub fn storage(&self) -> Option<&'static ResourceInfo> {
        if let Some(custom) = self.custom {
            return custom.storage;
        }
        let (group, version) = self.stored_as?;
        find(group, version, self.resource)
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Store key prefix of all objects of this resource.
    pub fn key_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/registry/{group}/{}/", self.resource)
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }

    /// Whether the resource has a status subresource (spec/status split).
    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }

    /// Looks up a subresource.
    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether `verb` is allowed on the resource itself.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

/// The verbs of an ordinary stored resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const RW: &[&str] = &["get", "patch", "update"];
const NONE: &[&str] = &[];
const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];

const fn sub(
    name: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> SubresourceInfo {
    SubresourceInfo {
        name,
        kind,
        group: None,
        version: None,
        verbs,
    }
}

const fn sub_in(
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> SubresourceInfo {
    SubresourceInfo {
        name,
        kind,
        group: Some(group),
        version: Some(version),
        verbs,
    }
}

/// The `status` subresource of a kind with a spec/status split.
pub const STATUS: SubresourceInfo = sub("status", "", RW);
/// The `scale` subresource (autoscaling/v1 Scale).
pub const SCALE: SubresourceInfo = sub_in("scale", "autoscaling", "v1", "Scale", RW);

#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [SubresourceInfo],
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        resource,
        singular,
        kind,
        namespaced,
        short_names,
        categories,
        verbs: ALL_VERBS,
        subresources,
        stored_as: None,
        custom: None,
    }
}

/// A create-only review resource (TokenReview, SubjectAccessReview, …):
/// nothing is stored, the answer is the request with its status filled.
const fn review(
    group: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        verbs: &["create"],
        ..res(
            group,
            "v1",
            resource,
            singular,
            kind,
            namespaced,
            NONE,
            NONE,
            &[],
        )
    }
}

/// Every built-in resource, in discovery order (core first, like upstream).
pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        verbs: &["create"],
        ..res(
            "",
            "v1",
            "bindings",
            "binding",
            "Binding",
            true,
            NONE,
            NONE,
            &[],
        )
    },
    ResourceInfo {
        verbs: &["get", "list"],
        ..res(
            "",
            "v1",
            "componentstatuses",
            "componentstatus",
            "ComponentStatus",
            false,
            &["cs"],
            NONE,
            &[],
        )
    },
    res(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "limitranges",
        "limitrange",
        "LimitRange",
        true,
        &["limits"],
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        NONE,
        &[STATUS, sub("finalize", "Namespace", &["update"])],
    ),
    res(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        NONE,
        &[
            STATUS,
            sub(
                "proxy",
                "NodeProxyOptions",
                &["create", "delete", "get", "patch", "update"],
            ),
        ],
    ),
    res(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        NONE,
        &[STATUS],
    ),
    res(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        NONE,
        &[STATUS],
    ),
    res(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        ALL,
        &[
            STATUS,
            sub("attach", "PodAttachOptions", &["create", "get"]),
            sub("binding", "Binding", &["create"]),
            sub("ephemeralcontainers", "Pod", &["get", "patch", "update"]),
            sub_in("eviction", "policy", "v1", "Eviction", &["create"]),
            sub("exec", "PodExecOptions", &["create", "get"]),
            sub("log", "Pod", &["get"]),
            sub("portforward", "PodPortForwardOptions", &["create", "get"]),
            sub(
                "proxy",
                "PodProxyOptions",
                &["create", "delete", "get", "patch", "update"],
            ),
        ],
    ),
    res(
        "",
        "v1",
        "podtemplates",
        "podtemplate",
        "PodTemplate",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "replicationcontrollers",
        "replicationcontroller",
        "ReplicationController",
        true,
        &["rc"],
        ALL,
        &[STATUS, SCALE],
    ),
    res(
        "",
        "v1",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        true,
        &["quota"],
        NONE,
        &[STATUS],
    ),
    res(
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        NONE,
        &[sub_in(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        )],
    ),
    res(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        ALL,
        &[
            STATUS,
            sub(
                "proxy",
                "ServiceProxyOptions",
                &["create", "delete", "get", "patch", "update"],
            ),
        ],
    ),
    res(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "apiservice",
        "APIService",
        false,
        NONE,
        API_EXTENSIONS,
        &[STATUS],
    ),
    res(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        ALL,
        &[STATUS],
    ),
    res(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        ALL,
        &[STATUS, SCALE],
    ),
    res(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        ALL,
        &[STATUS, SCALE],
    ),
    res(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        ALL,
        &[STATUS, SCALE],
    ),
    res(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        ALL,
        &[STATUS],
    ),
    ResourceInfo {
        stored_as: Some(("autoscaling", "v2")),
        ..res(
            "autoscaling",
            "v1",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "HorizontalPodAutoscaler",
            true,
            &["hpa"],
            ALL,
            &[STATUS],
        )
    },
    res(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        &["cj"],
        ALL,
        &[STATUS],
    ),
    res(
        "batch",
        "v1",
        "jobs",
        "job",
        "Job",
        true,
        NONE,
        ALL,
        &[STATUS],
    ),
    res(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        NONE,
        NONE,
        &[],
    ),
    ResourceInfo {
        stored_as: Some(("", "v1")),
        ..res(
            "events.k8s.io",
            "v1",
            "events",
            "event",
            "Event",
            true,
            &["ev"],
            NONE,
            &[],
        )
    },
    res(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        false,
        NONE,
        NONE,
        &[],
    ),
    res(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
        NONE,
        &[STATUS],
    ),
    res(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        &["netpol"],
        NONE,
        &[],
    ),
    res(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        NONE,
        &[STATUS],
    ),
    review(
        "authentication.k8s.io",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        false,
    ),
    review(
        "authentication.k8s.io",
        "tokenreviews",
        "tokenreview",
        "TokenReview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        "LocalSubjectAccessReview",
        true,
    ),
    review(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
    ),
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        NONE,
        NONE,
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        NONE,
        NONE,
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        &["pc"],
        NONE,
        &[],
    ),
    res(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        &["sc"],
        NONE,
        &[],
    ),
    res(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        "MutatingWebhookConfiguration",
        false,
        NONE,
        API_EXTENSIONS,
        &[],
    ),
    res(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "validatingadmissionpolicy",
        "ValidatingAdmissionPolicy",
        false,
        NONE,
        API_EXTENSIONS,
        &[STATUS],
    ),
    res(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybinding",
        "ValidatingAdmissionPolicyBinding",
        false,
        NONE,
        API_EXTENSIONS,
        &[],
    ),
    res(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        "ValidatingWebhookConfiguration",
        false,
        NONE,
        API_EXTENSIONS,
        &[],
    ),
    res(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        API_EXTENSIONS,
        &[STATUS],
    ),
];

/// Finds a resource by group, version and plural name.
pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// Finds a resource by group and kind (any served version).
pub fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// The served API groups in discovery order, each with its versions.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    groups_of(RESOURCES.iter())
}

/// The groups of `resources` in the order met, each with its versions.
pub fn groups_of<'a>(
    resources: impl Iterator<Item = &'a ResourceInfo>,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in resources {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lookup() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/core/nodes/n1");
        assert_eq!(
            find_kind("apps", "Deployment").unwrap().resource,
            "deployments"
        );
        assert!(find("apps", "v1", "deployments").unwrap().has_status());
        assert_eq!(groups()[0], ("", vec!["v1"]));
    }

    #[test]
    fn names_are_unique_per_group_version() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.resource == b.resource),
                    "{}",
                    a.resource
                );
            }
        }
    }
}
