//! One label requirement (`key op values`): construction with upstream's
//! validation, matching against a label map, and its canonical text.
//!
//! Construction is the only place a requirement is checked, mirroring
//! upstream `labels.NewRequirement`, so every requirement held by a selector is
//! valid and matching never has to report errors. Values are kept sorted and
//! de-duplicated: upstream treats them as a set, and a canonical order is what
//! makes `parse(display) == original` hold.

use std::fmt;

use serde_json::{Map, Value};

use super::SelectorError;
use super::validation::{BadValue, aggregate, invalid, label_key_errors, label_value_errors};

/// The operator of a label requirement (upstream `selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelOperator {
    /// `key in (a,b)`: the label is present with one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key=v`: the label is present with this value.
    Equals,
    /// `key==v`: same as [`LabelOperator::Equals`], kept apart so the text round-trips.
    DoubleEquals,
    /// `key!=v`: the label is absent or has another value.
    NotEquals,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>n`: the label is an integer greater than `n`.
    GreaterThan,
    /// `key<n`: the label is an integer less than `n`.
    LessThan,
}

impl LabelOperator {
    /// The upstream spelling of the operator (`in`, `notin`, `=`, `==`, `!=`,
    /// `exists`, `!`, `gt`, `lt`), as used in upstream error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::NotIn => "notin",
            Self::Equals => "=",
            Self::DoubleEquals => "==",
            Self::NotEquals => "!=",
            Self::Exists => "exists",
            Self::DoesNotExist => "!",
            Self::GreaterThan => "gt",
            Self::LessThan => "lt",
        }
    }
}

/// A validated `key op values` term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LabelRequirement {
    key: String,
    operator: LabelOperator,
    values: Vec<String>,
}

impl LabelRequirement {
    /// Builds a requirement, validating it as upstream `labels.NewRequirement`
    /// does: the key must be a qualified name, `in`/`notin` need values,
    /// `=`/`==`/`!=`/`gt`/`lt` exactly one, exists/does-not-exist none, `gt`/`lt`
    /// an integer, and every value must be a valid label value. All problems
    /// are reported together in upstream's aggregate form.
    pub fn new(
        key: &str,
        operator: LabelOperator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", BadValue::Str(key), &key_errs.join("; ")));
        }
        if let Some(count_err) = count_error(operator, &values) {
            errs.push(invalid("values", BadValue::List(&values), count_err));
        }
        if matches!(
            operator,
            LabelOperator::GreaterThan | LabelOperator::LessThan
        ) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    let detail = "for 'Gt', 'Lt' operators, the value must be an integer";
                    errs.push(invalid(&format!("values[{i}]"), BadValue::Str(v), detail));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                let path = format!("values[{i}][{key}]");
                errs.push(invalid(&path, BadValue::Str(v), &value_errs.join("; ")));
            }
        }
        if let Some(msg) = aggregate(errs) {
            return Err(SelectorError::InvalidRequirement(msg));
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Self {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// The label key this requirement is about.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator relating the key and the values.
    pub fn operator(&self) -> LabelOperator {
        self.operator
    }

    /// The values, sorted and without duplicates (empty for exists/does-not-exist).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement. A label whose value is not a
    /// JSON string is malformed and satisfies no requirement on its key.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = match labels.and_then(|m| m.get(&self.key)) {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return false,
        };
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            LabelOperator::In | LabelOperator::Equals | LabelOperator::DoubleEquals => {
                value.is_some_and(has)
            }
            LabelOperator::NotIn | LabelOperator::NotEquals => value.is_none_or(|v| !has(v)),
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => self.compare(value),
        }
    }

    /// `gt`/`lt`: both sides must be 64-bit decimal integers, else no match.
    fn compare(&self, value: Option<&str>) -> bool {
        let (Some(label), [bound]) = (value, self.values.as_slice()) else {
            return false;
        };
        let (Ok(label), Ok(bound)) = (label.parse::<i64>(), bound.parse::<i64>()) else {
            return false;
        };
        match self.operator {
            LabelOperator::GreaterThan => label > bound,
            _ => label < bound,
        }
    }
}

/// The value-count rule of `NewRequirement` for an operator, if broken.
fn count_error(operator: LabelOperator, values: &[String]) -> Option<&'static str> {
    match operator {
        LabelOperator::In | LabelOperator::NotIn if values.is_empty() => {
            Some("for 'in', 'notin' operators, values set can't be empty")
        }
        LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::NotEquals
            if values.len() != 1 =>
        {
            Some("exact-match compatibility requires one single value")
        }
        LabelOperator::Exists | LabelOperator::DoesNotExist if !values.is_empty() => {
            Some("values set must be empty for exists and does not exist")
        }
        LabelOperator::GreaterThan | LabelOperator::LessThan if values.len() != 1 => {
            Some("for 'Gt', 'Lt' operators, exactly one value is required")
        }
        _ => None,
    }
}

/// Upstream `Requirement.String()`: `!k`, `k`, `k=v`, `k==v`, `k!=v`,
/// `k in (a,b)`, `k notin (a,b)`, `k>n`, `k<n`.
impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            LabelOperator::Exists => return f.write_str(&self.key),
            LabelOperator::DoesNotExist => return write!(f, "!{}", self.key),
            LabelOperator::In => " in ",
            LabelOperator::NotIn => " notin ",
            LabelOperator::Equals => "=",
            LabelOperator::DoubleEquals => "==",
            LabelOperator::NotEquals => "!=",
            LabelOperator::GreaterThan => ">",
            LabelOperator::LessThan => "<",
        };
        let values = self.values.join(",");
        match self.operator {
            LabelOperator::In | LabelOperator::NotIn => write!(f, "{}{op}({values})", self.key),
            _ => write!(f, "{}{op}{values}", self.key),
        }
    }
}
