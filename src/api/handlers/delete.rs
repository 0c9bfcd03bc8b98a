//! DELETE and DELETECOLLECTION.
//!
//! Upstream's graceful deletion: an object with finalizers (or a
//! propagation policy that adds one) is only marked — deletionTimestamp is
//! set and it stays until the last finalizer is removed; a pod bound to a
//! node gets a grace period for its kubelet to stop it; anything else is
//! removed at once. Preconditions (uid, resourceVersion) guard against
//! deleting a newer incarnation.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::read::{Filter, collection_prefix};
use super::{Api, Call, Reply};
use crate::api::admission::{Attributes, Operation};
use crate::api::object::{self, metadata_mut};
use crate::api::registry::resources::ResourceInfo;
use crate::api::render;
use crate::api::status::{ApiError, ApiResult};
use crate::api::strategy;
use crate::store::{Store, StoreError};

/// Parsed DeleteOptions (body and query).
#[derive(Default)]
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

fn options(call: &Call<'_>) -> ApiResult<DeleteOptions> {
    let body: Value = if call.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(call.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let q = call.query;
    let propagation = body["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| q.get("propagationPolicy").map(str::to_string));
    let propagation = match (
        propagation,
        body["orphanDependents"]
            .as_bool()
            .or(q.flag("orphanDependents").ok().filter(|b| *b)),
    ) {
        (Some(p), _) => Some(p),
        (None, Some(true)) => Some("Orphan".to_string()),
        (None, _) => None,
    };
    if let Some(p) = &propagation
        && !["Orphan", "Background", "Foreground"].contains(&p.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy {p:?} is not supported: use Orphan, Background or Foreground"
        )));
    }
    let dry_run = q.dry_run()?
        || body["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        grace: body["gracePeriodSeconds"]
            .as_i64()
            .or(q.number("gracePeriodSeconds")?),
        propagation,
        uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run,
    })
}

/// What a delete does to an object.
enum Plan {
    /// Remove it from the store now.
    Remove,
    /// Mark it (deletionTimestamp, finalizers) and keep it.
    Mark(Value),
    /// Already marked and nothing changes.
    Nothing,
}

