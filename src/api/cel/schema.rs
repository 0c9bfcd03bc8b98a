//! `x-kubernetes-validations` of a CRD schema: compiled once per CRD,
//! evaluated on every create and update of its objects.
//!
//! Mirrors `apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go`:
//! rules run at their schema node with `self` bound to the node's value when
//! present, `oldSelf` bound to the correlated old value on update, and the
//! error texts and paths follow upstream's `field.Error`.

use super::budget;
use super::program::{CompileOptions, Expect, Program, Typing, error_text, on_big_stack};
use super::value::to_cel;
use super::{CRD_RULE_VARIABLES, FieldError, PER_CALL_LIMIT, RUNTIME_BUDGET};
use cel::Value;
use cel::objects::OptionalValue;
use serde_json::Value as Json;
use std::sync::Arc;

/// Upstream's `celconfig.MaxEvaluatedMessageExpressionSizeBytes`.
const MAX_MESSAGE_EXPRESSION_LEN: usize = 5 * 1024;

/// Deepest schema we walk; deeper ones are refused rather than recursed.
const MAX_SCHEMA_DEPTH: usize = 256;

const OUT_OF_BUDGET: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

/// The validation rules of a CRD schema, compiled.
#[derive(Debug, Clone, Default)]
pub struct SchemaRules {
    root: Option<Arc<Node>>,
}

#[derive(Debug)]
struct Rule {
    program: Program,
    message_expression: Option<Program>,
    rule: String,
    message: String,
    reason: Option<&'static str>,
    /// The normalized `fieldPath`, appended as a child of the node's path.
    field_path: Option<String>,
    uses_old_self: bool,
    optional_old_self: bool,
}

#[derive(Debug)]
struct Node {
    /// The node's schema, which types the conversion of its values.
    schema: Json,
    rules: Vec<Rule>,
    properties: Vec<(String, Node)>,
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
    /// `x-kubernetes-list-map-keys` when the list type is `map`.
    map_keys: Option<Vec<String>>,
}

impl Node {
    fn type_name(&self) -> &str {
        self.schema.get("type").and_then(Json::as_str).unwrap_or("")
    }
}

/// Compile-time context while walking the schema.
struct Walk {
    errors: Vec<(String, String)>,
    /// The schema path of the nearest non-map list above, where oldSelf
    /// cannot correlate.
    uncorrelatable: Option<String>,
    /// Schema depth of the node being compiled; 0 is the resource root.
    depth: usize,
}

impl SchemaRules {
    /// Compiles every rule of `schema` (an `openAPIV3Schema`). `path_prefix`
    /// is that schema's path in the CRD, used in error paths. Errors are
    /// `(path, message)` pairs as upstream's CRD validation reports them.
    pub fn compile(schema: &Json, path_prefix: &str) -> Result<SchemaRules, Vec<(String, String)>> {
        let mut walk = Walk {
            errors: Vec::new(),
            uncorrelatable: None,
            depth: 0,
        };
        let root = compile_node(schema, path_prefix, &mut walk, 0);
        if !walk.errors.is_empty() {
            return Err(walk.errors);
        }
        Ok(SchemaRules {
            root: root.map(Arc::new),
        })
    }

