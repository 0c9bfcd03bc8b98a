//! GET and LIST.
//!
//! resourceVersion semantics (upstream "Resource Versions" docs):
//! - unset: the newest data ("consistent read"); served from the watch
//!   cache once it has caught up with the store's current revision;
//! - `0`: any data; served from the cache as it is;
//! - `N` with `resourceVersionMatch=NotOlderThan` (or no match): the cache
//!   once it has reached N;
//! - `N` with `resourceVersionMatch=Exact`, and every page after the first
//!   of a paged list: read from the store at exactly that revision.
//!
//! A list with `limit` pages through the store at one revision; the
//! continue token carries that revision and the last key, and turns into
//! 410 Expired once the revision is compacted.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use super::{Api, Call, Reply};
use crate::api::registry::fields;
use crate::api::render::{self, ListMeta};
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::status::{ApiError, ApiResult};
use crate::api::watch_cache::{self, CachedObject};
use crate::store::{RangeRequest, Revision, Store, StoreError};

/// Label and field selectors of a list or watch, checked against the
/// resource's selectable fields.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector`.
    pub fn from_call(call: &Call<'_>) -> ApiResult<Self> {
        let info = call.target.info;
        let labels = match call.query.get("labelSelector") {
            Some(s) => LabelSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            None => LabelSelector::everything(),
        };
        let fields = match call.query.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::default(),
        };
        for r in fields.requirements() {
            if !fields::is_selectable(info, &r.field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.field
                )));
            }
        }
        Ok(Filter { labels, fields })
    }

    /// Whether neither selector restricts anything.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether a cached object passes both selectors.
    pub fn matches(&self, obj: &CachedObject) -> bool {
        (self.labels.is_empty() || self.labels.matches(Some(&obj.labels)))
            && (self.fields.is_empty()
                || self.fields.matches(|f| {
                    // A custom resource's selectableFields are not cached.
                    obj.field(f).or_else(|| {
                        Some(
                            crate::api::selectors::object_field(&obj.value(), f)
                                .unwrap_or_default(),
                        )
                    })
                }))
    }

    /// The name a `metadata.name=` term pins, for direct lookups.
    pub fn exact_name(&self) -> Option<&str> {
        self.fields.exact("metadata.name")
    }
}

/// The store key prefix a call lists or watches.
pub fn collection_prefix(call: &Call<'_>) -> String {
    let info = call.target.info;
    match (&call.target.namespace, info.namespaced) {
        (Some(ns), true) => format!("{}{ns}/", info.key_prefix()),
        _ => info.key_prefix(),
    }
}

/// A continue token: the list's revision and the last key returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, last_key: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: last_key.to_string(),
    };
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(raw: &str, prefix: &str) -> ApiResult<ContinueToken> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: the token was not produced by this server",
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| bad())?;
    let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if !token.start.starts_with(prefix) {
        return Err(bad());
    }
    Ok(token)
}

const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

impl<S: Store> Api<S> {
    pub(super) async fn get(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let t = call.target;
        let info = t.info;
        let name = t.name.as_deref().unwrap_or_default();
        if info.namespaced && t.namespace.is_none() {
            return Err(ApiError::no_route(&format!(
                "{} without a namespace",
                info.resource
            )));
        }
        let key = info.key(t.namespace.as_deref(), name);
        let obj = self
            .read_object(&key, call.query.get("resourceVersion"))
            .await?;
        let obj = obj.ok_or_else(|| ApiError::not_found(info.group, info.resource, name))?;
        Ok(render::object(
            info,
            &obj,
            call.rendering,
            call.query.get("includeObject").unwrap_or("Metadata"),
            200,
        ))
    }

    /// Reads one object: from the cache for `resourceVersion=0`, else the
    /// newest state from the store.
    pub(crate) async fn read_object(
        &self,
        key: &str,
        rv: Option<&str>,
    ) -> ApiResult<Option<Arc<Value>>> {
        if rv == Some("0") {
            return Ok(self.cache.get(key).map(|c| Arc::new(c.value())));
        }
        let (kv, _) = self
            .store
            .get(key)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(kv.and_then(|kv| watch_cache::decode(&kv, kv.mod_revision)))
    }

