//! `additionalPrinterColumns`: the Table columns of a custom resource.
//!
//! Upstream evaluates each column's `jsonPath` with client-go's JSONPath
//! and keeps the first result. The paths CRDs use are simple: fields,
//! indexes, `[*]` and `[?(@.type=="Ready")]` filters, which is what
//! [`JsonPath`] parses; anything else is refused when the CRD is written
//! (upstream refuses it at the same point).

use std::time::SystemTime;

use serde_json::{Value, json};

/// One column.
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    /// Header.
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    /// OpenAPI format hint.
    pub format: String,
    /// Header description.
    pub description: String,
    /// 0 shows by default; higher only with `-o wide`.
    pub priority: i64,
    /// Where the value is.
    pub path: JsonPath,
}

impl PrinterColumn {
    /// Parses a CRD's column definition.
    pub fn parse(column: &Value) -> Result<PrinterColumn, String> {
        let json_path = column["jsonPath"].as_str().unwrap_or_default();
        let path = JsonPath::parse(json_path)?;
        let description = match column["description"].as_str() {
            Some(d) if !d.is_empty() => d.to_string(),
            _ => format!("Custom resource definition column (in JSONPath format): {json_path}"),
        };
        Ok(PrinterColumn {
            name: column["name"].as_str().unwrap_or_default().to_string(),
            type_: column["type"].as_str().unwrap_or("string").to_string(),
            format: column["format"].as_str().unwrap_or_default().to_string(),
            description,
            priority: column["priority"].as_i64().unwrap_or(0),
            path,
        })
    }

    /// The default when a version declares none: Age.
    pub fn age() -> PrinterColumn {
        PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: CREATION_TIMESTAMP_DOC.into(),
            priority: 0,
            path: JsonPath(vec![
                Step::Field("metadata".into()),
                Step::Field("creationTimestamp".into()),
            ]),
        }
    }

    /// The cell for `obj`, as upstream's `cellForJSONValue`.
    pub fn cell(&self, obj: &Value, now: SystemTime) -> Value {
        let Some(value) = self.path.first(obj) else {
            return Value::Null;
        };
        match (self.type_.as_str(), value) {
            (_, Value::Null) => Value::Null,
            ("string", Value::String(s)) => json!(s),
            ("string", other) => json!(other.to_string()),
            ("integer", Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |i| json!(i)),
            ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
            ("boolean", Value::Bool(b)) => json!(b),
            ("date", Value::String(s)) => {
                if crate::api::table::parses_as_time(s) {
                    json!(crate::api::table::human_age(Some(s), now))
                } else {
                    json!("<invalid>")
                }
            }
            _ => Value::Null,
        }
    }

    /// The Table column definition.
    pub fn definition(&self) -> Value {
        json!({
            "name": self.name, "type": self.type_, "format": self.format,
            "description": self.description, "priority": self.priority,
        })
    }
}

