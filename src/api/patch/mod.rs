//! TEMPORARY STUB (replaced by the patch helper's module).
#![allow(missing_docs, dead_code, unused_variables)]
use serde_json::Value;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType { Json, Merge, StrategicMerge, Apply }
impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")] BadRequest(String),
    #[error("{0}")] Unprocessable(String),
    #[error("{0}")] UnsupportedMediaType(String),
    #[error("{message}")] Conflict { message: String, causes: Vec<(String, String)> },
}
#[derive(Clone, Copy, Debug)]
pub struct TypeRef<'a> { pub group: &'a str, pub kind: &'a str }
pub fn apply_patch(original: &Value, patch_type: PatchType, body: &[u8], ty: TypeRef) -> Result<Value, PatchError> {
    let mut doc = original.clone();
    match patch_type {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            json_patch::patch(&mut doc, &p).map_err(|e| PatchError::Unprocessable(e.to_string()))?;
        }
        _ => {
            let p: Value = serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            json_patch::merge(&mut doc, &p);
        }
    }
    Ok(doc)
}
pub fn server_side_apply(live: Option<&Value>, body: &[u8], manager: &str, force: bool, ty: TypeRef, now: &str) -> Result<Value, PatchError> {
    let p: Value = serde_yaml::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    let mut doc = live.cloned().unwrap_or(Value::Object(Default::default()));
    json_patch::merge(&mut doc, &p);
    Ok(doc)
}
pub fn update_managed_fields(old: Option<&Value>, new: &mut Value, manager: &str, operation: &str, api_version: &str, now: &str) {}
