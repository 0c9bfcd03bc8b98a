//! The Kubernetes version kelp speaks, for `/version` and for what nodes
//! report as their kubelet version.

/// The Kubernetes minor version kelp implements (1.x).
pub const KUBERNETES_MINOR: u32 = 37;
