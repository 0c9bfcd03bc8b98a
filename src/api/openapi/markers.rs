//! Adds the `x-kubernetes-*` list, map and patch extensions that `k8s-openapi` drops.
//!
//! Upstream's documents carry `x-kubernetes-list-type`, `-list-map-keys`, `-patch-merge-key`,
//! `-patch-strategy` and `-map-type`; kubectl's client-side apply computes strategic merge
//! patches from the last two pairs, so without them lists such as `containers` would be replaced
//! wholesale. The facts live in `markers.txt`, a table derived from the upstream Go types (see its
//! header). Applying it cannot fail: entries for schemas or properties absent from a document are
//! skipped, and malformed tokens are ignored.

use serde_json::{Map, Value};

const TABLE: &str = include_str!("markers.txt");

/// Adds the table's extensions to every matching schema and property in `schemas`.
pub(crate) fn apply(schemas: &mut Map<String, Value>) {
    let mut current: Option<&str> = None;
    for line in TABLE.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let indented = line.starts_with(' ');
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        if !indented {
            current = Some(first);
        }
        let Some(Value::Object(schema)) = current.and_then(|name| schemas.get_mut(name)) else {
            continue;
        };
        let target = if indented {
            match schema.get_mut("properties").and_then(|p| p.get_mut(first)) {
                Some(Value::Object(property)) => property,
                _ => continue,
            }
        } else {
            schema
        };
        for (key, value) in words.filter_map(extension) {
            target.insert(key.to_owned(), value);
        }
    }
}

/// Parses one `key=value` marker into its extension name and value.
fn extension(token: &str) -> Option<(&'static str, Value)> {
    let (key, value) = token.split_once('=')?;
    let name = match key {
        "lt" => "x-kubernetes-list-type",
        "keys" => "x-kubernetes-list-map-keys",
        "pmk" => "x-kubernetes-patch-merge-key",
        "ps" => "x-kubernetes-patch-strategy",
        "mt" => "x-kubernetes-map-type",
        _ => return None,
    };
    let value = if key == "keys" {
        Value::Array(
            value
                .split(',')
                .map(|k| Value::String(k.to_owned()))
                .collect(),
        )
    } else {
        Value::String(value.to_owned())
    };
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_get_merge_key_and_list_map_keys() {
        let mut schemas = Map::new();
        schemas.insert(
            "io.k8s.api.core.v1.PodSpec".into(),
            json!({ "properties": { "containers": { "type": "array" } } }),
        );
        apply(&mut schemas);
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    }

    #[test]
    fn schema_level_map_type_and_missing_entries_are_tolerated() {
        let mut schemas = Map::new();
        schemas.insert(
            "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector".into(),
            json!({ "type": "object" }),
        );
        apply(&mut schemas);
        let selector = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"];
        assert_eq!(selector["x-kubernetes-map-type"], "atomic");
        assert!(selector.get("properties").is_none());
    }

    #[test]
    fn unknown_marker_keys_are_ignored() {
        assert!(extension("zz=1").is_none());
        assert!(extension("novalue").is_none());
        assert_eq!(
            extension("keys=containerPort,protocol"),
            Some((
                "x-kubernetes-list-map-keys",
                json!(["containerPort", "protocol"])
            ))
        );
    }
}
