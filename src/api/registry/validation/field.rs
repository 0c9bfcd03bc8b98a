//! Field paths and field-error constructors, mirroring apimachinery's `util/validation/field`.
//!
//! The rendered message of every constructor is upstream's `ErrorBody()`: the error type's
//! human string, then the bad value (strings Go-quoted, scalars bare, anything else as
//! compact JSON), then the detail. Keeping that rendering in one place is what makes every
//! validator's output match kube-apiserver's text without each call site formatting it.

use serde_json::Value;

use super::{CauseType, FieldError};

/// A dotted field path such as `spec.containers[0].name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    /// A path starting at a top-level field.
    pub(crate) fn new(name: &str) -> Path {
        Path(name.to_string())
    }

    /// A named child, joined with a dot (no dot after an empty root).
    pub(crate) fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// A list element.
    pub(crate) fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    /// A map entry.
    pub(crate) fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }

    /// The rendered path.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The offending value carried by an error, rendered the way Go renders it.
#[derive(Clone, Debug)]
pub(crate) enum Bad {
    /// A string, rendered with Go's `%q`.
    Str(String),
    /// An integer, rendered bare.
    Int(i64),
    /// Any other JSON value, rendered as compact JSON (strings quoted, `null` for nil).
    Json(Value),
    /// Text rendered as is, for Go values whose JSON form cannot be built from a `Value`.
    Raw(String),
}

impl Bad {
    /// A string value.
    pub(crate) fn s(value: &str) -> Bad {
        Bad::Str(value.to_string())
    }

    /// A JSON value; absent values become `null` as Go's nil does.
    pub(crate) fn json(value: Option<&Value>) -> Bad {
        Bad::Json(value.cloned().unwrap_or(Value::Null))
    }

    fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(i) => i.to_string(),
            Bad::Json(Value::String(s)) => go_quote(s),
            Bad::Json(Value::Number(n)) => n.to_string(),
            Bad::Json(Value::Bool(b)) => b.to_string(),
            Bad::Json(v) => v.to_string(),
            Bad::Raw(s) => s.clone(),
        }
    }
}

pub(crate) use crate::api::go_strings::go_quote;

fn with_detail(body: String, detail: &str) -> String {
    if detail.is_empty() {
        body
    } else {
        format!("{body}: {detail}")
    }
}

fn make(kind: CauseType, path: &Path, message: String) -> FieldError {
    FieldError {
        kind,
        field: path.as_str().to_string(),
        message,
    }
}

/// `field.Required`.
pub(crate) fn required(path: &Path, detail: &str) -> FieldError {
    make(
        CauseType::Required,
        path,
        with_detail("Required value".to_string(), detail),
    )
}

/// `field.Forbidden`.
pub(crate) fn forbidden(path: &Path, detail: &str) -> FieldError {
    make(
        CauseType::Forbidden,
        path,
        with_detail("Forbidden".to_string(), detail),
    )
}

/// `field.Invalid`.
pub(crate) fn invalid(path: &Path, bad: Bad, detail: &str) -> FieldError {
    let body = format!("Invalid value: {}", bad.render());
    make(CauseType::Invalid, path, with_detail(body, detail))
}

/// `field.Invalid` with a string value, the common case.
pub(crate) fn invalid_str(path: &Path, value: &str, detail: &str) -> FieldError {
    invalid(path, Bad::s(value), detail)
}

/// `field.Invalid` without a value (`field.OmitValueType{}`).
pub(crate) fn invalid_omit(path: &Path, detail: &str) -> FieldError {
    make(
        CauseType::Invalid,
        path,
        with_detail("Invalid value".to_string(), detail),
    )
}

/// `field.NotSupported`, listing the supported values.
pub(crate) fn not_supported(path: &Path, bad: Bad, valid: &[&str]) -> FieldError {
    let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
    let detail = if quoted.is_empty() {
        String::new()
    } else {
        format!("supported values: {}", quoted.join(", "))
    };
    let body = format!("Unsupported value: {}", bad.render());
    make(CauseType::NotSupported, path, with_detail(body, &detail))
}

/// `field.Duplicate`.
pub(crate) fn duplicate(path: &Path, bad: Bad) -> FieldError {
    make(
        CauseType::Duplicate,
        path,
        format!("Duplicate value: {}", bad.render()),
    )
}

/// `field.NotFound`.
pub(crate) fn not_found(path: &Path, bad: Bad) -> FieldError {
    make(
        CauseType::NotFound,
        path,
        format!("Not found: {}", bad.render()),
    )
}

/// `field.TooLong`: the value is never echoed.
pub(crate) fn too_long(path: &Path, max: usize) -> FieldError {
    let unit = if max == 1 { "byte" } else { "bytes" };
    make(
        CauseType::TooLong,
        path,
        format!("Too long: may not be more than {max} {unit}"),
    )
}

/// `field.TooMany`.
pub(crate) fn too_many(path: &Path, actual: usize, max: usize) -> FieldError {
    let unit = if max == 1 { "item" } else { "items" };
    make(
        CauseType::TooMany,
        path,
        format!("Too many: {actual}: must have at most {max} {unit}"),
    )
}

/// Appends one `Invalid` error per message, as upstream's `for _, msg := range ...` loops do.
pub(crate) fn invalid_each(
    errs: &mut Vec<FieldError>,
    path: &Path,
    value: &str,
    msgs: Vec<String>,
) {
    errs.extend(msgs.iter().map(|m| invalid_str(path, value, m)));
}

/// Upstream `ValidateNonnegativeField`.
pub(crate) fn nonnegative(errs: &mut Vec<FieldError>, path: &Path, value: Option<i64>) {
    if let Some(v) = value.filter(|v| *v < 0) {
        errs.push(invalid(
            path,
            Bad::Int(v),
            "must be greater than or equal to 0",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_upstream() {
        let p = Path::new("spec").child("containers").index(0).child("name");
        assert_eq!(p.as_str(), "spec.containers[0].name");
        assert_eq!(Path::new("data").key("a.b").as_str(), "data[a.b]");
        assert_eq!(Path::new("").child("x").as_str(), "x");
    }

    #[test]
    fn messages_render_like_error_body() {
        let p = Path::new("f");
        assert_eq!(required(&p, "").message, "Required value");
        assert_eq!(required(&p, "why").message, "Required value: why");
        assert_eq!(
            invalid_str(&p, "a\"b", "bad").message,
            "Invalid value: \"a\\\"b\": bad"
        );
        assert_eq!(
            invalid(&p, Bad::Int(-1), "neg").message,
            "Invalid value: -1: neg"
        );
        let ns = not_supported(&p, Bad::s("X"), &["A", "B"]);
        assert_eq!(
            ns.message,
            "Unsupported value: \"X\": supported values: \"A\", \"B\""
        );
        assert_eq!(
            too_long(&p, 262144).message,
            "Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            too_many(&p, 5, 3).message,
            "Too many: 5: must have at most 3 items"
        );
        let json = invalid(&p, Bad::json(Some(&serde_json::json!({"a": 1}))), "d");
        assert_eq!(json.message, "Invalid value: {\"a\":1}: d");
        assert_eq!(
            invalid(&p, Bad::json(None), "d").message,
            "Invalid value: null: d"
        );
    }

    #[test]
    fn go_quote_escapes_controls() {
        assert_eq!(go_quote("a\nb\u{1}"), "\"a\\nb\\x01\"");
        assert_eq!(go_quote("ü"), "\"ü\"");
    }
}
