//! Schema defaulting (upstream `defaulting.Default`).
//!
//! Defaults fill absent fields and replace `null` where the schema does not
//! allow null; the walk then descends into the (possibly just defaulted)
//! value so nested defaults apply too. Recursion follows the schema, whose
//! depth is bounded at compile time.

use super::structural::Node;
use serde_json::Value;

fn is_non_nullable_null(x: &Value, s: Option<&Node>) -> bool {
    x.is_null() && s.is_some_and(|s| !s.nullable)
}

pub(crate) fn apply(x: &mut Value, s: &Node) {
    match x {
        Value::Object(m) => {
            for (k, prop) in &s.properties {
                let Some(d) = prop.default.as_ref().filter(|d| !d.is_null()) else {
                    continue;
                };
                match m.get(k) {
                    Some(v) if !is_non_nullable_null(v, Some(prop)) => {}
                    _ => {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            let ap = s.additional_properties.as_deref();
            let has_ap = ap.is_some() || s.additional_properties_bool.is_some();
            for (k, v) in m.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    apply(v, prop);
                } else if has_ap && let Some(ap) = ap {
                    if is_non_nullable_null(v, Some(ap)) {
                        *v = ap.default.clone().unwrap_or(Value::Null);
                    }
                    apply(v, ap);
                }
            }
        }
        Value::Array(a) => {
            let Some(items) = s.items.as_deref() else {
                return;
            };
            for v in a.iter_mut() {
                if is_non_nullable_null(v, Some(items)) {
                    *v = items.default.clone().unwrap_or(Value::Null);
                }
                apply(v, items);
            }
        }
        _ => {}
    }
}
