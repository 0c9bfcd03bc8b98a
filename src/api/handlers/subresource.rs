//! Subresources: status, scale, binding, eviction, finalize, token, and the
//! node-side ones (log, exec, attach, portforward, proxy).
//!
//! `status` and `finalize` are updates with the spec/status split;
//! `scale` reads and writes `spec.replicas` of its parent through an
//! `autoscaling/v1 Scale`; `binding` sets a pod's node once;
//! `eviction` (in [`super::eviction`]) deletes a pod its budget allows.

use serde_json::{Value, json};

use super::{Api, Call, Reply};
use crate::api::object::{self};
use crate::api::patch::{self, PatchType, TypeRef};
use crate::api::registry::resources::ResourceInfo;
use crate::api::status::{ApiError, ApiResult, Cause, success_status};
use crate::api::strategy;
use crate::store::Store;

/// The object a token is bound to (`kubectl create token
/// --bound-object-kind`): the token stops working when it goes.
#[derive(Clone, Copy, Debug)]
pub enum BoundObject<'a> {
    /// A pod: (name, uid).
    Pod(&'a str, &'a str),
    /// A secret: (name, uid).
    Secret(&'a str, &'a str),
}

/// Issues service-account tokens (TokenRequest).
pub trait TokenIssuer: Send + Sync {
    /// A signed token for `namespace/name` (uid), bound to audiences, valid
    /// for `seconds`; returns the token and its expiry (RFC 3339).
    fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        seconds: u64,
        bound: Option<BoundObject<'_>>,
    ) -> Result<(String, String), String>;
}

impl<S: Store> Api<S> {
    pub(super) async fn subresource(&self, call: &Call<'_>, sub: &str) -> ApiResult<Reply> {
        let info = call.target.info;
        let allowed = info.subresource(sub).map(|s| s.verbs).unwrap_or(&[]);
        let verb = match call.method {
            "GET" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "POST" => "create",
            "DELETE" => "delete",
            _ => "",
        };
        if !allowed.contains(&verb) {
            return Err(ApiError::method_not_allowed(
                call.method,
                &format!("{}/{sub}", info.resource),
            ));
        }
        match (sub, verb) {
            ("status", "get") => self.get(call).await,
            ("status" | "finalize", "update") => {
                self.update(call, Some("status").filter(|_| sub == "status"))
                    .await
            }
            ("status", "patch") => self.patch(call, Some("status")).await,
            ("ephemeralcontainers", "get") => self.get(call).await,
            ("ephemeralcontainers", "update") => {
                self.update(call, Some("ephemeralcontainers")).await
            }
            ("ephemeralcontainers", "patch") => self.patch(call, Some("ephemeralcontainers")).await,
            ("scale", _) => self.scale(call, verb).await,
            ("binding", _) => self.bind(call).await,
            ("eviction", _) => self.evict(call).await,
            ("token", _) => self.token(call).await,
            _ => self.node_subresource(call, sub).await,
        }
    }

    async fn parent(
        &self,
        call: &Call<'_>,
    ) -> ApiResult<(std::sync::Arc<Value>, u64, String, String)> {
        let t = call.target;
        let name = t.name.clone().unwrap_or_default();
        let key = t.info.key(t.namespace.as_deref(), &name);
        let (obj, rev) = self.current(t.info, &key, &name).await?;
        Ok((obj, rev, key, name))
    }

