//! Field errors as apimachinery's `field.Error` renders them.
//!
//! The main crate turns these into `metav1.StatusCause`s, so `reason` is the
//! cause type and `message` is Go's `ErrorBody()` (everything after the
//! `field: ` prefix).

use super::gofmt;
use serde_json::Value;

/// One validation error, like apimachinery's `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The metav1 cause type, e.g. `FieldValueInvalid`.
    pub reason: &'static str,
    /// The field path, e.g. `spec.items[0].name` (`<nil>` where upstream has
    /// no path).
    pub field: String,
    /// The error body without the field, e.g. `Required value`.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A Go `BadValue`; JSON values render like decoded unstructured content.
#[derive(Debug, Clone)]
pub(crate) enum Bad {
    Json(Value),
    Int(i64),
    Str(String),
    /// `field.TooMany` with an unknown count.
    Omit,
}

pub(crate) fn render_bad(v: &Bad) -> String {
    match v {
        Bad::Json(Value::String(s)) | Bad::Str(s) => gofmt::quote(s),
        Bad::Json(Value::Number(n)) => gofmt::number(n),
        Bad::Json(Value::Bool(b)) => b.to_string(),
        Bad::Json(other) => gofmt::json(other),
        Bad::Int(i) => i.to_string(),
        Bad::Omit => String::new(),
    }
}

fn with_value(
    reason: &'static str,
    title: &str,
    field: &str,
    bad: &Bad,
    detail: &str,
) -> FieldError {
    let mut message = match bad {
        Bad::Omit => title.to_string(),
        b => format!("{}: {}", title, render_bad(b)),
    };
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(detail);
    }
    FieldError {
        reason,
        field: field.to_string(),
        message,
    }
}

fn without_value(reason: &'static str, title: &str, field: &str, detail: &str) -> FieldError {
    let mut message = title.to_string();
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(detail);
    }
    FieldError {
        reason,
        field: field.to_string(),
        message,
    }
}

/// `field.Required`.
pub(crate) fn required(field: &str, detail: &str) -> FieldError {
    without_value("FieldValueRequired", "Required value", field, detail)
}

/// `field.Forbidden`.
pub(crate) fn forbidden(field: &str, detail: &str) -> FieldError {
    without_value("FieldValueForbidden", "Forbidden", field, detail)
}

/// `field.Invalid`.
pub(crate) fn invalid(field: &str, bad: Bad, detail: &str) -> FieldError {
    with_value("FieldValueInvalid", "Invalid value", field, &bad, detail)
}

/// `field.TypeInvalid`.
pub(crate) fn type_invalid(field: &str, bad: Bad, detail: &str) -> FieldError {
    with_value(
        "FieldValueTypeInvalid",
        "Invalid value",
        field,
        &bad,
        detail,
    )
}

/// `field.Duplicate`.
pub(crate) fn duplicate(field: &str, bad: Bad) -> FieldError {
    with_value("FieldValueDuplicate", "Duplicate value", field, &bad, "")
}

/// `field.NotSupported`.
pub(crate) fn not_supported(field: &str, bad: Bad, valid: &[String]) -> FieldError {
    let detail = if valid.is_empty() {
        String::new()
    } else {
        let q: Vec<String> = valid.iter().map(|v| gofmt::quote(v)).collect();
        format!("supported values: {}", q.join(", "))
    };
    with_value(
        "FieldValueNotSupported",
        "Unsupported value",
        field,
        &bad,
        &detail,
    )
}

/// `field.TooLong` (value omitted, as upstream's CR validation does).
pub(crate) fn too_long(field: &str, max: i64) -> FieldError {
    let detail = if max >= 0 {
        format!(
            "may not be more than {} {}",
            max,
            if max == 1 { "byte" } else { "bytes" }
        )
    } else {
        "value is too long".to_string()
    };
    without_value("FieldValueTooLong", "Too long", field, &detail)
}

/// `field.TooMany`.
pub(crate) fn too_many(field: &str, actual: i64, max: i64) -> FieldError {
    let detail = if max >= 0 {
        format!(
            "must have at most {} {}",
            max,
            if max == 1 { "item" } else { "items" }
        )
    } else {
        "has too many items".to_string()
    };
    let bad = if actual >= 0 {
        Bad::Int(actual)
    } else {
        Bad::Omit
    };
    with_value("FieldValueTooMany", "Too many", field, &bad, &detail)
}

/// Appends a child to a field path (`field.Path.Child`).
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{}.{}", path, name)
    }
}

/// Appends a map key (`field.Path.Key`).
pub(crate) fn key(path: &str, k: &str) -> String {
    format!("{}[{}]", path, k)
}

/// Appends an index (`field.Path.Index`).
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{}[{}]", path, i)
}
