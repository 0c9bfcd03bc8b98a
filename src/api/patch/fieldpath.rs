//! Field paths and field sets: the vocabulary of field ownership.
//!
//! Mirrors sigs.k8s.io/structured-merge-diff `fieldpath`: a path is a list of
//! [`PathElement`]s (`.spec`, `[name="nginx"]`, `[="value"]`, `[0]`) and a
//! [`FieldSet`] is a trie of paths. The set's wire form is `fieldsV1`
//! (`{"f:spec":{"f:replicas":{}}}`, with `"."` marking a node that is itself a
//! member while also having children). Parsing foreign `fieldsV1` can fail with a
//! message string; everything else is total. Ordering follows upstream (field
//! names, then keys, then values, then indices) so conflict lists read the same.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Clone, Debug)]
pub(crate) enum PathElement {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// An associative list item by its key fields, sorted by name: `k:{...}`.
    Key(Vec<(String, Value)>),
    /// A set item by value: `v:...`.
    Value(Value),
    /// A list item by position: `i:N`.
    Index(usize),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `fieldsV1` key of this element.
    pub(crate) fn serialize(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| {
                        format!("{}:{}", go_json(&name.as_str().into()), go_json(value))
                    })
                    .collect();
                format!("k:{{{}}}", parts.join(","))
            }
            PathElement::Value(value) => format!("v:{}", go_json(value)),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    /// Parses a `fieldsV1` key (other than `"."`).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (tag, rest) = text
            .split_once(':')
            .filter(|(tag, _)| tag.len() == 1)
            .ok_or_else(|| format!("missing colon: {text}"))?;
        let json = |s: &str| serde_json::from_str::<Value>(s).map_err(|e| e.to_string());
        match tag {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "v" => Ok(PathElement::Value(json(rest)?)),
            "k" => match json(rest)? {
                Value::Object(map) => Ok(PathElement::Key(map.into_iter().collect())),
                _ => Err(format!("expected a key object in {text}")),
            },
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("{e}")),
            _ => Err("unknown PathElementType".to_string()),
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    let ord = an.cmp(bn).then_with(|| compare_values(av, bv));
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value_to_string(value)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={}]", value_to_string(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// Renders a path the way upstream prints it in conflicts: `.spec.replicas`.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// Upstream's `value.ToString`: strings quoted, everything else bare.
fn value_to_string(value: &Value) -> String {
    match value {
        Value::String(_) => value.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_to_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", value_to_string(v)))
            .collect(),
        other => other.to_string(),
    }
}

/// JSON as Go's encoder writes it (HTML-sensitive characters escaped).
pub(crate) fn go_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Upstream's value ordering: numbers, strings, bools, lists, maps, null.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y) {
                let ord = compare_values(l, r);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((lk, lv), (rk, rv)) in x.iter().zip(y) {
                let ord = lk.cmp(rk).then_with(|| compare_values(lv, rv));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A set of field paths, stored as a trie.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// Whether the set holds no path.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds `path`; the empty path is ignored (a set never holds the root).
    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` itself is a member.
    pub(crate) fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether `pe` is a member of this level.
    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths below `pe`, if any.
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// Paths in either set.
    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, set) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(set),
                None => set.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// Paths in `self` but not in `other` (children of a removed member stay).
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => set.difference(theirs),
                    None => set.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Paths in both sets.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| {
                let both = set.intersection(other.children.get(pe)?);
                (!both.is_empty()).then(|| (pe.clone(), both))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Every member path, members of a level before its children (upstream order).
    pub(crate) fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for pe in &self.members {
            let mut path = prefix.clone();
            path.push(pe.clone());
            out.push(path);
        }
        for (pe, set) in &self.children {
            prefix.push(pe.clone());
            set.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` encoding of the set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        for pe in &self.members {
            if !self.children.contains_key(pe) {
                out.insert(pe.serialize(), Value::Object(Map::new()));
            }
        }
        for (pe, set) in &self.children {
            let nested = set.emit(self.members.contains(pe));
            out.insert(pe.serialize(), Value::Object(nested));
        }
        out
    }

    /// Parses a `fieldsV1` object.
    pub(crate) fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let Value::Object(map) = value else {
            return Err("expected an object".to_string());
        };
        let mut set = FieldSet::default();
        for (text, nested) in map {
            if text == "." {
                continue;
            }
            let pe = PathElement::parse(text)?;
            let Value::Object(inner) = nested else {
                return Err(format!("expected an object under {text}"));
            };
            let child = FieldSet::from_fields_v1(nested)?;
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(pe.clone());
            }
            if !child.is_empty() {
                set.children.insert(pe, child);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    fn name_key(name: &str) -> PathElement {
        PathElement::Key(vec![("name".to_string(), json!(name))])
    }

    #[test]
    fn fields_v1_round_trips_with_dot_for_member_with_children() {
        let encoded = json!({
            "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}}}},
            "f:metadata": {"f:finalizers": {"v:\"a\"": {}}, "f:labels": {"f:app": {}}},
        });
        let set = FieldSet::from_fields_v1(&encoded).unwrap();
        let item = [field("spec"), field("containers"), name_key("nginx")];
        assert!(set.has(&item));
        assert!(!set.has(&[field("spec")]));
        assert_eq!(set.to_fields_v1(), encoded);
    }

    #[test]
    fn key_elements_serialize_sorted_and_html_escaped() {
        let pe = PathElement::Key(vec![
            ("containerPort".to_string(), json!(80)),
            ("protocol".to_string(), json!("T<P")),
        ]);
        assert_eq!(
            pe.serialize(),
            r#"k:{"containerPort":80,"protocol":"T\u003cP"}"#
        );
        assert_eq!(pe.to_string(), r#"[containerPort=80,protocol="T<P"]"#);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(PathElement::parse("x").is_err());
        assert!(PathElement::parse("z:1").is_err());
        assert!(PathElement::parse("k:[1]").is_err());
        assert_eq!(PathElement::parse("i:3").unwrap(), PathElement::Index(3));
    }

    #[test]
    fn set_algebra_matches_upstream() {
        let mut a = FieldSet::default();
        a.insert(&[field("spec"), field("replicas")]);
        a.insert(&[field("spec"), field("paused")]);
        let mut b = FieldSet::default();
        b.insert(&[field("spec"), field("replicas")]);
        b.insert(&[field("metadata")]);
        let both = a.intersection(&b);
        assert_eq!(both.paths(), vec![vec![field("spec"), field("replicas")]]);
        let only_a = a.difference(&b);
        assert_eq!(only_a.paths(), vec![vec![field("spec"), field("paused")]]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn paths_render_like_upstream() {
        let path = [
            field("spec"),
            field("containers"),
            name_key("x"),
            field("image"),
        ];
        assert_eq!(path_string(&path), r#".spec.containers[name="x"].image"#);
        let value = [field("finalizers"), PathElement::Value(json!("a"))];
        assert_eq!(path_string(&value), r#".finalizers[="a"]"#);
    }
}
