use crate::api::cel::{FieldError, SchemaRules};
use serde_json::{Value, json};

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.minReplicas <= self.replicas", "message": "replicas must be at least minReplicas"},
                    {"rule": "self.size == oldSelf.size", "message": "size is immutable"},
                    {"rule": "!has(self.forbidden)", "reason": "FieldValueForbidden", "message": "forbidden is not allowed"},
                    {"rule": "self.replicas < 100", "messageExpression": "'replicas ' + string(self.replicas) + ' is too many'"},
                    {"rule": "self.name != 'bad'", "fieldPath": ".name"},
                    {"rule": "self.name != 'worse'", "messageExpression": "1 / 0 == 1 ? 'x' : 'y'", "message": "fallback message"}
                ],
                "properties": {
                    "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 50"}]},
                    "minReplicas": {"type": "integer"},
                    "size": {"type": "string"},
                    "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 10"}]},
                    "forbidden": {"type": "string"},
                    "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.0"}]},
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "self.port == oldSelf.port", "message": "port is immutable"}]
                        }
                    },
                    "labels": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'x'"}]}
                    }
                }
            }
        }
    })
}

fn rules() -> SchemaRules {
    SchemaRules::compile(&schema(), "spec.versions[0].schema.openAPIV3Schema").unwrap()
}

fn spec(extra: Value) -> Value {
    let mut s = json!({"replicas": 3, "minReplicas": 1, "size": "small", "name": "ok"});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({"spec": s})
}

fn err(reason: &'static str, field: &str, message: &str) -> FieldError {
    FieldError {
        reason,
        field: field.into(),
        message: message.into(),
    }
}

#[test]
fn valid_object_passes() {
    let r = rules();
    assert!(!r.is_empty());
    assert_eq!(r.validate(&spec(json!({})), None), vec![]);
}

#[test]
fn object_rule_omits_value() {
    let errs = rules().validate(&spec(json!({"minReplicas": 5})), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueInvalid",
            "spec",
            "Invalid value: replicas must be at least minReplicas"
        )]
    );
}

#[test]
fn scalar_rule_shows_value() {
    let errs = rules().validate(&spec(json!({"replicas": 51})), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueInvalid",
            "spec.replicas",
            "Invalid value: 51: failed rule: self <= 50"
        )]
    );
    let errs = rules().validate(&spec(json!({"name": "muchtoolongname"})), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueInvalid",
            "spec.name",
            "Invalid value: \"muchtoolongname\": failed rule: self.size() < 10"
        )]
    );
    let errs = rules().validate(&spec(json!({"ratio": 1.5})), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueInvalid",
            "spec.ratio",
            "Invalid value: 1.5: failed rule: self < 1.0"
        )]
    );
    // integers in a number field are doubles to CEL
    assert_eq!(rules().validate(&spec(json!({"ratio": 0})), None), vec![]);
}

#[test]
fn transition_rule() {
    let r = rules();
    let new = spec(json!({"size": "large"}));
    assert_eq!(r.validate(&new, None), vec![], "skipped on create");
    assert_eq!(
        r.validate(&new, Some(&spec(json!({"size": "large"})))),
        vec![]
    );
    assert_eq!(
        r.validate(&new, Some(&spec(json!({})))),
        vec![err(
            "FieldValueInvalid",
            "spec",
            "Invalid value: size is immutable"
        )]
    );
}

#[test]
fn message_expression_and_fallback() {
    let errs = rules().validate(&spec(json!({"replicas": 200})), None);
    assert!(
        errs.contains(&err(
            "FieldValueInvalid",
            "spec",
            "Invalid value: replicas 200 is too many"
        )),
        "{errs:?}"
    );
    let errs = rules().validate(&spec(json!({"name": "worse"})), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueInvalid",
            "spec",
            "Invalid value: fallback message"
        )]
    );
}

