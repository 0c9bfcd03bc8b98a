//! Compiled label selectors (pod affinity, topology spread) and node selector terms.
//!
//! Selectors are compiled once per pod so the per-node hot loop only compares strings.
//! Semantics follow apimachinery: a nil `LabelSelector` selects nothing while an empty one
//! selects everything; `NotIn`/`DoesNotExist` match when the key is absent; node `Gt`/`Lt`
//! compare integers. Invalid selectors are a [`SelectorError`]; callers decide whether that
//! makes a pod unschedulable (its own terms) or a term inert (an invalid node selector term
//! matches no node, like upstream's lazy-error node selector).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Label maps as stored on objects.
pub type Labels = BTreeMap<String, String>;

/// A selector that the scheduler cannot interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector: {0}")]
pub struct SelectorError(pub String);

/// One compiled requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Key present with one of the values.
    In(Vec<String>),
    /// Key absent or with none of the values.
    NotIn(Vec<String>),
    /// Key present.
    Exists,
    /// Key absent.
    DoesNotExist,
    /// Key present with an integer value greater than this.
    Gt(i64),
    /// Key present with an integer value less than this.
    Lt(i64),
}

/// A key and the operation applied to its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label (or field) key.
    pub key: String,
    /// Operation on the value.
    pub op: Op,
}

impl Requirement {
    /// Whether `value` (None when the key is absent) satisfies the requirement.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::In(vs), Some(v)) => vs.iter().any(|x| x == v),
            (Op::In(_), None) => false,
            (Op::NotIn(vs), Some(v)) => !vs.iter().any(|x| x == v),
            (Op::NotIn(_), None) => true,
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
            (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
            (Op::Gt(_) | Op::Lt(_), None) => false,
        }
    }

    fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }
}

/// A compiled pod label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    nothing: bool,
    reqs: Vec<Requirement>,
}

impl Selector {
    /// Selects every label set.
    pub fn everything() -> Self {
        Selector {
            nothing: false,
            reqs: Vec::new(),
        }
    }

    /// Selects no label set.
    pub fn nothing() -> Self {
        Selector {
            nothing: true,
            reqs: Vec::new(),
        }
    }

    /// Compiles a metav1 LabelSelector (None selects nothing).
    pub fn compile(sel: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(sel) = sel else {
            return Ok(Self::nothing());
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::In(vec![v.clone()]),
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(SelectorError(format!(
                        "{} for {:?} needs values",
                        e.operator, e.key
                    )));
                }
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(SelectorError(format!(
                        "{} for {:?} takes no values",
                        e.operator, e.key
                    )));
                }
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(SelectorError(format!("unknown operator {other:?}"))),
            };
            reqs.push(Requirement {
                key: e.key.clone(),
                op,
            });
        }
        Ok(Selector {
            nothing: false,
            reqs,
        })
    }

    /// Adds a requirement (used to merge matchLabelKeys / mismatchLabelKeys).
    pub fn push(&mut self, req: Requirement) {
        if !self.nothing {
            self.reqs.push(req);
        }
    }

    /// True for a selector without requirements (selects everything).
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.reqs.is_empty()
    }

    /// Whether the selector matches `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        !self.nothing && self.reqs.iter().all(|r| r.matches(labels))
    }
}

/// A compiled node selector term: expressions on labels AND fields (metadata.name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTerm {
    valid: bool,
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl NodeTerm {
    /// Compiles a term. Empty or invalid terms match no node.
    pub fn compile(term: &NodeSelectorTerm) -> Self {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        let labels: Result<Vec<_>, _> = exprs.iter().map(node_requirement).collect();
        let fields: Result<Vec<_>, _> = fields.iter().map(field_requirement).collect();
        match (labels, fields) {
            (Ok(labels), Ok(fields)) if !(labels.is_empty() && fields.is_empty()) => NodeTerm {
                valid: true,
                labels,
                fields,
            },
            _ => NodeTerm {
                valid: false,
                labels: Vec::new(),
                fields: Vec::new(),
            },
        }
    }

    /// Whether this term is empty (preferred terms without expressions are skipped).
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Whether a node with `name` and `labels` satisfies the term.
    pub fn matches(&self, name: &str, labels: &Labels) -> bool {
        self.valid
            && self.labels.iter().all(|r| r.matches(labels))
            && self.fields.iter().all(|r| r.matches_value(Some(name)))
    }
}

