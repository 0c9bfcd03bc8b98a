//! Label key/value validation and the message formats upstream wraps it in.
//!
//! The apiserver hands these messages back verbatim in 400 responses, and
//! clients (and people) compare them against what a real cluster says, so the
//! wording follows `k8s.io/apimachinery/pkg/api/validate/content` (label keys
//! and values), `util/validation/field` (the `path: Invalid value: ...` shape)
//! and `util/errors` (aggregation) exactly. The checks are hand-written
//! equivalents of upstream's regular expressions; nothing here fails, it only
//! returns lists of complaints.

const LABEL_KEY_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_EXAMPLES: [&str; 3] = ["MyName", "my.name", "123-abc"];
const LABEL_NAME_MAX_LEN: usize = 63;

const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_EXAMPLES: [&str; 3] = ["MyValue", "my_value", "12345"];
const LABEL_VALUE_MAX_LEN: usize = 63;

const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower \
     case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
     character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

/// Upstream `content.RegexError`, including its doubled spaces between examples.
fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{re}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(re);
    out.push_str("')");
    out
}

fn max_len_error(len: usize) -> String {
    format!("must be no more than {len} bytes")
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, anchored.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, anchored.
fn is_dns1123_label(s: &str) -> bool {
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            lower_alnum(first)
                && lower_alnum(last)
                && b.iter().all(|c| lower_alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LEN));
    }
    if !value.split('.').all(is_dns1123_label) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Upstream `content.IsLabelKey`: `[prefix/]name`, prefix a DNS subdomain, name ≤ 63.
pub(super) fn label_key_errors(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let mut errs = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            let re = regex_error(LABEL_KEY_ERR_MSG, LABEL_KEY_FMT, &LABEL_KEY_EXAMPLES);
            errs.push(format!(
                "a valid label key {re} with an optional DNS subdomain prefix and '/' \
                 (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > LABEL_NAME_MAX_LEN {
        errs.push(format!("name part {}", max_len_error(LABEL_NAME_MAX_LEN)));
    }
    if !is_label_name(name) {
        let re = regex_error(LABEL_KEY_ERR_MSG, LABEL_KEY_FMT, &LABEL_KEY_EXAMPLES);
        errs.push(format!("name part {re}"));
    }
    errs
}

/// Upstream `content.IsLabelValue`: empty, or a label name of at most 63 bytes.
pub(super) fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LEN {
        errs.push(max_len_error(LABEL_VALUE_MAX_LEN));
    }
    if !value.is_empty() && !is_label_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &LABEL_VALUE_EXAMPLES,
        ));
    }
    errs
}

pub(super) use crate::api::go_strings::go_quote;

/// The bad value of a `field.Invalid` error, rendered as upstream renders it.
pub(super) enum BadValue<'a> {
    /// A string, shown with Go `%q` quoting.
    Str(&'a str),
    /// A string list, shown as JSON (`null` when empty, as upstream's nil slices are).
    List(&'a [String]),
}

/// Upstream `field.Invalid(path, value, detail).Error()`.
pub(super) fn invalid(path: &str, value: BadValue<'_>, detail: &str) -> String {
    let shown = match value {
        BadValue::Str(s) => go_quote(s),
        BadValue::List([]) => "null".to_string(),
        BadValue::List(items) => {
            let quoted: Vec<String> = items.iter().map(|s| json_string(s)).collect();
            format!("[{}]", quoted.join(","))
        }
    };
    format!("{path}: Invalid value: {shown}: {detail}")
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Upstream `utilerrors.NewAggregate(errs).Error()`: one message as-is, several
/// de-duplicated in order and bracketed. `None` when there is nothing to report.
pub(super) fn aggregate(errs: Vec<String>) -> Option<String> {
    match errs.len() {
        0 => None,
        1 => errs.into_iter().next(),
        _ => {
            let mut seen: Vec<String> = Vec::with_capacity(errs.len());
            for e in errs {
                if !seen.contains(&e) {
                    seen.push(e);
                }
            }
            if seen.len() == 1 {
                seen.pop()
            } else {
                Some(format!("[{}]", seen.join(", ")))
            }
        }
    }
}
