//! The protobuf wire format: a bounds-checked reader over one message's bytes.
//!
//! Owns varints, field keys, length-delimited payloads and skipping unknown fields. Every read
//! checks the remaining length first and reports a [`Fault`] instead of panicking, because the
//! bytes come straight from a request body. Groups (wire types 3 and 4) are refused: no
//! Kubernetes message uses them.

use std::fmt;

/// Largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// What went wrong while decoding, and where: `path` names the enclosing fields, innermost
/// last once [`Fault::within`] has been applied on the way out.
#[derive(Debug)]
pub(super) struct Fault {
    reason: String,
    path: Vec<String>,
}

impl Fault {
    /// A fault at the current position.
    pub(super) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            path: Vec::new(),
        }
    }

    /// Records that the fault happened inside `segment` (a field name or `name[index]`).
    pub(super) fn within(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return f.write_str(&self.reason);
        }
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        write!(f, "{path}: {}", self.reason)
    }
}

/// How a field's value is laid out on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WireType {
    /// Base-128 varint.
    Varint,
    /// Eight little-endian bytes.
    Fixed64,
    /// A varint length, then that many bytes.
    Len,
    /// Start of a group (unsupported).
    StartGroup,
    /// End of a group (unsupported).
    EndGroup,
    /// Four little-endian bytes.
    Fixed32,
}

impl WireType {
    fn from_bits(bits: u64) -> Option<Self> {
        Some(match bits {
            0 => Self::Varint,
            1 => Self::Fixed64,
            2 => Self::Len,
            3 => Self::StartGroup,
            4 => Self::EndGroup,
            5 => Self::Fixed32,
            _ => return None,
        })
    }

    /// The number protobuf uses for the wire type.
    pub(super) fn number(self) -> u8 {
        match self {
            Self::Varint => 0,
            Self::Fixed64 => 1,
            Self::Len => 2,
            Self::StartGroup => 3,
            Self::EndGroup => 4,
            Self::Fixed32 => 5,
        }
    }

    /// How error messages name the wire type.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Self::Varint => "varint",
            Self::Fixed64 => "64-bit",
            Self::Len => "length-delimited",
            Self::StartGroup | Self::EndGroup => "group",
            Self::Fixed32 => "32-bit",
        }
    }
}

/// A cursor over one message's bytes.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte of `buf`.
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Whether every byte has been consumed.
    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Reads a varint of at most ten bytes; bits past the 64th are dropped, as Go does.
    pub(super) fn varint(&mut self) -> Result<u64, Fault> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(Fault::new("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Fault::new("varint longer than ten bytes"))
    }

    /// Reads a field key: its number and wire type.
    pub(super) fn key(&mut self) -> Result<(u32, WireType), Fault> {
        let key = self.varint()?;
        let number = key >> 3;
        let Some(wire) = WireType::from_bits(key & 7) else {
            return Err(Fault::new(format!(
                "field {number} has invalid wire type {}",
                key & 7
            )));
        };
        match u32::try_from(number) {
            Ok(n) if n > 0 && number <= MAX_FIELD_NUMBER => Ok((n, wire)),
            _ => Err(Fault::new(format!("illegal field number {number}"))),
        }
    }

    /// Reads a length-delimited payload.
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], Fault> {
        let len = self.varint()?;
        let remaining = self.remaining();
        match usize::try_from(len) {
            Ok(len) if len <= remaining => self.take(len),
            _ => Err(Fault::new(format!(
                "length {len} exceeds the {remaining} bytes left"
            ))),
        }
    }

    /// Reads eight little-endian bytes.
    pub(super) fn fixed64(&mut self) -> Result<u64, Fault> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Fault> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len());
        let Some(end) = end else {
            return Err(Fault::new(format!(
                "truncated: {len} bytes needed, {} left",
                self.remaining()
            )));
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Skips the value of a field this decoder does not know, as upstream does.
    pub(super) fn skip(&mut self, number: u32, wire: WireType) -> Result<(), Fault> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
            WireType::StartGroup | WireType::EndGroup => Err(Fault::new(format!(
                "field {number} uses protobuf groups, which Kubernetes never sends"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_decodes_multi_byte_values() {
        let mut reader = Reader::new(&[0xac, 0x02, 0x01]);
        assert_eq!(reader.varint().unwrap(), 300);
        assert_eq!(reader.varint().unwrap(), 1);
        assert!(reader.is_empty());
    }

    #[test]
    fn truncated_varint_is_an_error() {
        let err = Reader::new(&[0x80, 0x80]).varint().unwrap_err();
        assert_eq!(err.to_string(), "truncated varint");
    }

    #[test]
    fn eleven_byte_varint_is_an_error() {
        let err = Reader::new(&[0xff; 11]).varint().unwrap_err();
        assert_eq!(err.to_string(), "varint longer than ten bytes");
    }

    #[test]
    fn length_beyond_the_buffer_is_an_error() {
        let err = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2])
            .bytes()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "length 4294967295 exceeds the 2 bytes left"
        );
    }

    #[test]
    fn field_number_zero_is_illegal() {
        let err = Reader::new(&[0x02]).key().unwrap_err();
        assert_eq!(err.to_string(), "illegal field number 0");
    }

    #[test]
    fn invalid_wire_type_is_named() {
        let err = Reader::new(&[0x0e]).key().unwrap_err();
        assert_eq!(err.to_string(), "field 1 has invalid wire type 6");
    }

    #[test]
    fn groups_are_refused_when_skipped() {
        let mut reader = Reader::new(&[0x0b, 0x0c]);
        let (number, wire) = reader.key().unwrap();
        assert!(reader.skip(number, wire).is_err());
    }

    #[test]
    fn fault_paths_read_outermost_first() {
        let fault = Fault::new("bad")
            .within("ports")
            .within("[0]")
            .within("containers")
            .within("spec");
        assert_eq!(fault.to_string(), "spec.containers[0].ports: bad");
    }
}
