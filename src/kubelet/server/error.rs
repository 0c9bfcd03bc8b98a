//! Errors of the kubelet streaming server and their metav1.Status forms.
//!
//! Failures before a protocol upgrade are answered as a metav1.Status JSON body with the
//! matching HTTP code, like upstream kubelet; after an upgrade they travel as a Status
//! on the exec error channel or as text on a port-forward error stream.

use http::StatusCode;
use serde_json::{Value, json};

/// A failure reported by the [`NodeBackend`](super::NodeBackend).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The pod or container does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be served as asked (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The node cannot serve it right now (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl BackendError {
    /// The HTTP status code this error maps to.
    pub fn status_code(&self) -> StatusCode {
        match self {
            BackendError::NotFound(_) => StatusCode::NOT_FOUND,
            BackendError::BadRequest(_) => StatusCode::BAD_REQUEST,
            BackendError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            BackendError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The metav1.Status describing this error.
    pub fn to_status(&self) -> Value {
        failure_status(self.status_code(), &self.to_string())
    }
}

/// Why [`serve`](super::serve) stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Accepting connections failed.
    #[error("accepting connections: {0}")]
    Accept(#[from] std::io::Error),
}

/// The metav1.Status reason upstream uses for an HTTP code.
fn reason_for(code: StatusCode) -> &'static str {
    match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// A Failure metav1.Status with `code`'s reason and `message`.
pub fn failure_status(code: StatusCode, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason_for(code),
        "code": code.as_u16(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_map_to_upstream_codes_and_reasons() {
        let status = BackendError::NotFound("pod \"p\" not found".into()).to_status();
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["message"], "pod \"p\" not found");
        assert_eq!(
            BackendError::Unavailable("x".into()).to_status()["code"],
            503
        );
        assert_eq!(
            BackendError::BadRequest("x".into()).to_status()["reason"],
            "BadRequest"
        );
        assert_eq!(
            BackendError::Internal("x".into()).to_status()["reason"],
            "InternalError"
        );
    }
}
