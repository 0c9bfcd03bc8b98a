//! Unit tests of the protobuf decoder, on bodies built by hand with [`Enc`].

mod malformed;
mod values;

use super::*;

/// A protobuf message under construction, for building test bodies by hand.
#[derive(Default, Clone)]
struct Enc(Vec<u8>);

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl Enc {
    fn key(mut self, number: u32, wire: u8) -> Self {
        push_varint(&mut self.0, (u64::from(number) << 3) | u64::from(wire));
        self
    }
    fn int(self, number: u32, value: u64) -> Self {
        let mut enc = self.key(number, 0);
        push_varint(&mut enc.0, value);
        enc
    }
    fn bytes(self, number: u32, value: &[u8]) -> Self {
        let mut enc = self.key(number, 2);
        push_varint(&mut enc.0, value.len() as u64);
        enc.0.extend_from_slice(value);
        enc
    }
    fn str(self, number: u32, value: &str) -> Self {
        self.bytes(number, value.as_bytes())
    }
    fn msg(self, number: u32, value: Enc) -> Self {
        self.bytes(number, &value.0)
    }
    fn double(self, number: u32, value: f64) -> Self {
        let mut enc = self.key(number, 1);
        enc.0.extend_from_slice(&value.to_le_bytes());
        enc
    }
    /// A `map<string, string>` entry.
    fn entry(self, number: u32, key: &str, value: &str) -> Self {
        self.msg(number, Enc::default().str(1, key).str(2, value))
    }
}

fn body(api_version: &str, kind: &str, object: Enc) -> Vec<u8> {
    let type_meta = Enc::default().str(1, api_version).str(2, kind);
    let unknown = Enc::default()
        .msg(1, type_meta)
        .msg(2, object)
        .str(3, "")
        .str(4, "");
    [MAGIC, &unknown.0].concat()
}

/// ObjectMeta as Go writes it: every non-pointer field present, zero or not.
fn meta(name: &str) -> Enc {
    Enc::default()
        .str(1, name)
        .str(2, "")
        .str(3, "")
        .str(4, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, Enc::default())
}

fn decode_ok(api_version: &str, kind: &str, object: Enc) -> Value {
    decode(&body(api_version, kind, object)).unwrap()
}

fn decode_err(api_version: &str, kind: &str, object: Enc) -> String {
    decode(&body(api_version, kind, object))
        .unwrap_err()
        .to_string()
}
