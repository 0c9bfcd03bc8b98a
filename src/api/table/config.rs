//! Tables of configuration resources: config maps, secrets, service accounts and resource
//! quotas.
//!
//! DATA counts keys (config maps count `data` and `binaryData`); SECRETS counts the
//! service account's listed secrets, as upstream still does. Resource quotas list
//! `name: used/hard` per resource in `status.hard` order by name, `limits.*` resources in the
//! LIMIT column and all others in REQUEST; quantities show as stored, a missing used amount
//! as `0`.

use serde_json::Value;

use super::fields::{len_at, name, obj_at, opt_str, quantity};
use super::time::Instant;
use super::{AGE, NAME, Printer, age, col, docs};

/// `kubectl get configmaps`.
pub(super) const CONFIG_MAPS: Printer = Printer {
    columns: &[NAME, col("Data", "string", docs::CONFIG_MAP_DATA), AGE],
    cells: config_map_cells,
};

/// `kubectl get secrets`.
pub(super) const SECRETS: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", docs::SECRET_TYPE),
        col("Data", "string", docs::SECRET_DATA),
        AGE,
    ],
    cells: secret_cells,
};

/// `kubectl get serviceaccounts`.
pub(super) const SERVICE_ACCOUNTS: Printer = Printer {
    columns: &[
        NAME,
        col("Secrets", "string", docs::SERVICE_ACCOUNT_SECRETS),
        AGE,
    ],
    cells: service_account_cells,
};

/// `kubectl get resourcequotas`.
pub(super) const RESOURCE_QUOTAS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Request",
            "string",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        col(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
        AGE,
    ],
    cells: resource_quota_cells,
};

fn config_map_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let keys = len_at(obj, &["data"]) + len_at(obj, &["binaryData"]);
    vec![name(obj).into(), keys.into(), age(obj, now)]
}

fn secret_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let kind = opt_str(obj, &["type"]).unwrap_or("Opaque");
    vec![
        name(obj).into(),
        kind.into(),
        len_at(obj, &["data"]).into(),
        age(obj, now),
    ]
}

fn service_account_cells(obj: &Value, now: Instant) -> Vec<Value> {
    vec![
        name(obj).into(),
        len_at(obj, &["secrets"]).into(),
        age(obj, now),
    ]
}

fn resource_quota_cells(obj: &Value, now: Instant) -> Vec<Value> {
    let used = obj_at(obj, &["status", "used"]);
    let mut hard: Vec<(&String, &Value)> = obj_at(obj, &["status", "hard"])
        .into_iter()
        .flatten()
        .collect();
    hard.sort_by(|a, b| a.0.cmp(b.0));
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for (resource, hard_qty) in hard {
        let used_qty = quantity(used.and_then(|u| u.get(resource))).unwrap_or_else(zero);
        let entry = format!(
            "{resource}: {used_qty}/{}",
            quantity(Some(hard_qty)).unwrap_or_else(zero)
        );
        let is_limit = matches!(resource.split_once('.'), Some(("limits", _)));
        if is_limit {
            limits.push(entry)
        } else {
            requests.push(entry)
        }
    }
    vec![
        name(obj).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
        age(obj, now),
    ]
}

fn zero() -> String {
    "0".to_string()
}
