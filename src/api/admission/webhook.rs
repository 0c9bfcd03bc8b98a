//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook: the
//! admissionregistration.k8s.io/v1 webhook configurations, called with an
//! AdmissionReview v1 over HTTPS as kube-apiserver calls them.
//!
//! Which webhooks a request reaches is upstream's matching: `rules`
//! (operations, groups, versions, resources with `/subresource` forms,
//! scope), `namespaceSelector` (the namespace's labels), `objectSelector`
//! (the new or the old object's labels) and `matchConditions` (CEL).
//! Mutating webhooks run one after the other and their JSONPatch answers
//! are applied in turn; those with `reinvocationPolicy: IfNeeded` are
//! called once more when a later webhook changed the object. Validating
//! webhooks run concurrently. A webhook that cannot be called answers with
//! its `failurePolicy` (Fail: 500 naming the webhook; Ignore: skipped)
//! within its `timeoutSeconds`; nothing waits longer.
//!
//! The webhook configurations themselves, and the admission policies, are
//! never sent to webhooks (upstream exempts them so that a broken webhook
//! can always be removed).

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::{Attributes, Operation};
use crate::api::cel::{CompileOptions, WEBHOOK_MATCH_CONDITION_VARIABLES, compile_cached};
use crate::api::extension_client::{self, Backend};
use crate::api::handlers::Api;
use crate::api::object;
use crate::api::registry::resources::{self, ResourceInfo};
use crate::api::selectors::LabelSelector;
use crate::api::status::{ApiError, ApiResult};
use crate::store::Store;

const GROUP: &str = "admissionregistration.k8s.io";

/// Mutating or validating.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// MutatingWebhookConfiguration.
    Mutating,
    /// ValidatingWebhookConfiguration.
    Validating,
}

impl Phase {
    fn resource(self) -> &'static str {
        match self {
            Phase::Mutating => "mutatingwebhookconfigurations",
            Phase::Validating => "validatingwebhookconfigurations",
        }
    }
}

/// One webhook of a configuration.
struct Hook {
    name: String,
    spec: Value,
}

impl Hook {
    fn fail_closed(&self) -> bool {
        self.spec["failurePolicy"].as_str() != Some("Ignore")
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.spec["timeoutSeconds"]
                .as_u64()
                .unwrap_or(10)
                .clamp(1, 30),
        )
    }

    fn reinvoke(&self) -> bool {
        self.spec["reinvocationPolicy"] == "IfNeeded"
    }
}

/// The operation's name in rules and AdmissionReviews.
pub(super) fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
    }
}

/// Whether requests for `info` are exempt from webhooks and policies (so
/// that a broken one can always be fixed).
pub(super) fn exempt(info: &ResourceInfo) -> bool {
    info.group == GROUP
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// Upstream's rule matcher.
fn rule_matches(rule: &Value, attrs: &Attributes<'_>) -> bool {
    let op = operation_name(attrs.operation);
    let info = attrs.info;
    let any_or = |list: &Value, want: &str| strings(list).any(|x| x == "*" || x == want);
    if !any_or(&rule["operations"], op)
        || !any_or(&rule["apiGroups"], info.group)
        || !any_or(&rule["apiVersions"], info.version)
    {
        return false;
    }
    let resource_ok = strings(&rule["resources"]).any(|r| {
        let (res, sub) = match r.split_once('/') {
            Some((res, sub)) => (res, Some(sub)),
            None => (r, None),
        };
        let res_ok = res == "*" || res == info.resource;
        let sub_ok = match (sub, attrs.subresource) {
            (None, None) => true,
            (Some(want), Some(have)) => want == "*" || want == have,
            _ => false,
        };
        res_ok && sub_ok
    });
    if !resource_ok {
        return false;
    }
    match rule["scope"].as_str().unwrap_or("*") {
        "Cluster" => !info.namespaced,
        "Namespaced" => info.namespaced,
        _ => true,
    }
}

fn labels_of(obj: Option<&Value>) -> Option<&serde_json::Map<String, Value>> {
    obj.and_then(|o| o["metadata"]["labels"].as_object())
}

fn selector_matches(selector: &Value, labels: Option<&serde_json::Map<String, Value>>) -> bool {
    if selector.is_null() {
        return true;
    }
    match LabelSelector::from_json(selector) {
        Ok(s) => s.matches(labels),
        Err(_) => false,
    }
}

/// The AdmissionReview request upstream sends.
pub(super) fn review(
    attrs: &Attributes<'_>,
    uid: &str,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Value {
    let info = attrs.info;
    let user = attrs.user;
    let (sub_kind, sub_group, sub_version) =
        match attrs.subresource.and_then(|s| info.subresource(s)) {
            Some(s) if !s.kind.is_empty() => (
                s.kind,
                s.group.unwrap_or(info.group),
                s.version.unwrap_or(info.version),
            ),
            _ => (info.kind, info.group, info.version),
        };
    let options = match attrs.operation {
        Operation::Create => json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Update => json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Delete => json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}),
    };
    let name = attrs
        .name
        .map(str::to_string)
        .or_else(|| object.and_then(object::name).map(str::to_string))
        .unwrap_or_default();
    let mut request = json!({
        "uid": uid,
        "kind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
        "resource": {"group": info.group, "version": info.version, "resource": info.resource},
        "requestKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
        "requestResource": {"group": info.group, "version": info.version, "resource": info.resource},
        "name": name,
        "operation": operation_name(attrs.operation),
        "userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups, "extra": user.extra},
        "object": object.cloned().unwrap_or(Value::Null),
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": attrs.dry_run,
        "options": options,
    });
    if let Some(ns) = attrs.namespace {
        request["namespace"] = json!(ns);
    }
    if let Some(sub) = attrs.subresource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": request,
    })
}

