//! POST (create), PUT (update) and PATCH.
//!
//! Updates and patches are optimistic: read the current object, compute the
//! new one, write it conditioned on the revision read. A conflict is a 409
//! when the client named a resourceVersion, and a silent retry otherwise
//! (upstream's GuaranteedUpdate). An update that changes nothing is not
//! written, so `kubectl apply` can report "unchanged".

use std::sync::Arc;

use serde_json::Value;

use super::{Api, Call, Reply};
use crate::api::admission::{Attributes, Operation};
use crate::api::object::{self, metadata_mut};
use crate::api::patch::{self, PatchError, PatchType, TypeRef};
use crate::api::registry::resources::ResourceInfo;
use crate::api::render;
use crate::api::status::{ApiError, ApiResult, Cause};
use crate::api::strategy;
use crate::api::watch_cache;
use crate::store::{Revision, Store, StoreError};

const MAX_RETRIES: usize = 8;

/// The field manager of a call: `?fieldManager=`, else the User-Agent's
/// program name (upstream's default).
pub fn field_manager(call: &Call<'_>) -> String {
    if let Some(m) = call.query.get("fieldManager") {
        return m.to_string();
    }
    call.user_agent
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

pub(super) fn patch_error(e: PatchError) -> ApiError {
    match e {
        PatchError::BadRequest(m) => ApiError::bad_request(m),
        PatchError::Unprocessable(m) => ApiError::new(422, "Invalid", m),
        PatchError::UnsupportedMediaType(m) => ApiError::unsupported_media_type(m),
        PatchError::RequestEntityTooLarge(m) => ApiError::too_large(m),
        PatchError::Internal(m) => ApiError::internal(m),
        PatchError::Conflict { message, causes } => {
            let causes = causes
                .into_iter()
                .map(|(field, message)| Cause {
                    reason: "FieldManagerConflict".into(),
                    field,
                    message,
                })
                .collect();
            ApiError::new(409, "Conflict", message).with_causes(causes)
        }
    }
}

/// The kind a (sub)resource write carries.
fn body_kind(info: &ResourceInfo) -> &'static str {
    info.kind
}

impl<S: Store> Api<S> {
    fn require_namespace(&self, call: &Call<'_>) -> ApiResult<Option<String>> {
        let info = call.target.info;
        match (&call.target.namespace, info.namespaced) {
            (Some(ns), true) => Ok(Some(ns.clone())),
            (None, true) => Err(ApiError::method_not_allowed(
                call.method,
                &format!("{} without a namespace", info.resource),
            )),
            _ => Ok(None),
        }
    }