#[test]
fn reason_and_field_path() {
    let errs = rules().validate(&spec(json!({"forbidden": "x"})), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueForbidden",
            "spec",
            "Forbidden: forbidden is not allowed"
        )]
    );
    let errs = rules().validate(&spec(json!({"name": "bad"})), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueInvalid",
            "spec.name",
            "Invalid value: failed rule: self.name != 'bad'"
        )]
    );
}

#[test]
fn map_list_correlates_old_items() {
    let r = rules();
    let new = spec(json!({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}));
    let old = spec(json!({"ports": [{"name": "b", "port": 3}, {"name": "a", "port": 1}]}));
    assert_eq!(r.validate(&new, None), vec![]);
    assert_eq!(
        r.validate(&new, Some(&old)),
        vec![err(
            "FieldValueInvalid",
            "spec.ports[1]",
            "Invalid value: port is immutable"
        )]
    );
}

#[test]
fn additional_properties_keyed_path() {
    let errs = rules().validate(&spec(json!({"labels": {"k": "x"}})), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueInvalid",
            "spec.labels[k]",
            "Invalid value: \"x\": failed rule: self != 'x'"
        )]
    );
}

#[test]
fn runtime_error_reported() {
    let s = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.missing == 1"}]}}});
    let r = SchemaRules::compile(&s, "p").unwrap();
    let errs = r.validate(&json!({"spec": {}}), None);
    assert_eq!(
        errs,
        vec![err(
            "FieldValueInvalid",
            "spec",
            "Invalid value: \"object\": no such key: missing evaluating rule: self.missing == 1"
        )]
    );
}

#[test]
fn optional_old_self() {
    let s = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "!oldSelf.hasValue() || oldSelf.value().x == self.x", "optionalOldSelf": true, "message": "x frozen"}]}}});
    let r = SchemaRules::compile(&s, "p").unwrap();
    assert_eq!(r.validate(&json!({"spec": {"x": 1}}), None), vec![]);
    assert_eq!(
        r.validate(&json!({"spec": {"x": 1}}), Some(&json!({"spec": {"x": 1}}))),
        vec![]
    );
    assert_eq!(
        r.validate(&json!({"spec": {"x": 2}}), Some(&json!({"spec": {"x": 1}}))),
        vec![err("FieldValueInvalid", "spec", "Invalid value: x frozen")]
    );
}

#[test]
fn compile_errors() {
    let s = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.x =="}, {"rule": "nope == 1"}, {"rule": "self.x", "fieldPath": ".nothere"}]}}});
    let errs = SchemaRules::compile(&s, "spec.versions[0].schema.openAPIV3Schema").unwrap_err();
    assert_eq!(errs.len(), 3, "{errs:?}");
    let base = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations";
    assert_eq!(errs[0].0, format!("{base}[0].rule"));
    assert!(
        errs[0]
            .1
            .starts_with("Invalid value: {\"Rule\":\"self.x ==\""),
        "{}",
        errs[0].1
    );
    assert!(
        errs[0]
            .1
            .contains(": compilation failed: ERROR: <input>:1:"),
        "{}",
        errs[0].1
    );
    assert_eq!(errs[1].0, format!("{base}[1].rule"));
    assert!(
        errs[1].1.contains("undeclared reference to 'nope'"),
        "{}",
        errs[1].1
    );
    assert_eq!(errs[2].0, format!("{base}[2].fieldPath"));
    assert_eq!(
        errs[2].1,
        "Invalid value: \".nothere\": must be a valid path"
    );
}

#[test]
fn old_self_forbidden_in_set_lists() {
    let s = json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}});
    let errs = SchemaRules::compile(&s, "s").unwrap_err();
    assert_eq!(
        errs[0].0,
        "s.properties[l].items.x-kubernetes-validations[0].rule"
    );
    assert!(errs[0].1.contains(
        "oldSelf cannot be used on the uncorrelatable portion of the schema within s.properties[l]"
    ));
}

