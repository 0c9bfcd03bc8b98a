//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386), via the `json-patch` crate.
//!
//! The crate does the document surgery; this module supplies the apiserver's
//! framing from k8s.io/apiserver `applyJSPatch`: an undecodable body is 400, more
//! than 10 000 operations is 413, and an operation that does not apply (failed
//! `test`, missing path) is 422 with the message `gopkg.in/evanphx/json-patch.v4`
//! would give, e.g. `testing value /spec/replicas failed: test failed`. A merge
//! patch must be a JSON object or array; the result must still be an object.
//!
//! `copy` is the one operation that makes a document grow beyond the size
//! of the patch itself: copying a subtree into itself doubles it, and 25
//! such operations reach gigabytes (CVE-2019-1002100). As upstream's
//! `AccumulatedCopySizeLimit`, the bytes copied are summed while the patch
//! is applied, and the patch fails with 422 once they pass the request body
//! limit, before the copy that would pass it is made.

use json_patch::{Patch, PatchErrorKind, PatchOperation};
use serde_json::Value;

use super::PatchError;

/// Upstream `maxJSONPatchOperations`.
const MAX_OPERATIONS: usize = 10_000;

/// Upstream sets `jsonpatch.AccumulatedCopySizeLimit` to the request body limit.
const MAX_ACCUMULATED_COPY: usize = crate::api::server::MAX_BODY;

const KINDS: [&str; 6] = ["add", "remove", "replace", "move", "copy", "test"];

/// Applies an RFC 6902 patch document to `original`.
pub(crate) fn json_patch(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let ops = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(ops)) => ops,
        Ok(other) => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                json_kind(&other)
            )));
        }
        Err(e) => return Err(PatchError::BadRequest(e.to_string())),
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(PatchError::RequestEntityTooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    for op in &ops {
        let Value::Object(fields) = op else {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                json_kind(op)
            )));
        };
        let kind = fields
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        if !KINDS.contains(&kind) {
            return Err(PatchError::Unprocessable(format!(
                "Unexpected kind: {kind}"
            )));
        }
    }
    let patch: Patch = serde_json::from_value(Value::Array(ops.clone()))
        .map_err(|e| PatchError::Unprocessable(e.to_string()))?;
    let mut doc = original.clone();
    let mut copied = 0usize;
    for (i, operation) in patch.0.iter().enumerate() {
        if let PatchOperation::Copy(copy) = operation {
            let size = doc
                .pointer(copy.from.as_str())
                .map_or(0, |v| json_size(v, MAX_ACCUMULATED_COPY + 1));
            copied = copied.saturating_add(size);
            if copied > MAX_ACCUMULATED_COPY {
                return Err(PatchError::Unprocessable(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_ACCUMULATED_COPY}"
                )));
            }
        }
        if let Err(err) = json_patch::patch_unsafe(&mut doc, std::slice::from_ref(operation)) {
            let op = ops.get(i).unwrap_or(&Value::Null);
            return Err(PatchError::Unprocessable(failure_message(
                &doc, op, &err.kind,
            )));
        }
    }
    ensure_object(doc)
}

/// Applies an RFC 7386 merge patch to `original`.
pub(crate) fn merge_patch(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let invalid = || PatchError::BadRequest("Invalid JSON Patch".to_string());
    let patch: Value = serde_json::from_slice(body).map_err(|_| invalid())?;
    if !patch.is_object() && !patch.is_array() {
        return Err(invalid());
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, &patch);
    ensure_object(doc)
}

/// Upstream decodes the result into the object's type; anything but an object fails.
fn ensure_object(doc: Value) -> Result<Value, PatchError> {
    if doc.is_object() {
        Ok(doc)
    } else {
        Err(PatchError::Unprocessable(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&doc)
        )))
    }
}

/// About how many bytes `value` takes as JSON, counted up to `limit` (the
/// walk stops there, so a huge value costs no more than a small one).
fn json_size(value: &Value, limit: usize) -> usize {
    let mut size = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        size += match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items.iter());
                2 + items.len()
            }
            Value::Object(map) => {
                for (k, item) in map {
                    size += k.len() + 3;
                    stack.push(item);
                }
                2 + map.len()
            }
        };
        if size >= limit {
            return size;
        }
    }
    size
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    }
}

