//! The error type every batch controller returns from reconciles and from `run`.
//!
//! Reconcile errors are retried by the runtime with per-object exponential backoff (see
//! [`super::runtime`]), so variants only need to say what went wrong; they carry no retry
//! policy. `run` itself fails only on problems that retrying cannot fix.

/// Why a reconcile (or a controller) failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A request to the apiserver failed (network, conflict, rejection).
    #[error("apiserver request failed: {0}")]
    Api(#[from] kube::Error),
    /// An object could not be converted to or from JSON.
    #[error("cannot encode {what}: {source}")]
    Json {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// An object from the apiserver lacks a field every stored object has.
    #[error("{kind} has no {field}")]
    MissingField {
        /// The kind of the object.
        kind: &'static str,
        /// The missing field, e.g. `metadata.uid`.
        field: &'static str,
    },
    /// The spec holds a value the controller cannot act on.
    #[error("invalid {field}: {reason}")]
    InvalidSpec {
        /// The offending field.
        field: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// A watch cache stopped before it finished its initial list.
    #[error("the {0} cache shut down")]
    CacheClosed(&'static str),
    /// The owner changed identity or started deleting while children were being adopted.
    #[error("{0}")]
    OwnerGone(String),
    /// A ControllerRevision name collided with a different revision; the collision count
    /// was bumped and the reconcile must be retried.
    #[error("controller revision {0} collides with an existing revision")]
    RevisionCollision(String),
}

impl ControllerError {
    /// Whether the error is the apiserver saying the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ControllerError::Api(kube::Error::Api(s)) if s.code == 404)
    }

    /// Whether the error is the apiserver saying the object already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ControllerError::Api(kube::Error::Api(s)) if s.code == 409
            && s.reason == "AlreadyExists")
    }
}

/// Whether a kube error is a 404 from the apiserver.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube error is a 409 AlreadyExists from the apiserver.
pub fn is_already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// Whether a kube error says the namespace is being terminated (creations will keep failing).
pub fn is_namespace_terminating(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 403
        && s.details.as_ref().is_some_and(|d| d.causes.iter()
            .any(|c| c.reason == "NamespaceTerminating")))
}
