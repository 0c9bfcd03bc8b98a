//! Schema validation of custom objects: a port of kube-openapi's
//! `validate.SchemaValidator` plus apiextensions' translation of its results
//! into field errors (`kubeOpenAPIResultToFieldErrors`).
//!
//! The port keeps kube-openapi's structure (per-keyword validators run in a
//! fixed order, results merged with text de-duplication, "match counts" to
//! pick the best failing `anyOf`/`oneOf` branch) because the visible error
//! set depends on it. Recursion follows the schema, whose depth is bounded
//! at compile time.

use super::errors::{self, Bad, FieldError};
use super::formats;
use super::gofmt;
use super::structural::Node;
use serde_json::{Map, Value};
use std::collections::HashSet;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Code {
    Required,
    Enum,
    TooLong,
    MaxItems,
    TooManyProperties,
    InvalidType,
    Other,
}

#[derive(Clone)]
enum VErr {
    /// An `errors.Validation`: `name` is the kube-openapi path.
    Validation {
        code: Code,
        name: String,
        value: Option<Bad>,
        valid: Option<i64>,
        values: Vec<Value>,
        message: String,
    },
    /// Any other error (composite schema failures, range checks); upstream
    /// reports these on the root field path.
    Plain(String),
}

impl VErr {
    fn text(&self) -> &str {
        match self {
            VErr::Validation { message, .. } => message,
            VErr::Plain(m) => m,
        }
    }

    fn v(code: Code, name: &str, value: Option<Bad>, message: String) -> VErr {
        VErr::Validation {
            code,
            name: name.to_string(),
            value,
            valid: None,
            values: Vec::new(),
            message,
        }
    }
}

#[derive(Default)]
struct Res {
    errors: Vec<VErr>,
    seen: HashSet<String>,
    match_count: usize,
}

impl Res {
    fn err(e: VErr) -> Res {
        let mut r = Res::default();
        r.add(e);
        r
    }

    fn add(&mut self, e: VErr) {
        if self.seen.insert(e.text().to_string()) {
            self.errors.push(e);
        }
    }

    fn merge(&mut self, other: Res) {
        for e in other.errors {
            self.add(e);
        }
        self.match_count += other.match_count;
    }

    fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validates a whole object; root `apiVersion`, `kind` and `metadata` are
/// left to the caller.
pub(crate) fn validate_object(root: &Node, obj: &Value) -> Vec<FieldError> {
    let r = schema(root, "", obj, true);
    to_field_errors(None, r)
}

/// Validates `v` against `s` with kube-openapi's root path `""`; errors are
/// reported below `fld` (upstream's `ValidateCustomResource(fld, ...)`).
pub(crate) fn validate_value(s: &Node, v: &Value, fld: Option<&str>) -> Vec<FieldError> {
    to_field_errors(fld, schema(s, "", v, false))
}

fn to_field_errors(fld: Option<&str>, r: Res) -> Vec<FieldError> {
    let root = fld.unwrap_or("<nil>").to_string();
    r.errors
        .into_iter()
        .map(|e| match e {
            VErr::Plain(m) => errors::invalid(&root, Bad::Str(String::new()), &m),
            VErr::Validation {
                code,
                name,
                value,
                valid,
                values,
                message,
            } => {
                let path = if !name.is_empty() && name != "." {
                    let n = name.strip_prefix('.').unwrap_or(&name);
                    match fld {
                        Some(f) => errors::child(f, n),
                        None => n.to_string(),
                    }
                } else {
                    root.clone()
                };
                let value = match value {
                    None | Some(Bad::Json(Value::Null)) => Bad::Str(String::new()),
                    Some(v) => v,
                };
                match code {
                    Code::Required => errors::required(&path, ""),
                    Code::Enum => {
                        let vals: Vec<String> = values
                            .iter()
                            .map(|v| match v {
                                Value::String(s) => s.clone(),
                                other => gofmt::json(other),
                            })
                            .collect();
                        errors::not_supported(&path, value, &vals)
                    }
                    Code::TooLong => errors::too_long(&path, valid.unwrap_or(-1)),
                    Code::MaxItems | Code::TooManyProperties => {
                        let actual = match value {
                            Bad::Int(i) => i,
                            _ => -1,
                        };
                        errors::too_many(&path, actual, valid.unwrap_or(-1))
                    }
                    Code::InvalidType => errors::type_invalid(&path, value, &message),
                    Code::Other => errors::invalid(&path, value, &message),
                }
            }
        })
        .collect()
}

// ---- the SchemaValidator ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Str,
    Int,
    Float,
    Array,
    Object,
}

