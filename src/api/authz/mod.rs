//! Authorization: may this user do this?
//!
//! The chain is kube-apiserver's `--authorization-mode=Node,RBAC` behind
//! its privileged-group short cut: `system:masters` may do anything, the
//! [`node`] authorizer decides for kubelet credentials, and [`rbac`]
//! decides the rest from Roles, ClusterRoles and their bindings in the
//! watch cache. The first authorizer with an opinion wins; no opinion from
//! any of them is a 403 with upstream's message. `AlwaysAllow` exists for
//! measuring what authorization costs, as upstream's mode of that name.
//!
//! [`escalation`] holds the RBAC write checks (`escalate`/`bind`), and
//! [`impersonation`] the `Impersonate-*` headers, since both ask the chain.

mod attributes;
pub mod escalation;
pub mod impersonation;
pub mod node;
pub mod rbac;
pub mod rules;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use attributes::{
    Attributes, ResourceAttributes, Target, connect_verb, forbidden_message, from_request,
    non_resource_verb, resource_verb,
};
pub use rbac::{Decision, Rbac};
pub use rules::PolicyRule;

use super::status::ApiError;
use super::watch_cache::WatchCache;
use crate::store::Revision;

/// The group whose members pass every check (upstream
/// `user.SystemPrivilegedGroup`).
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// Which authorizers run (`--authorization-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `Node,RBAC`: the default.
    #[default]
    NodeRbac,
    /// `AlwaysAllow`: every authenticated request passes (benchmarks only).
    AlwaysAllow,
}

/// The authorizer chain. See the module docs.
pub struct Authorizer {
    mode: Mode,
    node: node::NodeAuthorizer,
    rbac: Arc<Rbac>,
}

impl Authorizer {
    /// A chain over the watch cache; `node_rules` are the `system:node`
    /// ClusterRole's rules.
    pub fn new(cache: Arc<WatchCache>, mode: Mode, node_rules: Vec<PolicyRule>) -> Arc<Self> {
        Arc::new(Authorizer {
            mode,
            node: node::NodeAuthorizer::new(cache.clone(), node_rules),
            rbac: Rbac::new(cache),
        })
    }

    /// Starts following RBAC changes in the watch cache.
    pub fn spawn(self: &Arc<Self>, cancel: CancellationToken) {
        tokio::spawn(self.rbac.clone().follow(cancel));
    }

    /// The RBAC part, for rule listings and escalation checks.
    pub fn rbac(&self) -> &Rbac {
        &self.rbac
    }

    /// Decides with what the caches hold now.
    pub fn decide(&self, attrs: &Attributes<'_>) -> Decision {
        if self.mode == Mode::AlwaysAllow || attrs.user.groups.iter().any(|g| g == PRIVILEGED_GROUP)
        {
            return Decision::Allow(String::new());
        }
        match self.node.authorize(attrs) {
            Decision::NoOpinion(node_reason) => match self.rbac.authorize(attrs) {
                Decision::NoOpinion(reason) if reason.is_empty() => {
                    Decision::NoOpinion(node_reason)
                }
                other => other,
            },
            decided => decided,
        }
    }

    /// Decides; before refusing, waits until the RBAC view has caught up
    /// with `store_revision`, so that a client's own grant is seen by its
    /// next request.
    pub async fn authorize(&self, attrs: &Attributes<'_>, store_revision: Revision) -> Decision {
        match self.decide(attrs) {
            Decision::Allow(reason) => Decision::Allow(reason),
            _ => {
                self.rbac.catch_up(store_revision).await;
                self.decide(attrs)
            }
        }
    }

    /// Checks a request, answering upstream's 403 when it is not allowed.
    pub async fn check(
        &self,
        attrs: &Attributes<'_>,
        store_revision: Revision,
    ) -> Result<(), ApiError> {
        match self.authorize(attrs, store_revision).await {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => Err(forbidden(attrs, &reason)),
        }
    }
}

/// The 403 for a refused request, with the reason appended as upstream.
pub fn forbidden(attrs: &Attributes<'_>, reason: &str) -> ApiError {
    let mut message = forbidden_message(attrs);
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    let e = ApiError::forbidden(message);
    match attrs.target {
        Target::Resource(r) => e.about(&r.group, &r.resource, &r.name),
        Target::NonResource(_) => e,
    }
}
