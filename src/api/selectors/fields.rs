//! [`FieldSelector`]: `?fieldSelector=` terms (`f=v`, `f==v`, `f!=v`, AND-ed
//! by commas) with upstream `fields.ParseSelector` escaping, and
//! [`object_field`] to read the compared value out of an object.
//!
//! Parsing is purely syntactic, as upstream's is: which fields a resource
//! supports is the apiserver's per-resource business, so field names are not
//! checked here. Values use upstream `EscapeValue` escaping (`\\`, `\,`, `\=`);
//! any other escape, a trailing backslash, or a bare `,`/`=` inside a value is
//! an error. Terms are examined in upstream's order (raw terms sorted), so the
//! same error wins, but kept sorted by their canonical text, so that equal
//! selectors compare equal and `parse(display) == original`.

use std::fmt;

use serde_json::Value;

use super::SelectorError;

/// The comparison of a field selector term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldOp {
    /// `=` or `==`: the field equals the value.
    Equals,
    /// `!=`: the field differs from the value.
    NotEquals,
}

/// One `field op value` term, with the value unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path as written, e.g. `metadata.name`.
    pub field: String,
    /// The comparison.
    pub op: FieldOp,
    /// The literal value (escapes removed).
    pub value: String,
}

/// A field selector: matches objects whose fields satisfy every term.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses field selector text (already URL-decoded); the empty string
    /// (and empty terms such as in `a=b,,`) select everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, op, raw)) = split_term(term) else {
                return Err(SelectorError::FieldTerm {
                    selector: s.to_string(),
                    term: term.to_string(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                op,
                value: unescape_value(raw)?,
            });
        }
        // Upstream keeps the raw-text order, which `==` vs `=` and escapes can
        // change on a round trip; the canonical term text gives one order.
        requirements.sort_by_cached_key(term_text);
        Ok(Self { requirements })
    }

    /// The terms, sorted by their canonical text (`f=v` / `f!=v`, escaped).
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// True if the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object satisfies every term; `get(field)` gives the
    /// object's value for a field, and a missing field compares as `""`.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = get(&r.field).unwrap_or_default();
            match r.op {
                FieldOp::Equals => actual == r.value,
                FieldOp::NotEquals => actual != r.value,
            }
        })
    }

    /// The value of the first `=`/`==` term on `field` (upstream
    /// `RequiresExactMatch`), for index lookups.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.op == FieldOp::Equals && r.field == field)
            .map(|r| r.value.as_str())
    }
}

/// Upstream `Selector.String()`: `f=v`/`f!=v` with escaped values, joined by
/// `,`. Parsing this text gives back an equal selector.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&term_text(r))?;
        }
        Ok(())
    }
}

/// Upstream `hasTerm`/`notHasTerm` `String()`: `f=v` or `f!=v`, value escaped.
fn term_text(r: &FieldRequirement) -> String {
    let op = match r.op {
        FieldOp::Equals => "=",
        FieldOp::NotEquals => "!=",
    };
    format!("{}{op}{}", r.field, escape_value(&r.value))
}

/// Upstream `fields.EscapeValue`: makes any literal usable as a selector value.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas not preceded by an escaping backslash; escapes stay in.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits at the first operator; at one position `!=` beats `==` beats `=`.
/// The field may not contain escapes, so its first operator ends it.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    const OPERATORS: [(&str, FieldOp); 3] = [
        ("!=", FieldOp::NotEquals),
        ("==", FieldOp::Equals),
        ("=", FieldOp::Equals),
    ];
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        OPERATORS
            .iter()
            .find(|(op, _)| rest.starts_with(op))
            .map(|(op, kind)| (&term[..i], kind.clone(), &rest[op.len()..]))
    })
}

/// Upstream `fields.UnescapeValue`.
fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::FieldEscape(format!("\\{c}")));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(SelectorError::FieldUnescaped(c)),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::FieldEscape("\\".to_string()));
    }
    Ok(out)
}

/// Reads a dotted field path (`metadata.name`, `spec.nodeName`,
/// `involvedObject.kind`, `status.phase`) from an object as the string
/// upstream field selectors compare: strings as-is, booleans `true`/`false`,
/// numbers in decimal. `None` if the path is absent, null, or ends at an
/// object or array.
pub fn object_field(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for part in path.split('.') {
        cur = cur.as_object()?.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}