fn kind_of(v: &Value) -> Option<Kind> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => Kind::Bool,
        Value::String(_) => Kind::Str,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    })
}

/// The schema's `type` as the validator sees it: int-or-string becomes
/// `["integer", "string"]`, as apiextensions converts it.
fn types(s: &Node) -> Vec<&str> {
    if s.int_or_string {
        vec!["integer", "string"]
    } else {
        s.type_.as_deref().into_iter().collect()
    }
}

fn single_type(s: &Node) -> Option<&str> {
    if s.int_or_string {
        None
    } else {
        s.type_.as_deref()
    }
}

/// The format left after apiextensions strips unsupported ones.
fn effective_format(s: &Node) -> Option<&str> {
    let t = single_type(s);
    if formats::string_format(t, s.format.as_deref()).is_some() {
        return s.format.as_deref();
    }
    formats::numeric_format(t, s.format.as_deref())
}

fn schema(s: &Node, path: &str, data: &Value, resource_root: bool) -> Res {
    let mut r = Res::default();
    let Some(kind) = kind_of(data) else {
        r.merge(type_validator(s, path, data, None));
        r.merge(common_validator(s, path, data));
        return r;
    };
    let ts = types(s);
    let fmt = effective_format(s);
    if !ts.is_empty() || fmt.is_some() {
        r.merge(type_validator(s, path, data, Some(kind)));
        r.match_count += 1;
    }
    r.merge(schema_props(s, path, data));
    r.match_count += 1;
    if kind == Kind::Str {
        r.merge(string_validator(s, path, data));
        r.match_count += 1;
        if let Some(norm) = formats::string_format(single_type(s), s.format.as_deref()) {
            if let (Some(f), Some(st)) = (s.format.as_deref(), data.as_str())
                && !formats::check(&norm, st)
            {
                r.merge(Res::err(type_err(path, f, Bad::Str(st.to_string()))));
            }
            r.match_count += 1;
        }
    }
    if kind == Kind::Int || kind == Kind::Float {
        r.merge(number_validator(s, path, data));
        r.match_count += 1;
    }
    if let Value::Array(a) = data {
        r.merge(slice_validator(s, path, a));
        r.match_count += 1;
    }
    r.merge(common_validator(s, path, data));
    r.match_count += 1;
    if let Value::Object(m) = data {
        r.merge(object_validator(s, path, m, resource_root));
        r.match_count += 1;
    }
    r.match_count += 1;
    r
}

/// `errors.InvalidType(path, "body", typeName, value)`.
fn type_err(path: &str, type_name: &str, value: Bad) -> VErr {
    let message = match &value {
        Bad::Str(v) => format!(
            "{} in body must be of type {}: {}",
            path,
            type_name,
            gofmt::quote(v)
        ),
        _ => format!("{} in body must be of type {}", path, type_name),
    };
    VErr::v(Code::InvalidType, path, Some(value), message)
}

