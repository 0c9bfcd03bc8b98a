//! The compiled schema tree and its parser.
//!
//! Upstream keeps a "structural" projection plus separate value validations;
//! here one [`Node`] type carries both, because kelp needs the full schema for
//! validation anyway and the structural check (see `check.rs`) can walk the
//! value validations (`allOf`/`anyOf`/`oneOf`/`not`) as nested nodes.
//!
//! Parsing is depth-bounded: schemas come from users, and every later walk
//! recurses along the schema, so a bounded schema bounds all recursion.

use super::errors::{self, Bad, FieldError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Schema nesting deeper than this is refused; real CRDs stay far below it.
pub const MAX_SCHEMA_DEPTH: usize = 64;

// Bounds the compiled program of user patterns, so a hostile pattern cannot
// make compilation or matching expensive.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One (sub)schema of an `openAPIV3Schema`.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// `type`: one of object, array, string, integer, number, boolean.
    pub type_: Option<String>,
    /// `format` as declared (validation ignores formats kube-apiserver does
    /// not support, as upstream does).
    pub format: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `nullable`.
    pub nullable: bool,
    /// `default`.
    pub default: Option<Value>,
    /// `enum`.
    pub enum_: Option<Vec<Value>>,
    /// `maximum`.
    pub maximum: Option<f64>,
    /// `exclusiveMaximum`.
    pub exclusive_maximum: bool,
    /// `minimum`.
    pub minimum: Option<f64>,
    /// `exclusiveMinimum`.
    pub exclusive_minimum: bool,
    /// `multipleOf`.
    pub multiple_of: Option<f64>,
    /// `maxLength` (in runes).
    pub max_length: Option<i64>,
    /// `minLength` (in runes).
    pub min_length: Option<i64>,
    /// `pattern` (Go RE2 syntax).
    pub pattern: Option<String>,
    /// `maxItems`.
    pub max_items: Option<i64>,
    /// `minItems`.
    pub min_items: Option<i64>,
    /// `uniqueItems`.
    pub unique_items: bool,
    /// `maxProperties`.
    pub max_properties: Option<i64>,
    /// `minProperties`.
    pub min_properties: Option<i64>,
    /// `required`.
    pub required: Vec<String>,
    /// `properties`.
    pub properties: BTreeMap<String, Node>,
    /// `items` (a single schema).
    pub items: Option<Box<Node>>,
    /// `additionalProperties` when given as a schema.
    pub additional_properties: Option<Box<Node>>,
    /// `additionalProperties` when given as a boolean.
    pub additional_properties_bool: Option<bool>,
    /// `allOf`.
    pub all_of: Vec<Node>,
    /// `anyOf`.
    pub any_of: Vec<Node>,
    /// `oneOf`.
    pub one_of: Vec<Node>,
    /// `not`.
    pub not: Option<Box<Node>>,
    /// `x-kubernetes-list-type`: atomic, set or map.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`: granular or atomic.
    pub map_type: Option<String>,
    /// `x-kubernetes-preserve-unknown-fields: true`.
    pub preserve_unknown_fields: bool,
    /// `x-kubernetes-preserve-unknown-fields` was given explicitly as false
    /// (upstream refuses that).
    pub preserve_unknown_fields_false: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-embedded-resource`.
    pub embedded_resource: bool,
    /// `x-kubernetes-validations` as given. CEL rules are stored for
    /// publishing but not evaluated by this module.
    pub validations: Vec<Value>,
    /// Keywords upstream forbids in CRD schemas that were present (`id`,
    /// `$ref`, `additionalItems`, `patternProperties`, `definitions`,
    /// `dependencies`, array-form `items`), for the CRD schema check.
    pub unsupported: Vec<String>,
    pattern_re: Option<regex::Regex>,
    pattern_error: Option<String>,
}

impl Node {
    /// The compiled `pattern`, if it compiled.
    pub fn pattern_regex(&self) -> Option<&regex::Regex> {
        self.pattern_re.as_ref()
    }

    /// Why `pattern` did not compile, if it did not.
    pub fn pattern_error(&self) -> Option<&str> {
        self.pattern_error.as_deref()
    }

    /// Whether `type` is exactly `t`.
    pub(crate) fn type_is(&self, t: &str) -> bool {
        self.type_.as_deref() == Some(t)
    }
}

/// Parses an `openAPIV3Schema` JSON value into a node tree.
pub(crate) fn parse(schema: &Value, path: &str) -> Result<Node, Vec<FieldError>> {
    let mut errs = Vec::new();
    let node = parse_node(schema, path, 0, &mut errs);
    if errs.is_empty() { Ok(node) } else { Err(errs) }
}

fn parse_node(v: &Value, path: &str, depth: usize, errs: &mut Vec<FieldError>) -> Node {
    let mut n = Node::default();
    if depth > MAX_SCHEMA_DEPTH {
        errs.push(errors::forbidden(
            path,
            &format!("must not be nested deeper than {} levels", MAX_SCHEMA_DEPTH),
        ));
        return n;
    }
    let Some(m) = v.as_object() else {
        errs.push(errors::invalid(
            path,
            Bad::Json(v.clone()),
            "must be a JSON schema object",
        ));
        return n;
    };
    n.type_ = string_field(m, "type", path, errs);
    n.format = string_field(m, "format", path, errs);
    n.title = string_field(m, "title", path, errs);
    n.description = string_field(m, "description", path, errs);
    n.nullable = bool_field(m, "nullable", path, errs);
    n.default = m.get("default").cloned();
    if let Some(e) = m.get("enum") {
        match e.as_array() {
            Some(a) => n.enum_ = Some(a.clone()),
            None => errs.push(errors::invalid(
                &errors::child(path, "enum"),
                Bad::Json(e.clone()),
                "must be an array",
            )),
        }
    }
    n.maximum = number_field(m, "maximum", path, errs);
    n.minimum = number_field(m, "minimum", path, errs);
    n.exclusive_maximum = bool_field(m, "exclusiveMaximum", path, errs);
    n.exclusive_minimum = bool_field(m, "exclusiveMinimum", path, errs);
    n.multiple_of = number_field(m, "multipleOf", path, errs);
    n.max_length = int_field(m, "maxLength", path, errs);
    n.min_length = int_field(m, "minLength", path, errs);
    n.max_items = int_field(m, "maxItems", path, errs);
    n.min_items = int_field(m, "minItems", path, errs);
    n.max_properties = int_field(m, "maxProperties", path, errs);
    n.min_properties = int_field(m, "minProperties", path, errs);
    n.unique_items = bool_field(m, "uniqueItems", path, errs);
    n.required = string_list(m, "required", path, errs);
    n.pattern = string_field(m, "pattern", path, errs);
    if let Some(p) = &n.pattern {
        match compile_go_regex(p) {
            Ok(re) => n.pattern_re = Some(re),
            Err(e) => n.pattern_error = Some(e),
        }
    }
    if let Some(p) = m.get("properties") {
        match p.as_object() {
            Some(props) => {
                for (k, sub) in props {
                    let sp = errors::key(&errors::child(path, "properties"), k);
                    n.properties
                        .insert(k.clone(), parse_node(sub, &sp, depth + 1, errs));
                }
            }
            None => errs.push(errors::invalid(
                &errors::child(path, "properties"),
                Bad::Json(p.clone()),
                "must be an object",
            )),
        }
    }
    if let Some(items) = m.get("items") {
        if items.is_array() {
            n.unsupported.push("items".into());
        } else {
            n.items = Some(Box::new(parse_node(
                items,
                &errors::child(path, "items"),
                depth + 1,
                errs,
            )));
        }
    }
    match m.get("additionalProperties") {
        None => {}
        Some(Value::Bool(b)) => n.additional_properties_bool = Some(*b),
        Some(ap) => {
            n.additional_properties = Some(Box::new(parse_node(
                ap,
                &errors::child(path, "additionalProperties"),
                depth + 1,
                errs,
            )))
        }
    }
    for (kw, target) in [
        ("allOf", &mut n.all_of),
        ("anyOf", &mut n.any_of),
        ("oneOf", &mut n.one_of),
    ] {
        if let Some(list) = m.get(kw) {
            match list.as_array() {
                Some(a) => {
                    for (i, sub) in a.iter().enumerate() {
                        let sp = errors::index(&errors::child(path, kw), i);
                        target.push(parse_node(sub, &sp, depth + 1, errs));
                    }
                }
                None => errs.push(errors::invalid(
                    &errors::child(path, kw),
                    Bad::Json(list.clone()),
                    "must be an array",
                )),
            }
        }
    }
    if let Some(not) = m.get("not") {
        n.not = Some(Box::new(parse_node(
            not,
            &errors::child(path, "not"),
            depth + 1,
            errs,
        )));
    }
    n.list_type = string_field(m, "x-kubernetes-list-type", path, errs);
    n.list_map_keys = string_list(m, "x-kubernetes-list-map-keys", path, errs);
    n.map_type = string_field(m, "x-kubernetes-map-type", path, errs);
    match m.get("x-kubernetes-preserve-unknown-fields") {
        Some(Value::Bool(true)) => n.preserve_unknown_fields = true,
        Some(Value::Bool(false)) => n.preserve_unknown_fields_false = true,
        _ => {}
    }
    n.int_or_string = bool_field(m, "x-kubernetes-int-or-string", path, errs);
    n.embedded_resource = bool_field(m, "x-kubernetes-embedded-resource", path, errs);
    if let Some(Value::Array(a)) = m.get("x-kubernetes-validations") {
        n.validations = a.clone();
    }
    for kw in [
        "id",
        "$ref",
        "additionalItems",
        "patternProperties",
        "definitions",
        "dependencies",
    ] {
        if m.contains_key(kw) {
            n.unsupported.push(kw.into());
        }
    }
    n
}

fn string_field(
    m: &Map<String, Value>,
    k: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<String> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() && k == "type" => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errs.push(errors::invalid(
                &errors::child(path, k),
                Bad::Json(other.clone()),
                "must be a string",
            ));
            None
        }
    }
}

fn bool_field(m: &Map<String, Value>, k: &str, path: &str, errs: &mut Vec<FieldError>) -> bool {
    match m.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errs.push(errors::invalid(
                &errors::child(path, k),
                Bad::Json(other.clone()),
                "must be a boolean",
            ));
            false
        }
    }
}

fn number_field(
    m: &Map<String, Value>,
    k: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<f64> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => {
            errs.push(errors::invalid(
                &errors::child(path, k),
                Bad::Json(other.clone()),
                "must be a number",
            ));
            None
        }
    }
}

fn int_field(
    m: &Map<String, Value>,
    k: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<i64> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(other) => {
            errs.push(errors::invalid(
                &errors::child(path, k),
                Bad::Json(other.clone()),
                "must be an integer",
            ));
            None
        }
    }
}

fn string_list(
    m: &Map<String, Value>,
    k: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Vec<String> {
    match m.get(k) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(other) => {
            errs.push(errors::invalid(
                &errors::child(path, k),
                Bad::Json(other.clone()),
                "must be an array of strings",
            ));
            Vec::new()
        }
    }
}

/// Compiles a Go RE2 pattern with the regex crate.
///
/// The syntaxes agree except that RE2's Perl classes (`\d`, `\w`, `\s`, `\b`)
/// are ASCII-only while the regex crate's are Unicode, so those are rewritten
/// to their ASCII forms. RE2 features the regex crate lacks (`\C`, `\Q..\E`)
/// fail compilation, which refuses the schema rather than guessing.
pub(crate) fn compile_go_regex(pattern: &str) -> Result<regex::Regex, String> {
    let translated = translate_re2(pattern);
    regex::RegexBuilder::new(&translated)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "expression too large".to_string(),
            regex::Error::Syntax(s) => {
                // The regex crate's syntax errors span several lines with a
                // caret diagram; keep only the final "error: ..." line, and
                // use Go's wording where it is known.
                let last = s
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("error:"))
                    .map(|l| l.trim_start_matches("error:").trim().to_string())
                    .unwrap_or(s);
                match last.as_str() {
                    "unclosed group" => {
                        format!("error parsing regexp: missing closing ): `{}`", pattern)
                    }
                    "unopened group" => {
                        format!("error parsing regexp: unexpected ): `{}`", pattern)
                    }
                    _ => format!("error parsing regexp: {}", last),
                }
            }
            other => other.to_string(),
        })
}

fn translate_re2(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut in_class = false;
    let mut chars = p.chars().peekable();
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rep: Option<&str> = match (in_class, e) {
                    (false, 'd') => Some("[0-9]"),
                    (false, 'D') => Some("[^0-9]"),
                    (false, 'w') => Some("[0-9A-Za-z_]"),
                    (false, 'W') => Some("[^0-9A-Za-z_]"),
                    (false, 's') => Some("[\\t\\n\\f\\r ]"),
                    (false, 'S') => Some("[^\\t\\n\\f\\r ]"),
                    (false, 'b') => Some("(?-u:\\b)"),
                    (false, 'B') => Some("(?-u:\\B)"),
                    (true, 'd') => Some("0-9"),
                    (true, 'D') => Some("[^0-9]"),
                    (true, 'w') => Some("0-9A-Za-z_"),
                    (true, 'W') => Some("[^0-9A-Za-z_]"),
                    (true, 's') => Some("\\t\\n\\f\\r "),
                    (true, 'S') => Some("[^\\t\\n\\f\\r ]"),
                    _ => None,
                };
                match rep {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(e);
                    }
                }
                class_start = false;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                // A leading ']' is a literal in RE2 classes.
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                    class_start = false;
                }
                continue;
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // POSIX class like [:alpha:]; copy through to the closing ":]".
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            '[' if in_class => out.push_str("\\["),
            ']' if in_class && !class_start => {
                in_class = false;
                out.push(']');
            }
            // regex treats '&&', '--' and '~~' inside classes as operators.
            '&' | '-' | '~' if in_class && chars.peek() == Some(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        class_start = false;
    }
    out
}
