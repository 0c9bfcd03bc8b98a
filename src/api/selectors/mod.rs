//! Kubernetes label and field selectors over JSON objects, with upstream
//! syntax, semantics and error messages (`k8s.io/apimachinery/pkg/labels`
//! and `pkg/fields` are the spec).
//!
//! This module owns turning `?labelSelector=` / `?fieldSelector=` text and
//! `metav1.LabelSelector` objects into matchers, and matching them against
//! objects stored as `serde_json::Value`. It fails only while building a
//! selector: every error is a [`SelectorError`] whose text is what upstream
//! reports, because the apiserver returns it verbatim as a 400 BadRequest
//! message and clients and users compare it with a real cluster's. Once
//! built, a selector is valid, so matching cannot fail; malformed objects
//! (e.g. a non-string label) simply do not match.
//!
//! The pieces: `parser` (label text grammar), `requirement` (one
//! validated label term), `labels` (the label selector and its JSON form),
//! `fields` (field selectors and reading fields out of objects), and
//! `validation` (upstream's key/value rules and message formats).

mod fields;
mod labels;
mod parser;
mod requirement;
mod validation;

#[cfg(test)]
mod field_tests;
#[cfg(test)]
mod label_error_tests;
#[cfg(test)]
mod label_json_tests;
#[cfg(test)]
mod label_tests;

pub use fields::{FieldOp, FieldRequirement, FieldSelector, escape_value, object_field};
pub use labels::LabelSelector;
pub use requirement::{LabelOperator, LabelRequirement};

/// Why a selector could not be built. `Display` is the upstream message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Label selector text that does not parse, or whose key or values are
    /// invalid, e.g. `unable to parse requirement: found '(', expected:
    /// identifier` or `found ',', expected: !, identifier, or 'end of string'`.
    #[error("{0}")]
    LabelParse(String),
    /// A label requirement that fails upstream `NewRequirement` validation
    /// (bad key, bad value, wrong number of values), in upstream's
    /// `path: Invalid value: ...` form, aggregated as `[a, b]` if several.
    #[error("{0}")]
    InvalidRequirement(String),
    /// A `matchExpressions` operator other than `In`, `NotIn`, `Exists`,
    /// `DoesNotExist`.
    #[error("{} is not a valid label selector operator", validation::go_quote(.0))]
    UnknownOperator(String),
    /// JSON that does not have the shape of a `metav1.LabelSelector` (e.g. a
    /// number where a string belongs), which upstream rejects while decoding.
    #[error("invalid label selector: {0}")]
    MalformedLabelSelector(String),
    /// A field selector term with no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector text.
        selector: String,
        /// The term that has no operator.
        term: String,
    },
    /// A field selector value with a backslash not followed by `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    FieldEscape(String),
    /// A field selector value with a bare `,` or `=`; upstream prints the
    /// character as its code point number.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    FieldUnescaped(char),
}
