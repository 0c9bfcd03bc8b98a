//! API errors as `metav1.Status` objects.
//!
//! Every failure a client can see goes through [`ApiError`], which renders
//! the upstream JSON shape (`kind: Status`, `status: Failure`, `reason`,
//! `code`, `details`), so kubectl prints the same messages as against a real
//! apiserver (`Error from server (NotFound): pods "x" not found`).

use serde_json::{Value, json};

use crate::store::StoreError;

/// One cause of an Invalid (422) error.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, …
    pub reason: String,
    /// The field path, e.g. `spec.containers[0].name`.
    pub field: String,
    /// Human readable text.
    pub message: String,
}

/// The optional `details` of a Status (boxed: errors stay small on the
/// happy path's `Result`s).
#[derive(Clone, Debug, Default)]
pub struct Details {
    /// details.name
    pub name: Option<String>,
    /// details.group
    pub group: Option<String>,
    /// details.kind (the resource name upstream puts here, e.g. `pods`).
    pub kind: Option<String>,
    /// details.causes
    pub causes: Vec<Cause>,
    /// details.retryAfterSeconds
    pub retry_after: Option<u32>,
}

/// An error answered to a client as a `metav1.Status`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// The message kubectl prints.
    pub message: String,
    /// Optional details.
    pub details: Option<Box<Details>>,
}

/// Result alias for API handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A bare error with code, reason and message.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }

    /// Names the object the error is about (`details`); an empty name is
    /// left out, as Go's `omitempty` does.
    pub fn about(mut self, group: &str, resource: &str, name: &str) -> Self {
        let d = self.details_mut();
        d.group = Some(group.to_string());
        d.kind = Some(resource.to_string());
        d.name = (!name.is_empty()).then(|| name.to_string());
        self
    }

    /// Adds causes.
    pub fn with_causes(mut self, causes: Vec<Cause>) -> Self {
        self.details_mut().causes = causes;
        self
    }

    /// Adds retryAfterSeconds.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.details_mut().retry_after = Some(seconds);
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    /// 404 for a missing object: `pods "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .about(group, resource, name)
    }

    /// 404 for an unknown path.
    pub fn no_route(path: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {what}"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .about(group, resource, name)
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, resource)
            ),
        )
        .about(group, resource, name)
    }

    /// The usual stale-update conflict.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        ApiError::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 410 Expired.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    /// 422 Invalid with causes: `Deployment.apps "x" is invalid: [a, b]`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let message = format!("{qualified_kind} \"{name}\" is invalid: {joined}");
        ApiError::new(422, "Invalid", message)
            .about(group, kind, name)
            .with_causes(causes)
    }

    /// 400 for a bad query parameter combination, with the parameter as cause.
    pub fn invalid_params(param: &str, message: &str) -> Self {
        ApiError::bad_request(message.to_string()).with_causes(vec![Cause {
            reason: "FieldValueInvalid".into(),
            field: param.into(),
            message: message.into(),
        }])
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// The `metav1.Status` JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        let d = self.details.as_deref().cloned().unwrap_or_default();
        if let Some(name) = &d.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = d.group.as_ref().filter(|g| !g.is_empty()) {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &d.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !d.causes.is_empty() {
            let causes: Vec<Value> = d
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = d.retry_after {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        // Upstream's NotFound always carries details, empty or not, and
        // clients dereference it (`kubectl debug` crashes on a nil one).
        if !details.is_empty() || self.code == 404 {
            status["details"] = Value::Object(details);
        }
        status
    }

    /// Maps a store error about one object.
    pub fn from_store(e: StoreError, group: &str, resource: &str, name: &str) -> Self {
        match e {
            StoreError::AlreadyExists { .. } => ApiError::already_exists(group, resource, name),
            StoreError::NotFound { .. } => ApiError::not_found(group, resource, name),
            StoreError::Conflict { .. } => ApiError::stale(group, resource, name),
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::expired(format!(
                "The resourceVersion for the provided list is too old (requested {requested}, oldest available {compacted})."
            )),
            StoreError::FutureRevision { requested, current } => ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {requested}, current: {current}"),
            )
            .with_retry_after(1),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// `pods` or `deployments.apps`.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A success Status (for deletes of collections and some subresources).
pub fn success_status(details: Option<Value>) -> Value {
    let mut v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_upstream_shape() {
        let s = ApiError::not_found("apps", "deployments", "web").to_status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            "",
            "Pod",
            "p",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                field: "spec.containers".into(),
                message: "Required value".into(),
            }],
        );
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: spec.containers: Required value"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["field"],
            "spec.containers"
        );
    }
}
