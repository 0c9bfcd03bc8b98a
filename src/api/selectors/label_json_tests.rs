//! Tests for label selectors built from `metav1.LabelSelector` JSON, and
//! for the match-nothing selector.

use serde_json::{Value, json};

use super::label_tests::{NAME_PART_REGEX, VALUE_REGEX, labels};
use super::{LabelSelector, SelectorError};

#[test]
fn nothing_matches_nothing() {
    let n = LabelSelector::nothing();
    assert!(!n.is_empty());
    assert!(!n.matches(None));
    assert!(!n.matches(Some(&labels(json!({"a": "b"})))));
    assert_eq!(n.to_string(), "");
    assert_ne!(n, LabelSelector::everything());
}

fn from_json_err(v: Value) -> String {
    match LabelSelector::from_json(&v) {
        Ok(sel) => panic!("{v} should not convert, got {sel}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn json_without_terms_selects_everything() {
    let empties = [
        json!(null),
        json!({}),
        json!({"matchLabels": {}}),
        json!({"matchLabels": null, "matchExpressions": []}),
        json!({"matchExpressions": null}),
    ];
    for v in empties {
        let s = LabelSelector::from_json(&v);
        assert_eq!(s, Ok(LabelSelector::everything()), "{v}");
    }
}

#[test]
fn json_match_labels_and_expressions_convert() {
    let v = json!({
        "matchLabels": {"tier": "db", "app": "x"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["qa", "production"]},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "gpu", "operator": "Exists", "values": []}
        ]
    });
    let s = LabelSelector::from_json(&v).unwrap_or_default();
    assert_eq!(
        s.to_string(),
        "app=x,!canary,env in (production,qa),gpu,tier=db,zone notin (b)"
    );
    assert_eq!(LabelSelector::parse(&s.to_string()), Ok(s.clone()));
    let good = labels(json!({"app": "x", "tier": "db", "env": "qa", "gpu": "1", "zone": "a"}));
    assert!(s.matches(Some(&good)));
    let mut canary = good.clone();
    canary.insert("canary".into(), json!("yes"));
    assert!(!s.matches(Some(&canary)));
}

#[test]
fn json_and_text_forms_compare_equal() {
    let v =
        json!({"matchExpressions": [{"key": "x", "operator": "In", "values": ["b", "a", "a"]}]});
    assert_eq!(
        LabelSelector::from_json(&v),
        LabelSelector::parse("x in (a,b)")
    );
    let v = json!({"matchLabels": {"a": "b"}});
    assert_eq!(LabelSelector::from_json(&v), LabelSelector::parse("a=b"));
}

#[test]
fn json_conversion_errors_use_upstream_messages() {
    assert_eq!(
        from_json_err(
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
        ),
        "\"Gt\" is not a valid label selector operator"
    );
    assert_eq!(
        from_json_err(json!({"matchExpressions": [{"key": "a"}]})),
        "\"\" is not a valid label selector operator"
    );
    assert_eq!(
        from_json_err(json!({"matchExpressions": [{"key": "a", "operator": "In"}]})),
        "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        from_json_err(
            json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]})
        ),
        "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        from_json_err(
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]})
        ),
        "values: Invalid value: [\"x\",\"y\"]: values set must be empty for exists and does \
         not exist"
    );
    assert_eq!(
        from_json_err(json!({"matchExpressions": [{"key": "bad key", "operator": "Exists"}]})),
        format!("key: Invalid value: \"bad key\": {NAME_PART_REGEX}")
    );
    let long = "z".repeat(64);
    assert_eq!(
        from_json_err(json!({"matchLabels": {"good-key": long}})),
        format!("values[0][good-key]: Invalid value: \"{long}\": must be no more than 63 bytes")
    );
}

#[test]
fn json_operator_is_checked_before_key_and_errors_aggregate() {
    assert_eq!(
        from_json_err(json!({"matchExpressions": [{"key": "-k", "operator": "Bogus"}]})),
        "\"Bogus\" is not a valid label selector operator"
    );
    assert_eq!(
        from_json_err(
            json!({"matchExpressions": [{"key": "-k", "operator": "In", "values": ["-v"]}]})
        ),
        format!(
            "[key: Invalid value: \"-k\": {NAME_PART_REGEX}, values[0][-k]: Invalid value: \
             \"-v\": {VALUE_REGEX}]"
        )
    );
    assert!(matches!(
        LabelSelector::from_json(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]})),
        Err(SelectorError::InvalidRequirement(_))
    ));
}

#[test]
fn json_of_the_wrong_shape_is_malformed() {
    let bad = [
        json!("app=x"),
        json!([]),
        json!({"matchLabels": []}),
        json!({"matchLabels": {"a": 1}}),
        json!({"matchExpressions": {}}),
        json!({"matchExpressions": ["a"]}),
        json!({"matchExpressions": [{"key": 1, "operator": "Exists"}]}),
        json!({"matchExpressions": [{"key": "a", "operator": "In", "values": "b"}]}),
        json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
    ];
    for v in bad {
        let err = LabelSelector::from_json(&v);
        assert!(
            matches!(err, Err(SelectorError::MalformedLabelSelector(_))),
            "{v}: {err:?}"
        );
    }
    assert_eq!(
        from_json_err(json!({"matchLabels": {"a": 1}})),
        "invalid label selector: matchLabels[\"a\"]: expected a string, got number"
    );
}
