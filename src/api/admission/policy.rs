//! ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1): CEL
//! validations bound to requests by ValidatingAdmissionPolicyBindings,
//! evaluated in the apiserver, before the validating webhooks as upstream
//! orders the plugins.
//!
//! For each policy whose `matchConstraints` match the request, each of its
//! bindings whose `matchResources` also match is evaluated once per param
//! object (or once without params): `variables` first, then
//! `matchConditions` (all must hold), then the `validations`. A false
//! validation is a denial with its `message` / `messageExpression` /
//! `failed expression: …`; an error follows the policy's `failurePolicy`.
//! What a denial does is the binding's `validationActions`: Deny refuses
//! the request, Warn adds a warning, Audit only records (kelp has no audit
//! log, so nothing). Texts and status codes are upstream's dispatcher's.
//!
//! Expressions are compiled once per source text (see
//! [`crate::api::cel::compile_cached`]). Variables are evaluated in order
//! before the validations rather than lazily: one that fails is left out,
//! so an expression using it fails as it would upstream.

use serde_json::{Map, Value, json};

use super::Attributes;
use super::webhook::{exempt, review};
use crate::api::cel::{CompileOptions, POLICY_VARIABLES, compile_cached};
use crate::api::handlers::Api;
use crate::api::object;
use crate::api::registry::resources::{self, ResourceInfo};
use crate::api::selectors::LabelSelector;
use crate::api::status::{ApiError, ApiResult, Cause, qualified};
use crate::store::Store;

const GROUP: &str = "admissionregistration.k8s.io";

/// One decision of one evaluation that did not admit.
struct Denial {
    policy: String,
    binding: Option<String>,
    message: String,
    reason: &'static str,
}

/// The outcome of evaluating one binding for one param.
enum Outcome {
    Admit,
    Deny {
        message: String,
        reason: &'static str,
    },
}

fn expression_options(expect_bool: bool) -> CompileOptions<'static> {
    CompileOptions {
        variables: POLICY_VARIABLES,
        expect_bool,
    }
}

/// A validation's `reason`, as the static text `ApiError` carries.
fn reason_of(validation: &Value) -> &'static str {
    match validation["reason"].as_str() {
        Some("Forbidden") => "Forbidden",
        Some("Unauthorized") => "Unauthorized",
        Some("RequestEntityTooLarge") => "RequestEntityTooLarge",
        _ => "Invalid",
    }
}

/// Upstream `reasonToCode`.
fn code_of(reason: &str) -> u16 {
    match reason {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    }
}

fn fails_closed(policy: &Value) -> bool {
    policy["spec"]["failurePolicy"].as_str() != Some("Ignore")
}

/// Evaluates `validations` for one set of variables.
fn evaluate(policy: &Value, vars: &[(&str, &Value)]) -> Vec<Outcome> {
    let spec = &policy["spec"];
    let on_error = |message: String| {
        if fails_closed(policy) {
            Outcome::Deny {
                message,
                reason: "Invalid",
            }
        } else {
            Outcome::Admit
        }
    };
    for condition in spec["matchConditions"].as_array().into_iter().flatten() {
        let expression = condition["expression"].as_str().unwrap_or_default();
        let held = compile_cached(expression, &expression_options(true))
            .and_then(|p| p.evaluate_bool(vars));
        match held {
            Ok(true) => {}
            Ok(false) => return Vec::new(),
            Err(e) => {
                let name = condition["name"].as_str().unwrap_or_default();
                return vec![on_error(format!(
                    "failed to evaluate match condition '{name}': expression '{expression}' resulted in error: {e}"
                ))];
            }
        }
    }
    let mut outcomes = Vec::new();
    for validation in spec["validations"].as_array().into_iter().flatten() {
        let expression = validation["expression"].as_str().unwrap_or_default();
        let result = compile_cached(expression, &expression_options(true))
            .and_then(|p| p.evaluate_bool(vars));
        outcomes.push(match result {
            Ok(true) => Outcome::Admit,
            Ok(false) => Outcome::Deny {
                message: failure_message(validation, vars),
                reason: reason_of(validation),
            },
            Err(e) => on_error(format!("expression '{expression}' resulted in error: {e}")),
        });
    }
    outcomes
}

/// messageExpression's result when it is a usable one-line string, else
/// `message`, else `failed expression: <expression>` (upstream's fallbacks).
fn failure_message(validation: &Value, vars: &[(&str, &Value)]) -> String {
    if let Some(source) = validation["messageExpression"].as_str() {
        let text = compile_cached(source, &expression_options(false))
            .and_then(|p| p.evaluate(vars))
            .ok()
            .and_then(|v| v.as_str().map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty() && !s.contains('\n') && s.len() <= 5 * 1024);
        if let Some(text) = text {
            return text;
        }
    }
    match validation["message"].as_str().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!(
            "failed expression: {}",
            validation["expression"].as_str().unwrap_or_default().trim()
        ),
    }
}

