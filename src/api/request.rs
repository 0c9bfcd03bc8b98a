//! Turning a request path and query into what it asks for.
//!
//! Mirrors upstream's RequestInfoFactory: `/api/v1/namespaces/ns/pods/x/log`
//! becomes verb `get`, resource `pods`, namespace `ns`, name `x`,
//! subresource `log`. The query parameters every verb shares are parsed
//! here once, with upstream's error messages for bad values.

use std::collections::HashMap;

use super::custom::CustomResources;
use super::registry::resources::{self, ResourceInfo};
use super::status::{ApiError, ApiResult};

/// What a resource request addresses.
#[derive(Clone, Debug)]
pub struct Target {
    /// The resource.
    pub info: &'static ResourceInfo,
    /// Namespace from the path (None = cluster scope or all namespaces).
    pub namespace: Option<String>,
    /// Object name (None = the collection).
    pub name: Option<String>,
    /// Subresource after the name.
    pub subresource: Option<String>,
}

/// A parsed API path.
#[derive(Clone, Debug)]
pub enum Route {
    /// A resource or subresource request.
    Resource(Target),
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion(String, String),
}

/// Parses a path under /api or /apis; resources are the built-ins and the
/// `custom` ones established CRDs define.
pub fn route(path: &str, custom: &CustomResources) -> ApiResult<Route> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["api", v] => return Ok(Route::GroupVersion(String::new(), v.to_string())),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["apis", g, v] => return Ok(Route::GroupVersion(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let (namespace, rest) = match rest {
        // `/api/v1/namespaces/<name>/status|finalize` are subresources of
        // the namespace object, not a resource inside the namespace.
        ["namespaces", _, "status" | "finalize"] if group.is_empty() => (None, rest.to_vec()),
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail.to_vec()),
        other => (None, other.to_vec()),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(s.to_string())),
        // nodes/x/proxy/<path> and pods/x/proxy/<path>: the tail is the proxied path.
        [r, n, s, ..] if *s == "proxy" => (*r, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::no_route(path)),
    };
    let info = resources::find(group, version, resource)
        .or_else(|| custom.find(group, version, resource))
        .ok_or_else(|| ApiError::no_route(path))?;
    if let Some(sub) = &subresource
        && info.subresource(sub).is_none()
    {
        return Err(ApiError::no_route(path));
    }
    if namespace.is_some() && !info.namespaced {
        return Err(ApiError::no_route(path));
    }
    Ok(Route::Resource(Target {
        info,
        namespace,
        name,
        subresource,
    }))
}

/// Query parameters, decoded.
#[derive(Clone, Debug, Default)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let params = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Query { params }
    }

    /// A copy with `key` set to `value`.
    pub fn with(&self, key: &str, value: String) -> Query {
        let mut params = self.params.clone();
        params.insert(key.to_string(), value);
        Query { params }
    }

    /// A raw parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> ApiResult<bool> {
        match self.get(key) {
            None => Ok(false),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for {key}: expected true or false"
            ))),
        }
    }

    /// A non-negative integer parameter.
    pub fn number(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid value {v:?} for {key}: expected a non-negative integer"
                    ))
                }),
        }
    }

    /// `dryRun=All` (the only value upstream accepts).
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// `fieldValidation`: Strict (default for kubectl), Warn or Ignore.
    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// How to treat unknown and duplicate fields in a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject with 400.
    Strict,
    /// Accept, with Warning headers (upstream's default).
    Warn,
    /// Accept silently.
    Ignore,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match route(path, &CustomResources::new()).unwrap() {
            Route::Resource(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_upstream_paths() {
        let t = target("/api/v1/namespaces/default/pods/web/log");
        assert_eq!(
            (
                t.info.resource,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("log"))
        );
        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!(
            (t.info.resource, t.name.as_deref(), t.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let t = target("/api/v1/namespaces/x/status");
        assert_eq!(
            (t.info.resource, t.name.as_deref(), t.subresource.as_deref()),
            ("namespaces", Some("x"), Some("status"))
        );
        let t = target("/apis/apps/v1/deployments");
        assert_eq!((t.info.resource, t.namespace), ("deployments", None));
        let t = target("/apis/apps/v1/namespaces/a/deployments/d/scale");
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        let t = target("/api/v1/nodes/n1/proxy/metrics");
        assert_eq!(t.subresource.as_deref(), Some("proxy"));
        assert!(route("/api/v1/namespaces/a/nodes", &CustomResources::new()).is_err());
        assert!(route("/api/v1/pods/x/nope", &CustomResources::new()).is_err());
        assert!(route("/apis/nope/v1/things", &CustomResources::new()).is_err());
        assert!(matches!(
            route("/apis/apps", &CustomResources::new()).unwrap(),
            Route::Group(_)
        ));
    }

    #[test]
    fn query_values_are_checked() {
        let q = Query::parse(Some(
            "watch=1&limit=5&labelSelector=app%3Dx%2Ctier%21%3Ddb&dryRun=All",
        ));
        assert!(q.flag("watch").unwrap());
        assert_eq!(q.number("limit").unwrap(), Some(5));
        assert_eq!(q.get("labelSelector"), Some("app=x,tier!=db"));
        assert!(q.dry_run().unwrap());
        assert!(Query::parse(Some("limit=-1")).number("limit").is_err());
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
    }
}