fn type_validator(s: &Node, path: &str, data: &Value, kind: Option<Kind>) -> Res {
    let ts = types(s);
    let Some(kind) = kind else {
        if !ts.is_empty() && !s.nullable {
            return Res::err(type_err(path, &ts.join(","), Bad::Str("null".into())));
        }
        return Res {
            match_count: 1,
            ..Res::default()
        };
    };
    let (sch_type, format) = match kind {
        Kind::Bool => ("boolean", ""),
        Kind::Str => ("string", ""),
        Kind::Int => ("integer", "int64"),
        Kind::Float => ("number", "float64"),
        Kind::Array => ("array", ""),
        Kind::Object => ("object", ""),
    };
    let contains = |t: &str| ts.contains(&t);
    let is_float_int =
        kind == Kind::Float && data.as_f64().is_some_and(is_json_integer) && contains("integer");
    let is_int_float = kind == Kind::Int && contains("number");
    let t_format = effective_format(s).unwrap_or("");
    if kind != Kind::Str
        && kind != Kind::Array
        && !t_format.is_empty()
        && !(contains(sch_type) || format == t_format || is_float_int || is_int_float)
    {
        return Res::err(type_err(path, t_format, Bad::Str(format.to_string())));
    }
    if !(contains("number") || contains("integer") || t_format.is_empty())
        && (kind == Kind::Str || kind == Kind::Array)
    {
        return Res {
            match_count: 1,
            ..Res::default()
        };
    }
    if !(contains(sch_type) || is_float_int || is_int_float) {
        return Res::err(type_err(
            path,
            &ts.join(","),
            Bad::Str(sch_type.to_string()),
        ));
    }
    Res {
        match_count: 1,
        ..Res::default()
    }
}

// swag.IsFloat64AJSONInteger
fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9007199254740991.0;
    if !f.is_finite() || !(-MAX..=MAX).contains(&f) {
        return false;
    }
    if f == f.trunc() {
        return true;
    }
    let diff = (f - f.round()).abs();
    diff < 1e-9 * f.abs().max(1.0) && diff < 1e-9
}

fn schema_props(s: &Node, path: &str, data: &Value) -> Res {
    let mut main = Res::default();
    if !s.any_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_success: Option<Res> = None;
        let mut succeeded = false;
        for sub in &s.any_of {
            let r = schema(sub, path, data, false);
            if r.is_valid() {
                best = None;
                succeeded = true;
                first_success.get_or_insert(r);
                break;
            }
            if best.as_ref().is_none_or(|b| r.match_count > b.match_count) {
                best = Some(r);
            }
        }
        if !succeeded {
            main.add(VErr::Plain(format!(
                "{} must validate at least one schema (anyOf)",
                gofmt::quote(path)
            )));
        }
        if let Some(b) = best {
            main.merge(b);
        } else if let Some(f) = first_success {
            main.merge(f);
        }
    }
    if !s.one_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_success: Option<Res> = None;
        let mut validated = 0;
        for sub in &s.one_of {
            let r = schema(sub, path, data, false);
            if r.is_valid() {
                validated += 1;
                best = None;
                if first_success.is_none() {
                    first_success = Some(r);
                }
                continue;
            }
            if validated == 0 && best.as_ref().is_none_or(|b| r.match_count > b.match_count) {
                best = Some(r);
            }
        }
        if validated != 1 {
            let additional = if validated == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {} valid alternatives", validated)
            };
            main.add(VErr::Plain(format!(
                "{} must validate one and only one schema (oneOf). {}",
                gofmt::quote(path),
                additional
            )));
            if let Some(b) = best {
                main.merge(b);
            }
        } else if let Some(f) = first_success {
            main.merge(f);
        }
    }
    if !s.all_of.is_empty() {
        let mut validated = 0;
        for sub in &s.all_of {
            let r = schema(sub, path, data, false);
            if r.is_valid() {
                validated += 1;
            }
            main.merge(r);
        }
        if validated != s.all_of.len() {
            let additional = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            main.add(VErr::Plain(format!(
                "{} must validate all the schemas (allOf){}",
                gofmt::quote(path),
                additional
            )));
        }
    }
    if let Some(not) = &s.not
        && schema(not, path, data, false).is_valid()
    {
        main.add(VErr::Plain(format!(
            "{} must not validate the schema (not)",
            gofmt::quote(path)
        )));
    }
    main.match_count += 1;
    main
}

