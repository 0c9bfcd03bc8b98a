//! `metav1.LabelSelector` matching (upstream `LabelSelectorAsSelector` + `Matches`).
//!
//! A selector is compiled once per reconcile into a [`Matcher`]; an unknown operator or an
//! `In`/`NotIn` without values is an [`ControllerError::InvalidSpec`] rather than a silent
//! non-match, because the apiserver validates selectors and a bad one means something is off.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::error::ControllerError;

#[derive(Debug, Clone)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A compiled label selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Matcher {
    /// Compiles a selector; `None` selects nothing and `{}` selects everything (upstream).
    pub fn new(selector: Option<&LabelSelector>) -> Result<Self, ControllerError> {
        let Some(sel) = selector else {
            return Ok(Matcher {
                requirements: Vec::new(),
                nothing: true,
            });
        };
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::In(k.clone(), vec![v.clone()]));
        }
        for expr in sel.match_expressions.iter().flatten() {
            let values = expr.values.clone().unwrap_or_default();
            let key = expr.key.clone();
            let req = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(ControllerError::InvalidSpec {
                        field: "selector",
                        reason: format!("operator {} on key {key} needs values", expr.operator),
                    });
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(ControllerError::InvalidSpec {
                        field: "selector",
                        reason: format!("{other:?} is not a valid label selector operator"),
                    });
                }
            };
            requirements.push(req);
        }
        Ok(Matcher {
            requirements,
            nothing: false,
        })
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        if self.nothing {
            return false;
        }
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Whether this selector selects every object (a `{}` selector).
    pub fn selects_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
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
    fn match_labels_and_expressions_are_anded() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let m = Matcher::new(Some(&sel)).expect("valid selector");
        assert!(m.matches(Some(&labels(&[("app", "web")]))));
        assert!(m.matches(Some(&labels(&[("app", "web"), ("tier", "fe")]))));
        assert!(!m.matches(Some(&labels(&[("app", "web"), ("tier", "db")]))));
        assert!(!m.matches(Some(&labels(&[("app", "api")]))));
    }

    #[test]
    fn nil_selects_nothing_and_empty_selects_everything() {
        let none = Matcher::new(None).expect("nil selector");
        assert!(!none.matches(Some(&labels(&[("a", "b")]))));
        let all = Matcher::new(Some(&LabelSelector::default())).expect("empty selector");
        assert!(all.matches(None) && all.selects_everything());
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(Matcher::new(Some(&sel)).is_err());
    }
}
