//! ConfigMaps and Secrets: data keys, size limits, type-specific required keys and the
//! `immutable` flag (core `ValidateConfigMap`, `ValidateSecret` and their updates).
//!
//! Secret values travel base64-encoded in JSON; sizes and the dockercfg JSON checks apply
//! to the decoded bytes, so this module carries a small standard-alphabet decoder.

use serde_json::Value;

use super::equality::opt_eq;
use super::field::{Bad, Path, forbidden, invalid, invalid_each, invalid_str, required, too_long};
use super::json::{bool_of, get, obj_of, str_of, sub};
use super::{FIELD_IMMUTABLE, FieldError};
use crate::api::registry::names::is_config_map_key;

/// Upstream `MaxSecretSize` (also the ConfigMap limit).
const MAX_SIZE: usize = 1024 * 1024;

/// Decodes standard base64 with padding, as Go's `encoding/json` does for `[]byte`;
/// the error is Go's "illegal base64 data at input byte N".
pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    let err = |i: usize| format!("illegal base64 data at input byte {i}");
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes: Vec<(usize, u8)> = s
        .bytes()
        .enumerate()
        .filter(|(_, c)| *c != b'\r' && *c != b'\n')
        .collect();
    if !bytes.len().is_multiple_of(4) {
        let at = bytes.len() - bytes.len() % 4;
        return Err(err(bytes.get(at).map_or(s.len(), |(i, _)| *i)));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (q, chunk) in bytes.chunks(4).enumerate() {
        let last = q + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|(_, c)| *c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(err(chunk[4 - pad].0));
        }
        let mut acc: u32 = 0;
        for (i, c) in &chunk[..4 - pad] {
            acc = (acc << 6) | u32::from(value(*c).ok_or_else(|| err(*i))?);
        }
        acc <<= 6 * pad as u32;
        let decoded = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Ok(out)
}

/// Encodes standard base64 with padding.
pub(crate) fn encode_base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// ConfigMap create.
pub(crate) fn validate_cm(obj: &Value, errs: &mut Vec<FieldError>) {
    let mut total = 0usize;
    let binary = obj_of(obj, "binaryData");
    if let Some(data) = obj_of(obj, "data") {
        let dp = Path::new("data");
        for (key, value) in data {
            invalid_each(errs, &dp.key(key), key, is_config_map_key(key));
            if binary.is_some_and(|b| b.contains_key(key)) {
                errs.push(invalid_str(
                    &dp.key(key),
                    key,
                    "duplicate of key present in binaryData",
                ));
            }
            total += value.as_str().map_or(0, str::len);
        }
    }
    if let Some(data) = binary {
        let bp = Path::new("binaryData");
        for (key, value) in data {
            invalid_each(errs, &bp.key(key), key, is_config_map_key(key));
            match decode_base64(value.as_str().unwrap_or("")) {
                Ok(bytes) => total += bytes.len(),
                Err(e) => errs.push(invalid_str(&bp.key(key), "<binary contents redacted>", &e)),
            }
        }
    }
    if total > MAX_SIZE {
        errs.push(too_long(&Path::new(""), MAX_SIZE));
    }
}

fn check_immutable_data(old: &Value, new: &Value, keys: &[&str], errs: &mut Vec<FieldError>) {
    if bool_of(old, "immutable") != Some(true) {
        return;
    }
    let msg = "field is immutable when `immutable` is set";
    if bool_of(new, "immutable") != Some(true) {
        errs.push(forbidden(&Path::new("immutable"), msg));
    }
    for key in keys {
        if !opt_eq(get(old, key), get(new, key)) {
            errs.push(forbidden(&Path::new(key), msg));
        }
    }
}

/// ConfigMap update: immutable ConfigMaps keep their data.
pub(crate) fn update_cm(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    check_immutable_data(old, new, &["data", "binaryData"], errs);
    validate_cm(new, errs);
}

