//! TEMPORARY STUB (replaced by the validation helper's module).
#![allow(missing_docs, dead_code, unused_variables)]
use serde_json::Value;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CauseType {
    Required,
    Invalid,
    Duplicate,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
}
impl CauseType {
    pub fn as_str(&self) -> &'static str {
        "FieldValueInvalid"
    }
}
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: CauseType,
    pub field: String,
    pub message: String,
}
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    vec![]
}
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    vec![]
}
