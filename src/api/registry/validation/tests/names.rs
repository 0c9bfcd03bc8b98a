//! The shared name and format checks of `names`.

use crate::api::registry::names::*;

#[test]
fn dns_label_message_matches_upstream_text() {
    let errs = is_dns1123_label("Foo");
    assert_eq!(
        errs,
        vec![
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
             or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  \
             or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
}

#[test]
fn dns_label_with_dots_says_so() {
    assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
    assert!(is_dns1123_label("a-1").is_empty());
    assert_eq!(
        is_dns1123_label(&"a".repeat(64))[0],
        "must be no more than 63 characters"
    );
}

#[test]
fn subdomain_accepts_dotted_and_rejects_edges() {
    assert!(is_dns1123_subdomain("example.com").is_empty());
    assert_eq!(is_dns1123_subdomain("a..b").len(), 1);
    assert_eq!(is_dns1123_subdomain("-a").len(), 1);
    assert_eq!(is_dns1123_subdomain("").len(), 1);
}

#[test]
fn dns1035_requires_leading_letter() {
    assert!(is_dns1035_label("web").is_empty());
    assert!(is_dns1035_label("1web")[0].starts_with("a DNS-1035 label must consist"));
}

#[test]
fn qualified_name_checks_prefix_and_name() {
    assert!(is_qualified_name("example.com/My_Name.1").is_empty());
    assert_eq!(
        is_qualified_name("/a"),
        vec!["prefix part must be non-empty"]
    );
    assert!(is_qualified_name("a/b/c")[0].starts_with("a valid label key must consist"));
    let long = is_qualified_name(&"a".repeat(64));
    assert_eq!(long, vec!["name part must be no more than 63 bytes"]);
    assert!(is_qualified_name("Ex_.com/a")[0].starts_with("prefix part a lowercase RFC"));
    assert_eq!(is_qualified_name("a/").len(), 2);
}

#[test]
fn label_values_may_be_empty() {
    assert!(is_label_value("").is_empty());
    assert!(is_label_value("my_value").is_empty());
    assert!(is_label_value("-x")[0].starts_with("a valid label must be an empty string"));
}

#[test]
fn config_keys_reject_dot_dot() {
    assert!(is_config_map_key("key.name").is_empty());
    assert_eq!(is_config_map_key(".."), vec!["must not be '..'"]);
    assert_eq!(is_config_map_key("a/b").len(), 1);
}

#[test]
fn env_names_are_relaxed_printable_ascii() {
    assert!(is_env_var_name("1_weird-name.ok").is_empty());
    assert_eq!(is_env_var_name("A=B").len(), 1);
    assert_eq!(is_env_var_name("tab\there").len(), 1);
}

#[test]
fn port_names_follow_iana_rules() {
    assert!(is_valid_port_name("http").is_empty());
    assert_eq!(
        is_valid_port_name("80"),
        vec!["must contain at least one letter (a-z)"]
    );
    assert!(is_valid_port_name("a--b").contains(&"must not contain consecutive hyphens".into()));
    assert_eq!(
        is_valid_port_name("this-is-too-long-name")[0],
        "must be no more than 15 characters"
    );
    assert_eq!(
        is_valid_port_num(0),
        vec!["must be between 1 and 65535, inclusive"]
    );
}

#[test]
fn generate_name_prefix_may_end_in_dash() {
    assert!(name_is_dns_subdomain("web-", true).is_empty());
    assert_eq!(name_is_dns_subdomain("web-", false).len(), 1);
}

#[test]
fn path_segments_reject_slashes() {
    assert_eq!(
        is_valid_path_segment_name("a/b"),
        vec!["may not contain '/'"]
    );
    assert_eq!(is_valid_path_segment_name(".."), vec!["may not be '..'"]);
}
