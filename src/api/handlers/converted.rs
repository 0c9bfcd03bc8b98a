//! Requests to a version that is served but stored as another
//! ([`ResourceInfo::stored_as`](crate::api::registry::resources::ResourceInfo)):
//! the request is carried out on the storage version and converted on the
//! way in and out (see [`crate::api::conversion`]).
//!
//! Creates and updates convert the body; reads, lists and watches convert
//! what comes back. A patch is applied to the object as the client sees it
//! (the served version), then written as an update conditioned on the
//! version it was read at, retried if the object moved, as upstream patches
//! a converted object. Field selectors are translated where field names
//! differ.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::write::{field_manager, patch_error};
use super::{Api, Call, Rendering, Reply, WatchStream};
use crate::api::conversion;
use crate::api::custom::conversion_webhook::ConversionWebhook;
use crate::api::object;
use crate::api::patch::{self, PatchType, TypeRef};
use crate::api::registry::resources::ResourceInfo;
use crate::api::render::{self, ListMeta};
use crate::api::request::Target;
use crate::api::status::{ApiError, ApiResult};
use crate::api::strategy;
use crate::api::watch_cache::WatchCache;
use crate::store::Store;

const PATCH_RETRIES: usize = 8;

impl<S: Store> Api<S> {
    /// Serves `call` for a converted version through `storage`.
    pub(super) async fn dispatch_converted(
        &self,
        call: &Call<'_>,
        storage: &'static ResourceInfo,
    ) -> ApiResult<Reply> {
        let served = call.target.info;
        let target = Target {
            info: storage,
            ..call.target.clone()
        };
        let query = match call.query.get("fieldSelector") {
            Some(s) => call.query.with(
                "fieldSelector",
                conversion::storage_field_selector(served, s),
            ),
            None => call.query.clone(),
        };
        let inner = Call {
            target: &target,
            query: &query,
            ..*call
        };
        let reply = match call.method {
            "PATCH" => self.patch_converted(&inner, served).await?,
            "POST" | "PUT" if !call.body.is_empty() => {
                let obj = strategy::decode_body(call.body, call.content_type)?;
                let stored = self.to_storage(served, obj).await?;
                let body = Bytes::from(
                    serde_json::to_vec(&stored).map_err(|e| ApiError::internal(e.to_string()))?,
                );
                let write = Call {
                    body: &body,
                    content_type: Some("application/json"),
                    ..inner
                };
                Box::pin(self.dispatch(&write)).await?
            }
            "GET"
                if served.custom.is_some()
                    && call.rendering == Rendering::Table
                    && !call.query.flag("watch")? =>
            {
                // A version's printer columns read that version's fields:
                // the objects are converted first, then tabulated.
                let objects = Call {
                    rendering: Rendering::Object,
                    ..inner
                };
                let reply = Box::pin(self.dispatch(&objects)).await?;
                let include = call.query.get("includeObject").unwrap_or("Metadata");
                return match convert_reply(&self.cache, served, reply).await? {
                    Reply::Json { code, body, .. } => Ok(table_of(served, &body, include, code)),
                    other => Ok(other),
                };
            }
            _ => Box::pin(self.dispatch(&inner)).await?,
        };
        convert_reply(&self.cache, served, reply).await
    }

    /// An object of `served` in its storage version.
    async fn to_storage(&self, served: &'static ResourceInfo, obj: Value) -> ApiResult<Value> {
        match webhook_of(served) {
            None => Ok(conversion::to_storage(served, obj)),
            Some(hook) => {
                let storage = served.storage().unwrap_or(served);
                let mut converted = hook
                    .convert(&self.cache, vec![obj], &storage.api_version())
                    .await
                    .map_err(ApiError::internal)?;
                Ok(converted.pop().unwrap_or_default())
            }
        }
    }

    /// A patch of the served version: read, convert, patch, convert back,
    /// update at the version read.
    async fn patch_converted(
        &self,
        call: &Call<'_>,
        served: &'static ResourceInfo,
    ) -> ApiResult<Reply> {
        let patch_type = call
            .content_type
            .and_then(PatchType::from_content_type)
            .ok_or_else(|| {
                ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {})",
                    call.content_type.unwrap_or("none")
                ))
            })?;
        let ty = TypeRef {
            group: served.group,
            kind: served.kind,
            schema: served.schema(),
        };
        let manager = field_manager(call);
        let empty = Bytes::new();
        for _ in 0..PATCH_RETRIES {
            let read = Call {
                method: "GET",
                body: &empty,
                content_type: None,
                rendering: Rendering::Object,
                ..*call
            };
            let stored = match Box::pin(self.dispatch(&read)).await? {
                Reply::Json { body, .. } => body,
                _ => return Err(ApiError::internal("unexpected reply reading the object")),
            };
            let version = object::resource_version(&stored).unwrap_or("").to_string();
            let current = from_storage_body(&self.cache, served, stored).await?;
            let patched = match patch_type {
                PatchType::Apply => patch::server_side_apply(
                    Some(&current),
                    call.body,
                    &manager,
                    call.query.flag("force")?,
                    ty,
                    &object::now_rfc3339(),
                ),
                other => patch::apply_patch(&current, other, call.body, ty),
            }
            .map_err(patch_error)?;
            let asked = object::resource_version(&patched)
                .filter(|rv| *rv != version)
                .map(str::to_string);
            let mut stored = self.to_storage(served, patched).await?;
            object::set_meta(
                &mut stored,
                "resourceVersion",
                asked.clone().unwrap_or(version),
            );
            let body = Bytes::from(
                serde_json::to_vec(&stored).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            let write = Call {
                method: "PUT",
                body: &body,
                content_type: Some("application/json"),
                ..*call
            };
            match Box::pin(self.dispatch(&write)).await {
                Err(e) if e.code == 409 && asked.is_none() => continue,
                other => return other,
            }
        }
        Err(ApiError::stale(
            served.group,
            served.resource,
            call.target.name.as_deref().unwrap_or(""),
        ))
    }
}