fn string_validator(s: &Node, path: &str, data: &Value) -> Res {
    let Some(st) = data.as_str() else {
        return Res::default();
    };
    let value = || Some(Bad::Str(st.to_string()));
    let runes = st.chars().count() as i64;
    if let Some(max) = s.max_length
        && runes > max
    {
        return Res::err(VErr::Validation {
            code: Code::TooLong,
            name: path.to_string(),
            value: value(),
            valid: Some(max),
            values: Vec::new(),
            message: format!("{} in body should be at most {} chars long", path, max),
        });
    }
    if let Some(min) = s.min_length
        && runes < min
    {
        return Res::err(VErr::v(
            Code::Other,
            path,
            value(),
            format!("{} in body should be at least {} chars long", path, min),
        ));
    }
    if let (Some(p), Some(re)) = (&s.pattern, s.pattern_regex())
        && !re.is_match(st)
    {
        return Res::err(VErr::v(
            Code::Other,
            path,
            value(),
            format!("{} in body should match '{}'", path, p),
        ));
    }
    Res::default()
}

/// IsValueValidAgainstRange: whether `rep` (the Go string rendering of a
/// number) parses as the schema's type/format.
fn range_error(
    rep_int: Option<i64>,
    rep_float: f64,
    s: &Node,
    prefix: &str,
    path: &str,
) -> Option<VErr> {
    let type_name = single_type(s)
        .filter(|t| *t == "integer" || *t == "number")
        .unwrap_or("");
    let format = formats::numeric_format(single_type(s), s.format.as_deref()).unwrap_or("");
    let ok = match type_name {
        "integer" => {
            let i = match rep_int {
                Some(i) => Some(i),
                // strconv.FormatFloat(f, 'f', -1) then ParseInt
                None if rep_float.fract() == 0.0 && rep_float.abs() < 9.2e18 => {
                    Some(rep_float as i64)
                }
                None => None,
            };
            match (i, format) {
                (Some(i), "int32") => i32::try_from(i).is_ok(),
                (Some(_), _) => true,
                (None, _) => false,
            }
        }
        _ => match format {
            "float" => {
                let f = rep_int.map(|i| i as f64).unwrap_or(rep_float);
                f.abs() <= f32::MAX as f64
            }
            _ => true,
        },
    };
    if ok {
        return None;
    }
    Some(VErr::Plain(if !format.is_empty() {
        format!(
            "{} value must be of type {} with format {} in {}",
            prefix, type_name, format, path
        )
    } else {
        format!(
            "{} value must be of type {} (default format) in {}",
            prefix, type_name, path
        )
    }))
}

fn bound_valid(b: f64, s: &Node, prefix: &str, path: &str) -> Option<VErr> {
    range_error(None, b, s, prefix, path)
}

