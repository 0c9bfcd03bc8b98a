//! The CRD controllers upstream runs inside the apiserver, in one loop:
//! naming (NamesAccepted, acceptedNames), establishing (Established),
//! stored versions, and the cleanup finalizer that deletes a CRD's objects
//! before the CRD goes.
//!
//! It follows the CRD prefix of the watch cache and, on every change,
//! recomputes the served set ([`CustomResources::rebuild`]) and then fixes
//! what the CRDs' status says. Status writes go through the store with a
//! compare-and-swap on the revision read, as any client's would.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::CLEANUP_FINALIZER;
use super::definition::condition_true;
use crate::api::handlers::Api;
use crate::api::object;
use crate::api::registry::resources::{self, ResourceInfo};
use crate::store::Store;

/// The CRD resource.
pub fn crd_info() -> &'static ResourceInfo {
    resources::find(super::GROUP, "v1", "customresourcedefinitions")
        .expect("customresourcedefinitions is a built-in resource")
}

/// The stored CRDs, from the watch cache.
pub fn stored_crds<S: Store>(api: &Api<S>) -> Vec<Value> {
    let (items, _) = api.cache.list(&crd_info().key_prefix(), |_| true);
    items.iter().map(|o| o.value()).collect()
}

/// Runs until cancelled.
pub async fn run<S: Store + Clone + 'static>(api: Arc<Api<S>>, cancel: CancellationToken) {
    let prefix = crd_info().key_prefix();
    loop {
        let mut sub = match api.cache.subscribe(&prefix, None) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "crd controller cannot watch; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut pending_cleanup = reconcile(&api).await;
        loop {
            // While a CRD waits for its objects to go, look again each
            // second: the objects' finalizers are other controllers' work.
            let tick = if pending_cleanup {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
                change = sub.live.recv() => match change {
                    Ok(c) if !c.key.starts_with(&sub.prefix) => continue,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(_) => return,
                },
            }
            pending_cleanup = reconcile(&api).await;
        }
    }
}

/// One pass over every CRD. Returns whether a deleted CRD still waits for
/// its objects.
async fn reconcile<S: Store>(api: &Api<S>) -> bool {
    let crds = stored_crds(api);
    let span = tracing::debug_span!("crd_reconcile", crds = crds.len());
    reconcile_all(api, crds).instrument(span).await
}

