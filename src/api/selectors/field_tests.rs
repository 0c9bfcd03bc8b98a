//! Tests for field selectors and reading fields out of objects.

use std::collections::BTreeMap;

use serde_json::json;

use super::{FieldOp, FieldRequirement, FieldSelector, SelectorError, escape_value, object_field};

fn sel(s: &str) -> FieldSelector {
    match FieldSelector::parse(s) {
        Ok(sel) => sel,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn parse_err(s: &str) -> String {
    match FieldSelector::parse(s) {
        Ok(sel) => panic!("{s:?} should not parse, got {sel}"),
        Err(e) => e.to_string(),
    }
}

fn req(field: &str, op: FieldOp, value: &str) -> FieldRequirement {
    FieldRequirement {
        field: field.into(),
        op,
        value: value.into(),
    }
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn all_three_operators_parse() {
    let s = sel("a=b,c==d,e!=f");
    assert_eq!(
        s.requirements(),
        [
            req("a", FieldOp::Equals, "b"),
            req("c", FieldOp::Equals, "d"),
            req("e", FieldOp::NotEquals, "f")
        ]
    );
    assert_eq!(s.to_string(), "a=b,c=d,e!=f");
}

#[test]
fn terms_are_ordered_by_raw_text() {
    let s = sel("status.phase!=Running,metadata.name=x");
    assert_eq!(s.to_string(), "metadata.name=x,status.phase!=Running");
}

#[test]
fn first_operator_position_splits_and_longest_operator_wins_there() {
    assert_eq!(sel("a==b").requirements(), [req("a", FieldOp::Equals, "b")]);
    assert_eq!(
        sel("a!=b").requirements(),
        [req("a", FieldOp::NotEquals, "b")]
    );
    assert_eq!(
        sel("a=!b").requirements(),
        [req("a", FieldOp::Equals, "!b")]
    );
    assert_eq!(sel("=b").requirements(), [req("", FieldOp::Equals, "b")]);
    assert_eq!(sel("a=").requirements(), [req("a", FieldOp::Equals, "")]);
    assert_eq!(sel("함=수,목=록").requirements().len(), 2);
}

#[test]
fn whitespace_is_part_of_fields_and_values() {
    assert_eq!(
        sel("a = b").requirements(),
        [req("a ", FieldOp::Equals, " b")]
    );
}

#[test]
fn empty_text_and_empty_terms_select_everything() {
    for text in ["", ",", ",,"] {
        let s = sel(text);
        assert!(s.is_empty(), "{text:?}");
        assert_eq!(s, FieldSelector::default());
        assert!(s.matches(|_| None));
    }
    assert_eq!(
        sel(",a=b,").requirements(),
        [req("a", FieldOp::Equals, "b")]
    );
}

#[test]
fn escapes_are_removed_from_values() {
    let k = |text: &str| sel(text).exact("k").map(str::to_string);
    assert_eq!(k(r"k=\,,k2=v2").as_deref(), Some(","));
    assert_eq!(k(r"k=\\,k2=v2").as_deref(), Some("\\"));
    assert_eq!(k(r"k=\\\,,k2=v2").as_deref(), Some("\\,"));
    assert_eq!(
        sel(r"k=\,,k2=v2").requirements()[1],
        req("k", FieldOp::Equals, ",")
    );
    assert_eq!(
        sel(r"x=a\=\=b").requirements(),
        [req("x", FieldOp::Equals, "a==b")]
    );
    assert_eq!(
        sel(r"x=a||y\=b").requirements(),
        [req("x", FieldOp::Equals, "a||y=b")]
    );
}

#[test]
fn display_escapes_and_round_trips() {
    for text in [
        "x=a,y=b,z=c",
        "x!=a,y=b",
        r"x=a||y\=b",
        r"x=a\=\=b",
        r"k=\\\,",
        "k=",
        "a=!b",
    ] {
        let s = sel(text);
        assert_eq!(s.to_string(), text, "{text}");
        assert_eq!(
            FieldSelector::parse(&s.to_string()),
            Ok(s.clone()),
            "{text}"
        );
    }
    assert_eq!(
        FieldSelector::parse(&sel("c==d").to_string()),
        Ok(sel("c==d"))
    );
}

#[test]
fn escape_value_matches_upstream() {
    let cases = [
        ("", ""),
        ("a", "a"),
        ("=", r"\="),
        (",", r"\,"),
        ("\\", r"\\"),
        (r"\=\,\", r"\\\=\\\,\\"),
    ];
    for (raw, escaped) in cases {
        assert_eq!(escape_value(raw), escaped);
        assert_eq!(sel(&format!("f={escaped}")).requirements()[0].value, raw);
    }
}

#[test]
fn terms_without_operator_are_rejected_with_whole_selector() {
    assert_eq!(
        parse_err("x"),
        "invalid selector: 'x'; can't understand 'x'"
    );
    assert_eq!(
        parse_err("x=a,b"),
        "invalid selector: 'x=a,b'; can't understand 'b'"
    );
    assert_eq!(
        parse_err("x in (a,b,c)"),
        "invalid selector: 'x in (a,b,c)'; can't understand 'b'"
    );
    assert!(matches!(
        FieldSelector::parse("x"),
        Err(SelectorError::FieldTerm { .. })
    ));
}

#[test]
fn bad_escapes_and_bare_specials_are_rejected() {
    let prefix = "invalid field selector:";
    assert_eq!(
        parse_err(r"k=\a"),
        format!(r"{prefix} invalid escape sequence: \a")
    );
    assert_eq!(
        parse_err(r"k=\"),
        format!(r"{prefix} invalid escape sequence: \")
    );
    assert_eq!(
        parse_err(r"k=\\\"),
        format!(r"{prefix} invalid escape sequence: \")
    );
    // Upstream escapes only `\`, `,` and `=`; `!` never needs it and `\!` is refused.
    assert_eq!(
        parse_err(r"k=\!"),
        format!(r"{prefix} invalid escape sequence: \!")
    );
    assert_eq!(
        parse_err("x=a||y=b"),
        format!("{prefix} unescaped character in value: 61")
    );
    assert_eq!(
        parse_err("x==a==b"),
        format!("{prefix} unescaped character in value: 61")
    );
}

#[test]
fn first_sorted_term_reports_its_error() {
    // Terms are sorted before parsing, so `a...` is examined before `z...`.
    assert_eq!(
        parse_err(r"z=\q,a"),
        "invalid selector: 'z=\\q,a'; can't understand 'a'"
    );
}

#[test]
fn matching_treats_missing_fields_as_empty() {
    let pod = fields(&[("metadata.name", "web"), ("status.phase", "Running")]);
    let get = |f: &str| pod.get(f).cloned();
    assert!(sel("metadata.name=web").matches(get));
    assert!(!sel("metadata.name=db").matches(get));
    assert!(sel("status.phase!=Pending").matches(get));
    assert!(!sel("status.phase!=Running").matches(get));
    assert!(sel("spec.nodeName=").matches(get));
    assert!(!sel("spec.nodeName!=").matches(get));
    assert!(!sel("metadata.name=web,status.phase=Pending").matches(get));
}

#[test]
fn exact_reports_the_first_equality_term() {
    let s = sel("metadata.name=foo,status.phase!=Running,metadata.namespace==ns");
    assert_eq!(s.exact("metadata.name"), Some("foo"));
    assert_eq!(s.exact("metadata.namespace"), Some("ns"));
    assert_eq!(s.exact("status.phase"), None);
    assert_eq!(s.exact("spec.nodeName"), None);
}

#[test]
fn object_field_stringifies_scalars() {
    let obj = json!({
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": "n1", "replicas": 3, "offset": -2, "ratio": 0.5, "paused": false},
        "status": {"phase": "Running", "empty": null, "list": [1], "obj": {}},
        "involvedObject": {"kind": "Pod"}
    });
    assert_eq!(object_field(&obj, "metadata.name").as_deref(), Some("p"));
    assert_eq!(object_field(&obj, "spec.nodeName").as_deref(), Some("n1"));
    assert_eq!(
        object_field(&obj, "involvedObject.kind").as_deref(),
        Some("Pod")
    );
    assert_eq!(
        object_field(&obj, "status.phase").as_deref(),
        Some("Running")
    );
    assert_eq!(object_field(&obj, "spec.replicas").as_deref(), Some("3"));
    assert_eq!(object_field(&obj, "spec.offset").as_deref(), Some("-2"));
    assert_eq!(object_field(&obj, "spec.ratio").as_deref(), Some("0.5"));
    assert_eq!(object_field(&obj, "spec.paused").as_deref(), Some("false"));
    for absent in [
        "spec.missing",
        "status.empty",
        "status.list",
        "status.obj",
        "status.phase.x",
        "",
        "metadata",
    ] {
        assert_eq!(object_field(&obj, absent), None, "{absent}");
    }
}

#[test]
fn object_field_feeds_matches() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
    let s = sel("spec.nodeName=n1,metadata.name!=q,status.phase=");
    assert!(s.matches(|f| object_field(&pod, f)));
    assert!(!sel("spec.nodeName=n2").matches(|f| object_field(&pod, f)));
}

#[test]
fn any_text_either_fails_cleanly_or_round_trips() {
    let fragments = [
        "a", "b.c", "=", "==", "!=", "!", ",", "\\", "\\,", "\\=", "\\\\", " ", "수",
    ];
    let mut state: u64 = 42;
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut text = String::new();
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let len = (state >> 60) as usize;
        for _ in 0..len {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            text.push_str(fragments[(state >> 33) as usize % fragments.len()]);
        }
        if let Ok(s) = FieldSelector::parse(&text) {
            parsed += 1;
            assert_eq!(
                FieldSelector::parse(&s.to_string()),
                Ok(s.clone()),
                "{text:?} -> {s}"
            );
        }
    }
    assert!(parsed > 1_000, "only {parsed} texts parsed");
}

#[test]
fn double_equals_does_not_change_canonical_order() {
    let s = sel("a==x,a=b");
    assert_eq!(s.to_string(), "a=b,a=x");
    assert_eq!(FieldSelector::parse(&s.to_string()), Ok(s.clone()));
    assert_eq!(s, sel("a=x,a==b"));
}