    pub(super) async fn list(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let filter = Filter::from_call(call)?;
        let prefix = collection_prefix(call);
        let limit = call.query.number("limit")?.unwrap_or(0) as usize;
        let rv = call.query.get("resourceVersion");
        let rv_match = call.query.get("resourceVersionMatch");
        let requested: Option<Revision> =
            match rv {
                None => None,
                Some(s) => Some(s.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {s:?}"))
                })?),
            };
        if rv_match.is_some() && rv.is_none() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        let (items, meta) = if let Some(token) = call.query.get("continue") {
            if rv.is_some_and(|v| v != "0") {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let token = decode_continue(token, &prefix)?;
            self.list_from_store(&prefix, &filter, limit, token.rv, Some(token.start))
                .await?
        } else if rv_match == Some("Exact") || (limit > 0 && rv != Some("0")) {
            let at = match (requested, rv_match) {
                (Some(r), Some("Exact")) if r > 0 => r,
                (Some(0), Some("Exact")) => {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
                (Some(r), _) if r > 0 => {
                    self.cache.wait_for(r).await?;
                    self.store.current_revision()
                }
                _ => self.store.current_revision(),
            };
            self.list_from_store(&prefix, &filter, limit, at, None)
                .await?
        } else {
            match requested {
                None => self.cache.wait_for(self.store.current_revision()).await?,
                Some(r) if r > 0 => self.cache.wait_for(r).await?,
                Some(_) => {}
            }
            let name = filter.exact_name().map(str::to_string);
            let (items, revision) = match name {
                // A metadata.name selector is a point lookup (kubectl wait, rollout status).
                Some(n) if call.target.namespace.is_some() || !call.target.info.namespaced => self
                    .cache
                    .list(&format!("{prefix}{n}"), |o| filter.matches(o)),
                _ => self.cache.list(&prefix, |o| filter.matches(o)),
            };
            (
                items,
                ListMeta {
                    resource_version: revision.to_string(),
                    continue_token: None,
                    remaining_item_count: None,
                },
            )
        };
        let include = call.query.get("includeObject").unwrap_or("Metadata");
        Ok(render::list(
            call.target.info,
            &items,
            &meta,
            call.rendering,
            include,
        ))
    }

    /// Pages through the store at `revision`, filtering, until `limit`
    /// matches or the end.
    async fn list_from_store(
        &self,
        prefix: &str,
        filter: &Filter,
        limit: usize,
        revision: Revision,
        start_after: Option<String>,
    ) -> ApiResult<(Vec<Arc<CachedObject>>, ListMeta)> {
        let mut items = Vec::new();
        let mut after = start_after;
        let page = if limit == 0 { 0 } else { limit.max(100) };
        loop {
            let result = self
                .store
                .range(RangeRequest {
                    prefix: prefix.to_string(),
                    continue_after: after.clone(),
                    limit: page,
                    revision: Some(revision),
                })
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } => ApiError::expired(EXPIRED_CONTINUE),
                    other => ApiError::from_store(other, "", "", ""),
                })?;
            for kv in &result.kvs {
                if let Some(obj) = watch_cache::decode_cached(kv, kv.mod_revision)
                    && filter.matches(&obj)
                {
                    items.push(obj);
                }
                after = Some(kv.key.clone());
                if limit > 0 && items.len() == limit {
                    let more = result.more
                        || kv.key != result.kvs.last().map(|k| k.key.clone()).unwrap_or_default();
                    let token = more.then(|| encode_continue(revision, &kv.key));
                    // Upstream counts what is left only when no selector
                    // filters it; the watch cache knows, if it is at the
                    // list's revision.
                    let remaining = if more && filter.is_empty() {
                        let _ = self.cache.wait_for(revision).await;
                        self.cache.count_after(prefix, &kv.key, revision)
                    } else {
                        None
                    };
                    return Ok((
                        items,
                        ListMeta {
                            resource_version: revision.to_string(),
                            continue_token: token,
                            remaining_item_count: remaining,
                        },
                    ));
                }
            }
            if !result.more {
                return Ok((
                    items,
                    ListMeta {
                        resource_version: revision.to_string(),
                        continue_token: None,
                        remaining_item_count: None,
                    },
                ));
            }
        }
    }
}

impl<S: Store> Api<S> {
    /// `componentstatuses` are computed, not stored (as upstream): the
    /// store reports itself as `etcd-0` for compatibility with tools that
    /// look for it; the scheduler and controller-manager report what their
    /// supervisor recorded.
    pub(super) async fn component_statuses(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let store_ok = self.cache.is_ready() && self.store.get("/registry/health").await.is_ok();
        let entry = |name: &str, healthy: bool, message: &str, error: &str| {
            let mut cond =
                json!({"type": "Healthy", "status": if healthy { "True" } else { "False" }});
            if !message.is_empty() {
                cond["message"] = json!(message);
            }
            if !error.is_empty() {
                cond["error"] = json!(error);
            }
            json!({"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name}, "conditions": [cond]})
        };
        let component = |name: &str| match self.health.get(name) {
            Some(Ok(())) => entry(name, true, "ok", ""),
            Some(Err(reason)) => entry(name, false, "", &reason),
            None => entry(name, false, "", "not running"),
        };
        let items = [
            component("controller-manager"),
            entry(
                "etcd-0",
                store_ok,
                if store_ok { "ok" } else { "" },
                if store_ok { "" } else { "store unavailable" },
            ),
            component("scheduler"),
        ];
        let info = call.target.info;
        if let Some(name) = call.target.name.as_deref() {
            let obj = items
                .iter()
                .find(|o| o["metadata"]["name"] == name)
                .ok_or_else(|| ApiError::not_found("", "componentstatuses", name))?;
            return Ok(render::object(info, obj, call.rendering, "Metadata", 200));
        }
        let prefix = info.key_prefix();
        let cached: Vec<Arc<CachedObject>> = items
            .iter()
            .map(|o| {
                Arc::new(CachedObject::from_value(
                    &format!("{prefix}{}", o["metadata"]["name"].as_str().unwrap_or("")),
                    0,
                    o,
                ))
            })
            .collect();
        let meta = ListMeta {
            resource_version: String::new(),
            continue_token: None,
            remaining_item_count: None,
        };
        Ok(render::list(
            info,
            &cached,
            &meta,
            call.rendering,
            call.query.get("includeObject").unwrap_or("Metadata"),
        ))
    }
}
