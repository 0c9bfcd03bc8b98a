//! Tables of RBAC bindings: role bindings and cluster role bindings.
//!
//! ROLE shows `Kind/name` of the role reference; the wide USERS, GROUPS and SERVICEACCOUNTS
//! cells list subjects by kind (service accounts as `namespace/name`), joined with `", "`.
//! Roles and cluster roles themselves have no printer upstream and use the default table.

use serde_json::Value;

use super::fields::{arr_at, name, str_at};
use super::time::Instant;
use super::{AGE, NAME, Printer, age, col, docs, wide};

/// `kubectl get rolebindings`.
pub(super) const ROLE_BINDINGS: Printer = Printer {
    columns: &[
        NAME,
        col("Role", "string", docs::ROLE_BINDING_ROLE_REF),
        AGE,
        wide("Users", "Users in the roleBinding"),
        wide("Groups", "Groups in the roleBinding"),
        wide("ServiceAccounts", "ServiceAccounts in the roleBinding"),
    ],
    cells: binding_cells,
};

/// `kubectl get clusterrolebindings`.
pub(super) const CLUSTER_ROLE_BINDINGS: Printer = Printer {
    columns: &[
        NAME,
        col("Role", "string", docs::CLUSTER_ROLE_BINDING_ROLE_REF),
        AGE,
        wide("Users", "Users in the clusterRoleBinding"),
        wide("Groups", "Groups in the clusterRoleBinding"),
        wide(
            "ServiceAccounts",
            "ServiceAccounts in the clusterRoleBinding",
        ),
    ],
    cells: binding_cells,
};

fn binding_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(obj, &["roleRef", "kind"]),
        str_at(obj, &["roleRef", "name"])
    );
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in arr_at(obj, &["subjects"]) {
        let subject_name = str_at(subject, &["name"]);
        match str_at(subject, &["kind"]) {
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            "ServiceAccount" => {
                accounts.push(format!(
                    "{}/{subject_name}",
                    str_at(subject, &["namespace"])
                ));
            }
            _ => {}
        }
    }
    vec![
        name(obj).into(),
        role.into(),
        age(obj, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        accounts.join(", ").into(),
    ]
}