/// `spec.variables` evaluated in order; each sees the ones before it.
fn variables(policy: &Value, vars: &[(&str, &Value)]) -> Value {
    let mut done = Map::new();
    for variable in policy["spec"]["variables"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().unwrap_or_default();
        let expression = variable["expression"].as_str().unwrap_or_default();
        let so_far = Value::Object(done.clone());
        let mut with: Vec<(&str, &Value)> = vars.to_vec();
        with.push(("variables", &so_far));
        if let Ok(value) =
            compile_cached(expression, &expression_options(false)).and_then(|p| p.evaluate(&with))
        {
            done.insert(name.to_string(), value);
        }
    }
    Value::Object(done)
}

impl<S: Store> Api<S> {
    /// The ValidatingAdmissionPolicy plugin. Returns the Warn actions'
    /// warnings; the first Deny refuses the request.
    pub(crate) async fn admit_validating_policies(
        &self,
        attrs: &Attributes<'_>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        if exempt(attrs.info) {
            return Ok(Vec::new());
        }
        let (Some(policies), Some(bindings)) = (
            resources::find(GROUP, "v1", "validatingadmissionpolicies"),
            resources::find(GROUP, "v1", "validatingadmissionpolicybindings"),
        ) else {
            return Ok(Vec::new());
        };
        let (bindings, _) = self.cache.list(&bindings.key_prefix(), |_| true);
        if bindings.is_empty() {
            return Ok(Vec::new());
        }
        let bindings: Vec<Value> = bindings.iter().map(|b| b.value()).collect();
        let (policies, _) = self.cache.list(&policies.key_prefix(), |_| true);
        let mut denials = Vec::new();
        let mut warnings = Vec::new();
        let review = review(attrs, "", new, old);
        let request = &review["request"];
        let null = Value::Null;
        for policy in policies.iter().map(|p| p.value()) {
            let name = object::name(&policy).unwrap_or_default().to_string();
            let constraints = &policy["spec"]["matchConstraints"];
            if !self.constraints_match(constraints, attrs, new, old) {
                continue;
            }
            for binding in bindings
                .iter()
                .filter(|b| b["spec"]["policyName"] == name.as_str())
            {
                let binding_name = object::name(binding).unwrap_or_default().to_string();
                let resources = &binding["spec"]["matchResources"];
                if !resources.is_null() && !self.constraints_match(resources, attrs, new, old) {
                    continue;
                }
                let params = match self.params(&policy, binding, attrs) {
                    Ok(p) => p,
                    Err(e) => {
                        if fails_closed(&policy) {
                            denials.push(Denial {
                                policy: name.clone(),
                                binding: Some(binding_name.clone()),
                                message: format!("failed to configure binding: {e}"),
                                reason: "Invalid",
                            });
                        }
                        continue;
                    }
                };
                let namespace = attrs
                    .namespace
                    .filter(|_| attrs.info.namespaced)
                    .and_then(|ns| self.namespace_object(ns))
                    .unwrap_or(Value::Null);
                for param in &params {
                    let base: Vec<(&str, &Value)> = vec![
                        ("object", new.unwrap_or(&null)),
                        ("oldObject", old.unwrap_or(&null)),
                        ("request", request),
                        ("params", param),
                        ("namespaceObject", &namespace),
                    ];
                    let variables = variables(&policy, &base);
                    let mut vars = base.clone();
                    vars.push(("variables", &variables));
                    for outcome in evaluate(&policy, &vars) {
                        let Outcome::Deny { message, reason } = outcome else {
                            continue;
                        };
                        for action in strings(&binding["spec"]["validationActions"]) {
                            match action {
                                "Deny" => denials.push(Denial {
                                    policy: name.clone(),
                                    binding: Some(binding_name.clone()),
                                    message: message.clone(),
                                    reason,
                                }),
                                "Warn" => warnings.push(format!(
                                    "Validation failed for ValidatingAdmissionPolicy '{name}' with binding '{binding_name}': {message}"
                                )),
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        match denials.into_iter().next() {
            Some(denial) => Err(self.denied(attrs, new.or(old), denial)),
            None => Ok(warnings),
        }
    }

    /// `matchConstraints` / `matchResources`: resource rules minus the
    /// excluded ones, and the selectors.
    fn constraints_match(
        &self,
        constraints: &Value,
        attrs: &Attributes<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> bool {
        let rules = &constraints["resourceRules"];
        // A binding's matchResources without rules leaves the resources to
        // the policy.
        let rules = if rules.as_array().is_none_or(Vec::is_empty) {
            &json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*", "*/*"]}])
        } else {
            rules
        };
        if !self.request_matches(rules, constraints, attrs, obj, old) {
            return false;
        }
        let excluded = &constraints["excludeResourceRules"];
        excluded.as_array().is_none_or(|e| e.is_empty())
            || !self.request_matches(excluded, &Value::Null, attrs, obj, old)
    }

    /// The param objects of a binding (`[null]` when the policy takes none).
    fn params(
        &self,
        policy: &Value,
        binding: &Value,
        attrs: &Attributes<'_>,
    ) -> Result<Vec<Value>, String> {
        let kind = &policy["spec"]["paramKind"];
        if kind.is_null() {
            return Ok(vec![Value::Null]);
        }
        let param_ref = &binding["spec"]["paramRef"];
        if param_ref.is_null() {
            return Err(format!(
                "paramKind kind `{}` is set but paramRef is not",
                kind["kind"].as_str().unwrap_or_default()
            ));
        }
        let info = self.param_resource(kind).ok_or_else(|| {
            format!(
                "failed to find resource referenced by paramKind: '{}, Kind={}'",
                kind["apiVersion"].as_str().unwrap_or_default(),
                kind["kind"].as_str().unwrap_or_default()
            )
        })?;
        let namespace = match param_ref["namespace"].as_str().filter(|s| !s.is_empty()) {
            Some(ns) => Some(ns.to_string()),
            None if info.namespaced => match attrs.namespace {
                Some(ns) => Some(ns.to_string()),
                None => {
                    return Err(
                        "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
                            .into(),
                    );
                }
            },
            None => None,
        };
        let found: Vec<Value> = match param_ref["name"].as_str().filter(|s| !s.is_empty()) {
            Some(name) => self
                .cache
                .get(&info.key(namespace.as_deref(), name))
                .map(|o| o.value())
                .into_iter()
                .collect(),
            None => {
                let selector = LabelSelector::from_json(&param_ref["selector"])
                    .map_err(|e| format!("invalid paramRef selector: {e}"))?;
                let (items, _) = self
                    .cache
                    .list(&info.key(namespace.as_deref(), ""), |_| true);
                items
                    .iter()
                    .map(|o| o.value())
                    .filter(|o| selector.matches_object(o))
                    .collect()
            }
        };
        if found.is_empty() && param_ref["parameterNotFoundAction"].as_str() != Some("Allow") {
            return Err(
                "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
            );
        }
        Ok(found)
    }

    /// The resource of a `paramKind` ({apiVersion, kind}), built-in or
    /// custom.
    fn param_resource(&self, kind: &Value) -> Option<&'static ResourceInfo> {
        let api_version = kind["apiVersion"].as_str()?;
        let kind = kind["kind"].as_str()?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        resources::find_kind(group, kind)
            .filter(|r| r.version == version || r.group == group)
            .or_else(|| {
                self.custom
                    .all()
                    .iter()
                    .copied()
                    .find(|r| r.group == group && r.version == version && r.kind == kind)
            })
    }

    /// Upstream's refusal: `admission.NewForbidden` with the decision's
    /// reason and code, and the message as a cause.
    fn denied(&self, attrs: &Attributes<'_>, obj: Option<&Value>, denial: Denial) -> ApiError {
        let message = match &denial.binding {
            Some(b) => format!(
                "ValidatingAdmissionPolicy '{}' with binding '{b}' denied request: {}",
                denial.policy, denial.message
            ),
            None => format!(
                "ValidatingAdmissionPolicy '{}' denied request: {}",
                denial.policy, denial.message
            ),
        };
        let name = obj
            .and_then(object::name)
            .filter(|n| !n.is_empty())
            .or(attrs.name)
            .unwrap_or("Unknown");
        let (group, resource) = (attrs.info.group, attrs.info.resource);
        ApiError::new(
            code_of(denial.reason),
            denial.reason,
            format!(
                "{} \"{name}\" is forbidden: {message}",
                qualified(group, resource)
            ),
        )
        .about(group, resource, name)
        .with_causes(vec![Cause {
            reason: String::new(),
            field: String::new(),
            message,
        }])
    }
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(validation: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "variables": [{"name": "replicas", "expression": "object.spec.replicas"}],
            "validations": [validation]}})
    }

    #[test]
    fn validations_deny_with_upstreams_messages() {
        let object = json!({"spec": {"replicas": 7}});
        let null = Value::Null;
        let base: Vec<(&str, &Value)> = vec![("object", &object), ("oldObject", &null)];
        let check = |validation: Value| {
            let p = policy(validation);
            let variables = variables(&p, &base);
            let mut vars = base.clone();
            vars.push(("variables", &variables));
            match evaluate(&p, &vars).pop() {
                Some(Outcome::Deny { message, reason }) => Some((message, reason)),
                _ => None,
            }
        };
        assert_eq!(
            check(json!({"expression": "variables.replicas <= 5"}))
                .unwrap()
                .0,
            "failed expression: variables.replicas <= 5"
        );
        assert_eq!(
            check(
                json!({"expression": "object.spec.replicas <= 5", "message": "too many",
                          "reason": "Forbidden"})
            ),
            Some(("too many".to_string(), "Forbidden"))
        );
        assert_eq!(
            check(json!({"expression": "object.spec.replicas <= 5",
                          "messageExpression": "'replicas: ' + string(object.spec.replicas)"}))
            .unwrap()
            .0,
            "replicas: 7"
        );
        assert!(check(json!({"expression": "variables.replicas <= 10"})).is_none());
        let error = check(json!({"expression": "object.spec.missing > 1"}))
            .unwrap()
            .0;
        assert!(
            error.starts_with("expression 'object.spec.missing > 1' resulted in error: "),
            "{error}"
        );
    }
}
