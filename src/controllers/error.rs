//! The error and configuration types shared by the workload controllers
//! (ReplicaSet, Deployment).
//!
//! Every reconcile failure is a [`ControllerError`] value: it names the
//! object and the operation that failed so that the error policy can log it
//! and requeue the object with backoff, the way upstream's rate-limited work
//! queues do. Failures are never fatal to the controller itself; `run` only
//! returns once it is cancelled.

use std::time::Duration;

/// Tuning shared by the workload controllers.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How many objects may be reconciled at once (upstream's
    /// `--concurrent-replicaset-syncs` / `--concurrent-deployment-syncs`, both 5).
    pub concurrency: u16,
    /// How long a trigger waits for further triggers of the same object before
    /// the reconcile runs; zero reconciles as soon as a worker is free.
    pub debounce: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            concurrency: 5,
            debounce: Duration::ZERO,
        }
    }
}

/// Why a reconcile (or the controller) failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A request to the API server failed.
    #[error("cannot {action} {kind} {namespace}/{name}: {source}")]
    Api {
        /// The verb that failed (create, update, patch, delete, get).
        action: &'static str,
        /// The kind of the object acted on.
        kind: &'static str,
        /// Namespace of the object.
        namespace: String,
        /// Name (or generateName prefix) of the object.
        name: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// An object carries a label selector that cannot be evaluated.
    #[error("{kind} {namespace}/{name} has an invalid label selector: {reason}")]
    InvalidSelector {
        /// Kind of the selecting object.
        kind: &'static str,
        /// Namespace of the selecting object.
        namespace: String,
        /// Name of the selecting object.
        name: String,
        /// What is wrong with the selector.
        reason: String,
    },
    /// An object lacks a field the controller cannot work without.
    #[error("{kind} {namespace}/{name} has no {field}")]
    MissingField {
        /// Kind of the object.
        kind: &'static str,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// The missing field path.
        field: &'static str,
    },
    /// A value could not be turned into JSON for a request body.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serializer error.
        #[source]
        source: serde_json::Error,
    },
    /// An orphan could not be adopted because its would-be owner is gone or
    /// being deleted (upstream's `RecheckDeletionTimestamp`).
    #[error("cannot adopt into {kind} {namespace}/{name}: {reason}")]
    Adoption {
        /// Kind of the owner.
        kind: &'static str,
        /// Namespace of the owner.
        namespace: String,
        /// Name of the owner.
        name: String,
        /// Why adoption is refused.
        reason: String,
    },
    /// A cache's writer was dropped before it finished its first list.
    #[error("the {kind} cache stopped before it synced")]
    CacheClosed {
        /// Kind the cache holds.
        kind: &'static str,
    },
    /// A deployment names a strategy this controller does not know.
    #[error("unexpected deployment strategy type: {0}")]
    UnknownStrategy(String),
    /// A computed scale-down would grow a ReplicaSet (its status is stale).
    #[error("invalid request to scale down {name} from {from} to {to}")]
    InvalidScale {
        /// The ReplicaSet.
        name: String,
        /// Its current size.
        from: i32,
        /// The computed size.
        to: i32,
    },
    /// Several independent operations of one reconcile failed.
    #[error("{count} operations failed, first: {first}")]
    Several {
        /// How many failed.
        count: usize,
        /// The first failure.
        #[source]
        first: Box<ControllerError>,
    },
}

impl ControllerError {
    /// Wraps a client error with the object and the verb it concerned.
    pub fn api(
        action: &'static str,
        kind: &'static str,
        namespace: &str,
        name: &str,
        source: kube::Error,
    ) -> Self {
        Self::Api {
            action,
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        }
    }

    /// Folds a list of failures into one error (`None` if there were none).
    pub fn aggregate(mut errors: Vec<ControllerError>) -> Option<ControllerError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            count => Some(Self::Several {
                count,
                first: Box::new(errors.swap_remove(0)),
            }),
        }
    }

    /// The API status behind this error, if it is an API rejection.
    fn status(&self) -> Option<&kube::core::Status> {
        match self {
            Self::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(status) => Some(status),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the API answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        self.status().is_some_and(|s| s.is_not_found())
    }

    /// Whether the API answered 409 AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        self.status().is_some_and(|s| s.is_already_exists())
    }

    /// Whether the API answered 409 Conflict (a stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        self.status().is_some_and(|s| s.is_conflict())
    }

    /// Whether the API answered 422 Invalid.
    pub fn is_invalid(&self) -> bool {
        self.status()
            .is_some_and(|s| s.code == 422 || s.reason == "Invalid")
    }

    /// Whether the API refused because the namespace is being deleted
    /// (upstream's `NamespaceTerminatingCause`).
    pub fn is_namespace_terminating(&self) -> bool {
        self.status()
            .and_then(|s| s.details.as_ref())
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use kube::core::response::{StatusCause, StatusDetails};

    fn api_error(status: Status) -> ControllerError {
        ControllerError::api(
            "create",
            "Pod",
            "ns",
            "p",
            kube::Error::Api(Box::new(status)),
        )
    }

    #[test]
    fn classifies_api_rejections() {
        let nf = api_error(Status::failure("gone", "NotFound").with_code(404));
        assert!(nf.is_not_found());
        assert!(!nf.is_already_exists());
        let ae = api_error(Status::failure("dup", "AlreadyExists").with_code(409));
        assert!(ae.is_already_exists());
        let inv = api_error(Status::failure("bad", "Invalid").with_code(422));
        assert!(inv.is_invalid());
    }

    #[test]
    fn detects_namespace_terminating_cause() {
        let details = StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: vec![StatusCause {
                reason: "NamespaceTerminating".into(),
                message: String::new(),
                field: String::new(),
            }],
            retry_after_seconds: 0,
        };
        let err = api_error(
            Status::failure("ns going", "Forbidden")
                .with_code(403)
                .with_details(details),
        );
        assert!(err.is_namespace_terminating());
        assert!(!api_error(Status::failure("x", "Forbidden")).is_namespace_terminating());
    }

    #[test]
    fn aggregate_keeps_single_errors_and_counts_many() {
        assert!(ControllerError::aggregate(vec![]).is_none());
        let one = ControllerError::aggregate(vec![ControllerError::UnknownStrategy("x".into())]);
        assert!(matches!(one, Some(ControllerError::UnknownStrategy(_))));
        let many = ControllerError::aggregate(vec![
            ControllerError::UnknownStrategy("a".into()),
            ControllerError::UnknownStrategy("b".into()),
        ]);
        assert!(matches!(
            many,
            Some(ControllerError::Several { count: 2, .. })
        ));
    }
}
