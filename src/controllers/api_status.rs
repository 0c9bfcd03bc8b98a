//! Classification of apiserver failures shared by the core controllers.
//!
//! Controllers treat a handful of API statuses as expected outcomes rather than failures: a
//! delete racing another deleter (404), a create racing an informer that has not caught up yet
//! (409 AlreadyExists), an update from a stale cache (409 Conflict). Naming those checks once
//! keeps every reconciler's error handling uniform.

/// True when the apiserver answered 404 Not Found.
pub fn is_not_found(err: &kube::Error) -> bool {
    status_code(err) == Some(404)
}

/// True when the apiserver answered 409 with reason AlreadyExists.
pub fn is_already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists")
}

/// True when the apiserver answered 409 Conflict for a stale resourceVersion or a failed
/// precondition (UID mismatch).
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409 && status.reason != "AlreadyExists")
}

/// The HTTP status code of an API error, if the error came from the apiserver.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