    /// Whether there is no rule at all, so validation can be skipped.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Validates `obj`; `old` is the stored object on update (for
    /// transition rules), `None` on create. Stops, as upstream does, once the
    /// cost budget is spent.
    pub fn validate(&self, obj: &Json, old: Option<&Json>) -> Vec<FieldError> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        on_big_stack(|| {
            let mut errs = Vec::new();
            let mut remaining = RUNTIME_BUDGET;
            let _ = validate_node(root, "", obj, old, false, &mut remaining, &mut errs);
            errs
        })
    }
}

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn compile_node(schema: &Json, path: &str, walk: &mut Walk, depth: usize) -> Option<Node> {
    if depth > MAX_SCHEMA_DEPTH || !schema.is_object() {
        return None;
    }
    let mut node = Node {
        schema: Json::Null,
        rules: Vec::new(),
        properties: Vec::new(),
        additional: None,
        items: None,
        map_keys: None,
    };
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Json::as_array)
    {
        for (i, raw) in rules.iter().enumerate() {
            let rule_path = format!("{path}.x-kubernetes-validations[{i}]");
            if let Some(rule) = compile_rule(schema, raw, &rule_path, walk) {
                node.rules.push(rule);
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Json::as_object) {
        for (name, sub) in props {
            let sub_path = format!("{path}.properties[{name}]");
            if let Some(n) = compile_node(sub, &sub_path, walk, depth + 1) {
                node.properties.push((name.clone(), n));
            }
        }
    }
    if let Some(sub) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        node.additional = compile_node(
            sub,
            &format!("{path}.additionalProperties"),
            walk,
            depth + 1,
        )
        .map(Box::new);
    }
    if let Some(sub) = schema.get("items").filter(|a| a.is_object()) {
        let is_map_list =
            schema.get("x-kubernetes-list-type").and_then(Json::as_str) == Some("map");
        let saved = walk.uncorrelatable.clone();
        if !is_map_list && walk.uncorrelatable.is_none() {
            walk.uncorrelatable = Some(path.to_string());
        }
        node.items = compile_node(sub, &format!("{path}.items"), walk, depth + 1).map(Box::new);
        walk.uncorrelatable = saved;
        if is_map_list {
            node.map_keys = Some(
                schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Json::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            );
        }
    }
    if node.rules.is_empty()
        && node.properties.is_empty()
        && node.additional.is_none()
        && node.items.is_none()
    {
        return None;
    }
    // Children carry their own schemas; keep only what typing this node's
    // values needs without duplicating whole subtrees more than once.
    node.schema = schema.clone();
    Some(node)
}

/// Go's `json.Marshal` of the internal `ValidationRule`, which has no json
/// tags: upstream prints it as the bad value of compile errors.
fn go_rule_json(raw: &Json) -> String {
    let s = |k: &str| Json::String(raw.get(k).and_then(Json::as_str).unwrap_or("").to_string());
    let text = format!(
        "{{\"Rule\":{},\"Message\":{},\"MessageExpression\":{},\"Reason\":{},\"FieldPath\":{},\"OptionalOldSelf\":{}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        raw.get("reason")
            .filter(|r| r.is_string())
            .cloned()
            .unwrap_or(Json::Null),
        s("fieldPath"),
        raw.get("optionalOldSelf")
            .filter(|r| r.is_boolean())
            .cloned()
            .unwrap_or(Json::Null),
    );
    go_json_escape(&text)
}

