//! What a request asks to do, in the terms authorizers decide on.
//!
//! Mirrors upstream's `authorizer.Attributes`: a user, a verb, and either a
//! resource (group, resource, subresource, namespace, name) or a
//! non-resource path. Empty strings mean "none", as upstream, so that rule
//! matching and SubjectAccessReview specs use one shape.

use crate::api::authn::User;

/// A resource request's target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource ("" for none).
    pub subresource: String,
    /// Namespace ("" for cluster scope or all namespaces).
    pub namespace: String,
    /// Object name ("" for collections).
    pub name: String,
}

/// What is being asked: a resource or a non-resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api/...` and `/apis/...` resource requests.
    Resource(ResourceAttributes),
    /// Any other path (`/healthz`, `/version`, `/api`, `/openapi/v3`, …).
    NonResource(String),
}

/// One authorization question.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    /// Who asks.
    pub user: &'a User,
    /// The verb (`get`, `list`, `watch`, `create`, …, `impersonate`,
    /// `bind`, `escalate`; lowercase HTTP method for non-resource paths).
    pub verb: &'a str,
    /// What for.
    pub target: &'a Target,
}

impl Target {
    /// The resource attributes, if this is a resource request.
    pub fn resource(&self) -> Option<&ResourceAttributes> {
        match self {
            Target::Resource(r) => Some(r),
            Target::NonResource(_) => None,
        }
    }
}

/// The verb of a resource request from its HTTP method, as upstream's
/// RequestInfoFactory decides it.
pub fn resource_verb(method: &str, has_name: bool, watch: bool) -> &'static str {
    match (method, has_name) {
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) if watch => "watch",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "",
    }
}

/// The verb of a subresource request that is proxied or upgraded
/// (`proxy`, `exec`, `attach`, `portforward`, `log`): plain method mapping.
pub fn connect_verb(method: &str) -> &'static str {
    match method {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        "OPTIONS" => "options",
        _ => "",
    }
}

/// The verb of a non-resource request: the lowercase method.
pub fn non_resource_verb(method: &str) -> String {
    method.to_ascii_lowercase()
}

/// The verb and target of an HTTP request, as upstream's
/// RequestInfoFactory sees it: independent of which resources exist, so
/// that a request for an unknown resource is still refused before it can
/// learn that the resource does not exist. `watch` is the `watch` query
/// flag; `name_selector` the value of a `metadata.name=` field selector
/// (a list or watch of one object is authorized as that object).
pub fn from_request(
    method: &str,
    path: &str,
    watch: bool,
    name_selector: Option<&str>,
) -> (String, Target) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match parts.as_slice() {
        ["api", _, rest @ ..] if !rest.is_empty() => rest,
        ["apis", _, _, rest @ ..] if !rest.is_empty() => rest,
        _ => {
            return (
                non_resource_verb(method),
                Target::NonResource(path.to_string()),
            );
        }
    };
    let group = if parts[0] == "apis" { parts[1] } else { "" };
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    let mut namespace = "";
    let mut rest = rest;
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = rest[1];
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    let resource = rest[0];
    let mut name = rest.get(1).copied().unwrap_or_default().to_string();
    let subresource = rest.get(2).copied().unwrap_or_default();
    let mut verb = resource_verb(method, !name.is_empty(), watch || legacy_watch).to_string();
    if legacy_watch && !name.is_empty() {
        verb = "watch".into();
    }
    if matches!(verb.as_str(), "list" | "watch")
        && let Some(n) = name_selector
    {
        name = n.to_string();
    }
    if !subresource.is_empty() && verb.is_empty() {
        verb = connect_verb(method).to_string();
    }
    (
        verb,
        Target::Resource(ResourceAttributes {
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            namespace: namespace.to_string(),
            name,
        }),
    )
}

/// Upstream's forbidden message (`responsewriters.Forbidden`), without the
/// reason suffix: `pods "x" is forbidden: User "u" cannot get resource
/// "pods" in API group "" in the namespace "ns"`.
pub fn forbidden_message(attrs: &Attributes<'_>) -> String {
    let user = &attrs.user.name;
    match attrs.target {
        Target::NonResource(path) => {
            format!(
                "forbidden: User \"{user}\" cannot {} path \"{path}\"",
                attrs.verb
            )
        }
        Target::Resource(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let qualified = if r.group.is_empty() {
                r.resource.clone()
            } else {
                format!("{}.{}", r.resource, r.group)
            };
            let subject = if r.name.is_empty() {
                format!("{qualified} is forbidden")
            } else {
                format!("{qualified} \"{}\" is forbidden", r.name)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{}\"", r.namespace)
            };
            format!(
                "{subject}: User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
                attrs.verb, r.group
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User::named("bob", &["system:authenticated"])
    }

    fn info(method: &str, path: &str) -> (String, Target) {
        from_request(method, path, false, None)
    }

    #[test]
    fn requests_map_to_upstream_attributes() {
        let r = |g: &str, res: &str, sub: &str, ns: &str, n: &str| {
            Target::Resource(ResourceAttributes {
                group: g.into(),
                resource: res.into(),
                subresource: sub.into(),
                namespace: ns.into(),
                name: n.into(),
            })
        };
        for (method, path, verb, want) in [
            (
                "GET",
                "/api/v1/namespaces/a/pods",
                "list",
                r("", "pods", "", "a", ""),
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods/p/exec",
                "create",
                r("", "pods", "exec", "a", "p"),
            ),
            (
                "GET",
                "/api/v1/namespaces/a",
                "get",
                r("", "namespaces", "", "a", "a"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/a/finalize",
                "update",
                r("", "namespaces", "finalize", "a", "a"),
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/a/deployments",
                "deletecollection",
                r("apps", "deployments", "", "a", ""),
            ),
            (
                "GET",
                "/api/v1/nodes/n/proxy/stats/summary",
                "get",
                r("", "nodes", "proxy", "", "n"),
            ),
        ] {
            assert_eq!(
                info(method, path),
                (verb.to_string(), want),
                "{method} {path}"
            );
        }
        assert_eq!(
            from_request("GET", "/api/v1/namespaces/a/secrets", true, Some("s")),
            ("watch".into(), r("", "secrets", "", "a", "s"))
        );
        for path in [
            "/api",
            "/api/v1",
            "/apis/apps/v1",
            "/healthz",
            "/openapi/v3",
        ] {
            assert_eq!(
                info("GET", path),
                ("get".into(), Target::NonResource(path.into()))
            );
        }
    }

    #[test]
    fn messages_match_upstream() {
        let u = user();
        let t = Target::Resource(ResourceAttributes {
            resource: "pods".into(),
            namespace: "y".into(),
            ..Default::default()
        });
        let a = Attributes {
            user: &u,
            verb: "list",
            target: &t,
        };
        assert_eq!(
            forbidden_message(&a),
            r#"pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "y""#
        );
        let t = Target::Resource(ResourceAttributes {
            group: "rbac.authorization.k8s.io".into(),
            resource: "clusterroles".into(),
            name: "admin".into(),
            ..Default::default()
        });
        let a = Attributes {
            user: &u,
            verb: "get",
            target: &t,
        };
        assert_eq!(
            forbidden_message(&a),
            r#"clusterroles.rbac.authorization.k8s.io "admin" is forbidden: User "bob" cannot get resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
        );
        let t = Target::NonResource("/metrics".into());
        let a = Attributes {
            user: &u,
            verb: "get",
            target: &t,
        };
        assert_eq!(
            forbidden_message(&a),
            r#"forbidden: User "bob" cannot get path "/metrics""#
        );
    }
}
