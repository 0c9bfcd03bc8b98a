//! The RBAC escalation check on roles and bindings: a user may grant only
//! permissions they hold themselves (or hold `escalate`/`bind`).

use serde_json::Value;

use super::Attributes;
use crate::api::authz::escalation;
use crate::api::handlers::Api;
use crate::api::status::ApiResult;
use crate::store::Store;

impl<S: Store> Api<S> {
    /// Refuses a role or binding write that would grant more than its
    /// author holds.
    pub(super) async fn admit_rbac_escalation(
        &self,
        attrs: &Attributes<'_>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> ApiResult<()> {
        if attrs.info.group != "rbac.authorization.k8s.io" {
            return Ok(());
        }
        let Some(obj) = new else {
            return Ok(());
        };
        if only_metadata_changed(old, obj) {
            return Ok(());
        }
        let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        escalation::check_write(
            &self.authz,
            attrs.user,
            attrs.info.resource,
            namespace,
            obj,
            self.store.current_revision(),
        )
        .await
    }
}

/// Whether an update leaves what RBAC grants unchanged (upstream skips the
/// escalation check when only metadata such as owner references or
/// finalizers changes, so the garbage collector can edit any role).
fn only_metadata_changed(old: Option<&Value>, new: &Value) -> bool {
    let Some(old) = old else {
        return false;
    };
    ["rules", "aggregationRule", "roleRef", "subjects"]
        .iter()
        .all(|f| old.get(*f) == new.get(*f))
}
