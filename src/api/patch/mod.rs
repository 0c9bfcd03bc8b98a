//! PATCH semantics of the apiserver and server-side apply, on JSON objects.
//!
//! Owns what k8s.io/apiserver's patch handler and field manager do to an object's
//! content: RFC 6902 JSON patch and RFC 7386 merge patch ([`json`]), strategic
//! merge patch driven by the built-in types' merge keys ([`strategic`],
//! [`schema`]), server-side apply with conflict detection ([`apply`]) and
//! `metadata.managedFields` tracking for every write ([`managed_fields`]).
//!
//! Callers hand in the stored object and the raw request body and get the new
//! object back, or a [`PatchError`] whose variant is the HTTP status upstream
//! answers with and whose text is upstream's message. Metadata normalisation
//! (resourceVersion, uid, ...), defaulting and validation are the caller's job;
//! this module never looks at them beyond what upstream's merge logic does.
//!
//! Everything is a pure function of its inputs (the current time is a parameter),
//! so handlers can retry on storage conflicts by calling again.

mod apply;
mod fieldpath;
mod json;
mod managed_fields;
mod schema;
mod strategic;
mod typed;

use serde_json::Value;

pub use apply::server_side_apply;
pub use managed_fields::{Writer, update_managed_fields, update_managed_fields_for_subresource};

/// The four PATCH content types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// Parses a `Content-Type` header value, ignoring parameters such as `charset`.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let media = ct.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type, as upstream lists it.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied; each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// Malformed body or directive: 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but does not apply (json-patch `test` failed, a
    /// path is missing, a list of lists): 422, as upstream's
    /// `NewGenericServerResponse(StatusUnprocessableEntity, ...)`, reason `Invalid`.
    #[error("{0}")]
    Unprocessable(String),
    /// Strategic merge patch of a kind without Go types (custom resources): 415
    /// UnsupportedMediaType.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// More than 10 000 json-patch operations: 413 RequestEntityTooLarge.
    #[error("{0}")]
    RequestEntityTooLarge(String),
    /// Server-side apply conflicts: 409 Conflict, reason `Conflict`, one cause of
    /// type `FieldManagerConflict` per conflicting field.
    #[error("{message}")]
    Conflict {
        /// Upstream's summary, e.g. `Apply failed with 1 conflict: conflict with
        /// "kubectl-client-side-apply" using apps/v1: .spec.replicas`.
        message: String,
        /// `(field, message)` pairs such as
        /// `(".spec.replicas", "conflict with \"kubectl-client-side-apply\" using apps/v1")`.
        causes: Vec<(String, String)>,
    },
    /// Errors upstream passes through unclassified (an SMP list item without its
    /// merge key, duplicate keys in an applied list, undecodable managedFields):
    /// 500 InternalError, message as upstream prints it.
    #[error("{0}")]
    Internal(String),
}

impl PatchError {
    /// The HTTP status code upstream answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Conflict { .. } => 409,
            PatchError::RequestEntityTooLarge(_) => 413,
            PatchError::UnsupportedMediaType(_) => 415,
            PatchError::Unprocessable(_) => 422,
            PatchError::Internal(_) => 500,
        }
    }
}

/// Type identity for schema lookups: API group (`""` for core) and kind.
#[derive(Clone, Copy, Debug)]
pub struct TypeRef<'a> {
    /// API group, `""` for the core group.
    pub group: &'a str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'a str,
    /// A custom resource's structural schema: its list types and map keys
    /// guide server-side apply, as upstream's CRD type converter does.
    pub schema: Option<&'static crate::api::custom::schema::Node>,
}

impl<'a> TypeRef<'a> {
    /// A built-in kind.
    pub const fn builtin(group: &'a str, kind: &'a str) -> Self {
        TypeRef {
            group,
            kind,
            schema: None,
        }
    }
}

/// Whether strategic merge patch is available for `ty` (built-in kinds only).
pub fn supports_strategic_merge(ty: TypeRef<'_>) -> bool {
    schema::has_strategic_schema(ty)
}

/// Upstream's 415 message for patch types a custom resource does not accept.
const CUSTOM_RESOURCE_MEDIA_TYPES: &str = "the body of the request was in an unknown format - \
    accepted media types include: application/json-patch+json, application/merge-patch+json, \
    application/apply-patch+yaml";

/// Applies a JSON, merge or strategic merge patch `body` to `original`.
///
/// [`PatchType::Apply`] is refused here: it needs the field manager, see
/// [`server_side_apply`].
pub fn apply_patch(
    original: &Value,
    patch_type: PatchType,
    body: &[u8],
    ty: TypeRef<'_>,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json::json_patch(original, body),
        PatchType::Merge => json::merge_patch(original, body),
        PatchType::StrategicMerge if !schema::has_strategic_schema(ty) => Err(
            PatchError::UnsupportedMediaType(CUSTOM_RESOURCE_MEDIA_TYPES.to_string()),
        ),
        PatchType::StrategicMerge => strategic::apply(original, body, ty),
        PatchType::Apply => Err(PatchError::BadRequest(format!(
            "{}: unimplemented patch type",
            PatchType::Apply.content_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_parse_with_parameters() {
        let cases = [
            ("application/json-patch+json", PatchType::Json),
            (
                "application/merge-patch+json; charset=utf-8",
                PatchType::Merge,
            ),
            (
                "application/strategic-merge-patch+json",
                PatchType::StrategicMerge,
            ),
            (
                "application/apply-patch+yaml;charset=utf-8",
                PatchType::Apply,
            ),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), Some(want));
            assert_eq!(
                PatchType::from_content_type(want.content_type()),
                Some(want)
            );
        }
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn strategic_patch_of_custom_resource_is_unsupported_media_type() {
        let ty = TypeRef::builtin("example.com", "Widget");
        let err = apply_patch(&json!({}), PatchType::StrategicMerge, b"{}", ty).unwrap_err();
        assert_eq!(err.status_code(), 415);
        assert_eq!(err.to_string(), CUSTOM_RESOURCE_MEDIA_TYPES);
        let merged = apply_patch(&json!({"a": 1}), PatchType::Merge, br#"{"b":2}"#, ty).unwrap();
        assert_eq!(merged, json!({"a": 1, "b": 2}));
    }

    #[test]
    fn apply_type_is_refused_by_apply_patch() {
        let ty = TypeRef::builtin("", "Pod");
        let err = apply_patch(&json!({}), PatchType::Apply, b"{}", ty).unwrap_err();
        assert_eq!(err.status_code(), 400);
    }
}
