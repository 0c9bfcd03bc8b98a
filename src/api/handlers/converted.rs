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

use bytes::Bytes;
use serde_json::Value;

use super::write::{field_manager, patch_error};
use super::{Api, Call, Rendering, Reply, WatchStream};
use crate::api::conversion;
use crate::api::object;
use crate::api::patch::{self, PatchType, TypeRef};
use crate::api::registry::resources::ResourceInfo;
use crate::api::request::Target;
use crate::api::status::{ApiError, ApiResult};
use crate::api::strategy;
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
                let body = Bytes::from(
                    serde_json::to_vec(&conversion::to_storage(served, obj))
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                );
                let write = Call {
                    body: &body,
                    content_type: Some("application/json"),
                    ..inner
                };
                Box::pin(self.dispatch(&write)).await?
            }
            _ => Box::pin(self.dispatch(&inner)).await?,
        };
        convert_reply(served, reply)
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
            let mut current = conversion::from_storage(served, stored);
            current["apiVersion"] = Value::String(served.api_version());
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
            let mut stored = conversion::to_storage(served, patched);
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

/// The storage version's answer in the served version.
fn convert_reply(served: &'static ResourceInfo, reply: Reply) -> ApiResult<Reply> {
    Ok(match reply {
        Reply::Json {
            code,
            body,
            warnings,
        } => Reply::Json {
            code,
            body: conversion::from_storage_body(served, body),
            warnings,
        },
        Reply::Raw { code, body, .. } => {
            let parsed: Value =
                serde_json::from_slice(&body).map_err(|e| ApiError::internal(e.to_string()))?;
            Reply::Json {
                code,
                body: conversion::from_storage_body(served, parsed),
                warnings: Vec::new(),
            }
        }
        Reply::Watch(stream) => Reply::Watch(convert_watch(served, stream)),
    })
}

/// Converts each event of a watch as it passes.
fn convert_watch(served: &'static ResourceInfo, mut stream: WatchStream) -> WatchStream {
    let (tx, lines) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(line) = stream.lines.recv().await {
            let converted = match serde_json::from_slice::<Value>(&line) {
                Ok(mut event) if event["type"] == "BOOKMARK" => {
                    event["object"]["apiVersion"] = Value::String(served.api_version());
                    event["object"]["kind"] = Value::String(served.kind.to_string());
                    let mut bytes = serde_json::to_vec(&event).unwrap_or_default();
                    bytes.push(b'\n');
                    Bytes::from(bytes)
                }
                Ok(mut event) => {
                    let object = event["object"].take();
                    event["object"] = conversion::from_storage_body(served, object);
                    let mut bytes = serde_json::to_vec(&event).unwrap_or_default();
                    bytes.push(b'\n');
                    Bytes::from(bytes)
                }
                // Not JSON: pass it on untouched rather than drop it.
                Err(_) => line,
            };
            if tx.send(converted).await.is_err() {
                return;
            }
        }
    });
    WatchStream { lines }
}