/// A converted object or list as the served version's Table.
fn table_of(served: &'static ResourceInfo, body: &Value, include: &str, code: u16) -> Reply {
    if body["kind"] == "Status" {
        return Reply::with_code(code, body.clone());
    }
    let Some(items) = body["items"].as_array() else {
        return render::object(served, body, Rendering::Table, include, code);
    };
    let meta = ListMeta {
        resource_version: body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        continue_token: body["metadata"]["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        remaining_item_count: body["metadata"]["remainingItemCount"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok()),
    };
    Reply::with_code(code, render::table(served, items, &meta, include, true))
}

/// The conversion webhook of a custom resource that has one.
fn webhook_of(info: &ResourceInfo) -> Option<Arc<ConversionWebhook>> {
    info.custom.and_then(|c| c.conversion_webhook.clone())
}

/// A body from the storage version in the served one: by the CRD's
/// conversion webhook where it has one, else by [`conversion`]. Statuses,
/// Tables and partial metadata are version-free and pass through.
async fn from_storage_body(
    cache: &WatchCache,
    served: &'static ResourceInfo,
    mut body: Value,
) -> ApiResult<Value> {
    let Some(hook) = webhook_of(served) else {
        return Ok(conversion::from_storage_body(served, body));
    };
    if conversion::is_version_free(&body) {
        return Ok(body);
    }
    let desired = served.api_version();
    if body["kind"].as_str().unwrap_or_default().ends_with("List") {
        if let Some(items) = body["items"].as_array_mut() {
            let converted = hook
                .convert(cache, std::mem::take(items), &desired)
                .await
                .map_err(ApiError::internal)?;
            *items = converted;
        }
        body["apiVersion"] = Value::String(desired);
        return Ok(body);
    }
    let mut converted = hook
        .convert(cache, vec![body], &desired)
        .await
        .map_err(ApiError::internal)?;
    Ok(converted.pop().unwrap_or_default())
}

/// The storage version's answer in the served version.
async fn convert_reply(
    cache: &Arc<WatchCache>,
    served: &'static ResourceInfo,
    reply: Reply,
) -> ApiResult<Reply> {
    Ok(match reply {
        Reply::Json {
            code,
            body,
            warnings,
        } => Reply::Json {
            code,
            body: from_storage_body(cache, served, body).await?,
            warnings,
        },
        Reply::Raw { code, body, .. } => {
            let parsed: Value =
                serde_json::from_slice(&body).map_err(|e| ApiError::internal(e.to_string()))?;
            Reply::Json {
                code,
                body: from_storage_body(cache, served, parsed).await?,
                warnings: Vec::new(),
            }
        }
        Reply::Watch(stream) => Reply::Watch(convert_watch(cache.clone(), served, stream)),
    })
}

/// Converts each event of a watch as it passes. An object the conversion
/// webhook cannot convert ends the watch with an ERROR event, as upstream's
/// watch ends when its encoder fails; the client then relists.
fn convert_watch(
    cache: Arc<WatchCache>,
    served: &'static ResourceInfo,
    mut stream: WatchStream,
) -> WatchStream {
    let (tx, lines) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(line) = stream.lines.recv().await {
            let mut failed = false;
            let converted = match serde_json::from_slice::<Value>(&line) {
                Ok(mut event) if event["type"] == "BOOKMARK" => {
                    event["object"]["apiVersion"] = Value::String(served.api_version());
                    event["object"]["kind"] = Value::String(served.kind.to_string());
                    event_line(&event)
                }
                Ok(mut event) => {
                    let object = event["object"].take();
                    match from_storage_body(&cache, served, object).await {
                        Ok(object) => event["object"] = object,
                        Err(e) => {
                            failed = true;
                            event = serde_json::json!({"type": "ERROR", "object": e.to_status()});
                        }
                    }
                    event_line(&event)
                }
                // Not JSON: pass it on untouched rather than drop it.
                Err(_) => line,
            };
            if tx.send(converted).await.is_err() || failed {
                return;
            }
        }
    });
    WatchStream { lines }
}

/// One watch event as a line of the stream.
fn event_line(event: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(event).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}