fn plan(info: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> Plan {
    let mut finalizers = object::finalizers(obj);
    match opts.propagation.as_deref() {
        Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
            finalizers.push("orphan".into())
        }
        Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
            finalizers.push("foregroundDeletion".into())
        }
        _ => {}
    }
    let is_pod = info.group.is_empty() && info.resource == "pods";
    let bound = obj["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    let grace = opts
        .grace
        .unwrap_or_else(|| {
            obj["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
        })
        .max(0);
    let graceful = is_pod && bound && !finished && grace > 0;
    let namespace_pending = info.resource == "namespaces"
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
    // An established CRD keeps its objects' cleanup to the CRD controller
    // (upstream's CRD REST Delete adds the finalizer on the first delete).
    let crd_cleanup = info.group == crate::api::custom::GROUP
        && info.resource == "customresourcedefinitions"
        && crate::api::custom::definition::condition_true(obj, "Established");
    if crd_cleanup
        && !finalizers
            .iter()
            .any(|f| f == crate::api::custom::CLEANUP_FINALIZER)
    {
        finalizers.push(crate::api::custom::CLEANUP_FINALIZER.into());
    }
    if finalizers.is_empty() && !graceful && !namespace_pending {
        return Plan::Remove;
    }
    let mut marked = obj.clone();
    let already = object::is_deleting(obj);
    let meta = metadata_mut(&mut marked);
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), json!(finalizers));
    }
    if graceful {
        // A second delete may shorten the grace period, never extend it.
        let current = meta
            .get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if current.is_none_or(|c| grace < c) {
            let at = SystemTime::now() + Duration::from_secs(grace as u64);
            meta.insert("deletionTimestamp".into(), json!(object::rfc3339(at)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
    } else if !already {
        meta.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if info.resource == "namespaces" {
        marked["status"]["phase"] = json!("Terminating");
    }
    if crd_cleanup && !already {
        let mut conditions = marked["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c["type"] != "Terminating");
        conditions.push(json!({
            "type": "Terminating", "status": "True",
            "lastTransitionTime": object::now_rfc3339(),
            "reason": "InstanceDeletionPending",
            "message": "CustomResourceDefinition marked for deletion; instance deletion pending",
        }));
        marked["status"]["conditions"] = Value::Array(conditions);
    }
    if already && strategy::same_content(obj, &marked) {
        Plan::Nothing
    } else {
        Plan::Mark(marked)
    }
}

impl<S: Store> Api<S> {
    pub(super) async fn delete(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let opts = options(call)?;
        let t = call.target;
        let info = t.info;
        let name = t.name.clone().unwrap_or_default();
        if info.namespaced && t.namespace.is_none() {
            return Err(ApiError::method_not_allowed(
                "DELETE",
                &format!("{} without a namespace", info.resource),
            ));
        }
        let key = info.key(t.namespace.as_deref(), &name);
        let (current, _) = self.current(info, &key, &name).await?;
        let warnings = self
            .admit_validating(
                &Attributes::of(call, Operation::Delete)?,
                Some(&current),
                None,
            )
            .await?;
        let obj = self.delete_one(info, &key, &name, &opts).await?;
        Ok(
            match render::object(info, &obj, call.rendering, "Metadata", 200) {
                Reply::Json { code, body, .. } => Reply::Json {
                    code,
                    body,
                    warnings,
                },
                other => other,
            },
        )
    }

    async fn delete_one(
        &self,
        info: &'static ResourceInfo,
        key: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        for _ in 0..8 {
            let (obj, rev) = self.current(info, key, name).await?;
            let obj = (*obj).clone();
            if let Some(uid) = &opts.uid {
                let actual = object::meta_str(&obj, "uid").unwrap_or("");
                if uid != actual {
                    return Err(ApiError::conflict(
                        info.group,
                        info.resource,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                        ),
                    ));
                }
            }
            if let Some(rv) = &opts.resource_version
                && *rv != rev.to_string()
            {
                return Err(ApiError::conflict(
                    info.group,
                    info.resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        rev
                    ),
                ));
            }
            match plan(info, &obj, opts) {
                Plan::Nothing => return Ok(obj),
                Plan::Mark(marked) if opts.dry_run => return Ok(marked),
                Plan::Remove if opts.dry_run => return Ok(obj),
                Plan::Mark(mut marked) => match self
                    .store
                    .update(key, strategy::to_stored(&marked), Some(rev))
                    .await
                {
                    Ok(new) => {
                        object::set_meta(
                            &mut marked,
                            "resourceVersion",
                            new.mod_revision.to_string(),
                        );
                        return Ok(marked);
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, info.group, info.resource, name)),
                },
                Plan::Remove => match self.store.delete(key, Some(rev)).await {
                    Ok(d) => {
                        self.after_delete(info, &obj);
                        let mut gone = obj;
                        object::set_meta(&mut gone, "resourceVersion", d.revision.to_string());
                        return Ok(gone);
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, info.group, info.resource, name)),
                },
            }
        }
        Err(ApiError::stale(info.group, info.resource, name))
    }

    /// Deletes every object of a resource, in all namespaces, as a plain
    /// DELETE of each would (finalizers are honoured). Returns how many are
    /// still there (being finalized). The CRD cleanup finalizer uses it.
    pub(crate) async fn delete_everything(&self, info: &'static ResourceInfo) -> ApiResult<usize> {
        self.cache.wait_for(self.store.current_revision()).await?;
        let (items, _) = self.cache.list(&info.key_prefix(), |_| true);
        let opts = DeleteOptions::default();
        let mut remaining = 0;
        for obj in items {
            let obj = obj.value();
            let name = object::name(&obj).unwrap_or_default().to_string();
            let key = info.key(object::namespace(&obj), &name);
            match self.delete_one(info, &key, &name, &opts).await {
                Ok(gone) if object::is_deleting(&gone) => remaining += 1,
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(remaining)
    }

    /// Removes one finalizer from an object; when it was the last one of an
    /// object being deleted, the object goes.
    pub(crate) async fn drop_finalizer(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        finalizer: &str,
    ) -> ApiResult<()> {
        let key = info.key(namespace, name);
        for _ in 0..8 {
            let (obj, rev) = match self.current(info, &key, name).await {
                Ok(c) => c,
                Err(e) if e.code == 404 => return Ok(()),
                Err(e) => return Err(e),
            };
            let mut next = (*obj).clone();
            let Some(list) = next["metadata"]["finalizers"].as_array_mut() else {
                return Ok(());
            };
            let before = list.len();
            list.retain(|f| f != finalizer);
            if list.len() == before {
                return Ok(());
            }
            let result = if list.is_empty() && object::is_deleting(&next) {
                self.store.delete(&key, Some(rev)).await.map(|_| ())
            } else {
                self.store
                    .update(&key, strategy::to_stored(&next), Some(rev))
                    .await
                    .map(|_| ())
            };
            match result {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, info.group, info.resource, name)),
            }
        }
        Err(ApiError::stale(info.group, info.resource, name))
    }

    pub(super) async fn delete_collection(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let opts = options(call)?;
        let filter = Filter::from_call(call)?;
        let info = call.target.info;
        self.cache.wait_for(self.store.current_revision()).await?;
        let (items, revision) = self
            .cache
            .list(&collection_prefix(call), |o| filter.matches(o));
        let mut deleted = Vec::with_capacity(items.len());
        for obj in items {
            let obj = obj.value();
            let name = object::name(&obj).unwrap_or_default().to_string();
            let key = info.key(object::namespace(&obj), &name);
            match self.delete_one(info, &key, &name, &opts).await {
                Ok(gone) => deleted.push(gone),
                // Gone in the meantime: that is what was asked.
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Reply::ok(json!({
            "kind": format!("{}List", info.kind),
            "apiVersion": info.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": deleted,
        })))
    }
}
