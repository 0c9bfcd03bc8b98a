//! Tests for label selector text that does not parse: which error wins and
//! its exact upstream wording.

use super::label_tests::{NAME_PART_REGEX, VALUE_REGEX, parse_err};
use super::{LabelSelector, SelectorError};

#[test]
fn syntax_errors_use_upstream_messages() {
    let cases = [
        (
            "!(",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        (
            "!",
            "unable to parse requirement: found '', expected: identifier",
        ),
        ("a,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        (
            ",",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        (
            "=a",
            "found '=', expected: !, identifier, or 'end of string'",
        ),
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "a!b",
            "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "a<=1",
            "unable to parse requirement: found '=', expected: identifier",
        ),
        (
            "xin (a)",
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        (
            "x in a",
            "unable to parse requirement: found 'a' expected: '('",
        ),
        (
            "x in",
            "unable to parse requirement: found '' expected: '('",
        ),
        (
            "x in (a b)",
            "unable to parse requirement: found 'b', expected: ',' or ')'",
        ),
        (
            "x in (a",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "x in (=)",
            "unable to parse requirement: found '=', expected: ',', ')' or identifier",
        ),
        (
            "x in (a,=)",
            "unable to parse requirement: found '=', expected: ',', or identifier",
        ),
        (
            "x in (a,",
            "unable to parse requirement: found '', expected: ',', or identifier",
        ),
        (
            "x=(",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        (
            "x!=!",
            "unable to parse requirement: found '!', expected: identifier",
        ),
        ("x in (a),,y", "found ',', expected: identifier after ','"),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(text), want, "{text:?}");
    }
}

#[test]
fn invalid_keys_report_upstream_validation_text() {
    assert_eq!(
        parse_err("app:monolith"),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"app:monolith\": {NAME_PART_REGEX}"
        )
    );
    assert_eq!(
        parse_err("-x=1"),
        format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_PART_REGEX}")
    );
    assert_eq!(
        parse_err("app.kubernetes_io/name=v"),
        "unable to parse requirement: <nil>: Invalid value: \"app.kubernetes_io/name\": prefix \
         part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
         '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
         regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    assert_eq!(
        parse_err("a/b/c"),
        "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key must \
         consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
         alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
         validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain \
         prefix and '/' (e.g. 'example.com/MyName')"
    );
    assert_eq!(
        parse_err("x/"),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"x/\": name part must be \
             non-empty; {NAME_PART_REGEX}"
        )
    );
    assert!(parse_err("/x").contains("\"/x\": prefix part must be non-empty"));
    let long = "k".repeat(64);
    assert_eq!(
        parse_err(&long),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"{long}\": \
             name part must be no more than 63 bytes"
        )
    );
    assert!(LabelSelector::parse(&"k".repeat(63)).is_ok());
    assert!(parse_err("é=1").contains("<nil>: Invalid value: \"é\": name part"));
}

#[test]
fn invalid_values_report_upstream_validation_text() {
    assert_eq!(
        parse_err("x=-a"),
        format!("unable to parse requirement: values[0][x]: Invalid value: \"-a\": {VALUE_REGEX}")
    );
    assert_eq!(
        parse_err("x in (b,-a)"),
        format!("unable to parse requirement: values[0][x]: Invalid value: \"-a\": {VALUE_REGEX}")
    );
    let long = "z".repeat(64);
    assert_eq!(
        parse_err(&format!("x={long}")),
        format!(
            "unable to parse requirement: values[0][x]: Invalid value: \"{long}\": \
             must be no more than 63 bytes"
        )
    );
    assert_eq!(
        parse_err("x>a"),
        "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' \
         operators, the value must be an integer"
    );
    assert_eq!(
        parse_err("x<"),
        "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' \
         operators, the value must be an integer"
    );
    assert_eq!(
        parse_err("x>-1"),
        format!("unable to parse requirement: values[0][x]: Invalid value: \"-1\": {VALUE_REGEX}")
    );
    assert_eq!(
        parse_err("x>-a"),
        format!(
            "unable to parse requirement: [values[0]: Invalid value: \"-a\": for 'Gt', 'Lt' \
             operators, the value must be an integer, values[0][x]: Invalid value: \"-a\": \
             {VALUE_REGEX}]"
        )
    );
    assert!(parse_err("x>99999999999999999999").contains("must be an integer"));
}

#[test]
fn first_error_in_input_order_wins() {
    // The key is checked before the operator and the value.
    assert!(parse_err("-x=(").contains("\"-x\": name part"));
    assert!(parse_err("!-x").contains("\"-x\": name part"));
    // An earlier requirement's error hides a later one.
    assert_eq!(
        parse_err("a b,-c"),
        "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
    );
    assert!(parse_err("a=-b,c d").contains("values[0][a]"));
}

#[test]
fn errors_are_label_parse_variants() {
    assert!(matches!(
        LabelSelector::parse("a b"),
        Err(SelectorError::LabelParse(_))
    ));
    assert!(matches!(
        LabelSelector::parse("x=-a"),
        Err(SelectorError::LabelParse(_))
    ));
}
