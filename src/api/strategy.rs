//! Per-resource rules applied on every write (upstream's "strategies").
//!
//! - decode the body (JSON, or YAML by Content-Type) and check
//!   apiVersion/kind against the endpoint;
//! - typed check for wrongly-typed values (400) and unknown fields
//!   (`fieldValidation`);
//! - on create: uid, creationTimestamp, generation, status reset;
//! - on update: immutable metadata kept, spec/status split for resources
//!   with a status subresource, generation bumped when the spec changes;
//! - defaulting and validation per type (`registry::defaults`,
//!   `registry::validation`), turned into 422 Invalid.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::object::{self, metadata_mut};
use super::registry::resources::ResourceInfo;
use super::registry::{defaults, typed, validation};
use super::request::FieldValidation;
use super::status::{ApiError, ApiResult, Cause};

/// Decodes a request body: JSON, or YAML when the Content-Type says so.
pub fn decode_body(body: &Bytes, content_type: Option<&str>) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    if content_type.is_some_and(super::protobuf::is_protobuf) {
        // client-go >= 1.32 (kubectl create, typed clientsets) send
        // built-in kinds as protobuf.
        return super::protobuf::decode(body).map_err(|e| ApiError::bad_request(e.to_string()));
    }
    // As upstream's NegotiateInputSerializer: no Content-Type means JSON;
    // anything but JSON, YAML or protobuf is a 415.
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let yaml = match media.as_str() {
        "" | "application/json" => false,
        "application/yaml" => true,
        _ => {
            return Err(ApiError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            ));
        }
    };
    let value: Value = if yaml {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(value)
}

/// Checks (and fills in, when absent) apiVersion and kind.
pub fn check_kind(info: &ResourceInfo, expected_kind: &str, obj: &mut Value) -> ApiResult<()> {
    let api_version = info.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(expected_kind));
        }
        Some(k) if k == expected_kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({expected_kind})"
            )));
        }
    }
    Ok(())
}

/// Decodes into the typed struct: type errors are 400; unknown fields are
/// 400 (Strict), warnings (Warn) or ignored, and then dropped; Go's
/// always-written zero values are added (see [`typed::conform`]). Returns
/// the warnings.
pub fn check_fields(
    info: &ResourceInfo,
    kind: &str,
    obj: &mut Value,
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    if let Some(custom) = info.custom {
        return super::custom::strategy::decode(custom, kind, info.version, obj, mode);
    }
    let Some(result) = typed::round_trip(info.group, kind, obj) else {
        return Ok(Vec::new());
    };
    let typed = result.map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
            info.version
        ))
    })?;
    let unknown: Vec<String> = if mode == FieldValidation::Ignore {
        Vec::new()
    } else {
        typed::unknown_fields(obj, &typed)
            .into_iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect()
    };
    if mode == FieldValidation::Strict && !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: strict decoding error: {}",
            info.version,
            unknown.join(", ")
        )));
    }
    // What is stored is what upstream's decoder keeps: unknown fields go
    // (after the warning), Go's always-written zero values come.
    typed::conform(obj, &typed);
    Ok(unknown)
}

/// Whether the resource tracks metadata.generation.
fn tracks_generation(info: &ResourceInfo, obj: &Value) -> bool {
    info.custom.is_some()
        || info.has_status()
        || (obj.get("spec").is_some() && info.resource != "namespaces")
}