/// Go's encoder escapes HTML-significant characters.
fn go_json_escape(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn compile_rule(schema: &Json, raw: &Json, rule_path: &str, walk: &mut Walk) -> Option<Rule> {
    let text = |k: &str| raw.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    let (rule, message, message_expression, field_path) = (
        text("rule"),
        text("message"),
        text("messageExpression"),
        text("fieldPath"),
    );
    let before = walk.errors.len();
    let fail = |walk: &mut Walk, suffix: &str, message: String| {
        walk.errors.push((format!("{rule_path}.{suffix}"), message));
    };
    if rule.trim().is_empty() {
        fail(walk, "rule", "Required value: rule is not specified".into());
        return None;
    }
    if !message.is_empty() && message.trim().is_empty() {
        fail(
            walk,
            "message",
            format!(
                "Invalid value: {}: must be non-empty if specified",
                go_quote(&message)
            ),
        );
    } else if message.trim().contains('\n') {
        fail(
            walk,
            "message",
            format!(
                "Invalid value: {}: must not contain line breaks",
                go_quote(&message)
            ),
        );
    } else if rule.trim().contains('\n') && message.trim().is_empty() {
        fail(
            walk,
            "message",
            "Required value: message must be specified if rule contains line breaks".into(),
        );
    }
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        fail(
            walk,
            "messageExpression",
            "Required value: messageExpression must be non-empty if specified".into(),
        );
    }
    let reason = match raw.get("reason").and_then(Json::as_str) {
        None => None,
        Some("FieldValueInvalid") => Some("FieldValueInvalid"),
        Some("FieldValueRequired") => Some("FieldValueRequired"),
        Some("FieldValueForbidden") => Some("FieldValueForbidden"),
        Some("FieldValueDuplicate") => Some("FieldValueDuplicate"),
        Some(other) => {
            fail(
                walk,
                "reason",
                format!(
                    "Unsupported value: {}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
                    go_quote(other)
                ),
            );
            None
        }
    };
    let mut normalized = None;
    if !field_path.is_empty() {
        if field_path.trim().is_empty() {
            fail(
                walk,
                "fieldPath",
                format!(
                    "Invalid value: {}: must be non-empty if specified",
                    go_quote(&field_path)
                ),
            );
        } else if field_path.contains('\n') {
            fail(
                walk,
                "fieldPath",
                format!(
                    "Invalid value: {}: must not contain line breaks",
                    go_quote(&field_path)
                ),
            );
        } else {
            match normalize_field_path(&field_path, schema) {
                Some(p) => normalized = Some(p),
                None => fail(
                    walk,
                    "fieldPath",
                    format!(
                        "Invalid value: {}: must be a valid path",
                        go_quote(&field_path)
                    ),
                ),
            }
        }
    }
    if walk.errors.len() != before {
        return None;
    }
    let opts = CompileOptions {
        variables: CRD_RULE_VARIABLES,
        expect_bool: true,
    };
    let is_root = walk.depth == 0;
    let typing = |old_self_typed: bool| Typing {
        schema: schema.clone(),
        is_root,
        old_self_typed,
    };
    let optional_old_self = raw.get("optionalOldSelf").and_then(Json::as_bool);
    let program = match Program::compile_typed(
        &rule,
        &opts,
        Expect::Bool,
        typing(optional_old_self != Some(true)),
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            let detail = if e.starts_with("cel expression must evaluate") {
                e
            } else {
                format!("compilation failed: {e}")
            };
            fail(
                walk,
                "rule",
                format!("Invalid value: {}: {detail}", go_rule_json(raw)),
            );
            None
        }
    };
    let mut compiled_message = None;
    if !message_expression.trim().is_empty() {
        let opts = CompileOptions {
            variables: CRD_RULE_VARIABLES,
            expect_bool: false,
        };
        match Program::compile_typed(&message_expression, &opts, Expect::String, typing(true)) {
            Ok(p) => compiled_message = Some(p),
            Err(e) => {
                let detail = if e.starts_with("messageExpression must evaluate") {
                    e
                } else {
                    format!("messageExpression compilation failed: {e}")
                };
                fail(
                    walk,
                    "messageExpression",
                    format!("Invalid value: {}: {detail}", go_rule_json(raw)),
                )
            }
        }
    }
    let program = program?;
    let uses_old_self = program.references("oldSelf");
    if uses_old_self {
        if let Some(within) = walk.uncorrelatable.clone() {
            fail(
                walk,
                "rule",
                format!(
                    "Invalid value: {}: oldSelf cannot be used on the uncorrelatable portion of the schema within {within}",
                    go_quote(&rule)
                ),
            );
        }
    } else if let Some(flag) = optional_old_self {
        fail(
            walk,
            "optionalOldSelf",
            format!("Invalid value: {flag}: may not be set if oldSelf is not used in rule"),
        );
    }
    if walk.errors.len() != before {
        return None;
    }
    Some(Rule {
        program,
        message_expression: compiled_message,
        rule,
        message,
        reason,
        field_path: normalized,
        uses_old_self,
        optional_old_self: optional_old_self.unwrap_or(false),
    })
}

/// Resolves a rule's `fieldPath` (`.a.b`, `.a['b.c']`) against the schema,
/// returning upstream's normalized form: properties as `.name` children,
/// additionalProperties keys as `[key]`.
fn normalize_field_path(path: &str, schema: &Json) -> Option<String> {
    let mut out = String::new();
    let mut node = schema;
    let mut rest = path.trim();
    while !rest.is_empty() {
        let name: String;
        if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            name = r[..end].replace("\\'", "'");
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            name = r[..end].to_string();
            if name.is_empty() {
                return None;
            }
            rest = &r[end..];
        } else {
            return None;
        }
        if let Some(p) = node.get("properties").and_then(|p| p.get(&name)) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&name);
            node = p;
        } else if let Some(a) = node.get("additionalProperties").filter(|a| a.is_object()) {
            out.push_str(&format!("[{name}]"));
            node = a;
        } else {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `field.Path.String()`: validation starts from a nil path, printed
/// `<nil>` for root-level rules.
fn field_string(path: &str) -> String {
    if path.is_empty() {
        "<nil>".to_string()
    } else {
        path.to_string()
    }
}

/// Go's `%q` for a string.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` for a float64.
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    } else {
        format!("{f}")
    }
}

