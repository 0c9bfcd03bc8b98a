//! Who may use the kubelet API, as upstream's `--authorization-mode=Webhook`.
//!
//! Every caller presents a client certificate from the cluster CA (the TLS
//! layer insists). Each request is then mapped to attributes on the Node
//! object (upstream's `GetRequestAttributes`: verb from the method,
//! resource `nodes`, the node's name, and a subresource from the path:
//! `log` for `/logs`, `stats`, `metrics`, and `proxy` for exec, attach,
//! port-forward and container logs) and put to a [`RequestAuthorizer`],
//! which in a real kubelet asks the apiserver with a SubjectAccessReview.

use std::future::Future;
use std::pin::Pin;

/// A caller, from its client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// User name (the certificate's CN).
    pub name: String,
    /// Groups (its O fields).
    pub groups: Vec<String>,
}

/// What a request asks of the node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeRequest {
    /// `get`, `create`, …
    pub verb: &'static str,
    /// Subresource of `nodes/<name>`.
    pub subresource: &'static str,
}

/// The result of an authorization check.
pub type Verdict = Pin<Box<dyn Future<Output = Result<bool, String>> + Send>>;

/// Decides whether a caller may make a request.
pub trait RequestAuthorizer: Send + Sync {
    /// `Ok(true)` when allowed; `Err` when no decision could be had.
    fn allowed(&self, caller: &Caller, request: &NodeRequest) -> Verdict;
}

/// The node attributes of a request (upstream `GetRequestAttributes`).
pub fn node_request(method: &http::Method, path: &str) -> NodeRequest {
    let verb = match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    };
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let subresource = match first {
        "stats" => "stats",
        "metrics" => "metrics",
        "logs" => "log",
        "spec" => "spec",
        "checkpoint" => "checkpoint",
        _ => "proxy",
    };
    NodeRequest { verb, subresource }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_node_subresources() {
        let r = |m: http::Method, p: &str| {
            let n = node_request(&m, p);
            (n.verb, n.subresource)
        };
        assert_eq!(r(http::Method::POST, "/exec/ns/p/c"), ("create", "proxy"));
        assert_eq!(
            r(http::Method::GET, "/containerLogs/ns/p/c"),
            ("get", "proxy")
        );
        assert_eq!(r(http::Method::GET, "/logs/syslog"), ("get", "log"));
        assert_eq!(r(http::Method::GET, "/stats/summary"), ("get", "stats"));
    }
}