    /// 404 if the namespace is missing, 403 if it is terminating.
    pub(super) async fn check_namespace(&self, ns: &str) -> ApiResult<()> {
        let key = crate::api::registry::resources::find("", "v1", "namespaces")
            .map(|i| i.key(None, ns))
            .unwrap_or_default();
        let (kv, _) = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let Some(kv) = kv else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        let terminating =
            watch_cache::decode(&kv, kv.mod_revision).is_some_and(|n| object::is_deleting(&n));
        if terminating {
            let mut e = ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ));
            e.reason = "Forbidden";
            return Err(e);
        }
        Ok(())
    }

    pub(super) async fn create(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let info = call.target.info;
        if let Some(custom) = info.custom {
            let crd = crate::api::custom::controller::crd_info().key(None, &custom.crd);
            if self
                .cache
                .get(&crd)
                .is_some_and(|c| object::is_deleting(&c.value()))
            {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "create not allowed while custom resource definition is terminating",
                ));
            }
        }
        let namespace = self.require_namespace(call)?;
        let mut obj = strategy::decode_body(call.body, call.content_type)?;
        strategy::check_kind(info, body_kind(info), &mut obj)?;
        match (&namespace, object::namespace(&obj).map(str::to_string)) {
            (Some(ns), Some(body_ns)) if *ns != body_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(ns), _) => object::set_meta(&mut obj, "namespace", ns.clone()),
            (None, _) => {
                metadata_mut(&mut obj).remove("namespace");
            }
        }
        let generate = object::name(&obj).is_none().then(|| {
            object::meta_str(&obj, "generateName")
                .unwrap_or("")
                .to_string()
        });
        if generate.as_deref() == Some("") {
            let cause = Cause {
                reason: "FieldValueRequired".into(),
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            };
            return Err(ApiError::invalid(info.group, info.kind, "", vec![cause]));
        }
        let mut warnings =
            strategy::check_fields(info, info.kind, &mut obj, call.query.field_validation()?)?;
        let dry_run = call.query.dry_run()?;
        if let Some(ns) = &namespace {
            self.check_namespace(ns).await?;
        }
        let attrs = Attributes::of(call, Operation::Create)?;
        strategy::apply_defaults(info, &mut obj);
        warnings.extend(self.admit_mutating(&attrs, &mut obj, None).await?);
        let manager = field_manager(call);
        for attempt in 0..MAX_RETRIES {
            let mut candidate = obj.clone();
            if let Some(prefix) = &generate {
                object::set_meta(
                    &mut candidate,
                    "name",
                    format!("{prefix}{}", object::random_suffix(5)),
                );
            }
            let name = object::name(&candidate).unwrap_or_default().to_string();
            strategy::prepare_create(info, &mut candidate);
            strategy::default_and_validate(info, info.kind, None, &mut candidate)?;
            if attempt == 0 {
                // Charged once: a retry only draws a new generated name.
                warnings.extend(
                    self.admit_validating(&attrs, None, Some(&candidate))
                        .await?,
                );
            }
            let held = self.reserve_service(info, None, &mut candidate)?;
            patch::update_managed_fields_for_subresource(
                None,
                &mut candidate,
                &patch::Writer {
                    manager: &manager,
                    operation: "Update",
                    api_version: &info.api_version(),
                    subresource: "",
                    schema: info.schema(),
                },
                &object::now_rfc3339(),
            );
            if dry_run {
                self.release_reserved(&held);
                return Ok(Reply::Json {
                    code: 201,
                    body: candidate,
                    warnings,
                });
            }
            let key = info.key(namespace.as_deref(), &name);
            match self
                .store
                .create(&key, strategy::to_stored_checked(&candidate)?)
                .await
            {
                Ok(kv) => {
                    object::set_meta(
                        &mut candidate,
                        "resourceVersion",
                        kv.mod_revision.to_string(),
                    );
                    return Ok(
                        match render::object(info, &candidate, call.rendering, "Metadata", 201) {
                            Reply::Json { code, body, .. } => Reply::Json {
                                code,
                                body,
                                warnings,
                            },
                            other => other,
                        },
                    );
                }
                Err(StoreError::AlreadyExists { .. })
                    if generate.is_some() && attempt + 1 < MAX_RETRIES =>
                {
                    self.release_reserved(&held);
                }
                Err(e) => {
                    self.release_reserved(&held);
                    return Err(ApiError::from_store(e, info.group, info.resource, &name));
                }
            }
        }
        Err(ApiError::internal("could not generate a unique name"))
    }

    /// Reads the current object for a write (404 if missing).
    pub(crate) async fn current(
        &self,
        info: &ResourceInfo,
        key: &str,
        name: &str,
    ) -> ApiResult<(Arc<Value>, Revision)> {
        let (kv, _) = self
            .store
            .get(key)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(info.group, info.resource, name))?;
        let obj = watch_cache::decode(&kv, kv.mod_revision)
            .ok_or_else(|| ApiError::internal(format!("stored object {key} is not valid JSON")))?;
        Ok((obj, kv.mod_revision))
    }

    /// Upstream's GuaranteedUpdate, for writes the server makes itself
    /// (admission charging a quota, an eviction spending a budget): reads
    /// the stored object, lets `change` compute its next state (None: leave
    /// it), and writes that conditioned on the version read, reading again
    /// when the object moved meanwhile. Returns whether it wrote; a missing
    /// object is not an error (there is nothing to change).
    pub(crate) async fn guaranteed_update(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut change: impl FnMut(&Value) -> ApiResult<Option<Value>>,
    ) -> ApiResult<bool> {
        let key = info.key(namespace, name);
        for _ in 0..MAX_RETRIES {
            let (current, rev) = match self.current(info, &key, name).await {
                Ok(c) => c,
                Err(e) if e.code == 404 => return Ok(false),
                Err(e) => return Err(e),
            };
            let Some(next) = change(&current)? else {
                return Ok(false);
            };
            match self
                .store
                .update(&key, strategy::to_stored_checked(&next)?, Some(rev))
                .await
            {
                Ok(_) => return Ok(true),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, info.group, info.resource, name)),
            }
        }
        Err(ApiError::conflict(
            info.group,
            info.resource,
            name,
            "the object is being changed by too many writers at once; try again",
        ))
    }

    pub(super) async fn update(
        &self,
        call: &Call<'_>,
        subresource: Option<&str>,
    ) -> ApiResult<Reply> {
        let info = call.target.info;
        let namespace = self.require_namespace(call)?;
        let name = call.target.name.clone().unwrap_or_default();
        let mut body = strategy::decode_body(call.body, call.content_type)?;
        strategy::check_kind(info, body_kind(info), &mut body)?;
        check_url_identity(&body, &name, namespace.as_deref())?;
        let warnings =
            strategy::check_fields(info, info.kind, &mut body, call.query.field_validation()?)?;
        let precondition: Option<Revision> =
            match object::resource_version(&body) {
                // "0", like none, is an unconditional update (upstream's
                // AllowUnconditionalUpdate).
                None | Some("0") => None,
                Some(rv) => Some(rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
            };
        let key = info.key(namespace.as_deref(), &name);
        for _ in 0..MAX_RETRIES {
            let (old, rev) = self.current(info, &key, &name).await?;
            if precondition.is_some_and(|p| p != rev) {
                return Err(ApiError::stale(info.group, info.resource, &name));
            }
            let mut new = body.clone();
            if let Some(ns) = &namespace {
                object::set_meta(&mut new, "namespace", ns.clone());
            }
            object::set_meta(&mut new, "name", name.clone());
            match self
                .write_update(call, info, &key, &old, rev, new, subresource)
                .await?
            {
                Some(reply) => return Ok(add_warnings(reply, warnings)),
                None if precondition.is_some() => {
                    return Err(ApiError::stale(info.group, info.resource, &name));
                }
                None => continue,
            }
        }
        Err(ApiError::stale(info.group, info.resource, &name))
    }

    pub(super) async fn patch(
        &self,
        call: &Call<'_>,
        subresource: Option<&str>,
    ) -> ApiResult<Reply> {
        let info = call.target.info;
        let namespace = self.require_namespace(call)?;
        let name = call.target.name.clone().unwrap_or_default();
        let patch_type = call
            .content_type
            .and_then(PatchType::from_content_type)
            .ok_or_else(|| ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {})",
                call.content_type.unwrap_or("none")
            )))?;
        let key = info.key(namespace.as_deref(), &name);
        let ty = TypeRef {
            group: info.group,
            kind: info.kind,
            schema: info.schema(),
        };
        let manager = field_manager(call);
        if patch_type == PatchType::Apply && call.query.get("fieldManager").is_none() {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let force = call.query.flag("force")?;
        let now = object::now_rfc3339();
        for _ in 0..MAX_RETRIES {
            let current = match self.current(info, &key, &name).await {
                Ok(c) => Some(c),
                Err(e)
                    if e.code == 404 && patch_type == PatchType::Apply && subresource.is_none() =>
                {
                    None
                }
                Err(e) => return Err(e),
            };
            let Some((old, rev)) = current else {
                // Server-side apply of a missing object creates it.
                let created = patch::server_side_apply(None, call.body, &manager, force, ty, &now)
                    .map_err(patch_error)?;
                return self
                    .create_applied(call, info, namespace.as_deref(), &name, created)
                    .await;
            };
            let mut new = match patch_type {
                PatchType::Apply => {
                    patch::server_side_apply(Some(&old), call.body, &manager, force, ty, &now)
                }
                other => patch::apply_patch(&old, other, call.body, ty),
            }
            .map_err(patch_error)?;
            // A patch may carry metadata.uid as a precondition.
            if let (Some(want), Some(have)) =
                (object::meta_str(&new, "uid"), object::meta_str(&old, "uid"))
                && want != have
            {
                return Err(ApiError::conflict(
                    info.group,
                    info.resource,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {want}, UID in object meta: {have}"
                    ),
                ));
            }
            if let Some(rv) = object::resource_version(&new)
                && rv != rev.to_string()
            {
                return Err(ApiError::stale(info.group, info.resource, &name));
            }
            strategy::check_kind(info, body_kind(info), &mut new)?;
            check_url_identity(&new, &name, namespace.as_deref())?;
            let warnings =
                strategy::check_fields(info, info.kind, &mut new, call.query.field_validation()?)?;
            object::set_meta(&mut new, "name", name.clone());
            if let Some(ns) = &namespace {
                object::set_meta(&mut new, "namespace", ns.clone());
            }
            if let Some(reply) = self
                .write_update(call, info, &key, &old, rev, new, subresource)
                .await?
            {
                return Ok(add_warnings(reply, warnings));
            }
        }
        Err(ApiError::stale(info.group, info.resource, &name))
    }

    async fn create_applied(
        &self,
        call: &Call<'_>,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut obj: Value,
    ) -> ApiResult<Reply> {
        strategy::check_kind(info, info.kind, &mut obj)?;
        check_url_identity(&obj, name, namespace)?;
        let mut warnings =
            strategy::check_fields(info, info.kind, &mut obj, call.query.field_validation()?)?;
        object::set_meta(&mut obj, "name", name.to_string());
        if let Some(ns) = namespace {
            object::set_meta(&mut obj, "namespace", ns.to_string());
            self.check_namespace(ns).await?;
        }
        let attrs = Attributes::of(call, Operation::Create)?;
        strategy::apply_defaults(info, &mut obj);
        warnings.extend(self.admit_mutating(&attrs, &mut obj, None).await?);
        strategy::prepare_create(info, &mut obj);
        strategy::default_and_validate(info, info.kind, None, &mut obj)?;
        warnings.extend(self.admit_validating(&attrs, None, Some(&obj)).await?);
        let held = self.reserve_service(info, None, &mut obj)?;
        if call.query.dry_run()? {
            self.release_reserved(&held);
            return Ok(Reply::Json {
                code: 201,
                body: obj,
                warnings,
            });
        }
        let key = info.key(namespace, name);
        match self
            .store
            .create(&key, strategy::to_stored_checked(&obj)?)
            .await
        {
            Ok(kv) => {
                object::set_meta(&mut obj, "resourceVersion", kv.mod_revision.to_string());
                Ok(Reply::Json {
                    code: 201,
                    body: obj,
                    warnings,
                })
            }
            Err(e) => {
                self.release_reserved(&held);
                Err(ApiError::from_store(e, info.group, info.resource, name))
            }
        }
    }

    /// Applies update rules to `new` and writes it if `rev` is still
    /// current. `Ok(None)` means the object changed underneath: retry.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_update(
        &self,
        call: &Call<'_>,
        info: &'static ResourceInfo,
        key: &str,
        old: &Value,
        rev: Revision,
        mut new: Value,
        subresource: Option<&str>,
    ) -> ApiResult<Option<Reply>> {
        let name = object::name(old).unwrap_or_default().to_string();
        strategy::prepare_update(info, old, &mut new, subresource);
        let attrs = Attributes::of(call, Operation::Update)?;
        let mut admission_warnings = self.admit_mutating(&attrs, &mut new, Some(old)).await?;
        strategy::default_and_validate(info, info.kind, Some(old), &mut new)?;
        admission_warnings.extend(self.admit_validating(&attrs, Some(old), Some(&new)).await?);
        let held = self.reserve_service(info, Some(old), &mut new)?;
        let manager = field_manager(call);
        let is_apply =
            call.content_type.and_then(PatchType::from_content_type) == Some(PatchType::Apply);
        if !is_apply {
            let now = object::now_rfc3339();
            let version = info.api_version();
            patch::update_managed_fields_for_subresource(
                Some(old),
                &mut new,
                &patch::Writer {
                    manager: &manager,
                    operation: "Update",
                    api_version: &version,
                    subresource: subresource.unwrap_or_default(),
                    schema: info.schema(),
                },
                &now,
            );
        }
        let unchanged = strategy::same_content(old, &new);
        let finalize = object::is_deleting(&new)
            && object::finalizers(&new).is_empty()
            && !pending_namespace_finalizers(info, &new);
        if call.query.dry_run()? || unchanged {
            self.release_reserved(&held);
            let mut shown = if unchanged { old.clone() } else { new };
            // A dry run changes nothing, so the version is still the
            // stored one (kubectl diff compares it).
            object::set_meta(&mut shown, "resourceVersion", rev.to_string());
            return Ok(Some(add_warnings(
                render::object(info, &shown, call.rendering, "Metadata", 200),
                std::mem::take(&mut admission_warnings),
            )));
        }
        if finalize {
            // The last finalizer is gone from an object being deleted.
            return match self.store.delete(key, Some(rev)).await {
                Ok(d) => {
                    self.release_reserved(&held);
                    self.after_delete(info, old);
                    object::set_meta(&mut new, "resourceVersion", d.revision.to_string());
                    Ok(Some(add_warnings(
                        render::object(info, &new, call.rendering, "Metadata", 200),
                        std::mem::take(&mut admission_warnings),
                    )))
                }
                Err(StoreError::Conflict { .. }) => Ok(None),
                Err(e) => Err(ApiError::from_store(e, info.group, info.resource, &name)),
            };
        }
        match self
            .store
            .update(key, strategy::to_stored_checked(&new)?, Some(rev))
            .await
        {
            Ok(kv) => {
                self.release_replaced(info, old, &new);
                object::set_meta(&mut new, "resourceVersion", kv.mod_revision.to_string());
                Ok(Some(add_warnings(
                    render::object(info, &new, call.rendering, "Metadata", 200),
                    std::mem::take(&mut admission_warnings),
                )))
            }
            Err(StoreError::Conflict { .. }) => {
                self.release_reserved(&held);
                Ok(None)
            }
            Err(e) => {
                self.release_reserved(&held);
                Err(ApiError::from_store(e, info.group, info.resource, &name))
            }
        }
    }
}

/// Namespaces keep their own finalizers in spec.finalizers.
fn pending_namespace_finalizers(info: &ResourceInfo, obj: &Value) -> bool {
    info.resource == "namespaces"
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
}

fn add_warnings(reply: Reply, extra: Vec<String>) -> Reply {
    match reply {
        Reply::Json {
            code,
            body,
            mut warnings,
        } => {
            warnings.extend(extra);
            Reply::Json {
                code,
                body,
                warnings,
            }
        }
        other => other,
    }
}

/// Upstream's `checkName` for updates and patches: a name or namespace in
/// the object that differs from the URL's is a 400, never silently dropped.
fn check_url_identity(obj: &Value, name: &str, namespace: Option<&str>) -> ApiResult<()> {
    if let Some(obj_name) = object::name(obj)
        && !obj_name.is_empty()
        && obj_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({obj_name}) does not match the name on the URL ({name})"
        )));
    }
    if let (Some(ns), Some(obj_ns)) = (namespace, object::namespace(obj))
        && !obj_ns.is_empty()
        && ns != obj_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}