fn node_requirement(r: &NodeSelectorRequirement) -> Result<Requirement, SelectorError> {
    let values = r.values.clone().unwrap_or_default();
    let bad = || SelectorError(format!("invalid node selector requirement on {:?}", r.key));
    let single_int = || -> Result<i64, SelectorError> {
        match values.as_slice() {
            [v] => v.parse().map_err(|_| bad()),
            _ => Err(bad()),
        }
    };
    let op = match r.operator.as_str() {
        "In" if !values.is_empty() => Op::In(values),
        "NotIn" if !values.is_empty() => Op::NotIn(values),
        "Exists" if values.is_empty() => Op::Exists,
        "DoesNotExist" if values.is_empty() => Op::DoesNotExist,
        "Gt" => Op::Gt(single_int()?),
        "Lt" => Op::Lt(single_int()?),
        _ => return Err(bad()),
    };
    Ok(Requirement {
        key: r.key.clone(),
        op,
    })
}

fn field_requirement(r: &NodeSelectorRequirement) -> Result<Requirement, SelectorError> {
    let values = r.values.clone().unwrap_or_default();
    if r.key != "metadata.name" || values.len() != 1 {
        return Err(SelectorError(format!(
            "unsupported field selector {:?}",
            r.key
        )));
    }
    match r.operator.as_str() {
        "In" => Ok(Requirement {
            key: r.key.clone(),
            op: Op::In(values),
        }),
        "NotIn" => Ok(Requirement {
            key: r.key.clone(),
            op: Op::NotIn(values),
        }),
        other => Err(SelectorError(format!(
            "unsupported field operator {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn nil_selector_matches_nothing_and_empty_matches_everything() {
        let l = labels(&[("app", "web")]);
        assert!(!Selector::compile(None).unwrap().matches(&l));
        assert!(
            Selector::compile(Some(&LabelSelector::default()))
                .unwrap()
                .matches(&l)
        );
    }

    #[test]
    fn label_selector_operators() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["db".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let s = Selector::compile(Some(&sel)).unwrap();
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("canary", "1")])));
        assert!(!s.matches(&labels(&[("app", "api")])));
    }

    #[test]
    fn bad_label_selector_operator_is_an_error() {
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Gt".into(),
                values: Some(vec!["1".into()]),
            }]),
            ..Default::default()
        };
        assert!(Selector::compile(Some(&sel)).is_err());
    }

    #[test]
    fn node_term_supports_all_operators() {
        let term = NodeTerm::compile(&NodeSelectorTerm {
            match_expressions: Some(vec![
                expr("zone", "In", &["a", "b"]),
                expr("gpu", "Exists", &[]),
                expr("cores", "Gt", &["4"]),
                expr("mem", "Lt", &["64"]),
                expr("spot", "DoesNotExist", &[]),
                expr("os", "NotIn", &["windows"]),
            ]),
            match_fields: None,
        });
        let good = labels(&[("zone", "a"), ("gpu", ""), ("cores", "8"), ("mem", "32")]);
        assert!(term.matches("n1", &good));
        let mut l = good.clone();
        l.insert("cores".into(), "4".into());
        assert!(!term.matches("n1", &l), "Gt is strict");
        let mut l = good.clone();
        l.insert("cores".into(), "many".into());
        assert!(!term.matches("n1", &l), "non-integer label fails Gt");
        let mut l = good.clone();
        l.insert("spot".into(), "true".into());
        assert!(!term.matches("n1", &l));
        let mut l = good;
        l.insert("os".into(), "windows".into());
        assert!(!term.matches("n1", &l));
    }

    #[test]
    fn node_term_match_fields_on_name() {
        let term = NodeTerm::compile(&NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![expr("metadata.name", "In", &["n2"])]),
        });
        assert!(term.matches("n2", &Labels::new()));
        assert!(!term.matches("n1", &Labels::new()));
    }

    #[test]
    fn empty_or_invalid_node_terms_match_nothing() {
        assert!(!NodeTerm::compile(&NodeSelectorTerm::default()).matches("n", &Labels::new()));
        let invalid = NodeTerm::compile(&NodeSelectorTerm {
            match_expressions: Some(vec![expr("a", "Gt", &["x"])]),
            match_fields: None,
        });
        assert!(!invalid.is_valid());
        assert!(!invalid.matches("n", &labels(&[("a", "5")])));
    }
}