/// evanphx/json-patch's wording for an operation that does not apply to `doc`
/// (the document as it stood when the operation failed).
fn failure_message(doc: &Value, op: &Value, kind: &PatchErrorKind) -> String {
    let field = |name: &str| op.get(name).and_then(Value::as_str).unwrap_or_default();
    let (name, path, from) = (field("op"), field("path"), field("from"));
    let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
    let parent_exists = doc.pointer(parent).is_some();
    match kind {
        PatchErrorKind::TestFailed => format!("testing value {path} failed: test failed"),
        PatchErrorKind::InvalidFromPointer => format!(
            "{name} operation does not apply: doc is missing from path: {from}: missing value"
        ),
        PatchErrorKind::InvalidPointer => match (name, parent_exists) {
            ("add", false) | ("remove", false) => {
                format!(
                    "{name} operation does not apply: doc is missing path: \"{path}\": missing value"
                )
            }
            ("replace", false) => {
                format!(
                    "replace operation does not apply: doc is missing path: {path}: missing value"
                )
            }
            ("replace", true) => {
                format!(
                    "replace operation does not apply: doc is missing key: {path}: missing value"
                )
            }
            ("test", false) => {
                format!("test operation does not apply: is missing path: {path}: missing value")
            }
            ("test", true) => format!("testing value {path} failed: test failed"),
            ("move" | "copy", false) => format!(
                "{name} operation does not apply: doc is missing destination path: {path}: missing value"
            ),
            (_, true) if doc.pointer(parent).is_some_and(Value::is_array) => format!(
                "error in {name} for path: '{path}': Unable to access invalid index: {last}: invalid index referenced"
            ),
            _ => format!(
                "error in {name} for path: '{path}': Unable to remove nonexistent key: {last}: missing value"
            ),
        },
        other => format!("{name} operation failed at path '{path}': {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}})
    }

    #[test]
    fn add_remove_replace_apply_in_order() {
        let body = br#"[
            {"op": "add", "path": "/metadata/labels", "value": {"app": "web"}},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "remove", "path": "/kind"}
        ]"#;
        let out = json_patch(&deploy(), body).unwrap();
        assert_eq!(out["metadata"]["labels"]["app"], "web");
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(out.get("kind").is_none());
    }

    #[test]
    fn failed_test_is_unprocessable_with_upstream_message() {
        let body = br#"[{"op": "test", "path": "/spec/replicas", "value": 2},
                        {"op": "replace", "path": "/spec/replicas", "value": 5}]"#;
        match json_patch(&deploy(), body) {
            Err(PatchError::Unprocessable(msg)) => {
                assert_eq!(msg, "testing value /spec/replicas failed: test failed");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_paths_are_unprocessable() {
        let cases: [(&[u8], &str); 3] = [
            (
                br#"[{"op": "remove", "path": "/spec/paused"}]"#,
                "error in remove for path: '/spec/paused': Unable to remove nonexistent key: paused: missing value",
            ),
            (
                br#"[{"op": "replace", "path": "/status/x", "value": 1}]"#,
                "replace operation does not apply: doc is missing path: /status/x: missing value",
            ),
            (
                br#"[{"op": "add", "path": "/a/b", "value": 1}]"#,
                "add operation does not apply: doc is missing path: \"/a/b\": missing value",
            ),
        ];
        for (body, want) in cases {
            match json_patch(&deploy(), body) {
                Err(PatchError::Unprocessable(msg)) => assert_eq!(msg, want),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        assert!(matches!(
            json_patch(&deploy(), b"{}"),
            Err(PatchError::BadRequest(_))
        ));
        assert!(matches!(
            json_patch(&deploy(), b"[1"),
            Err(PatchError::BadRequest(_))
        ));
        let unknown = json_patch(&deploy(), br#"[{"op": "frob", "path": "/a"}]"#);
        assert!(
            matches!(unknown, Err(PatchError::Unprocessable(m)) if m == "Unexpected kind: frob")
        );
    }

    #[test]
    fn too_many_operations_is_too_large() {
        let ops: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/kind", "value": "Deployment"}))
            .collect();
        let body = serde_json::to_vec(&ops).unwrap();
        assert!(matches!(
            json_patch(&deploy(), &body),
            Err(PatchError::RequestEntityTooLarge(_))
        ));
    }

    #[test]
    fn copying_a_document_into_itself_is_stopped_before_it_grows() {
        let big = "x".repeat(1000);
        let original = json!({"metadata": {"name": "x", "annotations": {}}, "data": {"a": big}});
        let mut ops =
            vec![json!({"op": "copy", "from": "/data", "path": "/metadata/annotations/d"})];
        for i in 0..26 {
            ops.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}));
        }
        let body = serde_json::to_vec(&ops).unwrap();
        match json_patch(&original, &body) {
            Err(PatchError::Unprocessable(msg)) => assert!(
                msg.starts_with(
                    "Unable to complete the copy, the accumulated size increase of copy is"
                ),
                "{msg}"
            ),
            other => panic!("unexpected {other:?}"),
        }
        // A few small copies are fine.
        let ok =
            br#"[{"op": "copy", "from": "/metadata/name", "path": "/metadata/annotations/n"}]"#;
        assert_eq!(
            json_patch(&original, ok).unwrap()["metadata"]["annotations"]["n"],
            "x"
        );
    }

    #[test]
    fn merge_patch_null_removes_and_objects_merge() {
        let body =
            br#"{"spec": {"replicas": null, "paused": true}, "metadata": {"labels": {"a": "b"}}}"#;
        let out = merge_patch(&deploy(), body).unwrap();
        assert!(out["spec"].get("replicas").is_none());
        assert_eq!(out["spec"]["paused"], true);
        assert_eq!(out["metadata"]["name"], "web");
        assert_eq!(out["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn merge_patch_rejects_garbage_and_non_objects() {
        assert!(matches!(
            merge_patch(&deploy(), b"{"),
            Err(PatchError::BadRequest(_))
        ));
        assert!(matches!(
            merge_patch(&deploy(), b"3"),
            Err(PatchError::BadRequest(_))
        ));
        assert!(matches!(
            merge_patch(&deploy(), b"[1]"),
            Err(PatchError::Unprocessable(_))
        ));
    }
}