    async fn scale(&self, call: &Call<'_>, verb: &str) -> ApiResult<Reply> {
        for _ in 0..8 {
            let (parent, rev, key, _name) = self.parent(call).await?;
            let current = scale_of(call.target.info, &parent);
            let wanted = match verb {
                "get" => return Ok(Reply::ok(current)),
                "update" => strategy::decode_body(call.body, call.content_type)?,
                _ => {
                    let pt = call
                        .content_type
                        .and_then(PatchType::from_content_type)
                        .ok_or_else(|| {
                            ApiError::unsupported_media_type("unsupported patch type")
                        })?;
                    patch::apply_patch(
                        &current,
                        pt,
                        call.body,
                        TypeRef::builtin("autoscaling", "Scale"),
                    )
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
                }
            };
            let replicas = wanted["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    object::name(&parent).unwrap_or(""),
                    vec![crate::api::status::Cause {
                        reason: "FieldValueInvalid".into(),
                        field: "spec.replicas".into(),
                        message: format!(
                            "Invalid value: {replicas}: must be greater than or equal to 0"
                        ),
                    }],
                ));
            }
            if let Some(rv) = object::resource_version(&wanted)
                && rv != rev.to_string()
            {
                return Err(ApiError::stale(
                    "autoscaling",
                    "scale",
                    object::name(&parent).unwrap_or(""),
                ));
            }
            let mut new = (*parent).clone();
            match call.target.info.custom.and_then(|c| c.scale.as_ref()) {
                Some(paths) => crate::api::custom::strategy::set_path(
                    &mut new,
                    &paths.spec_replicas,
                    json!(replicas),
                ),
                None => new["spec"]["replicas"] = json!(replicas),
            }
            let plain = Call {
                rendering: super::Rendering::Object,
                ..*call
            };
            if let Some(reply) = self
                .write_update(&plain, call.target.info, &key, &parent, rev, new, None)
                .await?
            {
                let updated = match reply {
                    Reply::Json { body, .. } => body,
                    _ => return Err(ApiError::internal("unexpected reply")),
                };
                return Ok(Reply::ok(scale_of(call.target.info, &updated)));
            }
        }
        Err(ApiError::stale(
            "autoscaling",
            "scale",
            call.target.name.as_deref().unwrap_or(""),
        ))
    }

    async fn bind(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let binding = strategy::decode_body(call.body, call.content_type)?;
        let node = binding["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("binding target name is required"))?
            .to_string();
        for _ in 0..8 {
            let (pod, rev, key, name) = self.parent(call).await?;
            if object::is_deleting(&pod) {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    &name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(existing) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    &name,
                    &format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            let mut new = (*pod).clone();
            new["spec"]["nodeName"] = json!(node);
            set_condition(&mut new, "PodScheduled", "True");
            let bytes = strategy::to_stored_checked(&new)?;
            match self.store.update(&key, bytes, Some(rev)).await {
                Ok(_) => return Ok(Reply::with_code(201, success_status(None))),
                Err(crate::store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, "", "pods", &name)),
            }
        }
        Err(ApiError::stale(
            "",
            "pods",
            call.target.name.as_deref().unwrap_or(""),
        ))
    }

    async fn token(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let Some(issuer) = &self.tokens else {
            return Err(ApiError::unavailable(
                "service account tokens are not configured",
            ));
        };
        let request = strategy::decode_body(call.body, call.content_type)?;
        let (sa, _, _, name) = self.parent(call).await?;
        let ns = call.target.namespace.clone().unwrap_or_default();
        let uid = object::meta_str(&sa, "uid").unwrap_or("");
        let seconds = match &request["spec"]["expirationSeconds"] {
            Value::Null => 3600,
            v => {
                let asked = v.as_i64().unwrap_or(i64::MIN);
                let why = if asked < 600 {
                    Some("may not specify a duration less than 10 minutes")
                } else if asked > 1 << 32 {
                    Some("may not specify a duration larger than 2^32 seconds")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(ApiError::invalid(
                        "authentication.k8s.io",
                        "TokenRequest",
                        "",
                        vec![Cause {
                            reason: "FieldValueInvalid".into(),
                            field: "spec.expirationSeconds".into(),
                            message: format!("Invalid value: {v}: {why}"),
                        }],
                    ));
                }
                asked as u64
            }
        };
        let audiences: Vec<String> = request["spec"]["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let bound = &request["spec"]["boundObjectRef"];
        let kind = bound["kind"].as_str();
        let bound_to = match kind {
            None => None,
            Some(kind @ ("Pod" | "Secret")) => {
                let (resource, object_name) = if kind == "Pod" {
                    ("pods", bound["name"].as_str().unwrap_or_default())
                } else {
                    ("secrets", bound["name"].as_str().unwrap_or_default())
                };
                let key = format!("/registry/core/{resource}/{ns}/{object_name}");
                let Some(live) = self.cache.get(&key).map(|p| p.value()) else {
                    return Err(ApiError::not_found("", resource, object_name));
                };
                let live_uid = object::meta_str(&live, "uid")
                    .unwrap_or_default()
                    .to_string();
                if let Some(asked) = bound["uid"].as_str().filter(|u| !u.is_empty())
                    && asked != live_uid
                {
                    return Err(ApiError::conflict(
                        "",
                        kind,
                        object_name,
                        &format!(
                            "the UID in the bound object reference ({asked}) does not match the UID in record. The object might have been deleted and then recreated"
                        ),
                    ));
                }
                if kind == "Pod"
                    && live["spec"]["serviceAccountName"]
                        .as_str()
                        .unwrap_or("default")
                        != name
                {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount \"{name}\" to pod running with different serviceaccount name."
                    )));
                }
                Some((kind, object_name.to_string(), live_uid))
            }
            Some("Node") => {
                return Err(ApiError::bad_request(
                    "cannot bind token to a Node: kelp binds tokens to Pods and Secrets",
                ));
            }
            Some(other) => {
                let version = bound["apiVersion"].as_str().unwrap_or_default();
                let (group, version) = version.rsplit_once('/').unwrap_or(("", version));
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {group}/{version}, Kind={other}"
                )));
            }
        };
        self.admit_node_token(call.user, &request, &ns).await?;
        let bound_to = bound_to.as_ref().map(|(kind, n, u)| match *kind {
            "Pod" => BoundObject::Pod(n, u),
            _ => BoundObject::Secret(n, u),
        });
        let (token, expires) = issuer
            .issue(&ns, &name, uid, &audiences, seconds, bound_to)
            .map_err(ApiError::internal)?;
        let mut out = request.clone();
        out["apiVersion"] = json!("authentication.k8s.io/v1");
        out["kind"] = json!("TokenRequest");
        out["metadata"] =
            json!({"name": name, "namespace": ns, "creationTimestamp": object::now_rfc3339()});
        out["spec"]["expirationSeconds"] = json!(seconds);
        out["status"] = json!({"token": token, "expirationTimestamp": expires});
        Ok(Reply::with_code(201, out))
    }

    async fn node_subresource(&self, call: &Call<'_>, sub: &str) -> ApiResult<Reply> {
        let (obj, _, _, name) = self.parent(call).await?;
        if call.target.info.resource == "pods"
            && obj["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        Err(ApiError::unavailable(format!(
            "{}/{sub} needs a kubelet connection, which this version of kelp does not provide yet",
            call.target.info.resource
        )))
    }
}