/// metav1.ObjectMeta's doc of `name`, the Name column's description.
pub const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_TIMESTAMP_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One step of a path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.a.b=="x")]` (or `!=`).
    Filter {
        path: Vec<String>,
        equals: bool,
        value: Value,
    },
}

/// A parsed JSONPath of the simple kind printer columns use
/// (`.status.conditions[?(@.type=="Ready")].status`).
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    /// Parses `.a.b[0].c`, `.a[*].b`, `.a[?(@.k=="v")].b`; `{…}` around it
    /// is accepted.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = || format!("unrecognized column definition {text:?}");
        let mut rest = text.trim();
        if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            rest = inner.trim();
        }
        let mut steps = Vec::new();
        let mut chars = rest;
        while !chars.is_empty() {
            if let Some(after) = chars.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    return Err(bad());
                }
                steps.push(Step::Field(name.to_string()));
                chars = &after[end..];
            } else if let Some(after) = chars.strip_prefix('[') {
                let end = after.find(']').ok_or_else(bad)?;
                let inner = after[..end].trim();
                chars = &after[end + 1..];
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(i) = inner.parse::<i64>() {
                    steps.push(Step::Index(i));
                } else if let Some(filter) =
                    inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')'))
                {
                    steps.push(parse_filter(filter).ok_or_else(bad)?);
                } else if let Some(name) =
                    inner.strip_prefix('\'').and_then(|n| n.strip_suffix('\''))
                {
                    steps.push(Step::Field(name.to_string()));
                } else {
                    return Err(bad());
                }
            } else {
                return Err(bad());
            }
        }
        if steps.is_empty() {
            return Err(bad());
        }
        Ok(JsonPath(steps))
    }

    /// The first value the path reaches in `obj`.
    pub fn first<'a>(&self, obj: &'a Value) -> Option<&'a Value> {
        first_from(&self.0, obj)
    }
}

fn first_from<'a>(steps: &[Step], value: &'a Value) -> Option<&'a Value> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(value);
    };
    match step {
        Step::Field(name) => first_from(rest, value.get(name)?),
        Step::Index(i) => {
            let items = value.as_array()?;
            let at = if *i < 0 {
                items.len().checked_sub(i.unsigned_abs() as usize)?
            } else {
                *i as usize
            };
            first_from(rest, items.get(at)?)
        }
        Step::All => match value {
            Value::Array(items) => items.iter().find_map(|v| first_from(rest, v)),
            Value::Object(map) => map.values().find_map(|v| first_from(rest, v)),
            _ => None,
        },
        Step::Filter {
            path,
            equals,
            value: wanted,
        } => value.as_array()?.iter().find_map(|item| {
            let got = path.iter().try_fold(item, |v, k| v.get(k));
            let matches = got.is_some_and(|g| g == wanted) == *equals;
            if matches {
                first_from(rest, item)
            } else {
                None
            }
        }),
    }
}

fn parse_filter(text: &str) -> Option<Step> {
    let (lhs, rhs, equals) = if let Some((l, r)) = text.split_once("==") {
        (l, r, true)
    } else {
        let (l, r) = text.split_once("!=")?;
        (l, r, false)
    };
    let path: Vec<String> = lhs
        .trim()
        .strip_prefix("@.")?
        .split('.')
        .map(str::to_string)
        .collect();
    let rhs = rhs.trim();
    let value = if let Some(s) = rhs
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| rhs.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
    {
        json!(s)
    } else {
        serde_json::from_str(rhs).ok()?
    };
    Some(Step::Filter {
        path,
        equals,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_what_printer_columns_name() {
        let obj = json!({
            "spec": {"replicas": 3, "items": [{"n": "a"}, {"n": "b"}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Issuing", "status": "False"}
            ]}
        });
        let at = |p: &str| JsonPath::parse(p).unwrap().first(&obj).cloned();
        assert_eq!(at(".spec.replicas"), Some(json!(3)));
        assert_eq!(at("{.spec.items[1].n}"), Some(json!("b")));
        assert_eq!(at(".spec.items[-1].n"), Some(json!("b")));
        assert_eq!(at(".spec.items[*].n"), Some(json!("a")));
        assert_eq!(
            at(r#".status.conditions[?(@.type=="Issuing")].status"#),
            Some(json!("False"))
        );
        assert_eq!(at(".spec.missing"), None);
        assert!(JsonPath::parse("spec").is_err());
        assert!(JsonPath::parse(".a[").is_err());
        assert!(JsonPath::parse("").is_err());
    }

    #[test]
    fn cells_follow_the_column_type() {
        let col = |t: &str, p: &str| {
            PrinterColumn::parse(&json!({"name": "X", "type": t, "jsonPath": p})).unwrap()
        };
        let obj = json!({"spec": {"n": 2.0, "s": "x", "b": true, "m": {"a": 1}}});
        let now = SystemTime::now();
        assert_eq!(col("integer", ".spec.n").cell(&obj, now), json!(2));
        assert_eq!(col("number", ".spec.n").cell(&obj, now), json!(2.0));
        assert_eq!(col("string", ".spec.s").cell(&obj, now), json!("x"));
        assert_eq!(col("string", ".spec.m").cell(&obj, now), json!("{\"a\":1}"));
        assert_eq!(col("boolean", ".spec.b").cell(&obj, now), json!(true));
        assert_eq!(col("integer", ".spec.s").cell(&obj, now), Value::Null);
        assert_eq!(col("date", ".spec.s").cell(&obj, now), json!("<invalid>"));
        assert_eq!(col("string", ".spec.none").cell(&obj, now), Value::Null);
    }
}
