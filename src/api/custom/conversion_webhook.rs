//! `conversion: Webhook`: custom objects converted between a CRD's versions
//! by the user's conversion webhook, as upstream's apiextensions-apiserver
//! does it (`webhook_converter.go`).
//!
//! A request for a served version other than the storage one sends what
//! it writes and what it reads through one `ConversionReview` call per
//! object or per list: the objects already in the wanted version are not
//! sent, and an answer is checked as upstream checks it (the same uid, one
//! object per object sent, the wanted apiVersion, the same kind, name,
//! namespace and uid). The converted object keeps the original metadata
//! except labels and annotations, which the webhook may change.
//!
//! The call goes through the same client as admission webhooks
//! ([`extension_client`](crate::api::extension_client)): a URL or a
//! Service resolved from the watch cache, pinned by `caBundle`, bounded in
//! time and size. Every failure is upstream's
//! `conversion webhook for <group>/<version>, Kind=<kind> failed: …`, which
//! the handlers answer as a 500 InternalError.

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::extension_client::{self, Backend};
use crate::api::watch_cache::WatchCache;

/// Upstream's REST client for conversion webhooks waits 30 s.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A CRD's `spec.conversion.webhook`.
#[derive(Debug)]
pub struct ConversionWebhook {
    /// `clientConfig` as written (url or service, caBundle).
    client_config: Value,
    /// The ConversionReview version to send: `v1` if the CRD accepts it,
    /// else `v1beta1`.
    review_version: &'static str,
}

impl ConversionWebhook {
    /// The webhook `crd` converts with, if its strategy is `Webhook`.
    pub fn of(crd: &Value) -> Option<ConversionWebhook> {
        let conversion = &crd["spec"]["conversion"];
        if conversion["strategy"] != "Webhook" {
            return None;
        }
        let accepted = conversion["webhook"]["conversionReviewVersions"].as_array();
        let accepts = |v: &str| accepted.is_some_and(|a| a.iter().any(|x| x == v));
        Some(ConversionWebhook {
            client_config: conversion["webhook"]["clientConfig"].clone(),
            review_version: if accepts("v1") || !accepts("v1beta1") {
                "v1"
            } else {
                "v1beta1"
            },
        })
    }

    /// `objects` (all of one kind) in `desired` (`group/version`). Objects
    /// already there are returned as they are and not sent.
    pub async fn convert(
        &self,
        cache: &WatchCache,
        mut objects: Vec<Value>,
        desired: &str,
    ) -> Result<Vec<Value>, String> {
        let pending: Vec<usize> = (0..objects.len())
            .filter(|&i| objects[i]["apiVersion"] != desired && !is_empty_object(&objects[i]))
            .collect();
        let Some(&first) = pending.first() else {
            return Ok(objects);
        };
        let gvk = gvk_string(&objects[first]);
        let failed = |why: String| format!("conversion webhook for {gvk} failed: {why}");
        let uid = crate::api::object::new_uid();
        let review = json!({
            "kind": "ConversionReview",
            "apiVersion": format!("apiextensions.k8s.io/{}", self.review_version),
            "request": {
                "uid": uid,
                "desiredAPIVersion": desired,
                "objects": pending.iter().map(|&i| &objects[i]).collect::<Vec<_>>(),
            },
        });
        let converted = self.call(cache, &review).await.map_err(failed)?;
        let response = &converted["response"];
        if response["uid"] != uid.as_str() {
            return Err(failed(format!(
                "expected response uid {uid:?}, got {:?}",
                response["uid"].as_str().unwrap_or_default()
            )));
        }
        if response["result"]["status"] != "Success" {
            let message = response["result"]["message"].as_str().unwrap_or_default();
            return Err(failed(if message.is_empty() {
                format!(
                    "response.result.status was '{}', not 'Success'",
                    response["result"]["status"].as_str().unwrap_or_default()
                )
            } else {
                message.to_string()
            }));
        }
        let returned = response["convertedObjects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if returned.len() != pending.len() {
            return Err(format!(
                "conversion webhook for {gvk} returned {} objects, expected {}",
                returned.len(),
                pending.len()
            ));
        }
        for (index, (&i, mut out)) in pending.iter().zip(returned).enumerate() {
            let original = &objects[i];
            let invalid = |why: String| {
                format!(
                    "conversion webhook for {gvk} returned invalid converted object at index {index}: {why}"
                )
            };
            if out["apiVersion"] != desired {
                return Err(invalid(format!(
                    "invalid groupVersion (expected {desired}, received {})",
                    out["apiVersion"].as_str().unwrap_or_default()
                )));
            }
            if out["kind"] != original["kind"] {
                return Err(invalid(format!(
                    "invalid kind (expected {}, received {})",
                    original["kind"].as_str().unwrap_or_default(),
                    out["kind"].as_str().unwrap_or_default()
                )));
            }
            for field in ["name", "namespace", "uid"] {
                let (want, got) = (&original["metadata"][field], &out["metadata"][field]);
                if want.as_str().unwrap_or_default() != got.as_str().unwrap_or_default() {
                    return Err(invalid(format!(
                        "must have the same {field}: {} != {}",
                        want.as_str().unwrap_or_default(),
                        got.as_str().unwrap_or_default()
                    )));
                }
            }
            restore_metadata(original, &mut out).map_err(|why| {
                format!("conversion webhook for {gvk} returned invalid metadata in object at index {index}: {why}")
            })?;
            objects[i] = out;
        }
        Ok(objects)
    }

