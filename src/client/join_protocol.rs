//! What `kelp agent` and a server say to each other when a node joins.
//!
//! The agent first fetches [`CACERTS_PATH`] without trusting anything and
//! checks the PEM against the hash in its token (k3s's CA pinning); from
//! then on it trusts only that CA. It then posts a [`JoinRequest`] to
//! [`JOIN_PATH`], authenticated with HTTP basic auth `node:<secret>`, and
//! gets its node credentials and the cluster's settings back. Both ends
//! use these types, so the protocol cannot drift between them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where a server serves its CA bundle, to anyone.
pub const CACERTS_PATH: &str = "/cacerts";
/// Where a node posts its [`JoinRequest`].
pub const JOIN_PATH: &str = "/v1-kelp/join";
/// The basic-auth user name of a joining agent (k3s's "node").
pub const AGENT_USER: &str = "node";
/// Largest join request a server reads.
pub const MAX_REQUEST: usize = 64 << 10;

/// A node asking for its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The Node's name.
    pub node_name: String,
    /// The node's InternalIP (the kubelet serving certificate carries it).
    pub node_ip: IpAddr,
    /// Further names for the kubelet serving certificate (the hostname).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// The node's password: a name joins again only with the password it
    /// first joined with, so another machine cannot take over its identity.
    pub node_password: String,
}

/// What a server hands a node that may join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    /// Kubelet client certificate (PEM): CN `system:node:<name>`, O `system:nodes`.
    pub client_cert: String,
    /// Its key (PEM).
    pub client_key: String,
    /// Kubelet serving certificate (PEM) for the node IP and names.
    pub serving_cert: String,
    /// Its key (PEM).
    pub serving_key: String,
    /// The cluster's settings every node follows.
    pub cluster: ClusterSettings,
}

/// Cluster-wide settings a node takes from its server rather than from
/// its own flags (as k3s agents take them from `/v1-k3s/config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSettings {
    /// `--cluster-cidr`.
    pub cluster_cidr: String,
    /// `--service-cidr`.
    pub service_cidr: String,
    /// `--cluster-dns`: pods' nameserver.
    pub cluster_dns: IpAddr,
    /// Whether nodes answer it themselves (`--disable coredns` off).
    pub builtin_dns: bool,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// The ClusterIP of the `kubernetes` Service.
    pub kubernetes_service_ip: IpAddr,
    /// `--flannel-backend`: `vxlan`, `host-gw` or `none`.
    pub flannel_backend: String,
    /// Whether nodes run the service proxy (`--disable-kube-proxy` off).
    pub kube_proxy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_messages_use_camel_case_on_the_wire() {
        let request = JoinRequest {
            node_name: "n1".into(),
            node_ip: "10.0.0.2".parse().unwrap(),
            hostnames: vec!["h".into()],
            node_password: "p".into(),
        };
        let wire = serde_json::to_value(&request).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({"nodeName": "n1", "nodeIp": "10.0.0.2", "hostnames": ["h"], "nodePassword": "p"})
        );
        assert_eq!(
            serde_json::from_value::<JoinRequest>(wire).unwrap(),
            request
        );
    }
}