fn number_validator(s: &Node, path: &str, data: &Value) -> Res {
    let Value::Number(n) = data else {
        return Res::default();
    };
    let int = n.as_i64();
    let f = n.as_f64().unwrap_or(0.0);
    let value = || Some(Bad::Json(data.clone()));
    let mut res = Res::default();
    if let Some(e) = range_error(int, f, s, "Checked", path) {
        res.add(e);
    }
    let mut res_multiple = Res::default();
    let mut res_minimum = Res::default();
    let mut res_maximum = Res::default();
    if let Some(factor) = s.multiple_of {
        let range = bound_valid(factor, s, "MultipleOf", path);
        let native = range.is_none();
        if let Some(e) = range {
            res_multiple.add(e);
        }
        match (native, int) {
            (true, Some(i)) => {
                let fi = factor as i64;
                if fi <= 0 {
                    res_multiple.add(VErr::v(
                        Code::Other,
                        path,
                        Some(Bad::Int(fi)),
                        format!(
                            "factor MultipleOf declared for {} must be positive: {}",
                            path, fi
                        ),
                    ));
                } else if i % fi != 0 {
                    res_multiple.add(VErr::v(
                        Code::Other,
                        path,
                        value(),
                        format!("{} in body should be a multiple of {}", path, fi),
                    ));
                }
            }
            _ => {
                if factor <= 0.0 {
                    res_multiple.add(VErr::v(
                        Code::Other,
                        path,
                        Some(Bad::Json(Value::from(factor))),
                        format!(
                            "factor MultipleOf declared for {} must be positive: {}",
                            path,
                            gofmt::float(factor)
                        ),
                    ));
                } else {
                    let mult = if factor < 1.0 {
                        1.0 / factor * f
                    } else {
                        f / factor
                    };
                    if !is_json_integer(mult) {
                        res_multiple.add(VErr::v(
                            Code::Other,
                            path,
                            Some(Bad::Json(Value::from(f))),
                            format!(
                                "{} in body should be a multiple of {}",
                                path,
                                gofmt::float(factor)
                            ),
                        ));
                    }
                }
            }
        }
    }
    if let Some(min) = s.minimum {
        let range = bound_valid(min, s, "Minimum boundary", path);
        let native = range.is_none();
        if let Some(e) = range {
            res_minimum.add(e);
        }
        let excl = s.exclusive_minimum;
        let (fails, bound) = match (native, int) {
            (true, Some(i)) => {
                let m = min as i64;
                ((!excl && i < m) || (excl && i <= m), m.to_string())
            }
            _ => ((!excl && f < min) || (excl && f <= min), gofmt::float(min)),
        };
        if fails {
            let op = if excl {
                "greater than"
            } else {
                "greater than or equal to"
            };
            let v = if native {
                value()
            } else {
                Some(Bad::Json(Value::from(f)))
            };
            res_minimum.add(VErr::v(
                Code::Other,
                path,
                v,
                format!("{} in body should be {} {}", path, op, bound),
            ));
        }
    }
    if let Some(max) = s.maximum {
        let range = bound_valid(max, s, "Maximum boundary", path);
        let native = range.is_none();
        if let Some(e) = range {
            res_maximum.add(e);
        }
        let excl = s.exclusive_maximum;
        let (fails, bound) = match (native, int) {
            (true, Some(i)) => {
                let m = max as i64;
                ((!excl && i > m) || (excl && i >= m), m.to_string())
            }
            _ => ((!excl && f > max) || (excl && f >= max), gofmt::float(max)),
        };
        if fails {
            let op = if excl {
                "less than"
            } else {
                "less than or equal to"
            };
            let v = if native {
                value()
            } else {
                Some(Bad::Json(Value::from(f)))
            };
            res_maximum.add(VErr::v(
                Code::Other,
                path,
                v,
                format!("{} in body should be {} {}", path, op, bound),
            ));
        }
    }
    res.merge(res_multiple);
    res.merge(res_minimum);
    res.merge(res_maximum);
    res.match_count += 1;
    res
}

fn slice_validator(s: &Node, path: &str, a: &[Value]) -> Res {
    let mut r = Res::default();
    if let Some(items) = &s.items {
        for (i, v) in a.iter().enumerate() {
            r.merge(schema(items, &format!("{}[{}]", path, i), v, false));
        }
    }
    let size = a.len() as i64;
    if let Some(min) = s.min_items
        && size < min
    {
        r.add(VErr::v(
            Code::Other,
            path,
            Some(Bad::Int(size)),
            format!("{} in body should have at least {} items", path, min),
        ));
    }
    if let Some(max) = s.max_items
        && size > max
    {
        r.add(VErr::Validation {
            code: Code::MaxItems,
            name: path.to_string(),
            value: Some(Bad::Int(size)),
            valid: Some(max),
            values: Vec::new(),
            message: format!("{} in body should have at most {} items", path, max),
        });
    }
    if s.unique_items {
        let mut seen = HashSet::with_capacity(a.len());
        if !a.iter().all(|v| seen.insert(gofmt::json(v))) {
            r.add(VErr::v(
                Code::Other,
                path,
                None,
                format!("{} in body shouldn't contain duplicates", path),
            ));
        }
    }
    r.match_count += 1;
    r
}