async fn reconcile_all<S: Store>(api: &Api<S>, crds: Vec<Value>) -> bool {
    api.custom.rebuild(&crds);
    let mut pending = false;
    for crd in &crds {
        let name = object::name(crd).unwrap_or_default().to_string();
        if object::is_deleting(crd) {
            if object::finalizers(crd)
                .iter()
                .any(|f| f == CLEANUP_FINALIZER)
            {
                match cleanup(api, crd).await {
                    Ok(true) => {}
                    Ok(false) => pending = true,
                    Err(e) => {
                        tracing::warn!(crd = %name, error = %e, "crd cleanup");
                        pending = true;
                    }
                }
            }
            continue;
        }
        let desired = desired_status(crd, &crds);
        if desired != crd["status"] {
            let result = api
                .guaranteed_update(crd_info(), None, &name, |current| {
                    if object::is_deleting(current) {
                        return Ok(None);
                    }
                    let status = desired_status(current, &crds);
                    if status == current["status"] {
                        return Ok(None);
                    }
                    let mut next = current.clone();
                    next["status"] = status;
                    Ok(Some(next))
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(crd = %name, error = %e, "crd status");
            }
        }
    }
    pending
}

/// Status per upstream's naming and establishing controllers.
fn desired_status(crd: &Value, all: &[Value]) -> Value {
    let mut status = crd["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let names = &crd["spec"]["names"];
    let conflict = name_conflict(crd, all);
    let mut accepted = names.clone();
    if accepted["singular"].as_str().is_none_or(str::is_empty) {
        accepted["singular"] = json!(names["kind"].as_str().unwrap_or("").to_ascii_lowercase());
    }
    if accepted["listKind"].as_str().is_none_or(str::is_empty) {
        accepted["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or("")));
    }
    let now = object::now_rfc3339();
    let mut conditions: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    match &conflict {
        None => {
            status["acceptedNames"] = accepted;
            set_condition(
                &mut conditions,
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
                &now,
            );
            if !condition_true(crd, "Established") {
                set_condition(
                    &mut conditions,
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                    &now,
                );
            }
        }
        Some((reason, message)) => {
            if status["acceptedNames"].is_null() {
                status["acceptedNames"] = json!({"plural": "", "kind": ""});
            }
            set_condition(
                &mut conditions,
                "NamesAccepted",
                "False",
                reason,
                message,
                &now,
            );
            if !condition_true(crd, "Established") {
                set_condition(
                    &mut conditions,
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted",
                    &now,
                );
            }
        }
    }
    status["conditions"] = Value::Array(conditions);
    let mut stored: Vec<Value> = status["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(storage) = crd["spec"]["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["storage"] == true))
        .and_then(|v| v["name"].as_str())
        && !stored.iter().any(|s| s == storage)
    {
        stored.push(json!(storage));
    }
    status["storedVersions"] = Value::Array(stored);
    status
}

/// Sets a condition, keeping its transition time when the status holds.
fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let fresh = json!({
        "type": kind, "status": status, "lastTransitionTime": now,
        "reason": reason, "message": message,
    });
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(c) if c["status"] == status => {
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        Some(c) => *c = fresh,
        None => conditions.push(fresh),
    }
}

/// Upstream's NamingConditionController: a name already accepted for
/// another CRD of the same group (or a built-in resource) is a conflict.
fn name_conflict(crd: &Value, all: &[Value]) -> Option<(String, String)> {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let me = object::name(crd).unwrap_or_default();
    let names = &crd["spec"]["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let list_kind = names["listKind"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("{kind}List"), str::to_string);
    let singular = names["singular"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| kind.to_ascii_lowercase(), str::to_string);
    let short: Vec<&str> = names["shortNames"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if resources::RESOURCES
        .iter()
        .any(|r| r.group == group && r.resource == plural)
    {
        return Some((
            "PluralConflict".into(),
            format!("{plural:?} is already in use"),
        ));
    }
    for other in all {
        if object::name(other) == Some(me)
            || other["spec"]["group"].as_str() != Some(group)
            || !condition_true(other, "NamesAccepted")
        {
            continue;
        }
        let taken = &other["status"]["acceptedNames"];
        let taken_str = |k: &str| taken[k].as_str().unwrap_or_default().to_string();
        let taken_short: Vec<&str> = taken["shortNames"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if taken_str("plural") == plural || taken_str("singular") == plural {
            return Some((
                "PluralConflict".into(),
                format!("{plural:?} is already in use"),
            ));
        }
        if taken_str("plural") == singular || taken_str("singular") == singular {
            return Some((
                "SingularConflict".into(),
                format!("{singular:?} is already in use"),
            ));
        }
        if let Some(s) = short.iter().find(|s| taken_short.contains(s)) {
            return Some((
                "ShortNamesConflict".into(),
                format!("{:?} is already in use", s),
            ));
        }
        if taken_str("kind") == kind {
            return Some(("KindConflict".into(), format!("{kind:?} is already in use")));
        }
        if taken_str("listKind") == list_kind {
            return Some((
                "ListKindConflict".into(),
                format!("{list_kind:?} is already in use"),
            ));
        }
    }
    None
}

/// Deletes the objects of a deleted CRD; once none are left, drops the
/// finalizer (and with it the CRD). Returns whether the CRD is done.
async fn cleanup<S: Store>(api: &Api<S>, crd: &Value) -> Result<bool, String> {
    let name = object::name(crd).unwrap_or_default().to_string();
    let storage = api.custom.storage_of(crd);
    let remaining = match storage {
        Some(info) => api
            .delete_everything(info)
            .await
            .map_err(|e| e.message.clone())?,
        None => 0,
    };
    let message = "CustomResource deletion is in progress".to_string();
    if remaining == 0 {
        api.drop_finalizer(crd_info(), None, &name, CLEANUP_FINALIZER)
            .await
            .map_err(|e| e.message.clone())?;
        return Ok(true);
    }
    api.guaranteed_update(crd_info(), None, &name, |current| {
        let mut next = current.clone();
        let mut conditions: Vec<Value> = next["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        set_condition(
            &mut conditions,
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            &message,
            &object::now_rfc3339(),
        );
        next["status"]["conditions"] = Value::Array(conditions);
        Ok((next != *current).then_some(next))
    })
    .await
    .map_err(|e| e.message.clone())?;
    Ok(false)
}
