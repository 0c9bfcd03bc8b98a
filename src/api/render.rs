//! Rendering objects for the client: plain JSON lists, Tables and
//! PartialObjectMetadata, per the Accept header.
//!
//! Lists are written straight into a byte buffer from the shared cached
//! objects, so serving 10 000 objects never deep-copies them.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Value, json};

use super::handlers::{Rendering, Reply};
use super::registry::resources::ResourceInfo;
use super::table;
use super::watch_cache::CachedObject;

/// List metadata: resourceVersion and continue token.
pub struct ListMeta {
    /// The list's resourceVersion.
    pub resource_version: String,
    /// Continue token for the next page, if any.
    pub continue_token: Option<String>,
    /// How many items the remaining pages hold, when known.
    pub remaining_item_count: Option<usize>,
}

/// A PartialObjectMetadata for `obj`.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn list_metadata(meta: &ListMeta) -> Value {
    let mut m = json!({"resourceVersion": meta.resource_version});
    if let Some(c) = &meta.continue_token {
        m["continue"] = json!(c);
    }
    if let Some(n) = meta.remaining_item_count {
        m["remainingItemCount"] = json!(n);
    }
    m
}

/// Table column definitions as JSON.
pub fn column_definitions(info: &ResourceInfo) -> Value {
    if let Some(custom) = info.custom {
        let mut columns = vec![json!({
            "name": "Name", "type": "string", "format": "name",
            "description": crate::api::custom::columns::NAME_DOC, "priority": 0,
        })];
        columns.extend(custom.columns.iter().map(|c| c.definition()));
        return Value::Array(columns);
    }
    Value::Array(
        table::columns(info.group, info.resource)
            .into_iter()
            .map(|c| {
                json!({
                    "name": c.name, "type": c.type_, "format": c.format,
                    "description": c.description, "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// One Table row for `obj`; `include_object` is Object, Metadata or None.
pub fn table_row(info: &ResourceInfo, obj: &Value, include_object: &str, now: SystemTime) -> Value {
    let cells = match info.custom {
        Some(custom) => {
            let mut cells = vec![json!(obj["metadata"]["name"].as_str().unwrap_or_default())];
            cells.extend(custom.columns.iter().map(|c| c.cell(obj, now)));
            cells
        }
        None => table::cells(info.group, info.resource, obj, now),
    };
    let mut row = json!({"cells": cells});
    match include_object {
        "None" => {}
        "Object" => row["object"] = obj.clone(),
        _ => row["object"] = partial_metadata(obj),
    }
    row
}

/// A Table of `objects` (parsed).
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    meta: &ListMeta,
    include_object: &str,
    with_columns: bool,
) -> Value {
    let now = SystemTime::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| table_row(info, o, include_object, now))
        .collect();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata(meta),
        "rows": rows,
    });
    if with_columns {
        t["columnDefinitions"] = column_definitions(info);
    }
    t
}

/// Renders a list as the client asked.
pub fn list(
    info: &ResourceInfo,
    objects: &[Arc<CachedObject>],
    meta: &ListMeta,
    rendering: Rendering,
    include_object: &str,
) -> Reply {
    match rendering {
        Rendering::Table => {
            let values: Vec<Value> = objects.iter().map(|o| o.value()).collect();
            Reply::ok(table(info, &values, meta, include_object, true))
        }
        Rendering::Metadata => {
            let items: Vec<Value> = objects
                .iter()
                .map(|o| partial_metadata(&o.value()))
                .collect();
            Reply::ok(json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_metadata(meta),
                "items": items,
            }))
        }
        Rendering::Object => {
            let size: usize = objects.iter().map(|o| o.json.len() + 1).sum();
            let mut out = Vec::with_capacity(256 + size);
            let head = json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": list_metadata(meta)});
            let head = super::protobuf::json_order::to_vec(&head);
            // `{"kind":…,"metadata":{…}` + `,"items":[…]}`: the cached JSON
            // is spliced in as is.
            out.extend_from_slice(&head[..head.len().saturating_sub(1)]);
            out.extend_from_slice(b",\"items\":[");
            for (i, obj) in objects.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&obj.json);
            }
            out.extend_from_slice(b"]}\n");
            Reply::Raw {
                code: 200,
                content_type: "application/json",
                body: Bytes::from(out),
            }
        }
    }
}

/// Renders one object as the client asked.
pub fn object(
    info: &ResourceInfo,
    obj: &Value,
    rendering: Rendering,
    include_object: &str,
    code: u16,
) -> Reply {
    match rendering {
        Rendering::Table => {
            let meta = ListMeta {
                resource_version: crate::api::object::resource_version(obj)
                    .unwrap_or("")
                    .to_string(),
                continue_token: None,
                remaining_item_count: None,
            };
            let mut t = table(info, &[], &meta, include_object, true);
            t["rows"] = json!([table_row(info, obj, include_object, SystemTime::now())]);
            Reply::with_code(code, t)
        }
        Rendering::Metadata => Reply::with_code(code, partial_metadata(obj)),
        Rendering::Object => Reply::with_code(code, obj.clone()),
    }
}