/// The bad value as `field.Error` prints it after the error type, or `None`
/// when it is omitted (objects and arrays).
fn bad_value(node: &Node, obj: &Json) -> Option<String> {
    if matches!(node.type_name(), "object" | "array") {
        return None;
    }
    Some(match obj {
        Json::String(s) => go_quote(s),
        Json::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => go_float(n.as_f64().unwrap_or(0.0)),
        },
        Json::Bool(b) => b.to_string(),
        other => go_json_escape(&other.to_string()),
    })
}

fn invalid(field: &str, value: Option<&str>, detail: &str) -> FieldError {
    let message = match value {
        Some(v) => format!("Invalid value: {v}: {detail}"),
        None => format!("Invalid value: {detail}"),
    };
    FieldError {
        reason: "FieldValueInvalid",
        field: field_string(field),
        message,
    }
}

/// `field.Invalid(fldPath, sts.Type, detail)`, as upstream reports
/// evaluation problems: the schema type is the quoted "value".
fn invalid_type(node: &Node, field: &str, detail: &str) -> FieldError {
    invalid(field, Some(&go_quote(node.type_name())), detail)
}

/// The error message of a rule: the message, or the trimmed rule.
fn rule_error_string(rule: &Rule) -> &str {
    if rule.message.is_empty() {
        rule.rule.trim()
    } else {
        rule.message.trim()
    }
}

