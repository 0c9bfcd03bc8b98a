//! [`LabelSelector`]: an AND of label requirements, built from selector text
//! or from a `metav1.LabelSelector` JSON object, and matched against
//! `metadata.labels`.
//!
//! Requirements are kept sorted by key (stably), as upstream sorts them after
//! parsing and in `Selector.Add`, so the canonical text and equality do not
//! depend on the order terms were written in. Conversion from JSON follows
//! `metav1.LabelSelectorAsSelector`; a JSON shape that upstream's typed
//! decoding would reject is a [`SelectorError::MalformedLabelSelector`].

use std::fmt;

use serde_json::{Map, Value};

use super::SelectorError;
use super::parser;
use super::requirement::{LabelOperator, LabelRequirement};

/// A label selector: matches label sets satisfying all of its requirements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
    /// Upstream `labels.Nothing()`: matches no label set at all.
    nothing: bool,
}

impl LabelSelector {
    /// Parses label selector text (already URL-decoded), e.g.
    /// `app=x,tier!=db`, `environment in (production, qa)`, `!canary`, `n>3`.
    /// The empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Ok(Self::from_requirements(parser::parse(s)?))
    }

    /// Converts a `metav1.LabelSelector` JSON object (`matchLabels`,
    /// `matchExpressions`). `null`, `{}` and a selector with no terms select
    /// everything (upstream selects nothing for a nil pointer; callers needing
    /// that use [`LabelSelector::nothing`]).
    pub fn from_json(v: &Value) -> Result<Self, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(Self::everything()),
            Value::Object(obj) => obj,
            other => {
                return Err(malformed(format!(
                    "expected an object, got {}",
                    kind(other)
                )));
            }
        };
        let empty = Map::new();
        let match_labels = match obj.get("matchLabels") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(malformed(format!(
                    "matchLabels: expected an object, got {}",
                    kind(other)
                )));
            }
        };
        let expressions: &[Value] = match obj.get("matchExpressions") {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(malformed(format!(
                    "matchExpressions: expected an array, got {}",
                    kind(other)
                )));
            }
        };
        let mut requirements = Vec::with_capacity(match_labels.len() + expressions.len());
        let mut keys: Vec<&String> = match_labels.keys().collect();
        keys.sort();
        for key in keys {
            let value = match match_labels.get(key) {
                Some(Value::String(s)) => s.clone(),
                other => {
                    let got = other.map_or("nothing", kind);
                    let msg = format!("matchLabels[{key:?}]: expected a string, got {got}");
                    return Err(malformed(msg));
                }
            };
            requirements.push(LabelRequirement::new(
                key,
                LabelOperator::Equals,
                vec![value],
            )?);
        }
        for (i, expr) in expressions.iter().enumerate() {
            requirements.push(expression(i, expr)?);
        }
        Ok(Self::from_requirements(requirements))
    }

    /// A selector from already-validated requirements, sorted by key.
    pub fn from_requirements(mut requirements: Vec<LabelRequirement>) -> Self {
        requirements.sort_by(|a, b| a.key().cmp(b.key()));
        Self {
            requirements,
            nothing: false,
        }
    }

    /// The selector that matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no label set (upstream `labels.Nothing()`,
    /// what a nil `metav1.LabelSelector` converts to). Its text is empty.
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// True if the selector does not restrict anything (no requirements).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// Upstream `RequiresExactMatch`: the single value the first requirement
    /// on `key` pins it to (`=`, `==`, or `in` with one value), for index
    /// lookups. `None` if the first requirement on `key` is anything else.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key() == key)?;
        match (r.operator(), r.values()) {
            (LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::In, [v]) => {
                Some(v)
            }
            _ => None,
        }
    }

    /// Whether a label map satisfies every requirement; missing labels are an
    /// empty map, and non-string label values never match.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// [`LabelSelector::matches`] on `obj.metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let labels = obj
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.matches(labels)
    }
}

/// One `matchExpressions` entry, checked as `LabelSelectorAsSelector` does:
/// the operator first, then the requirement as a whole.
fn expression(index: usize, expr: &Value) -> Result<LabelRequirement, SelectorError> {
    let at = format!("matchExpressions[{index}]");
    let Value::Object(obj) = expr else {
        return Err(malformed(format!(
            "{at}: expected an object, got {}",
            kind(expr)
        )));
    };
    let text_field = |name: &str| -> Result<String, SelectorError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(malformed(format!(
                "{at}.{name}: expected a string, got {}",
                kind(other)
            ))),
        }
    };
    let key = text_field("key")?;
    let operator = text_field("operator")?;
    let values = match obj.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(malformed(format!(
                    "{at}.values: expected strings, got {}",
                    kind(other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(malformed(format!(
                "{at}.values: expected an array, got {}",
                kind(other)
            )));
        }
    };
    let op = match operator.as_str() {
        "In" => LabelOperator::In,
        "NotIn" => LabelOperator::NotIn,
        "Exists" => LabelOperator::Exists,
        "DoesNotExist" => LabelOperator::DoesNotExist,
        _ => return Err(SelectorError::UnknownOperator(operator)),
    };
    LabelRequirement::new(&key, op, values)
}

fn malformed(msg: String) -> SelectorError {
    SelectorError::MalformedLabelSelector(msg)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Upstream `Selector.String()`: requirements joined by `,` in key order.
/// Parsing this text gives back an equal selector.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}
