//! PLACEHOLDER (replaced by the real engine before commit).
#![allow(missing_docs)]
use serde_json::Value;
pub struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}
pub struct Structural;
impl Structural {
    pub fn compile(_s: &Value, _p: &str) -> Result<Structural, Vec<FieldError>> {
        Ok(Structural)
    }
    pub fn apply_defaults(&self, _o: &mut Value) {}
    pub fn prune(&self, _o: &mut Value) -> Vec<String> {
        Vec::new()
    }
    pub fn validate(&self, _o: &Value) -> Vec<FieldError> {
        Vec::new()
    }
}