/// Err(()) means the budget is spent and validation must stop.
///
/// `parent_unchanged` is whether the nearest correlated ancestor equals its
/// old value: upstream's CRD validation ratcheting then drops the failures
/// of rules that do not use oldSelf, so objects stored before a rule was
/// added or tightened stay updatable as long as the offending part is left
/// alone.
fn validate_node(
    node: &Node,
    path: &str,
    obj: &Json,
    old: Option<&Json>,
    parent_unchanged: bool,
    remaining: &mut u64,
    errs: &mut Vec<FieldError>,
) -> Result<(), ()> {
    if obj.is_null() {
        return Ok(());
    }
    let old = old.filter(|o| !o.is_null());
    let unchanged = match old {
        Some(o) => o == obj,
        None => parent_unchanged,
    };
    if !node.rules.is_empty() {
        validate_rules(node, path, obj, old, unchanged, remaining, errs)?;
    }
    match obj {
        Json::Object(fields) => {
            let old_fields = old.and_then(Json::as_object);
            if let Some(additional) = &node.additional {
                for (k, v) in fields {
                    let old_v = old_fields.and_then(|o| o.get(k));
                    validate_node(
                        additional,
                        &format!("{path}[{k}]"),
                        v,
                        old_v,
                        unchanged,
                        remaining,
                        errs,
                    )?;
                }
            }
            for (name, sub) in &node.properties {
                if let Some(v) = fields.get(name) {
                    let old_v = old_fields.and_then(|o| o.get(name));
                    validate_node(
                        sub,
                        &child_path(path, name),
                        v,
                        old_v,
                        unchanged,
                        remaining,
                        errs,
                    )?;
                }
            }
        }
        Json::Array(items) => {
            if let Some(item_node) = &node.items {
                let old_items = old.and_then(Json::as_array);
                for (i, item) in items.iter().enumerate() {
                    let old_item = match (&node.map_keys, old_items) {
                        (Some(keys), Some(old_items)) => correlate(keys, item, old_items),
                        _ => None,
                    };
                    validate_node(
                        item_node,
                        &format!("{path}[{i}]"),
                        item,
                        old_item,
                        unchanged,
                        remaining,
                        errs,
                    )?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The old item of a map list with the same key values.
fn correlate<'a>(keys: &[String], item: &Json, old_items: &'a [Json]) -> Option<&'a Json> {
    let key_of = |v: &Json| -> Vec<Json> {
        keys.iter()
            .map(|k| v.get(k).cloned().unwrap_or(Json::Null))
            .collect()
    };
    let wanted = key_of(item);
    old_items.iter().find(|o| key_of(o) == wanted)
}

fn validate_rules(
    node: &Node,
    path: &str,
    obj: &Json,
    old: Option<&Json>,
    unchanged: bool,
    remaining: &mut u64,
    errs: &mut Vec<FieldError>,
) -> Result<(), ()> {
    if *remaining == 0 {
        errs.push(invalid_type(node, path, OUT_OF_BUDGET));
        return Err(());
    }
    let self_value = to_cel(obj, Some(&node.schema));
    let old_value = old.map(|o| to_cel(o, Some(&node.schema)));
    for rule in &node.rules {
        if rule.uses_old_self && old_value.is_none() && !rule.optional_old_self {
            continue;
        }
        let mut vars: Vec<(&str, Value)> = vec![("self", self_value.clone())];
        if rule.uses_old_self {
            let old_self = if rule.optional_old_self {
                Value::Opaque(Arc::new(match &old_value {
                    Some(v) => OptionalValue::of(v.clone()),
                    None => OptionalValue::none(),
                }))
            } else {
                old_value.clone().unwrap_or(Value::Null)
            };
            vars.push(("oldSelf", old_self));
        }
        let limit = PER_CALL_LIMIT.min(*remaining);
        let out = rule.program.run(&vars, limit);
        *remaining = remaining.saturating_sub(out.used);
        if out.exhausted {
            if limit < PER_CALL_LIMIT {
                errs.push(invalid_type(node, path, OUT_OF_BUDGET));
            } else {
                errs.push(invalid_type(node, path, &format!(
                    "'{}': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                    budget::LIMIT_EXCEEDED,
                    rule_error_string(rule)
                )));
            }
            return Err(());
        }
        match out.result {
            Ok(Value::Bool(true)) => continue,
            Ok(Value::Bool(false)) => {}
            Ok(other) => {
                errs.push(invalid_type(node, path, &format!(
                    "'no such overload: rule evaluated to {}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                    other.type_of(),
                    rule_error_string(rule)
                )));
                continue;
            }
            Err(e) => {
                let text = error_text(&e);
                let detail = if text.starts_with("no such overload") {
                    format!(
                        "'{text}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                        rule_error_string(rule)
                    )
                } else {
                    format!("{text} evaluating rule: {}", rule_error_string(rule))
                };
                errs.push(invalid_type(node, path, &detail));
                continue;
            }
        }
        let field = match &rule.field_path {
            Some(p) => child_path(path, p),
            None => path.to_string(),
        };
        let mut detail = None;
        if let Some(msg) = &rule.message_expression {
            // Upstream evaluates messages with the plain activation, where
            // oldSelf is the value itself rather than an optional.
            let mut vars: Vec<(&str, Value)> = vec![("self", self_value.clone())];
            if let Some(o) = &old_value {
                vars.push(("oldSelf", o.clone()));
            }
            let out = msg.run(&vars, PER_CALL_LIMIT.min(*remaining));
            if out.exhausted {
                errs.push(invalid_type(node, &field,
                    "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run"));
                return Err(());
            }
            *remaining = remaining.saturating_sub(out.used);
            if let Ok(Value::String(s)) = out.result {
                let trimmed = s.trim();
                if !trimmed.is_empty()
                    && trimmed.len() <= MAX_MESSAGE_EXPRESSION_LEN
                    && !trimmed.contains('\n')
                {
                    detail = Some(trimmed.to_string());
                }
            }
        }
        let detail = detail.unwrap_or_else(|| {
            if rule.message.is_empty() {
                format!("failed rule: {}", rule.rule.trim())
            } else {
                rule.message.trim().to_string()
            }
        });
        if rule.uses_old_self || !unchanged {
            errs.push(field_error_for_reason(
                node,
                &field,
                obj,
                &detail,
                rule.reason,
            ));
        }
    }
    Ok(())
}

/// Upstream's `fieldErrorForReason`.
fn field_error_for_reason(
    node: &Node,
    field: &str,
    obj: &Json,
    detail: &str,
    reason: Option<&'static str>,
) -> FieldError {
    match reason {
        Some("FieldValueForbidden") => FieldError {
            reason: "FieldValueForbidden",
            field: field_string(field),
            message: format!("Forbidden: {detail}"),
        },
        Some("FieldValueRequired") => FieldError {
            reason: "FieldValueRequired",
            field: field_string(field),
            message: format!("Required value: {detail}"),
        },
        Some("FieldValueDuplicate") => FieldError {
            reason: "FieldValueDuplicate",
            field: field_string(field),
            message: match bad_value(node, obj) {
                Some(v) => format!("Duplicate value: {v}"),
                None => "Duplicate value".to_string(),
            },
        },
        _ => invalid(field, bad_value(node, obj).as_deref(), detail),
    }
}
