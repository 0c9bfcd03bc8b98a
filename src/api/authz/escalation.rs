//! RBAC privilege-escalation prevention.
//!
//! Upstream's RBAC storage refuses a Role or ClusterRole whose rules the
//! writer does not hold, unless the writer may `escalate` roles, and a
//! binding to a role whose rules the writer does not hold, unless the
//! writer may `bind` that role. Holding means: the writer's own RBAC rules
//! in the object's namespace (cluster-wide ones included) cover every
//! verb/resource/name of the role (`validation.Covers`).

use serde_json::Value;

use super::rbac::RoleRef;
use super::rules::{PolicyRule, uncovered};
use super::{Attributes, Authorizer, PRIVILEGED_GROUP, ResourceAttributes, Target};
use crate::api::authn::User;
use crate::api::status::ApiError;
use crate::store::Revision;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Checks a Role/ClusterRole/RoleBinding/ClusterRoleBinding about to be
/// written by `user`; other resources pass.
pub async fn check_write(
    authorizer: &Authorizer,
    user: &User,
    resource: &str,
    namespace: &str,
    obj: &Value,
    store_revision: Revision,
) -> Result<(), ApiError> {
    if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match resource {
        "roles" | "clusterroles" => {
            if allowed(
                authorizer,
                user,
                "escalate",
                resource,
                namespace,
                "",
                store_revision,
            )
            .await
            {
                return Ok(());
            }
            let rules: Vec<PolicyRule> =
                serde_json::from_value(obj["rules"].clone()).unwrap_or_default();
            confirm_no_escalation(authorizer, user, namespace, &rules)
                .map_err(|m| refuse(resource, name, m))
        }
        "rolebindings" | "clusterrolebindings" => {
            let role: RoleRef = serde_json::from_value(obj["roleRef"].clone())
                .map_err(|e| ApiError::bad_request(format!("roleRef: {e}")))?;
            let role_resource = if role.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if allowed(
                authorizer,
                user,
                "bind",
                role_resource,
                namespace,
                &role.name,
                store_revision,
            )
            .await
            {
                return Ok(());
            }
            let rules = authorizer
                .rbac()
                .role_rules(&role, namespace)
                .map_err(|m| refuse(resource, name, m))?;
            confirm_no_escalation(authorizer, user, namespace, &rules)
                .map_err(|m| refuse(resource, name, m))
        }
        _ => Ok(()),
    }
}

async fn allowed(
    authorizer: &Authorizer,
    user: &User,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
    store_revision: Revision,
) -> bool {
    let target = Target::Resource(ResourceAttributes {
        group: RBAC_GROUP.into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    });
    let attrs = Attributes {
        user,
        verb,
        target: &target,
    };
    matches!(
        authorizer.authorize(&attrs, store_revision).await,
        super::Decision::Allow(_)
    )
}

/// Upstream's `ConfirmNoEscalation`, with its message.
fn confirm_no_escalation(
    authorizer: &Authorizer,
    user: &User,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (owned, errors) = authorizer.rbac().rules_for(user, namespace);
    let missing = uncovered(&owned, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = missing.iter().map(PolicyRule::compact_string).collect();
    lines.sort();
    lines.dedup();
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let mut message = format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        lines.join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(message)
}

fn refuse(resource: &str, name: &str, why: String) -> ApiError {
    ApiError::forbidden(format!(
        "{resource}.{RBAC_GROUP} {name:?} is forbidden: {why}"
    ))
    .about(RBAC_GROUP, resource, name)
}
