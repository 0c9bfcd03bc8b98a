//! Evaluating `metav1.LabelSelector`s the way upstream's
//! `LabelSelectorAsSelector` does: an absent selector selects nothing, an
//! empty one selects everything, and an unknown operator (or `In`/`NotIn`
//! without values) is an error the caller reports instead of guessing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

/// A parsed selector.
#[derive(Debug, Clone)]
pub enum LabelMatcher {
    /// Selects no object (the selector was absent).
    Nothing,
    /// Selects objects whose labels satisfy every requirement.
    Requirements(Selector),
}

impl LabelMatcher {
    /// Parses `selector`; the error says what is malformed.
    pub fn parse(selector: Option<&LabelSelector>) -> Result<Self, String> {
        let Some(selector) = selector else {
            return Ok(Self::Nothing);
        };
        for req in selector.match_expressions.as_deref().unwrap_or_default() {
            let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
            match req.operator.as_str() {
                "In" | "NotIn" if !has_values => {
                    return Err(format!(
                        "{}: for '{}' operator, values set can't be empty",
                        req.key, req.operator
                    ));
                }
                "Exists" | "DoesNotExist" if has_values => {
                    return Err(format!(
                        "{}: values set must be empty for exists and does not exist",
                        req.key
                    ));
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            }
        }
        Selector::try_from(selector.clone())
            .map(Self::Requirements)
            .map_err(|e| e.0)
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        match self {
            Self::Nothing => false,
            Self::Requirements(selector) => match labels {
                Some(labels) => selector.matches(labels),
                None => selector.matches(&BTreeMap::new()),
            },
        }
    }
}

/// Whether `selector` is present but has no requirement at all (it would
/// select every object in the namespace).
pub fn selects_everything(selector: Option<&LabelSelector>) -> bool {
    selector.is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn absent_selects_nothing_and_empty_selects_everything() {
        let none = LabelMatcher::parse(None).ok();
        assert!(none.is_some_and(|m| !m.matches(Some(&labels(&[("a", "b")])))));
        let empty = LabelSelector::default();
        assert!(selects_everything(Some(&empty)));
        let all = LabelMatcher::parse(Some(&empty)).ok();
        assert!(all.is_some_and(|m| m.matches(None)));
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        assert!(!selects_everything(Some(&sel)));
        let m = LabelMatcher::parse(Some(&sel)).ok();
        let m = m.as_ref();
        assert!(m.is_some_and(|m| m.matches(Some(&labels(&[("app", "web")])))));
        assert!(m.is_some_and(|m| !m.matches(Some(&labels(&[("app", "web"), ("tier", "db")])))));
        assert!(m.is_some_and(|m| !m.matches(Some(&labels(&[("app", "api")])))));
    }

    #[test]
    fn malformed_requirements_are_errors() {
        let bad = |op: &str, values: Option<Vec<String>>| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: op.into(),
                values,
            }]),
            ..Default::default()
        };
        assert!(LabelMatcher::parse(Some(&bad("In", None))).is_err());
        assert!(LabelMatcher::parse(Some(&bad("Exists", Some(vec!["x".into()])))).is_err());
        assert!(LabelMatcher::parse(Some(&bad("Near", None))).is_err());
        assert!(LabelMatcher::parse(Some(&bad("Exists", None))).is_ok());
    }
}