/// Secret create (upstream `ValidateSecret` minus metadata).
pub(crate) fn validate_secret(obj: &Value, errs: &mut Vec<FieldError>) {
    let dp = Path::new("data");
    let mut decoded: Decoded = Vec::new();
    let mut total = 0usize;
    for (key, value) in obj_of(obj, "data").into_iter().flatten() {
        invalid_each(errs, &dp.key(key), key, is_config_map_key(key));
        match decode_base64(value.as_str().unwrap_or("")) {
            Ok(bytes) => {
                total += bytes.len();
                decoded.push((key, bytes));
            }
            Err(e) => errs.push(invalid_str(&dp.key(key), "<secret contents redacted>", &e)),
        }
    }
    if total > MAX_SIZE {
        errs.push(too_long(&dp, MAX_SIZE));
    }
    validate_secret_type(obj, &decoded, &dp, errs);
}

type Decoded<'a> = Vec<(&'a str, Vec<u8>)>;

/// The keys each well-known Secret type requires.
fn validate_secret_type(obj: &Value, decoded: &Decoded, dp: &Path, errs: &mut Vec<FieldError>) {
    let bytes_of = |k: &str| {
        decoded
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, b)| b.as_slice())
    };
    let need = |k: &str, errs: &mut Vec<FieldError>| {
        if bytes_of(k).is_none() {
            errs.push(required(&dp.key(k), ""));
        }
    };
    match str_of(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let annotations = sub(sub(obj, "metadata"), "annotations");
            let key = "kubernetes.io/service-account.name";
            if str_of(annotations, key).is_empty() {
                errs.push(required(
                    &Path::new("metadata").child("annotations").key(key),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => {
            validate_docker_json(bytes_of(".dockercfg"), ".dockercfg", dp, errs)
        }
        "kubernetes.io/dockerconfigjson" => {
            validate_docker_json(bytes_of(".dockerconfigjson"), ".dockerconfigjson", dp, errs);
        }
        "kubernetes.io/basic-auth"
            if bytes_of("username").is_none() && bytes_of("password").is_none() =>
        {
            need("username", errs);
            need("password", errs);
        }
        "kubernetes.io/ssh-auth" if bytes_of("ssh-privatekey").is_none_or(<[u8]>::is_empty) => {
            errs.push(required(&dp.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            need("tls.crt", errs);
            need("tls.key", errs);
        }
        _ => {}
    }
}

fn validate_docker_json(bytes: Option<&[u8]>, key: &str, dp: &Path, errs: &mut Vec<FieldError>) {
    let Some(b) = bytes else {
        errs.push(required(&dp.key(key), ""));
        return;
    };
    let parsed: Result<serde_json::Map<String, Value>, _> = serde_json::from_slice(b);
    if let Err(e) = parsed {
        let redacted = Bad::s("<secret contents redacted>");
        errs.push(invalid(&dp.key(key), redacted, &e.to_string()));
    }
}

/// Secret update: the type is immutable, and so is the data of immutable Secrets.
pub(crate) fn update_secret(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (ot, nt) = (str_of(old, "type"), str_of(new, "type"));
    if ot != nt {
        errs.push(invalid_str(&Path::new("type"), nt, FIELD_IMMUTABLE));
    }
    check_immutable_data(old, new, &["data"], errs);
    validate_secret(new, errs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "hello world", "\u{0}\u{1}ÿ"] {
            let enc = encode_base64(s.as_bytes());
            assert_eq!(decode_base64(&enc).as_deref(), Ok(s.as_bytes()), "{s}");
        }
        assert_eq!(encode_base64(b"ab"), "YWI=");
    }

    #[test]
    fn bad_base64_reports_the_offset() {
        assert_eq!(
            decode_base64("YW!="),
            Err("illegal base64 data at input byte 2".to_string())
        );
        assert!(decode_base64("YWI").is_err());
    }
}
