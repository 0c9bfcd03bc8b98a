//! `GET /openapi/v2`: the Swagger 2.0 document of every served resource, as
//! JSON or as gnostic's `openapi.v2.Document` protobuf.
//!
//! kubectl still reads v2 in one place: when a kind is missing from the v3
//! document (a custom resource whose CRD is not applied yet), its client-side
//! validation falls back to v2 (`OpenAPISchema()`, protobuf only). A 404 there
//! aborted the whole `kubectl apply` of a file; with a document, an unknown
//! kind is simply not found and each object gets its own error.
//!
//! The document is derived from the v3 ones rather than generated a second
//! time: the same paths and schemas, with v3's `requestBody`/`content`
//! turned back into v2's body parameter, `produces`/`consumes`, and refs
//! under `#/definitions/`. Keywords v2 cannot say (`nullable`, `oneOf`,
//! `anyOf`, `not`) are dropped, as upstream does when it publishes a CRD in
//! v2.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::document::KUBERNETES_VERSION;

/// The Swagger 2.0 document built from the v3 group/version documents.
pub(super) fn from_v3(documents: &[Value]) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for doc in documents {
        if let Some(items) = doc.get("paths").and_then(Value::as_object) {
            for (path, item) in items {
                paths.insert(path.clone(), path_item(item));
            }
        }
        if let Some(schemas) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, schema) in schemas {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| schema_v2(schema));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey"
            }
        },
        "security": [{ "BearerToken": [] }]
    })
}

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    let Some(item) = item.as_object() else {
        return Value::Object(out);
    };
    for (key, value) in item {
        if METHODS.contains(&key.as_str()) {
            out.insert(key.clone(), operation(value));
        } else if key == "parameters" {
            out.insert(key.clone(), parameters(value));
        } else if key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let Some(op) = op.as_object() else {
        return Value::Object(out);
    };
    let mut params = op
        .get("parameters")
        .map(parameters)
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default();
    let mut consumes = BTreeSet::new();
    if let Some(body) = op.get("requestBody") {
        let content = body.get("content").and_then(Value::as_object);
        let schema = content
            .and_then(|c| c.values().find_map(|m| m.get("schema")))
            .map(schema_v2)
            .unwrap_or_else(|| json!({}));
        consumes.extend(content.into_iter().flat_map(|c| c.keys().cloned()));
        params.push(json!({ "name": "body", "in": "body", "required": true, "schema": schema }));
    }
    let mut produces = BTreeSet::new();
    let mut responses = Map::new();
    if let Some(all) = op.get("responses").and_then(Value::as_object) {
        for (code, response) in all {
            let mut r = Map::new();
            let description = response.get("description").cloned();
            r.insert(
                "description".into(),
                description.unwrap_or_else(|| json!(code)),
            );
            if let Some(content) = response.get("content").and_then(Value::as_object) {
                produces.extend(content.keys().cloned());
                if let Some(schema) = content.values().find_map(|m| m.get("schema")) {
                    r.insert("schema".into(), schema_v2(schema));
                }
            }
            responses.insert(code.clone(), Value::Object(r));
        }
    }
    for key in ["description", "operationId", "tags", "deprecated"] {
        if let Some(v) = op.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if !consumes.is_empty() {
        out.insert("consumes".into(), json!(consumes));
    }
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    out.insert("schemes".into(), json!(["https"]));
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("responses".into(), Value::Object(responses));
    for (key, value) in op {
        if key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// v3 parameters (`schema: {type}`) in v2's shape (`type` inline).
fn parameters(params: &Value) -> Value {
    let list = params.as_array().map(Vec::as_slice).unwrap_or_default();
    Value::Array(
        list.iter()
            .map(|p| {
                let mut out = Map::new();
                for key in ["name", "in", "description", "required"] {
                    if let Some(v) = p.get(key) {
                        out.insert(key.into(), v.clone());
                    }
                }
                if let Some(schema) = p.get("schema").and_then(Value::as_object) {
                    for (key, value) in schema {
                        if matches!(key.as_str(), "type" | "format" | "uniqueItems" | "items") {
                            out.insert(key.clone(), value.clone());
                        }
                    }
                }
                for (key, value) in p.as_object().into_iter().flatten() {
                    if key.starts_with("x-") || key == "uniqueItems" {
                        out.insert(key.clone(), value.clone());
                    }
                }
                Value::Object(out)
            })
            .collect(),
    )
}

/// A v3 schema in v2's dialect.
fn schema_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "nullable" | "oneOf" | "anyOf" | "not" => {}
                    "$ref" => {
                        let target = value.as_str().unwrap_or_default();
                        let name = target.rsplit('/').next().unwrap_or_default();
                        out.insert(key.clone(), json!(format!("#/definitions/{name}")));
                    }
                    // Values, not schemas: copied as they are.
                    "default" | "example" | "enum" | "required" => {
                        out.insert(key.clone(), value.clone());
                    }
                    _ if key.starts_with("x-") => {
                        out.insert(key.clone(), value.clone());
                    }
                    "properties" => {
                        let props = value
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), schema_v2(v)))
                            .collect();
                        out.insert(key.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(key.clone(), schema_v2(value));
                    }
                }
            }
            // v3 wraps a described `$ref` in a one-element allOf; v2 says `$ref`.
            if let Some(Value::Array(all)) = out.get("allOf")
                && all.len() == 1
                && all[0].get("$ref").is_some()
            {
                let reference = all[0]["$ref"].clone();
                out.remove("allOf");
                out.insert("$ref".into(), reference);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema_v2).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_bodies_and_refs_become_v2() {
        let v3 = json!({
            "paths": {"/api/v1/namespaces/{namespace}/configmaps": {
                "parameters": [{"name": "namespace", "in": "path", "required": true,
                                "schema": {"type": "string", "uniqueItems": true}}],
                "post": {
                    "operationId": "createCoreV1NamespacedConfigMap",
                    "requestBody": {"content": {"*/*": {"schema": {"$ref": "#/components/schemas/io.k8s.api.core.v1.ConfigMap"}}}},
                    "responses": {"201": {"description": "Created", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/io.k8s.api.core.v1.ConfigMap"}}}}},
                    "x-kubernetes-action": "post",
                    "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "ConfigMap"}
                }
            }},
            "components": {"schemas": {"io.k8s.api.core.v1.ConfigMap": {
                "type": "object",
                "properties": {"metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {}},
                               "data": {"type": "object", "nullable": true, "additionalProperties": {"type": "string"}}}
            }}}
        });
        let v2 = from_v3(&[v3]);
        let post = &v2["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["post"];
        assert_eq!(post["parameters"][0]["in"], "body");
        assert_eq!(
            post["parameters"][0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.ConfigMap"
        );
        assert_eq!(post["consumes"], json!(["*/*"]));
        assert_eq!(post["produces"], json!(["application/json"]));
        assert_eq!(post["x-kubernetes-action"], "post");
        let path_params = &v2["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["parameters"];
        assert_eq!(path_params[0]["type"], "string");
        let cm = &v2["definitions"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(
            cm["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(cm["properties"]["data"].get("nullable").is_none());
    }
}