    async fn call(&self, cache: &WatchCache, review: &Value) -> Result<Value, String> {
        let backend =
            Backend::from_client_config(&self.client_config, false).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
        let url = backend.display_url("?timeout=30s");
        let request = extension_client::json_post("timeout=30s", body);
        let response = extension_client::call(cache, &backend, request, None, TIMEOUT)
            .await
            .map_err(|e| format!("Post \"{url}\": {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the server responded with the status code {} but did not return more information",
                response.status().as_u16()
            ));
        }
        serde_json::from_slice(response.body()).map_err(|e| e.to_string())
    }
}

/// `group/version, Kind=kind`, as Go prints a GroupVersionKind.
fn gvk_string(obj: &Value) -> String {
    format!(
        "{}, Kind={}",
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default()
    )
}

/// An object with nothing but apiVersion and kind needs no webhook.
fn is_empty_object(obj: &Value) -> bool {
    obj.as_object()
        .is_some_and(|m| m.keys().all(|k| k == "apiVersion" || k == "kind"))
}

/// The original metadata, with the converted labels and annotations.
fn restore_metadata(original: &Value, converted: &mut Value) -> Result<(), String> {
    let answered = match &converted["metadata"] {
        Value::Object(m) => m.clone(),
        Value::Null => return Err("missing metadata in converted object".into()),
        other => {
            return Err(format!(
                "invalid metadata of type {} in converted object",
                json_type(other)
            ));
        }
    };
    let mut metadata = original["metadata"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for field in ["labels", "annotations"] {
        match answered.get(field) {
            None | Some(Value::Null) => {
                metadata.remove(field);
            }
            Some(Value::Object(map)) => {
                if let Some((key, value)) = map.iter().find(|(_, v)| !v.is_string()) {
                    return Err(format!(
                        "metadata.{field}[{key}] must be a string, but is {} in converted object",
                        json_type(value)
                    ));
                }
                metadata.insert(field.to_string(), Value::Object(map.clone()));
            }
            Some(other) => {
                return Err(format!(
                    "invalid metadata.{field} of type {} in converted object",
                    json_type(other)
                ));
            }
        }
    }
    converted["metadata"] = Value::Object(metadata);
    Ok(())
}

/// Go's `%T` of a decoded JSON value.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        other => crate::api::go_strings::go_type(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_version_prefers_v1() {
        let crd = |versions: Value| {
            json!({"spec": {"conversion": {"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": versions,
                "clientConfig": {"url": "https://127.0.0.1:1/convert"}}}}})
        };
        assert_eq!(
            ConversionWebhook::of(&crd(json!(["v1beta1", "v1"])))
                .unwrap()
                .review_version,
            "v1"
        );
        assert_eq!(
            ConversionWebhook::of(&crd(json!(["v1beta1"])))
                .unwrap()
                .review_version,
            "v1beta1"
        );
        assert!(
            ConversionWebhook::of(&json!({"spec": {"conversion": {"strategy": "None"}}})).is_none()
        );
    }

    #[test]
    fn metadata_is_restored_but_labels_and_annotations_follow_the_webhook() {
        let original = json!({"metadata": {"name": "a", "uid": "u", "resourceVersion": "5",
            "labels": {"x": "1"}, "annotations": {"keep": "no"}}});
        let mut converted = json!({"metadata": {"name": "a", "uid": "u", "resourceVersion": "999",
            "labels": {"x": "2"}}});
        restore_metadata(&original, &mut converted).unwrap();
        assert_eq!(
            converted["metadata"],
            json!({"name": "a", "uid": "u", "resourceVersion": "5", "labels": {"x": "2"}})
        );
        let mut bad = json!({"metadata": {"labels": {"x": 1}}});
        assert_eq!(
            restore_metadata(&original, &mut bad).unwrap_err(),
            "metadata.labels[x] must be a string, but is int64 in converted object"
        );
    }
}
