//! Messages whose JSON is not an object of their fields, because upstream gives their Go types
//! a custom JSON marshaller: times, durations, quantities, int-or-string, embedded raw JSON,
//! the apiextensions schema unions and go-to-protobuf's wrappers of named slices.
//!
//! Each conversion follows the upstream marshaller: `metav1.Time` keeps whole seconds (its
//! protobuf decoder drops nanoseconds), `MicroTime` truncates to microseconds, a zero time (an
//! empty message) is `null`. Values upstream could not marshal (an `IntOrString` of unknown
//! type, raw bytes that are not JSON, a year outside 0..=9999) are faults, not guesses.

use serde_json::Value;

use super::message::{Decoder, expect};
use super::table::{Message, Special};
use super::wire::{Fault, Reader, WireType};

/// The JSON for a special message.
pub(super) fn decode(
    decoder: &Decoder<'_>,
    message: &Message,
    chunks: &[&[u8]],
    depth: usize,
) -> Result<Value, Fault> {
    if message.special == Special::RawJson {
        return raw_json(chunks);
    }
    let empty = chunks.iter().all(|c| c.is_empty());
    let values = decoder.fields(message, chunks, depth)?;
    let get = |number: u32| {
        let index = message.field_index(number)?;
        values.get(index)?.as_ref()
    };
    let int = |number: u32| get(number).and_then(Value::as_i64).unwrap_or(0);
    let list = |number: u32| get(number).filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    Ok(match message.special {
        Special::Time if empty => Value::Null,
        Special::Time => Value::String(rfc3339(int(1), None)?),
        Special::MicroTime if empty => Value::Null,
        Special::MicroTime => Value::String(micro_time(int(1), int(2))?),
        Special::Duration => Value::String(crate::client::timestamps::go_duration(int(1))),
        Special::Quantity => quantity(get(1))?,
        Special::IntOrString => match int(1) {
            0 => Value::from(int(2)),
            1 => get(3)
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            other => return Err(Fault::new(format!("IntOrString has unknown type {other}"))),
        },
        Special::OrArray => list(2).or(get(1)).cloned().unwrap_or(Value::Null),
        Special::OrBool => match get(2) {
            Some(schema) => schema.clone(),
            None => Value::Bool(get(1).and_then(Value::as_bool).unwrap_or(false)),
        },
        Special::OrStrings => list(2).or(get(1)).cloned().unwrap_or(Value::Null),
        Special::Wrap => list(1).cloned().unwrap_or(Value::Null),
        Special::None | Special::RawJson => {
            return Err(Fault::new(format!(
                "{} is not a special message",
                message.name
            )));
        }
    })
}

/// `RawExtension`, `FieldsV1` and apiextensions `JSON`: field 1 holds JSON text, emitted as is.
fn raw_json(chunks: &[&[u8]]) -> Result<Value, Fault> {
    let mut raw: Option<&[u8]> = None;
    for chunk in chunks {
        let mut reader = Reader::new(chunk);
        while !reader.is_empty() {
            match reader.key()? {
                (1, wire) => {
                    expect(1, wire, WireType::Len)?;
                    raw = Some(reader.bytes()?);
                }
                (number, wire) => reader.skip(number, wire)?,
            }
        }
    }
    match raw {
        None | Some([]) => Ok(Value::Null),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| Fault::new(format!("embedded raw object is not JSON: {e}"))),
    }
}

fn quantity(value: Option<&Value>) -> Result<Value, Fault> {
    let Some(value) = value else {
        return Ok(Value::String("0".to_owned()));
    };
    let text = value.as_str().unwrap_or_default();
    if !is_quantity(text) {
        return Err(Fault::new(format!("{text:?} is not a quantity")));
    }
    Ok(value.clone())
}

/// The syntax `resource.ParseQuantity` accepts: a signed decimal number, then a binary SI
/// suffix, a decimal SI suffix or a decimal exponent.
fn is_quantity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits_end = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(digits_end);
    let has_digit = number.chars().any(|c| c.is_ascii_digit());
    if !has_digit || number.matches('.').count() > 1 {
        return false;
    }
    const SUFFIXES: [&str; 16] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
}

/// `metav1.MicroTime`: the nanoseconds truncated towards zero to microseconds, as upstream.
fn micro_time(seconds: i64, nanos: i64) -> Result<String, Fault> {
    let nanos = i128::from(nanos) - i128::from(nanos) % 1_000;
    let total = i128::from(seconds) * 1_000_000_000 + nanos;
    let seconds = total.div_euclid(1_000_000_000);
    let micros = total.rem_euclid(1_000_000_000) / 1_000;
    let seconds = i64::try_from(seconds).map_err(|_| Fault::new("timestamp out of range"))?;
    rfc3339(seconds, Some(micros as u32))
}

/// RFC 3339 in UTC, with exactly six fractional digits when `micros` is given.
fn rfc3339(seconds: i64, micros: Option<u32>) -> Result<String, Fault> {
    let days = seconds.div_euclid(86_400);
    let (year, _, _) = crate::api::calendar::civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return Err(Fault::new(format!(
            "timestamp {seconds} is outside years 0 to 9999"
        )));
    }
    Ok(crate::api::calendar::format_rfc3339(seconds, micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::timestamps::go_duration;

    #[test]
    fn durations_match_go_formatting() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(2_000_000), "2ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(go_duration(-90_000_000_000), "-1m30s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn times_format_as_rfc3339_utc() {
        assert_eq!(
            rfc3339(1_704_164_645, None).unwrap(),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(rfc3339(0, None).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400, None).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1, None).unwrap(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn micro_time_truncates_nanoseconds() {
        assert_eq!(
            micro_time(1_704_164_645, 123_456_789).unwrap(),
            "2024-01-02T03:04:05.123456Z"
        );
        assert_eq!(
            micro_time(1_704_164_645, 0).unwrap(),
            "2024-01-02T03:04:05.000000Z"
        );
        assert_eq!(
            micro_time(10, -1_500).unwrap(),
            "1970-01-01T00:00:09.999999Z"
        );
    }

    #[test]
    fn times_beyond_year_9999_are_faults() {
        assert!(rfc3339(i64::MAX, None).is_err());
        assert!(micro_time(i64::MAX, 999_999_999).is_err());
        assert!(rfc3339(-62_167_219_201, None).is_err());
    }

    #[test]
    fn quantity_syntax_follows_parse_quantity() {
        for good in [
            "1", "100m", "1.5Gi", "+2", "-3k", ".5", "1e3", "2E-2", "5.", "0",
        ] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "1.2.3", "1Qi", "1e", "1e+", "abc", "1 Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