/// Create-time metadata and status.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value) {
    let now = object::now_rfc3339();
    let track = tracks_generation(info, obj);
    let meta = metadata_mut(obj);
    meta.insert("uid".into(), json!(object::new_uid()));
    meta.insert("creationTimestamp".into(), json!(now));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
    if track {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    let map = obj.as_object_mut().expect("metadata_mut made it an object");
    match (info.group, info.resource) {
        // Status is the controllers' to write; these start from upstream's
        // initial values.
        ("", "pods") => {
            let qos = qos_class(map.get("spec"));
            map.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        ("", "namespaces") => {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        ("", "nodes") | ("", "persistentvolumes") | ("", "persistentvolumeclaims") => {}
        ("", "services") => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
        // Upstream's customResourceStrategy: status is the status
        // subresource's alone.
        _ if info.custom.is_some() && info.has_status() => {
            map.remove("status");
        }
        _ if info.custom.is_some() => {}
        _ if info.has_status() => {
            map.insert("status".into(), typed::zero_status(info.group, info.kind));
        }
        _ => {}
    }
    stamp_template_generation(info, obj);
}

/// DaemonSets carry their template generation in an annotation (upstream
/// sets it in the DaemonSet strategy; the controller labels pods with it).
fn stamp_template_generation(info: &ResourceInfo, obj: &mut Value) {
    if info.group != "apps" || info.resource != "daemonsets" {
        return;
    }
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
    let meta = metadata_mut(obj);
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations["deprecated.daemonset.template.generation"] = json!(generation.to_string());
}

pub use crate::client::pod_qos::qos_class;

/// Sets `obj[parent][field]`, or removes it for null.
fn set_or_remove_in(obj: &mut Value, parent: &str, field: &str, value: Value) {
    let Some(parent) = obj.get_mut(parent).and_then(Value::as_object_mut) else {
        return;
    };
    if value.is_null() {
        parent.remove(field);
    } else {
        parent.insert(field.to_string(), value);
    }
}

/// Update-time rules. `subresource` is `Some("status")` for status writes.
pub fn prepare_update(
    info: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
) {
    // Immutable or server-owned metadata comes from the stored object.
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    {
        let meta = metadata_mut(new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        meta.remove("resourceVersion");
    }
    if (info.group, info.resource) == ("", "pods") {
        // Ephemeral containers change only through their subresource, and
        // through it nothing else changes (upstream's
        // EphemeralContainersStrategy).
        let wanted = new
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .and_then(|spec| spec.remove("ephemeralContainers"))
            .unwrap_or(Value::Null);
        if subresource == Some("ephemeralcontainers") {
            *new = old.clone();
            metadata_mut(new).remove("resourceVersion");
            set_or_remove_in(new, "spec", "ephemeralContainers", wanted);
        } else {
            let before = old["spec"].get("ephemeralContainers").cloned();
            set_or_remove_in(
                new,
                "spec",
                "ephemeralContainers",
                before.unwrap_or(Value::Null),
            );
        }
    }
    if info.has_status() {
        match subresource {
            Some("status") => {
                // Upstream's status strategies: the spec (and the
                // ownerReferences, and for workloads the labels) stay as
                // stored; status and other metadata such as annotations
                // may change (the deployment controller records revisions
                // in annotations this way).
                set_or_remove(new, "spec", old.get("spec").cloned());
                let keep_labels = info.group == "apps" || info.group == "batch";
                let old_meta = old
                    .get("metadata")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let meta = metadata_mut(new);
                let mut keep = vec!["ownerReferences"];
                if keep_labels {
                    keep.push("labels");
                }
                for field in keep {
                    match old_meta.get(field) {
                        Some(v) => meta.insert(field.into(), v.clone()),
                        None => meta.remove(field),
                    };
                }
            }
            _ => set_or_remove(new, "status", old.get("status").cloned()),
        }
    }
    let changed = match info.custom {
        Some(_) => super::custom::strategy::generation_changes(old, new),
        None => old.get("spec") != new.get("spec"),
    };
    if tracks_generation(info, new) && subresource.is_none() && changed {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        metadata_mut(new).insert("generation".into(), json!(generation));
        if old.get("spec").map(|s| &s["template"]) != new.get("spec").map(|s| &s["template"]) {
            stamp_template_generation(info, new);
        }
    } else if info.resource == "daemonsets" {
        // Keep the stored template generation when a client drops it.
        let kept =
            old["metadata"]["annotations"]["deprecated.daemonset.template.generation"].clone();
        if !kept.is_null() {
            let meta = metadata_mut(new);
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if annotations.is_object() {
                annotations["deprecated.daemonset.template.generation"] = kept;
            }
        }
    }
}

fn set_or_remove(obj: &mut Value, field: &str, value: Option<Value>) {
    if let Some(map) = obj.as_object_mut() {
        match value {
            Some(v) => map.insert(field.into(), v),
            None => map.remove(field),
        };
    }
}

/// Normalization and defaults only (for server-made objects).
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) {
    normalize(info, obj);
    defaults::apply_defaults(info.group, info.kind, obj);
}

/// Defaults, then validation; validation failures become 422 Invalid.
pub fn default_and_validate(
    info: &ResourceInfo,
    kind: &str,
    old: Option<&Value>,
    obj: &mut Value,
) -> ApiResult<()> {
    normalize(info, obj);
    defaults::apply_defaults(info.group, kind, obj);
    // What is already too large to store fails before validation and
    // managed fields, whose work grows with the object (a patch adding
    // 30 000 containers stays under the body limit but not once defaulted).
    check_stored_size(encoded_len(obj))?;
    let errors = match (info.custom, old) {
        (Some(_), old) => validation::validate_custom_meta(info.namespaced, old, obj),
        (None, None) => validation::validate_create(info.group, kind, obj),
        (None, Some(old)) => validation::validate_update(info.group, kind, old, obj),
    };
    let mut causes: Vec<Cause> = errors
        .into_iter()
        .map(|e| Cause {
            reason: e.kind.as_str().to_string(),
            field: e.field,
            message: e.message,
        })
        .collect();
    if let Some(custom) = info.custom {
        causes.extend(super::custom::strategy::validate(custom, old, obj));
    }
    if info.group == super::custom::GROUP && info.resource == "customresourcedefinitions" {
        causes.extend(super::custom::crd_validation::validate(obj, old));
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = object::name(obj).unwrap_or("").to_string();
    Err(ApiError::invalid(info.group, kind, &name, causes))
}

/// Write-only convenience fields become their stored form: a Secret's
/// `stringData` is merged into `data` (base64), as upstream does.
fn normalize(info: &ResourceInfo, obj: &mut Value) {
    if !(info.group.is_empty() && info.resource == "secrets") {
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    use base64::Engine;
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in strings {
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Largest object stored: etcd's default `--max-request-bytes` (1.5 MiB),
/// which bounds every object on an upstream cluster.
pub const MAX_STORED_OBJECT: usize = 1536 * 1024;

/// [`to_stored`] for a client's write: an object over
/// [`MAX_STORED_OBJECT`] is a 413, as kube-apiserver answers etcd's
/// "request is too large".
pub fn to_stored_checked(obj: &Value) -> ApiResult<Bytes> {
    let bytes = to_stored(obj);
    check_stored_size(bytes.len())?;
    Ok(bytes)
}

/// A 413 for an object of `len` encoded bytes over the storage limit.
fn check_stored_size(len: usize) -> ApiResult<()> {
    if len > MAX_STORED_OBJECT {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: the object would take {len} bytes in storage; the limit is {MAX_STORED_OBJECT}"
            ),
        ));
    }
    Ok(())
}

/// The length of `obj` as JSON, counted without building the text.
fn encoded_len(obj: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, obj);
    counter.0
}

/// The object as stored: without resourceVersion (the store revision is it).
pub fn to_stored(obj: &Value) -> Bytes {
    let mut copy = obj.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&copy).unwrap_or_default())
}

/// Two versions equal apart from resourceVersion and managed-field times
/// (an update that changes nothing is not written, like upstream).
pub fn same_content(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
                for entry in mf.iter_mut() {
                    if let Some(e) = entry.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        v
    }
    strip(a) == strip(b)
}

/// An empty JSON object.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}