#[test]
fn empty_schema() {
    assert!(
        SchemaRules::compile(&json!({"type": "object"}), "s")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn typed_field_checks() {
    let s = json!({"type": "object",
    "x-kubernetes-validations": [{"rule": "self.metadata.name != '' && self.spec.foo__dash__bar > 0"}],
    "properties": {"spec": {"type": "object",
        "properties": {
            "foo-bar": {"type": "integer"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}}
        },
        "x-kubernetes-validations": [
            {"rule": "!has(self.labels) || self.labels.anything != 'x'"},
            {"rule": "!has(self.free) || self.free.whatever == 1"},
            {"rule": "!has(self.items) || self.items[0].n != ''"}
        ]}}});
    let r = SchemaRules::compile(&s, "s").unwrap();
    let obj = json!({"metadata": {"name": "a"}, "spec": {"foo-bar": 0}});
    assert_eq!(
        r.validate(&obj, None),
        vec![err(
            "FieldValueInvalid",
            "<nil>",
            "Invalid value: failed rule: self.metadata.name != '' && self.spec.foo__dash__bar > 0"
        )]
    );

    for (rule, field) in [
        ("self.nope == 1", "nope"),
        ("has(self.nope)", "nope"),
        ("self.items[0].m == ''", "m"),
        ("self.all(k, k != '') && self.typo > 0", "typo"),
    ] {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": rule}],
            "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}}}}}});
        let errs = SchemaRules::compile(&s, "s").unwrap_err();
        assert!(
            errs[0].1.contains(&format!("undefined field '{field}'")),
            "{rule}: {errs:?}"
        );
    }
}

#[test]
fn ratcheting_unchanged_values() {
    let r = rules();
    // Stored before the rule tightened: 60 > 50 fails on create...
    let stored = spec(json!({"replicas": 60, "minReplicas": 1}));
    assert_eq!(r.validate(&stored, None).len(), 1);
    // ...but an update leaving replicas alone is allowed,
    let touched = spec(json!({"replicas": 60, "minReplicas": 2}));
    assert_eq!(r.validate(&touched, Some(&stored)), vec![]);
    // while changing it to another bad value is not.
    let worse = spec(json!({"replicas": 61, "minReplicas": 1}));
    assert_eq!(
        r.validate(&worse, Some(&stored)),
        vec![err(
            "FieldValueInvalid",
            "spec.replicas",
            "Invalid value: 61: failed rule: self <= 50"
        )]
    );
    // Transition rules are never ratcheted.
    let old = spec(json!({"size": "big"}));
    let new = spec(json!({"size": "small"}));
    assert_eq!(r.validate(&new, Some(&old)).len(), 1);
}

#[test]
fn message_expression_compile_errors_and_types() {
    let s = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "true", "messageExpression": "size(self) == 1"}, {"rule": "self.x + 1"}]}}});
    let errs = SchemaRules::compile(&s, "s").unwrap_err();
    assert_eq!(
        errs[0].0,
        "s.properties[spec].x-kubernetes-validations[0].messageExpression"
    );
    assert!(
        errs[0]
            .1
            .ends_with(": messageExpression must evaluate to a string"),
        "{errs:?}"
    );
    assert_eq!(
        errs[1].0,
        "s.properties[spec].x-kubernetes-validations[1].rule"
    );
    assert_eq!(
        errs[1].1,
        "Invalid value: {\"Rule\":\"self.x + 1\",\"Message\":\"\",\"MessageExpression\":\"\",\"Reason\":null,\"FieldPath\":\"\",\"OptionalOldSelf\":null}: cel expression must evaluate to a bool"
    );
}

#[test]
fn whole_floats_in_integer_fields_are_ints() {
    assert_eq!(
        rules().validate(&spec(json!({"replicas": 3.0})), None),
        vec![]
    );
}

#[test]
fn compiled_types_are_send_and_sync() {
    fn is<T: Send + Sync + 'static>() {}
    is::<SchemaRules>();
    is::<crate::api::cel::Program>();
    is::<crate::api::cel::CompiledVariables>();
}
