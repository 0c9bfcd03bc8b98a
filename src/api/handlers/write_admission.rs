//! Checks every write passes after validation and before the store: the
//! RBAC escalation rules for roles and bindings, and NodeRestriction.

use serde_json::Value;

use super::node_restriction::Operation;
use super::{Api, Call};
use crate::api::authz::escalation;
use crate::api::status::ApiResult;
use crate::store::Store;

impl<S: Store> Api<S> {
    /// Admits `new` (None for deletes) replacing `old` (None for creates).
    pub(super) async fn admit_write(
        &self,
        call: &Call<'_>,
        op: Operation,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> ApiResult<()> {
        let info = call.target.info;
        if info.group == "rbac.authorization.k8s.io"
            && let Some(obj) = new
            && !only_metadata_changed(old, obj)
        {
            let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
            escalation::check_write(
                &self.authz,
                call.user,
                info.resource,
                namespace,
                obj,
                self.store.current_revision(),
            )
            .await?;
        }
        self.admit_node_write(
            call.user,
            (info.group, info.resource),
            call.target.subresource.as_deref(),
            op,
            old,
            new,
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
