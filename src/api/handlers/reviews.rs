//! The review APIs: `authentication.k8s.io` TokenReview and
//! SelfSubjectReview, and `authorization.k8s.io` SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectAccessReview and
//! SelfSubjectRulesReview.
//!
//! Nothing is stored: the request comes back with its `status` filled in,
//! as upstream answers them. They are what `kubectl auth can-i`/`whoami`,
//! metrics-server, cert-manager and every aggregated or webhook server ask
//! at run time.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Api, Call, Reply};
use crate::api::authn::{self, User};
use crate::api::authz::{Attributes, Decision, ResourceAttributes, Target};
use crate::api::status::{ApiError, ApiResult, Cause};
use crate::store::Store;

impl<S: Store> Api<S> {
    /// Answers a review `create`.
    pub(super) async fn review(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let info = call.target.info;
        let mut body = crate::api::strategy::decode_body(call.body, call.content_type)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("the request body must be an object"));
        }
        body["apiVersion"] = json!(info.api_version());
        body["kind"] = json!(info.kind);
        let status = match info.resource {
            "selfsubjectreviews" => json!({"userInfo": user_info(call.user)}),
            "tokenreviews" => self.token_review(&body)?,
            "selfsubjectaccessreviews" => {
                self.access_review(call.user, &body["spec"], info.kind, None)
                    .await?
            }
            "subjectaccessreviews" => {
                let user = spec_user(&body["spec"]);
                self.access_review(&user, &body["spec"], info.kind, None)
                    .await?
            }
            "localsubjectaccessreviews" => {
                let ns = call.target.namespace.clone().unwrap_or_default();
                let user = spec_user(&body["spec"]);
                self.access_review(&user, &body["spec"], info.kind, Some(&ns))
                    .await?
            }
            "selfsubjectrulesreviews" => self.rules_review(call.user, &body["spec"])?,
            other => return Err(ApiError::no_route(other)),
        };
        body["status"] = status;
        if body["metadata"].is_null() {
            body["metadata"] = json!({});
        }
        body["metadata"]["creationTimestamp"] = Value::Null;
        Ok(Reply::with_code(201, body))
    }

    fn token_review(&self, body: &Value) -> ApiResult<Value> {
        let Some(token) = body["spec"]["token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(invalid(
                "TokenReview",
                "spec.token",
                "Required value: token is required",
            ));
        };
        let audiences: Vec<String> = body["spec"]["audiences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        Ok(
            match authn::from_token(&self.pki, &self.cache, token, &audiences) {
                Ok(user) => {
                    let shown: Vec<String> = if audiences.is_empty() {
                        crate::pki::DEFAULT_API_AUDIENCES
                            .iter()
                            .map(|a| a.to_string())
                            .collect()
                    } else {
                        audiences
                    };
                    json!({"authenticated": true, "user": user_info(&user), "audiences": shown})
                }
                Err(e) => json!({"user": {}, "error": format!("[invalid bearer token, {e}]")}),
            },
        )
    }

    async fn access_review(
        &self,
        user: &User,
        spec: &Value,
        kind: &str,
        local_namespace: Option<&str>,
    ) -> ApiResult<Value> {
        let resource = &spec["resourceAttributes"];
        let non_resource = &spec["nonResourceAttributes"];
        let (verb, target) = match (resource.is_object(), non_resource.is_object()) {
            (true, false) => {
                let s = |k: &str| resource[k].as_str().unwrap_or_default().to_string();
                let mut namespace = s("namespace");
                if let Some(ns) = local_namespace {
                    if namespace.is_empty() {
                        namespace = ns.to_string();
                    } else if namespace != ns {
                        return Err(invalid(
                            kind,
                            "spec.resourceAttributes.namespace",
                            &format!(
                                "Invalid value: \"{namespace}\": must match metadata.namespace"
                            ),
                        ));
                    }
                }
                (
                    s("verb"),
                    Target::Resource(ResourceAttributes {
                        group: s("group"),
                        resource: s("resource"),
                        subresource: s("subresource"),
                        namespace,
                        name: s("name"),
                    }),
                )
            }
            (false, true) => (
                non_resource["verb"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                Target::NonResource(
                    non_resource["path"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            ),
            (true, true) => {
                return Err(invalid(
                    kind,
                    "spec.nonResourceAttributes",
                    "Invalid value: \"\": cannot be specified in combination with resourceAttributes",
                ));
            }
            (false, false) => {
                return Err(invalid(
                    kind,
                    "spec.resourceAttributes",
                    "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
        };
        if (kind == "SubjectAccessReview" || kind == "LocalSubjectAccessReview")
            && user.name.is_empty()
            && user.groups.is_empty()
        {
            return Err(invalid(
                kind,
                "spec.user",
                "Invalid value: \"\": at least one of user or group must be specified",
            ));
        }
        let attrs = Attributes {
            user,
            verb: &verb,
            target: &target,
        };
        Ok(
            match self
                .authz
                .authorize(&attrs, self.store.current_revision())
                .await
            {
                Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
                Decision::Deny(reason) => {
                    json!({"allowed": false, "denied": true, "reason": reason})
                }
                Decision::NoOpinion(reason) => json!({"allowed": false, "reason": reason}),
            },
        )
    }

    fn rules_review(&self, user: &User, spec: &Value) -> ApiResult<Value> {
        let Some(namespace) = spec["namespace"].as_str().filter(|n| !n.is_empty()) else {
            return Err(invalid(
                "SelfSubjectRulesReview",
                "spec.namespace",
                "Required value: namespace is required",
            ));
        };
        let (rules, errors) = self.authz.rbac().rules_for(user, namespace);
        let mut resource_rules = Vec::new();
        let mut non_resource_rules = Vec::new();
        for r in rules {
            if r.non_resource_urls.is_empty() {
                let mut rule =
                    json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
                if !r.resource_names.is_empty() {
                    rule["resourceNames"] = json!(r.resource_names);
                }
                resource_rules.push(rule);
            } else {
                non_resource_rules
                    .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
            }
        }
        let mut status = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": !errors.is_empty(),
        });
        if !errors.is_empty() {
            status["evaluationError"] = json!(errors.join(", "));
        }
        Ok(status)
    }
}

fn user_info(user: &User) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

fn spec_user(spec: &Value) -> User {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let extra: BTreeMap<String, Vec<String>> = spec["extra"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), strings(v)))
        .collect();
    User {
        name: spec["user"].as_str().unwrap_or_default().to_string(),
        uid: spec["uid"].as_str().unwrap_or_default().to_string(),
        groups: strings(&spec["groups"]),
        extra,
    }
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    let reason = if message.starts_with("Required") {
        "FieldValueRequired"
    } else {
        "FieldValueInvalid"
    };
    ApiError::invalid(
        if kind.ends_with("Review") && kind != "TokenReview" && kind != "SelfSubjectReview" {
            "authorization.k8s.io"
        } else {
            "authentication.k8s.io"
        },
        kind,
        "",
        vec![Cause {
            reason: reason.into(),
            field: field.into(),
            message: message.into(),
        }],
    )
}
