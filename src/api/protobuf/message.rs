//! Decoding one message into upstream's JSON, guided by the table.
//!
//! Owns proto2 semantics as gogo-protobuf (upstream's decoder) applies them: the last value of
//! a singular scalar wins, occurrences of a singular message merge (decoded here by feeding all
//! occurrences' bytes through one pass, which is what merging means on the wire), repeated
//! scalars may come packed or not, map entries may omit key or value, unknown fields are
//! skipped. It then applies Go's JSON rules recorded in the table: `omitempty` drops zero values
//! of non-pointer fields, `omitzero` drops zero structs, embedded structs are flattened, and a
//! field the wire leaves out but upstream's JSON always writes gets Go's zero value (`null`
//! for nil slices, maps and pointers, `{}`-like objects for structs). Nesting is limited to [`MAX_DEPTH`] messages so that
//! hostile input cannot exhaust the stack.

use std::cell::Cell;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value};

use super::special;
use super::table::{Absent, Field, Kind, Message, Omit, Scalar, Schema, Special};
use super::wire::{Fault, Reader, WireType};

/// Deepest message nesting accepted; real objects stay far below (CRD schemas are the deepest).
pub(super) const MAX_DEPTH: usize = 100;

/// Zero values written for absent fields, beyond one per input byte. Real objects need a few
/// hundred; the cap stops a body of many empty list items (each two bytes, each filled with a
/// struct's zero value) from inflating into far more memory than its size.
const FILL_ALLOWANCE: usize = 4096;

/// Values gathered for one field while reading a message.
enum Slot<'a> {
    Empty,
    Scalar(Value),
    List(Vec<Value>),
    Chunks(Vec<&'a [u8]>),
    Map(Map<String, Value>),
}

/// Decodes the messages of one body.
pub(super) struct Decoder<'s> {
    schema: &'s Schema,
    /// How many more absent fields may be filled with zero values.
    fills_left: Cell<usize>,
}

impl<'s> Decoder<'s> {
    /// A decoder over `schema` for a body of `body_len` bytes.
    pub(super) fn new(schema: &'s Schema, body_len: usize) -> Self {
        Self {
            schema,
            fills_left: Cell::new(FILL_ALLOWANCE.saturating_add(body_len)),
        }
    }