/// The autoscaling/v1 Scale of a custom resource, from its CRD's paths.
fn custom_scale_of(obj: &Value, paths: &crate::api::custom::definition::ScalePaths) -> Value {
    use crate::api::custom::strategy::get_path;
    let meta = &obj["metadata"];
    let int = |path: &str| get_path(obj, path).and_then(Value::as_i64).unwrap_or(0);
    let selector = paths
        .label_selector
        .as_deref()
        .and_then(|p| get_path(obj, p))
        .and_then(Value::as_str)
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": int(&paths.spec_replicas)},
        "status": {"replicas": int(&paths.status_replicas), "selector": selector},
    })
}

/// The autoscaling/v1 Scale of a workload.
fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    if let Some(paths) = info.custom.and_then(|c| c.scale.as_ref()) {
        return custom_scale_of(obj, paths);
    }
    let meta = &obj["metadata"];
    let selector = obj["spec"]["selector"]
        .as_object()
        .and_then(|_| {
            crate::api::selectors::LabelSelector::from_json(&obj["spec"]["selector"]).ok()
        })
        .map(|s| s.to_string())
        .or_else(|| {
            obj["spec"]["selector"].as_object().map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        });
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.unwrap_or_default()},
    })
}

/// Sets (or adds) a status condition.
fn set_condition(obj: &mut Value, kind: &str, status: &str) {
    let now = object::now_rfc3339();
    let cond =
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    let conditions = &mut obj["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    if let Some(list) = conditions.as_array_mut() {
        match list.iter_mut().find(|c| c["type"] == kind) {
            Some(c) => *c = cond,
            None => list.push(cond),
        }
    }
}