/// reflect.Value.Convert + DeepEqual between decoded JSON values.
fn enum_matches(data: &Value, e: &Value) -> bool {
    match (data, e) {
        (Value::Number(d), Value::Number(ev)) => match (d.as_i64(), ev.as_i64()) {
            (Some(a), Some(b)) => a == b,
            // float64 -> int64 conversion truncates
            (None, Some(b)) => d
                .as_f64()
                .is_some_and(|f| f.is_finite() && f.trunc() as i64 == b),
            (Some(a), None) => ev.as_f64() == Some(a as f64),
            (None, None) => d.as_f64() == ev.as_f64(),
        },
        // int64 -> string conversion yields the code point
        (Value::Number(d), Value::String(s)) => d.as_i64().is_some_and(|i| {
            u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}')
                .to_string()
                == *s
        }),
        _ => data == e,
    }
}

fn common_validator(s: &Node, path: &str, data: &Value) -> Res {
    let Some(values) = &s.enum_ else {
        return Res::default();
    };
    if values.is_empty() {
        return Res::default();
    }
    if !data.is_null() && values.iter().any(|e| !e.is_null() && enum_matches(data, e)) {
        return Res::default();
    }
    let list: Vec<String> = values.iter().map(gofmt::value_v).collect();
    Res::err(VErr::Validation {
        code: Code::Enum,
        name: path.to_string(),
        value: Some(Bad::Json(data.clone())),
        valid: None,
        values: values.clone(),
        message: format!("{} in body should be one of [{}]", path, list.join(" ")),
    })
}

fn object_validator(s: &Node, path: &str, m: &Map<String, Value>, resource_root: bool) -> Res {
    let mut res = Res::default();
    let n = m.len() as i64;
    if let Some(min) = s.min_properties
        && n < min
    {
        res.add(VErr::v(
            Code::Other,
            path,
            Some(Bad::Int(n)),
            format!("{} in body should have at least {} properties", path, min),
        ));
    }
    if let Some(max) = s.max_properties
        && n > max
    {
        res.add(VErr::Validation {
            code: Code::TooManyProperties,
            name: path.to_string(),
            value: Some(Bad::Int(n)),
            valid: Some(max),
            values: Vec::new(),
            message: format!("{} in body should have at most {} properties", path, max),
        });
    }
    let skip = |k: &str| resource_root && matches!(k, "apiVersion" | "kind" | "metadata");
    if s.additional_properties_bool == Some(false) {
        for k in m.keys() {
            if !s.properties.contains_key(k) && !skip(k) {
                res.add(VErr::v(
                    Code::Other,
                    path,
                    Some(Bad::Str(k.clone())),
                    format!("{}.{} in body is a forbidden property", path, k),
                ));
            }
        }
    } else if let Some(ap) = &s.additional_properties {
        for (k, v) in m {
            if !s.properties.contains_key(k) && !skip(k) {
                res.merge(schema(ap, &format!("{}.{}", path, k), v, false));
            }
        }
    }
    for (name, prop) in &s.properties {
        if skip(name) {
            continue;
        }
        if let Some(v) = m.get(name) {
            let r_name = if path.is_empty() {
                name.clone()
            } else {
                format!("{}.{}", path, name)
            };
            res.merge(schema(prop, &r_name, v, false));
        }
    }
    for k in &s.required {
        if !m.contains_key(k) && !skip(k) {
            let name = format!("{}.{}", path, k);
            res.add(VErr::v(
                Code::Required,
                &name,
                None,
                format!("{} in body is required", name),
            ));
        }
    }
    res
}