    /// The JSON for message `index`, whose encoding is the concatenation of `chunks`.
    pub(super) fn message(
        &self,
        index: usize,
        chunks: &[&[u8]],
        depth: usize,
    ) -> Result<Value, Fault> {
        if depth > MAX_DEPTH {
            return Err(Fault::new(format!(
                "messages nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let Some(message) = self.schema.messages.get(index) else {
            return Err(Fault::new("message index out of range"));
        };
        if message.special != Special::None {
            return special::decode(self, message, chunks, depth);
        }
        let values = self.fields(message, chunks, depth)?;
        let mut object = Map::new();
        for (field, value) in message.fields.iter().zip(values) {
            let value = match value {
                Some(value) => value,
                None => match field.absent {
                    Absent::Skip => continue,
                    Absent::Null => Value::Null,
                    Absent::Zero => self.zero_value(field, depth)?,
                },
            };
            if omitted(field.omit, &value) {
                continue;
            }
            match (field.inline, value) {
                (true, Value::Object(members)) => object.extend(members),
                (true, _) => {}
                (false, value) => {
                    object.insert(field.json.clone(), value);
                }
            }
        }
        Ok(Value::Object(object))
    }

    /// The JSON of Go's zero value for a field the wire left out: `null` for nil slices, maps
    /// and byte slices, the scalar's zero, or the message decoded from no bytes.
    fn zero_value(&self, field: &Field, depth: usize) -> Result<Value, Fault> {
        let Some(left) = self.fills_left.get().checked_sub(1) else {
            return Err(Fault::new(
                "too many absent fields to fill with zero values for a body of this size",
            ));
        };
        self.fills_left.set(left);
        match &field.kind {
            _ if field.repeated => Ok(Value::Null),
            Kind::Map(..) | Kind::Scalar(Scalar::Bytes) => Ok(Value::Null),
            Kind::Scalar(scalar) => Ok(zero(*scalar)),
            Kind::Message(index) => self
                .message(*index, &[], depth + 1)
                .map_err(|f| f.within(field.json.as_str())),
        }
    }

    /// Each field's decoded value (`None` if absent), in the order of `message.fields`.
    pub(super) fn fields(
        &self,
        message: &Message,
        chunks: &[&[u8]],
        depth: usize,
    ) -> Result<Vec<Option<Value>>, Fault> {
        let mut slots: Vec<Slot<'_>> = message.fields.iter().map(|_| Slot::Empty).collect();
        for chunk in chunks {
            let mut reader = Reader::new(chunk);
            while !reader.is_empty() {
                let (number, wire) = reader.key()?;
                let Some(index) = message.field_index(number) else {
                    reader.skip(number, wire)?;
                    continue;
                };
                let (Some(field), Some(slot)) = (message.fields.get(index), slots.get_mut(index))
                else {
                    return Err(Fault::new("field index out of range"));
                };
                self.read(field, slot, number, wire, &mut reader, depth)
                    .map_err(|f| f.within(field.json.as_str()))?;
            }
        }
        message
            .fields
            .iter()
            .zip(slots)
            .map(|(field, slot)| self.finish(field, slot, depth))
            .collect()
    }

    fn read<'a>(
        &self,
        field: &Field,
        slot: &mut Slot<'a>,
        number: u32,
        wire: WireType,
        reader: &mut Reader<'a>,
        depth: usize,
    ) -> Result<(), Fault> {
        match &field.kind {
            Kind::Scalar(scalar) if field.repeated => {
                let mut list = take_list(slot);
                if wire == WireType::Len && wire_of(*scalar) != WireType::Len {
                    let mut packed = Reader::new(reader.bytes()?);
                    while !packed.is_empty() {
                        list.push(scalar_value(
                            *scalar,
                            number,
                            wire_of(*scalar),
                            &mut packed,
                        )?);
                    }
                } else {
                    list.push(scalar_value(*scalar, number, wire, reader)?);
                }
                *slot = Slot::List(list);
            }
            Kind::Scalar(scalar) => {
                *slot = Slot::Scalar(scalar_value(*scalar, number, wire, reader)?)
            }
            Kind::Message(index) => {
                expect(number, wire, WireType::Len)?;
                let bytes = reader.bytes()?;
                if field.repeated {
                    let mut list = take_list(slot);
                    let item = self
                        .message(*index, &[bytes], depth + 1)
                        .map_err(|f| f.within(format!("[{}]", list.len())))?;
                    list.push(item);
                    *slot = Slot::List(list);
                } else if let Slot::Chunks(chunks) = slot {
                    chunks.push(bytes);
                } else {
                    *slot = Slot::Chunks(vec![bytes]);
                }
            }
            Kind::Map(key, value) => {
                expect(number, wire, WireType::Len)?;
                let (key, value) = self.map_entry(*key, value, reader.bytes()?, depth)?;
                if !matches!(slot, Slot::Map(_)) {
                    *slot = Slot::Map(Map::new());
                }
                if let Slot::Map(map) = slot {
                    map.insert(key, value);
                }
            }
        }
        Ok(())
    }

    /// One `map<key, value>` entry: a message with the key as field 1 and the value as field 2.
    fn map_entry(
        &self,
        key_type: Scalar,
        value_kind: &Kind,
        entry: &[u8],
        depth: usize,
    ) -> Result<(String, Value), Fault> {
        let mut key = None;
        let mut scalar = None;
        let mut chunks = Vec::new();
        let mut reader = Reader::new(entry);
        while !reader.is_empty() {
            match reader.key()? {
                (1, wire) => key = Some(scalar_value(key_type, 1, wire, &mut reader)?),
                (2, wire) => match value_kind {
                    Kind::Scalar(s) => scalar = Some(scalar_value(*s, 2, wire, &mut reader)?),
                    _ => {
                        expect(2, wire, WireType::Len)?;
                        chunks.push(reader.bytes()?);
                    }
                },
                (number, wire) => reader.skip(number, wire)?,
            }
        }
        let key = match key.unwrap_or_else(|| zero(key_type)) {
            Value::String(text) => text,
            other => other.to_string(),
        };
        let value = match value_kind {
            Kind::Scalar(s) => Ok(scalar.unwrap_or_else(|| zero(*s))),
            Kind::Message(index) => self.message(*index, &chunks, depth + 1),
            Kind::Map(..) => Err(Fault::new("map of maps")),
        }
        .map_err(|f| f.within(format!("[{key:?}]")))?;
        Ok((key, value))
    }

    fn finish(&self, field: &Field, slot: Slot<'_>, depth: usize) -> Result<Option<Value>, Fault> {
        Ok(match slot {
            Slot::Empty => None,
            Slot::Scalar(value) => Some(value),
            Slot::List(values) => Some(Value::Array(values)),
            Slot::Map(map) => Some(Value::Object(map)),
            Slot::Chunks(chunks) => {
                let Kind::Message(index) = field.kind else {
                    return Err(Fault::new("message bytes for a non-message field"));
                };
                let value = self
                    .message(index, &chunks, depth + 1)
                    .map_err(|f| f.within(field.json.as_str()))?;
                Some(value)
            }
        })
    }
}

/// Takes the list gathered so far out of `slot` (empty if none) to append to it.
fn take_list(slot: &mut Slot<'_>) -> Vec<Value> {
    match std::mem::replace(slot, Slot::Empty) {
        Slot::List(list) => list,
        _ => Vec::new(),
    }
}

/// The wire type a scalar uses outside packed lists.
fn wire_of(scalar: Scalar) -> WireType {
    match scalar {
        Scalar::String | Scalar::Bytes => WireType::Len,
        Scalar::Bool | Scalar::Int32 | Scalar::Int64 => WireType::Varint,
        Scalar::Double => WireType::Fixed64,
    }
}

/// Checks a field's wire type.
pub(super) fn expect(number: u32, actual: WireType, expected: WireType) -> Result<(), Fault> {
    if actual == expected {
        return Ok(());
    }
    Err(Fault::new(format!(
        "field {number} has wire type {}, expected {}",
        actual.number(),
        expected.describe()
    )))
}

/// Reads one scalar as its JSON value.
fn scalar_value(
    scalar: Scalar,
    number: u32,
    wire: WireType,
    reader: &mut Reader<'_>,
) -> Result<Value, Fault> {
    expect(number, wire, wire_of(scalar))?;
    Ok(match scalar {
        Scalar::String => Value::String(String::from_utf8_lossy(reader.bytes()?).into_owned()),
        Scalar::Bytes => Value::String(STANDARD.encode(reader.bytes()?)),
        Scalar::Bool => Value::Bool(reader.varint()? != 0),
        // Go keeps the low 32 bits of the varint.
        Scalar::Int32 => Value::from(reader.varint()? as u32 as i32),
        Scalar::Int64 => Value::from(reader.varint()? as i64),
        Scalar::Double => double(f64::from_bits(reader.fixed64()?))?,
    })
}

/// Go prints integral floats without a fraction (`1`, not `1.0`), and refuses NaN/Inf.
fn double(value: f64) -> Result<Value, Fault> {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        return Ok(Value::from(value as i64));
    }
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| Fault::new(format!("{value} cannot be represented in JSON")))
}

/// Go's zero value of a scalar.
fn zero(scalar: Scalar) -> Value {
    match scalar {
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        Scalar::Bool => Value::Bool(false),
        Scalar::Int32 | Scalar::Int64 | Scalar::Double => Value::from(0),
    }
}

fn omitted(omit: Omit, value: &Value) -> bool {
    match omit {
        Omit::Never => false,
        Omit::Empty => is_empty(value),
        Omit::Zero => is_zero(value),
    }
}

/// Go's `omitempty` test for non-struct values.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Go's `omitzero` test: every member zero (a zero time decodes to `null`).
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Object(o) => o.values().all(is_zero),
        other => is_empty(other),
    }
}
