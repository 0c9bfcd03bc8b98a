//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into
//! the JSON upstream's apiserver would produce for the same object.
//!
//! kubectl and client-go's typed clients send built-in kinds as protobuf with no JSON
//! fallback, while kelp handles objects as JSON. A body is the magic `k8s\0`, then a
//! `runtime.Unknown` envelope {1: TypeMeta{1: apiVersion, 2: kind}, 2: raw, 3:
//! contentEncoding, 4: contentType} whose `raw` is the object's message from upstream's
//! generated.proto. Message layouts come from a generated table (see `table` and
//! tools/gen_protobuf_table.py); the wire decoding is hand-written and bounds-checked, so any
//! malformed body (truncated, wrong wire types, absurd lengths, deep nesting) is a
//! [`ProtobufError`] naming the field, never a panic.
//!
//! Design: decoding goes straight from bytes to `serde_json::Value`, applying Go's JSON rules
//! as the table records them, instead of through typed structs: kelp never needs the typed
//! form, and one table covers every built-in kind. Responses stay JSON, which all clients
//! accept. Known gaps: the few fields upstream added after k8s-pb 0.9.0 whose types the
//! generator could not infer (listed by it) are skipped like unknown fields; quantities are
//! passed through as sent rather than canonicalized (Go clients send canonical ones); raw
//! extensions must hold JSON (not CBOR or nested protobuf); `contentEncoding` is ignored, as
//! upstream does.

pub mod json_order;
mod message;
mod special;
mod table;
#[cfg(test)]
mod tests;
mod wire;

use serde_json::Value;

use message::Decoder;
use wire::{Fault, Reader, WireType};

/// The magic number that starts every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\x00";

/// The media type of Kubernetes protobuf.
const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with the `k8s\0` magic number.
    #[error("protobuf body does not start with the Kubernetes magic number \"k8s\\x00\"")]
    MissingMagic,
    /// The `runtime.Unknown` envelope around the object is malformed.
    #[error("protobuf envelope: {0}")]
    Envelope(String),
    /// The envelope does not say which apiVersion or kind the object is.
    #[error("protobuf envelope names no {0}")]
    MissingTypeMeta(&'static str),
    /// The apiVersion/kind is not a built-in kind this decoder knows.
    #[error("protobuf body for {api_version} {kind}: kind is not known to the protobuf decoder")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The object's bytes do not match its message.
    #[error("protobuf body for {api_version} {kind}: {detail}")]
    Malformed {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
        /// What was wrong, starting with the path of the offending field.
        detail: String,
    },
    /// The embedded message table is broken (a build defect, caught by unit tests).
    #[error("protobuf message table is invalid: {0}")]
    Table(&'static str),
}

/// True for `application/vnd.kubernetes.protobuf` content types (parameters are ignored).
pub fn is_protobuf(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default();
    media_type.trim().eq_ignore_ascii_case(MEDIA_TYPE)
}

/// Decodes a whole request body (envelope + object) into the JSON upstream would produce for
/// it, including `"apiVersion"` and `"kind"`.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let unknown = Envelope::parse(envelope).map_err(|f| ProtobufError::Envelope(f.to_string()))?;
    let present = |text: Option<String>| text.filter(|t| !t.is_empty());
    let api_version =
        present(unknown.api_version).ok_or(ProtobufError::MissingTypeMeta("apiVersion"))?;
    let kind = present(unknown.kind).ok_or(ProtobufError::MissingTypeMeta("kind"))?;
    let schema = table::schema().map_err(ProtobufError::Table)?;
    let Some(index) = schema.find_kind(&api_version, &kind) else {
        return Err(ProtobufError::UnknownKind { api_version, kind });
    };
    let malformed = |fault: Fault| ProtobufError::Malformed {
        api_version: api_version.clone(),
        kind: kind.clone(),
        detail: fault.to_string(),
    };
    let mut object = match Decoder::new(schema, body.len()).message(index, &[unknown.raw], 0) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err(malformed(Fault::new(
                "kind does not decode to a JSON object",
            )));
        }
        Err(fault) => return Err(malformed(fault)),
    };
    object.insert("apiVersion".to_owned(), Value::String(api_version));
    object.insert("kind".to_owned(), Value::String(kind));
    Ok(Value::Object(object))
}

/// The parts of `runtime.Unknown` the decoder uses. `contentEncoding` and `contentType` are
/// ignored, as upstream's protobuf serializer ignores them.
struct Envelope<'a> {
    api_version: Option<String>,
    kind: Option<String>,
    raw: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, Fault> {
        let mut envelope = Envelope {
            api_version: None,
            kind: None,
            raw: &[],
        };
        let mut reader = Reader::new(bytes);
        while !reader.is_empty() {
            match reader.key()? {
                (1, wire) => {
                    message::expect(1, wire, WireType::Len)?;
                    envelope
                        .type_meta(reader.bytes()?)
                        .map_err(|f| f.within("typeMeta"))?;
                }
                (2, wire) => {
                    message::expect(2, wire, WireType::Len)?;
                    envelope.raw = reader.bytes()?;
                }
                (number, wire) => reader.skip(number, wire)?,
            }
        }
        Ok(envelope)
    }

    /// Reads `TypeMeta`; repeated occurrences merge, so the last value of each string wins.
    fn type_meta(&mut self, bytes: &[u8]) -> Result<(), Fault> {
        let mut reader = Reader::new(bytes);
        while !reader.is_empty() {
            let (number, wire) = reader.key()?;
            let slot = match number {
                1 => &mut self.api_version,
                2 => &mut self.kind,
                _ => {
                    reader.skip(number, wire)?;
                    continue;
                }
            };
            message::expect(number, wire, WireType::Len)?;
            let text = String::from_utf8_lossy(reader.bytes()?).into_owned();
            *slot = Some(text);
        }
        Ok(())
    }
}
