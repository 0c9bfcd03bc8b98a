//! Tests for label selector text: parsing, canonical text, and matching.

use serde_json::{Map, Value, json};

use super::{LabelOperator, LabelSelector};

/// Upstream's complaint about a bad label key name part.
pub(super) const NAME_PART_REGEX: &str = "name part must consist of alphanumeric characters, \
     '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  \
     or 'my.name',  or '123-abc', regex used for validation is \
     '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
/// Upstream's complaint about a bad label value.
pub(super) const VALUE_REGEX: &str = "a valid label must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
     '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

pub(super) fn labels(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn sel(s: &str) -> LabelSelector {
    match LabelSelector::parse(s) {
        Ok(sel) => sel,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

pub(super) fn parse_err(s: &str) -> String {
    match LabelSelector::parse(s) {
        Ok(sel) => panic!("{s:?} should not parse, got {sel}"),
        Err(e) => e.to_string(),
    }
}

fn matches(s: &str, l: Value) -> bool {
    sel(s).matches(Some(&labels(l)))
}

#[test]
fn every_operator_parses_to_its_requirement() {
    let cases = [
        ("a=b", LabelOperator::Equals, vec!["b"]),
        ("a==b", LabelOperator::DoubleEquals, vec!["b"]),
        ("a!=b", LabelOperator::NotEquals, vec!["b"]),
        ("a in (c,b)", LabelOperator::In, vec!["b", "c"]),
        ("a notin (b)", LabelOperator::NotIn, vec!["b"]),
        ("a", LabelOperator::Exists, vec![]),
        ("!a", LabelOperator::DoesNotExist, vec![]),
        ("a>1", LabelOperator::GreaterThan, vec!["1"]),
        ("a<10", LabelOperator::LessThan, vec!["10"]),
    ];
    for (text, op, values) in cases {
        let s = sel(text);
        let [r] = s.requirements() else {
            panic!("{text}: expected one requirement");
        };
        assert_eq!(r.key(), "a", "{text}");
        assert_eq!(r.operator(), op, "{text}");
        assert_eq!(r.values(), values.as_slice(), "{text}");
    }
}

#[test]
fn equality_operators_match_present_equal_values() {
    for text in ["app=web", "app==web", "app in (web)", "app in (db,web)"] {
        assert!(matches(text, json!({"app": "web"})), "{text}");
        assert!(!matches(text, json!({"app": "api"})), "{text}");
        assert!(!matches(text, json!({})), "{text}");
    }
}

#[test]
fn negative_operators_match_absent_or_different_values() {
    for text in ["app!=web", "app notin (web)", "app notin (db,web)"] {
        assert!(!matches(text, json!({"app": "web"})), "{text}");
        assert!(matches(text, json!({"app": "api"})), "{text}");
        assert!(matches(text, json!({"other": "web"})), "{text}");
    }
}

#[test]
fn existence_operators_look_only_at_presence() {
    assert!(matches("canary", json!({"canary": ""})));
    assert!(!matches("canary", json!({"app": "x"})));
    assert!(matches("!canary", json!({"app": "x"})));
    assert!(!matches("!canary", json!({"canary": "true"})));
}

#[test]
fn gt_and_lt_compare_labels_as_integers() {
    assert!(matches("n>1", json!({"n": "2"})));
    assert!(!matches("n>1", json!({"n": "1"})));
    assert!(!matches("n>1", json!({"n": "abc"})));
    assert!(!matches("n>1", json!({})));
    assert!(matches("n<10", json!({"n": "9"})));
    assert!(matches("n<10", json!({"n": "-5"})));
    assert!(!matches("n<10", json!({"n": "10"})));
    assert!(matches("n>01", json!({"n": "+2"})));
}

#[test]
fn comma_is_and() {
    let text = "app=x,tier!=db";
    assert!(matches(text, json!({"app": "x", "tier": "web"})));
    assert!(matches(text, json!({"app": "x"})));
    assert!(!matches(text, json!({"app": "x", "tier": "db"})));
    assert!(!matches(text, json!({"tier": "web"})));
}

#[test]
fn non_string_label_values_never_match() {
    for text in [
        "a=1",
        "a!=1",
        "a in (1)",
        "a notin (1)",
        "a",
        "!a",
        "a>0",
        "a<9",
    ] {
        assert!(!matches(text, json!({"a": 1})), "{text}");
        assert!(!matches(text, json!({"a": null})), "{text}");
    }
}

#[test]
fn missing_labels_are_an_empty_map() {
    assert!(sel("!a,b!=c,d notin (e)").matches(None));
    assert!(!sel("a").matches(None));
    assert!(sel("").matches(None));
}

#[test]
fn matches_object_reads_metadata_labels() {
    let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
    assert!(sel("app=web").matches_object(&pod));
    assert!(!sel("app=db").matches_object(&pod));
    let bare = json!({"metadata": {"name": "p"}});
    assert!(sel("!app").matches_object(&bare));
    assert!(!sel("app").matches_object(&bare));
    assert!(sel("").matches_object(&json!("not an object")));
}

#[test]
fn kubectl_forms_parse() {
    assert_eq!(
        sel("environment in (production, qa)").to_string(),
        "environment in (production,qa)"
    );
    assert_eq!(
        sel("environment notin (frontend)").to_string(),
        "environment notin (frontend)"
    );
    assert_eq!(sel("!canary").to_string(), "!canary");
    assert_eq!(sel("app=x,tier!=db").to_string(), "app=x,tier!=db");
    assert_eq!(
        sel("app.kubernetes.io/name=web,example.com/tier in (a)").to_string(),
        "app.kubernetes.io/name=web,example.com/tier in (a)"
    );
}

#[test]
fn whitespace_is_tolerated_between_tokens() {
    let s = sel(" \tapp = web ,\n tier in ( a , b ) , ! canary , n > 3 \r");
    assert_eq!(s.to_string(), "app=web,!canary,n>3,tier in (a,b)");
    assert_eq!(sel("x in(a)"), sel("x in (a)"));
    assert_eq!(sel("x notin(a,b)"), sel("x notin (a,b)"));
}

#[test]
fn empty_selector_is_everything() {
    for text in ["", "   ", "\t\n"] {
        let s = sel(text);
        assert!(s.is_empty(), "{text:?}");
        assert_eq!(s, LabelSelector::everything());
        assert_eq!(s.to_string(), "");
        assert!(s.matches(Some(&labels(json!({"a": "b"})))));
    }
}

#[test]
fn omitted_values_are_the_empty_string() {
    let cases = [
        ("x=", vec![""]),
        ("x!=", vec![""]),
        ("x in ()", vec![""]),
        ("x in (,a)", vec!["", "a"]),
        ("x in (a,)", vec!["", "a"]),
        ("x in (a,,b)", vec!["", "a", "b"]),
        ("x in (,)", vec![""]),
        ("x in (b,a,b)", vec!["a", "b"]),
    ];
    for (text, values) in cases {
        let s = sel(text);
        assert_eq!(s.requirements()[0].values(), values.as_slice(), "{text}");
    }
    assert!(matches("x=", json!({"x": ""})));
    assert!(!matches("x=", json!({})));
    assert!(matches("x,y=", json!({"x": "1", "y": ""})));
}

#[test]
fn in_and_notin_are_ordinary_words_outside_operator_position() {
    let s = sel("in=notin,x in (in,notin),!notin");
    assert_eq!(s.to_string(), "in=notin,!notin,x in (in,notin)");
    assert!(s.matches(Some(&labels(json!({"in": "notin", "x": "in"})))));
}

#[test]
fn requirements_are_sorted_by_key_stably() {
    let s = sel("z=1,a=2,m,a!=3");
    assert_eq!(s.to_string(), "a=2,a!=3,m,z=1");
}

#[test]
fn display_round_trips() {
    let texts = [
        "app=x,tier!=db",
        "environment in (production, qa)",
        "!canary",
        "x==y",
        "x=",
        "x in (,a)",
        "x notin ()",
        "n>0,n<5",
        "a,b,!c,d in (x),e notin (y,z)",
        "example.com/key=Value_1.2-3",
        "in=in",
    ];
    for text in texts {
        let s = sel(text);
        assert_eq!(
            LabelSelector::parse(&s.to_string()),
            Ok(s.clone()),
            "{text}"
        );
    }
}

#[test]
fn nul_byte_ends_input_like_upstream_lexer() {
    assert_eq!(sel("a\u{0}").to_string(), "a");
    assert_eq!(sel("a=b\u{0}"), sel("a=b"));
}

#[test]
fn requires_exact_match_reports_pinned_values() {
    let s = sel("a=1,b in (2),c in (3,4),d!=5,e==6");
    assert_eq!(s.requires_exact_match("a"), Some("1"));
    assert_eq!(s.requires_exact_match("b"), Some("2"));
    assert_eq!(s.requires_exact_match("c"), None);
    assert_eq!(s.requires_exact_match("d"), None);
    assert_eq!(s.requires_exact_match("e"), Some("6"));
    assert_eq!(s.requires_exact_match("z"), None);
}

#[test]
fn upstream_parser_cases_agree() {
    let good = [
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("x>1,z<5", "x>1,z<5"),
        ("\rx", "x"),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
        ),
        ("x notin\n (abc)", "x notin (abc)"),
        ("x  notin\t\t(abc,def)", "x notin (abc,def)"),
        ("x in (a,,,,,,)", "x in (,a)"),
        ("x in (a,,a,,a,,a,,)", "x in (,a)"),
        (
            "x notin (abc,,def),bar,z in (),w",
            "bar,w,x notin (,abc,def),z in ()",
        ),
        ("x notin ( )", "x notin ()"),
        ("x notin (, a)", "x notin (,a)"),
    ];
    for (text, canonical) in good {
        assert_eq!(sel(text).to_string(), canonical, "{text:?}");
    }
    for bad in [
        "x=a||y=b",
        "x==a==b",
        "!x=a",
        "x<a",
        "x,,y",
        ",x,y",
        "x nott in (y)",
    ] {
        assert!(LabelSelector::parse(bad).is_err(), "{bad:?}");
    }
}

/// Deterministic pseudo-random selector texts built from grammar fragments.
fn fragment_texts(count: usize, fragments: &[&str]) -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..count)
        .map(|_| {
            (0..next() % 12)
                .map(|_| fragments[next() % fragments.len()])
                .collect()
        })
        .collect()
}

#[test]
fn any_text_either_fails_cleanly_or_round_trips() {
    let fragments = [
        "a", "b", "ex.com/", "=", "==", "!", "!=", "(", ")", ",", " ", "in", "notin", ">", "<",
        "1", "-", ".", "_", "\\", "é", "\u{0}", "\t",
    ];
    let mut parsed = 0;
    for text in fragment_texts(20_000, &fragments) {
        if let Ok(s) = LabelSelector::parse(&text) {
            parsed += 1;
            assert_eq!(
                LabelSelector::parse(&s.to_string()),
                Ok(s.clone()),
                "{text:?} -> {s}"
            );
        }
    }
    assert!(
        parsed > 1_000,
        "only {parsed} texts parsed; the generator is too hostile"
    );
}
