//! PLACEHOLDER (replaced by the real engine before commit).
#![allow(missing_docs)]
use serde_json::Value;
pub struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}
pub struct SchemaRules;
impl SchemaRules {
    pub fn compile(_s: &Value, _p: &str) -> Result<SchemaRules, Vec<(String, String)>> {
        Ok(SchemaRules)
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn validate(&self, _o: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        Vec::new()
    }
}
pub struct Program;
impl Program {
    pub fn compile(_e: &str) -> Result<Program, String> {
        Ok(Program)
    }
    pub fn evaluate_bool(&self, _v: &[(&str, &Value)]) -> Result<bool, String> {
        Ok(true)
    }
    pub fn evaluate(&self, _v: &[(&str, &Value)]) -> Result<Value, String> {
        Ok(Value::Null)
    }
}