/// What one webhook answered.
struct Answer {
    allowed: bool,
    status: Value,
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

/// Upstream's `webhookerrors.ToStatusErr`.
fn denial(name: &str, status: &Value) -> ApiError {
    let denied_by = format!("admission webhook \"{name}\" denied the request");
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = match (
        status["message"].as_str().filter(|m| !m.is_empty()),
        status["reason"].as_str().filter(|r| !r.is_empty()),
    ) {
        (Some(m), _) => format!("{denied_by}: {m}"),
        (None, Some(r)) => format!("{denied_by}: {r}"),
        _ => format!("{denied_by} without explanation"),
    };
    // The reason is one of metav1's; a webhook's own words stay in the
    // message.
    const REASONS: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    let reason = status["reason"]
        .as_str()
        .and_then(|r| REASONS.iter().copied().find(|known| *known == r))
        .unwrap_or(match code {
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            422 => "Invalid",
            _ => "BadRequest",
        });
    ApiError::new(code, reason, message)
}

impl<S: Store> Api<S> {
    /// The webhooks of a phase, configuration by configuration (sorted by
    /// name, as upstream orders them), each with its configuration.
    fn webhooks(&self, phase: Phase) -> Vec<Hook> {
        let Some(info) = resources::find(GROUP, "v1", phase.resource()) else {
            return Vec::new();
        };
        let (configs, _) = self.cache.list(&info.key_prefix(), |_| true);
        configs
            .iter()
            .flat_map(|c| {
                let c = c.value();
                c["webhooks"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|spec| Hook {
                        name: spec["name"].as_str().unwrap_or_default().to_string(),
                        spec,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Whether `hook` applies to the request (rules and selectors; match
    /// conditions are [`Api::conditions_hold`]).
    fn hook_matches(
        &self,
        hook: &Hook,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> bool {
        self.request_matches(&hook.spec["rules"], &hook.spec, attrs, obj, old)
    }

    /// Upstream's request matcher, shared by webhooks and admission
    /// policies: one of `rules` matches the request, and the
    /// `objectSelector` and `namespaceSelector` of `selectors` (either may
    /// be absent) match the object and its namespace.
    pub(super) fn request_matches(
        &self,
        rules: &Value,
        selectors: &Value,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> bool {
        let name = attrs.name.or_else(|| obj.or(old).and_then(object::name));
        let named = |rule: &Value| {
            let names: Vec<&str> = strings(&rule["resourceNames"]).collect();
            names.is_empty() || name.is_some_and(|n| names.contains(&n))
        };
        if !rules
            .as_array()
            .is_some_and(|rules| rules.iter().any(|r| rule_matches(r, attrs) && named(r)))
        {
            return false;
        }
        let object_selector = &selectors["objectSelector"];
        if !(selector_matches(object_selector, labels_of(obj))
            || (old.is_some() && selector_matches(object_selector, labels_of(old))))
        {
            return false;
        }
        let namespace_selector = &selectors["namespaceSelector"];
        if namespace_selector.is_null() {
            return true;
        }
        if attrs.info.group.is_empty() && attrs.info.resource == "namespaces" {
            return selector_matches(namespace_selector, labels_of(obj.or(old)));
        }
        let Some(ns) = attrs.namespace.filter(|_| attrs.info.namespaced) else {
            return true;
        };
        selector_matches(
            namespace_selector,
            labels_of(self.namespace_object(ns).as_ref()),
        )
    }

    /// The namespace `name` from the cache.
    pub(super) fn namespace_object(&self, name: &str) -> Option<Value> {
        resources::find("", "v1", "namespaces")
            .and_then(|n| self.cache.get(&n.key(None, name)))
            .map(|n| n.value())
    }

    /// `matchConditions`: all must hold; an error follows the failure
    /// policy (upstream).
    fn conditions_hold(&self, hook: &Hook, review: &Value) -> Result<bool, String> {
        let request = &review["request"];
        for condition in hook.spec["matchConditions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let expression = condition["expression"].as_str().unwrap_or_default();
            let program = compile_cached(
                expression,
                &CompileOptions {
                    variables: WEBHOOK_MATCH_CONDITION_VARIABLES,
                    expect_bool: true,
                },
            )?;
            let held = program.evaluate_bool(&[
                ("object", &request["object"]),
                ("oldObject", &request["oldObject"]),
                ("request", request),
            ])?;
            if !held {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Calls one webhook.
    async fn call_hook(&self, hook: &Hook, review: &Value) -> Result<Answer, String> {
        let backend = Backend::from_client_config(&hook.spec["clientConfig"], false)
            .map_err(|e| e.to_string())?;
        let timeout = hook.timeout();
        let query = format!("timeout={}s", timeout.as_secs());
        let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
        let url = backend.display_url(&format!("?{query}"));
        let request = extension_client::json_post(&query, body);
        let response = extension_client::call(&self.cache, &backend, request, None, timeout)
            .await
            .map_err(|e| format!("failed to call webhook: Post \"{url}\": {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "received invalid webhook response: the server responded with the status code {}",
                response.status().as_u16()
            ));
        }
        let answer: Value = serde_json::from_slice(response.body())
            .map_err(|e| format!("received invalid webhook response: {e}"))?;
        let response = &answer["response"];
        if response["uid"] != review["request"]["uid"] {
            return Err(format!(
                "received invalid webhook response: expected response.uid={}, got {}",
                review["request"]["uid"], response["uid"]
            ));
        }
        let patch = match response["patch"].as_str() {
            Some(b64) => {
                if response["patchType"] != "JSONPatch" {
                    return Err(format!(
                        "received invalid webhook response: unsupported patch type {}",
                        response["patchType"]
                    ));
                }
                Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| format!("received invalid webhook response: {e}"))?,
                )
            }
            None => None,
        };
        Ok(Answer {
            allowed: response["allowed"] == true,
            status: response["status"].clone(),
            patch,
            warnings: strings(&response["warnings"]).map(str::to_string).collect(),
        })
    }

    /// A webhook that could not be called or answered nonsense: refused
    /// (Fail) or skipped (Ignore).
    fn call_failed(&self, hook: &Hook, why: String) -> ApiResult<()> {
        if hook.fail_closed() {
            tracing::warn!(webhook = %hook.name, error = %why, "webhook failed (failurePolicy Fail)");
            Err(ApiError::internal(format!(
                "failed calling webhook \"{}\": {why}",
                hook.name
            )))
        } else {
            tracing::warn!(webhook = %hook.name, error = %why, "webhook failed (failurePolicy Ignore)");
            Ok(())
        }
    }

    /// Refuses a dry run to a webhook that may have side effects.
    fn check_dry_run(hook: &Hook, attrs: &Attributes<'_>) -> ApiResult<()> {
        if attrs.dry_run
            && !matches!(
                hook.spec["sideEffects"].as_str(),
                Some("None" | "NoneOnDryRun")
            )
        {
            return Err(ApiError::bad_request(format!(
                "admission webhook \"{}\" does not support dry run",
                hook.name
            )));
        }
        Ok(())
    }

    /// MutatingAdmissionWebhook. Returns the webhooks' warnings.
    pub(crate) async fn admit_mutating_webhooks(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        if exempt(attrs.info) {
            return Ok(Vec::new());
        }
        let hooks = self.webhooks(Phase::Mutating);
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let mut warnings = Vec::new();
        let mut changed_by: Option<usize> = None;
        let mut called = vec![false; hooks.len()];
        for round in 0..2 {
            for (i, hook) in hooks.iter().enumerate() {
                // The second round calls again only the IfNeeded webhooks
                // that ran before a later one changed the object.
                if round == 1
                    && !(called[i] && hook.reinvoke() && changed_by.is_some_and(|c| c != i))
                {
                    continue;
                }
                if !self.hook_matches(hook, attrs, Some(obj), old) {
                    continue;
                }
                let uid = object::new_uid();
                let review = review(attrs, &uid, Some(obj), old);
                match self.conditions_hold(hook, &review) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        self.call_failed(
                            hook,
                            format!("failed to evaluate match conditions: {e}"),
                        )?;
                        continue;
                    }
                }
                Self::check_dry_run(hook, attrs)?;
                let answer = match self.call_hook(hook, &review).await {
                    Ok(a) => a,
                    Err(why) => {
                        self.call_failed(hook, why)?;
                        continue;
                    }
                };
                called[i] = true;
                warnings.extend(answer.warnings);
                if !answer.allowed {
                    return Err(denial(&hook.name, &answer.status));
                }
                if let Some(patch) = answer.patch {
                    let patched = crate::api::patch::apply_patch(
                        obj,
                        crate::api::patch::PatchType::Json,
                        &patch,
                        crate::api::patch::TypeRef::builtin(attrs.info.group, attrs.info.kind),
                    )
                    .map_err(|e| {
                        ApiError::internal(format!(
                            "admission webhook \"{}\" returned an invalid patch: {e}",
                            hook.name
                        ))
                    })?;
                    if patched != *obj {
                        *obj = patched;
                        changed_by = Some(i);
                    }
                }
            }
            if changed_by.is_none() {
                break;
            }
        }
        Ok(warnings)
    }

    /// ValidatingAdmissionWebhook: every matching webhook is called at
    /// once; the first denial (in configuration order) wins.
    pub(crate) async fn admit_validating_webhooks(
        &self,
        attrs: &Attributes<'_>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        if exempt(attrs.info) {
            return Ok(Vec::new());
        }
        let hooks = self.webhooks(Phase::Validating);
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let mut calls = Vec::new();
        for hook in &hooks {
            if !self.hook_matches(hook, attrs, new, old) {
                continue;
            }
            let uid = object::new_uid();
            let review = review(attrs, &uid, new, old);
            match self.conditions_hold(hook, &review) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    self.call_failed(hook, format!("failed to evaluate match conditions: {e}"))?;
                    continue;
                }
            }
            Self::check_dry_run(hook, attrs)?;
            calls.push(async move { (hook, self.call_hook(hook, &review).await) });
        }
        let mut warnings = Vec::new();
        for (hook, result) in futures::future::join_all(calls).await {
            match result {
                Ok(answer) => {
                    warnings.extend(answer.warnings);
                    if !answer.allowed {
                        return Err(denial(&hook.name, &answer.status));
                    }
                }
                Err(why) => self.call_failed(hook, why)?,
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::authn::User;

    fn attrs<'a>(user: &'a User, resource: &str, sub: Option<&'a str>) -> Attributes<'a> {
        Attributes {
            operation: Operation::Create,
            info: resources::find("", "v1", resource).unwrap(),
            subresource: sub,
            namespace: Some("default"),
            name: None,
            user,
            dry_run: false,
        }
    }

    #[test]
    fn rules_match_as_upstream() {
        let user = User::default();
        let pods = attrs(&user, "pods", None);
        let status = attrs(&user, "pods", Some("status"));
        let rule = |resources: Value| json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": resources});
        assert!(rule_matches(&rule(json!(["pods"])), &pods));
        assert!(!rule_matches(&rule(json!(["pods"])), &status));
        assert!(rule_matches(&rule(json!(["pods/*"])), &status));
        assert!(rule_matches(&rule(json!(["*/*"])), &status));
        assert!(rule_matches(&rule(json!(["*"])), &pods));
        assert!(!rule_matches(&rule(json!(["*"])), &status));
        assert!(!rule_matches(&rule(json!(["services"])), &pods));
        let mut cluster = rule(json!(["pods"]));
        cluster["scope"] = json!("Cluster");
        assert!(!rule_matches(&cluster, &pods));
        let mut update = rule(json!(["pods"]));
        update["operations"] = json!(["UPDATE"]);
        assert!(!rule_matches(&update, &pods));
    }

    #[test]
    fn denials_read_as_upstream() {
        let e = denial(
            "deny.kelp.io",
            &json!({"code": 403, "message": "no thanks"}),
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "admission webhook \"deny.kelp.io\" denied the request: no thanks"
        );
        let e = denial("d", &Value::Null);
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"d\" denied the request without explanation"
        );
    }
}
